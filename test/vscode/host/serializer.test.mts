import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { api, defineSuite, notebookText, waitFor, WS, write } from './helpers.mjs';

export const serializerSuite = defineSuite('notebook format', (t) => {
  t.test('opens and saves every sample notebook byte for byte', async () => {
    const samples = fs.readdirSync(path.join(WS, 'samples'), { recursive: true }).map(String).filter((f) => f.endsWith('.skybatch'));
    assert.ok(samples.length >= 3, `expected the three sample notebooks, found ${samples.join(', ')}`);
    for (const rel of samples) {
      const original = fs.readFileSync(path.join(WS, 'samples', rel), 'utf8');
      const copy = write(`roundtrip/${path.basename(rel)}`, original);
      const doc = await vscode.workspace.openNotebookDocument(vscode.Uri.file(copy));
      const roles = doc.getCells().filter((c) => c.kind === vscode.NotebookCellKind.Code).map((c) => c.metadata.role);
      for (const r of ['reader', 'mapper', 'writers', 'run']) assert.ok(roles.includes(r), `${rel} has a ${r} cell (roles: ${roles})`);
      // Change a cell and change it back, then save: the file must come out identical.
      const cell = doc.cellAt(1);
      const before = cell.document.getText();
      const edit = new vscode.WorkspaceEdit();
      edit.insert(cell.document.uri, new vscode.Position(0, 0), '// x\n');
      await vscode.workspace.applyEdit(edit);
      const undo = new vscode.WorkspaceEdit();
      undo.delete(cell.document.uri, new vscode.Range(0, 0, 1, 0));
      await vscode.workspace.applyEdit(undo);
      assert.equal(cell.document.getText(), before);
      await vscode.window.showNotebookDocument(doc);
      await vscode.commands.executeCommand('workbench.action.files.save');
      await waitFor(`${rel} to be saved`, () => !doc.isDirty, 10_000);
      assert.equal(fs.readFileSync(copy, 'utf8'), original, `${rel} round-trips exactly`);
    }
  });

  t.test('a truncated file fails to open with an error naming the line, never as an empty notebook', async () => {
    const file = write('corrupt/broken.skybatch', '# Broken\n\n```ts reader\nnew sky.JsonReader("x.jsonl")\n\n```ts mapper\nfor await (const b of sky.load()) {}\n');
    await assert.rejects(async () => await vscode.workspace.openNotebookDocument(vscode.Uri.file(file)), /line 3: the reader cell opened here is never closed/);
  });

  t.test('invalid cells get diagnostics on the offending line before anything runs', async () => {
    const file = write(
      'diag/bad.skybatch',
      notebookText([
        { role: 'reader', source: "new sky.JsonReader('data.jsonl')" },
        { role: 'mapper', source: 'for await (const batch of sky.load()) {\n  await sky.saveResults(batch.map((x) => ({ y: x.text )));\n}' },
        { role: 'writers', source: "new sky.JsonWriter('out.jsonl')" },
        { role: 'run', source: 'pool: p1\nbatchSize: zero\ncolour: blue' },
      ]),
    );
    const doc = await vscode.workspace.openNotebookDocument(vscode.Uri.file(file));
    const { diagnostics } = await api();
    await diagnostics.validate(doc);
    const mapper = await waitFor('mapper diagnostics', () => vscode.languages.getDiagnostics(doc.cellAt(1).document.uri).length > 0 && vscode.languages.getDiagnostics(doc.cellAt(1).document.uri));
    assert.equal(mapper[0].range.start.line, 1, mapper[0].message);
    assert.equal(mapper[0].severity, vscode.DiagnosticSeverity.Error);
    const run = vscode.languages.getDiagnostics(doc.cellAt(3).document.uri).map((d) => [d.range.start.line, d.message] as const);
    assert.deepEqual(run.map((r) => r[0]), [1, 2], JSON.stringify(run));
    assert.match(run[0][1], /'batchSize' must be a positive integer, got "zero"/);
    assert.match(run[1][1], /unknown setting "colour"/);
  });
});
