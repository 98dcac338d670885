import * as vscode from 'vscode';
import { registerCellRoles } from './commands/cell-role.js';
import { registerCancelJob } from './commands/job-commands.js';
import { registerNewJob } from './commands/new-job.js';
import { registerApplyPool, registerReapplyPool, registerTearDownPool } from './commands/pool-commands.js';
import { registerRecover, registerResume } from './commands/recover.js';
import { registerShowJobPanel, registerShowScript } from './commands/show-commands.js';
import { registerCellIntellisense } from './cell-intellisense.js';
import { BatchJobController } from './controller.js';
import { NotebookDiagnostics } from './diagnostics.js';
import { engine, setEngineRoot } from './engine.js';
import { JobPanels, registerJobPanels } from './job-panel.js';
import { JobRecords } from './job-records.js';
import { PoolsTree, registerPoolsTree } from './pools-tree.js';
import { registerOutputLinks } from './output-links.js';
import { registerReattach } from './reattach.js';
import { registerSerializer } from './serializer.js';

/** What the extension hands to its tests (and to other extensions). */
export interface SkybatchApi {
  controller: BatchJobController;
  tree: PoolsTree;
  records: JobRecords;
  panels: JobPanels;
  diagnostics: NotebookDiagnostics;
}

export function activate(context: vscode.ExtensionContext): SkybatchApi {
  setEngineRoot(context.extensionPath);
  const log = vscode.window.createOutputChannel('Sky Batch');
  const records = new JobRecords(context.workspaceState);
  const diagnostics = new NotebookDiagnostics();
  const tree = new PoolsTree(engine);
  const refresh = () => void tree.refresh();
  const controller = new BatchJobController({ engine, diagnostics, records, log, onJob: refresh });
  const panels = new JobPanels(vscode.Uri.joinPath(context.extensionUri, 'out', 'webview'), engine, records, context.workspaceState);
  context.subscriptions.push(
    log,
    diagnostics,
    controller,
    panels,
    registerSerializer(),
    registerCellRoles(),
    registerCellIntellisense(context.extensionPath, log),
    registerPoolsTree(tree),
    registerJobPanels(panels),
    registerReattach(controller, records),
    registerNewJob(),
    registerApplyPool(engine, log, refresh),
    registerReapplyPool(engine, log, refresh),
    registerTearDownPool(engine, log, refresh),
    registerCancelJob(engine, refresh),
    registerRecover(engine, log, refresh),
    registerResume(engine, log, refresh),
    registerOutputLinks(),
    registerShowJobPanel(panels, records, controller),
    registerShowScript(diagnostics),
    vscode.commands.registerCommand('skybatch.refreshPools', refresh),
  );
  panels.restoreMissing();
  return { controller, tree, records, panels, diagnostics };
}

export function deactivate(): void {}
