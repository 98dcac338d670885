import * as vscode from 'vscode';
import { ROLES, defaultLanguage, type CellRole } from '../core/notebook-format.js';
import { NOTEBOOK_TYPE, roleOf } from '../serializer.js';

const ROLE_HELP: Record<CellRole, string> = {
  definitions: 'top-level TypeScript: imports, helpers, custom readers and writers',
  reader: 'an expression giving the InputReader',
  mapper: 'the body of the mapper function, run on workers',
  writers: 'an expression giving one OutputWriter or a list of them',
  run: 'YAML run settings: pool, batchSize, activateEnv',
};

/** Shows each code cell's role in its status bar; clicking it changes the role. */
class RoleStatusBar implements vscode.NotebookCellStatusBarItemProvider {
  provideCellStatusBarItems(cell: vscode.NotebookCell): vscode.NotebookCellStatusBarItem[] {
    const role = roleOf(cell);
    if (!role) return [];
    // A new cell has no role yet: it counts as definitions, which also run on the workers, and says so plainly.
    const chosen = typeof cell.metadata?.role === 'string';
    const text = chosen ? `$(symbol-field) ${role}` : `$(question) ${role}: runs here and on the workers · set role`;
    const item = new vscode.NotebookCellStatusBarItem(text, vscode.NotebookCellStatusBarAlignment.Left);
    item.tooltip = chosen
      ? `Sky Batch cell role: ${role} (${ROLE_HELP[role]}). Click to change.`
      : `This cell has no role yet, so it is ${role} (${ROLE_HELP[role]}): it runs where the notebook runs and on the workers with the mapper that uses it. Click to choose reader, mapper, writers, run or definitions.`;
    item.command = { command: 'skybatch.setCellRole', title: 'Set Cell Role', arguments: [cell] };
    return [item];
  }
}

export function registerCellRoles(): vscode.Disposable {
  return vscode.Disposable.from(
    vscode.notebooks.registerNotebookCellStatusBarItemProvider(NOTEBOOK_TYPE, new RoleStatusBar()),
    vscode.commands.registerCommand('skybatch.setCellRole', async (cellArg?: vscode.NotebookCell, roleArg?: CellRole) => {
      const editor = vscode.window.activeNotebookEditor;
      const cell = cellArg ?? (editor && editor.notebook.cellAt(editor.selections[0]?.start ?? 0));
      if (!cell || cell.kind !== vscode.NotebookCellKind.Code) return;
      const role =
        roleArg ??
        (await vscode.window.showQuickPick(
          ROLES.map((r) => ({ label: r, description: ROLE_HELP[r] })),
          { placeHolder: `Role of cell ${cell.index + 1}` },
        ))?.label;
      if (!role) return;
      const edit = new vscode.WorkspaceEdit();
      edit.set(cell.notebook.uri, [vscode.NotebookEdit.updateCellMetadata(cell.index, { ...cell.metadata, role })]);
      await vscode.workspace.applyEdit(edit);
      const lang = defaultLanguage(role as CellRole);
      if ((lang === 'yaml') !== (cell.document.languageId === 'yaml')) await vscode.languages.setTextDocumentLanguage(cell.document, lang);
    }),
  );
}
