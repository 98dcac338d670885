import * as path from 'node:path';
import * as vscode from 'vscode';
import { cliError, runCli } from '../cli-process.js';
import type { Engine } from '../engine.js';
import { applyPoolFile } from '../pool-starter.js';
import { pickPool, poolOf } from './pick.js';

/** "Apply Pool": starts or resizes a pool from a pool.yaml (explorer context, the active editor, or a pick). */
export function registerApplyPool(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.applyPool', async (arg?: unknown, poolArg?: string): Promise<string | undefined> => {
    const e = await engine();
    let file = arg instanceof vscode.Uri ? arg.fsPath : typeof (arg as { file?: unknown })?.file === 'string' ? (arg as { file: string }).file : undefined;
    let pool = poolArg ?? poolOf(arg);
    if (!file) {
      const active = vscode.window.activeTextEditor?.document;
      const found = await vscode.workspace.findFiles('**/pool*.{yaml,yml}', '**/node_modules/**', 50);
      const picks = found.map((u) => ({ label: vscode.workspace.asRelativePath(u), uri: u }));
      if (active && /\.ya?ml$/.test(active.fileName)) picks.unshift({ label: vscode.workspace.asRelativePath(active.uri), uri: active.uri });
      const pick = picks.length
        ? await vscode.window.showQuickPick(picks, { placeHolder: 'Apply which pool file?' })
        : await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Pool file': ['yaml', 'yml'] } }).then((u) => u?.[0] && { label: '', uri: u[0] });
      file = pick?.uri.fsPath;
    }
    if (!file) return undefined;
    pool ??= await vscode.window.showInputBox({
      prompt: `Pool name for ${path.basename(file)}`,
      value: path.basename(path.dirname(file)) + '-pool',
      validateInput: (v) => (/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(v) ? undefined : "letters, digits, '_', '-', '.' (at most 63)"),
    });
    if (!pool) return undefined;
    const name = pool;
    try {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Applying pool '${name}'` }, () =>
        applyPoolFile(e, file!, name, (l) => log.appendLine(`[pool ${name}] ${l}`)),
      );
    } catch (err) {
      void vscode.window.showErrorMessage(`Apply pool '${name}': ${(err as Error).message}`);
      return undefined;
    } finally {
      refresh();
    }
    void vscode.window.showInformationMessage(`Pool '${name}' is up.`);
    return name;
  });
}

/** "Tear Down Pool": stops a pool's coordinator and workers; job records stay for recovery. */
export function registerTearDownPool(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.tearDownPool', async (arg?: unknown, opts?: { confirm?: boolean }): Promise<boolean> => {
    const e = await engine();
    const pool = poolOf(arg) ?? (await pickPool(e, 'Tear down which pool?'));
    if (!pool) return false;
    if (opts?.confirm !== false) {
      const ok = await vscode.window.showWarningMessage(`Tear down pool '${pool}'? Its workers stop; finished jobs' records are kept.`, { modal: true }, 'Tear Down');
      if (ok !== 'Tear Down') return false;
    }
    const r = await runCli(e.cli, ['pool', 'down', pool, '-y'], { onStderrLine: (l) => log.appendLine(`[pool ${pool}] ${l}`) });
    refresh();
    if (r.code !== 0) {
      const err = cliError(r);
      void vscode.window.showErrorMessage(`Tear down pool '${pool}': [${err.code}] ${err.message}`);
      return false;
    }
    void vscode.window.showInformationMessage(`Pool '${pool}' is down.`);
    return true;
  });
}
