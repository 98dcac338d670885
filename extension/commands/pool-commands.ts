import * as path from 'node:path';
import * as vscode from 'vscode';
import { cliError, runCli } from '../cli-process.js';
import type { Engine } from '../engine.js';
import { applyPoolFile } from '../pool-starter.js';
import { pickPool, poolOf } from './pick.js';
import { fieldProblem } from '../../runtime/job-options.js';

/** A pool file from a command argument: an Explorer Uri or `{ file }`. A Pools view node is not one (the view's title passes the selected node). */
function fileOf(arg: unknown): string | undefined {
  if (arg instanceof vscode.Uri) return arg.fsPath;
  const f = (arg as { file?: unknown } | undefined)?.file;
  return typeof f === 'string' ? f : undefined;
}

/** Asks for a pool file: the active YAML editor first, then the workspace's pool*.yaml, else a file dialog. */
async function pickPoolFile(placeHolder: string): Promise<string | undefined> {
  const active = vscode.window.activeTextEditor?.document;
  const found = await vscode.workspace.findFiles('**/pool*.{yaml,yml}', '**/node_modules/**', 50);
  const picks = found.map((u) => ({ label: vscode.workspace.asRelativePath(u), uri: u }));
  if (active && /\.ya?ml$/.test(active.fileName)) picks.unshift({ label: vscode.workspace.asRelativePath(active.uri), uri: active.uri });
  const pick = picks.length
    ? await vscode.window.showQuickPick(picks, { placeHolder, title: 'Apply Pool' })
    : await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'Pool file': ['yaml', 'yml'] } }).then((u) => u?.[0] && { label: '', uri: u[0] });
  return pick?.uri.fsPath;
}

/** Asks which pool a pool file creates or changes: one of the known pools, or a new one by name. */
async function pickTargetPool(e: Engine, file: string): Promise<string | undefined> {
  const base = path.basename(file);
  const known = e.pools.listPools().map((p) => {
    const running = e.pools.poolRunning(p);
    return { label: p, description: running ? `running · change it to what ${base} says` : `not running · start it from ${base}`, pool: p };
  });
  const pick = await vscode.window.showQuickPick([{ label: '$(add) New pool…', description: `start a new pool from ${base}`, pool: undefined }, ...known], {
    placeHolder: `Which pool does ${base} create or change?`,
    title: 'Apply Pool',
  });
  if (!pick) return undefined;
  if (pick.pool) return pick.pool;
  return vscode.window.showInputBox({
    title: 'Apply Pool',
    prompt: `Name of the new pool started from ${base}`,
    value: path.basename(path.dirname(file)) + '-pool',
    validateInput: (v) => fieldProblem('poolName', v) ?? (known.some((k) => k.pool === v) ? `pool '${v}' exists: pick it in the list to change it` : undefined),
  });
}

async function apply(e: Engine, file: string, pool: string, log: vscode.OutputChannel, refresh: () => void): Promise<string | undefined> {
  try {
    await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Applying ${path.basename(file)} to pool '${pool}'` }, () =>
      applyPoolFile(e, file, pool, (l) => log.appendLine(`[pool ${pool}] ${l}`)),
    );
  } catch (err) {
    void vscode.window.showErrorMessage(`Apply pool '${pool}': ${(err as Error).message}`);
    return undefined;
  } finally {
    refresh();
  }
  void vscode.window.showInformationMessage(`Pool '${pool}' is up.`);
  return pool;
}

/**
 * "Apply Pool" (palette, the Pools view's title, a YAML file's Explorer menu): asks for the
 * pool file unless given, then which pool it creates or changes, unless `poolArg` names it.
 */
export function registerApplyPool(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.applyPool', async (arg?: unknown, poolArg?: string): Promise<string | undefined> => {
    const e = await engine();
    const file = fileOf(arg) ?? (await pickPoolFile('Apply which pool file?'));
    if (!file) return undefined;
    const pool = typeof poolArg === 'string' ? poolArg : await pickTargetPool(e, file);
    if (!pool) return undefined;
    return apply(e, file, pool, log, refresh);
  });
}

/** "Apply Pool File to This Pool" (a pool's menu in the Pools view): asks for the file and applies it to that pool. */
export function registerReapplyPool(engine: () => Promise<Engine>, log: vscode.OutputChannel, refresh: () => void): vscode.Disposable {
  return vscode.commands.registerCommand('skybatch.reapplyPool', async (arg?: unknown, fileArg?: string): Promise<string | undefined> => {
    const e = await engine();
    const pool = poolOf(arg) ?? (await pickPool(e, 'Apply a pool file to which pool?'));
    if (!pool) return undefined;
    const file = fileArg ?? (await pickPoolFile(`Apply which pool file to pool '${pool}'?`));
    if (!file) return undefined;
    return apply(e, file, pool, log, refresh);
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
    const r = await runCli(e, ['pool', 'down', pool, '-y'], { onStderrLine: (l) => log.appendLine(`[pool ${pool}] ${l}`) });
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
