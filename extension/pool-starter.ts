import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { cliError, runCli } from './cli-process.js';
import { TEMPLATE_POOL } from './core/template.js';
import type { RunSettings } from './core/run-settings.js';
import type { Engine } from './engine.js';

/** Applies a pool file through the CLI (the coordinator it starts must outlive the extension host). */
export async function applyPoolFile(engine: Engine, file: string, pool: string, log: (line: string) => void): Promise<void> {
  const r = await runCli(engine, ['pool', 'apply', file, '--pool', pool, '-y'], { cwd: path.dirname(file), onStderrLine: log, onStdoutLine: log });
  if (r.code !== 0) {
    const e = cliError(r);
    throw Object.assign(new Error(`[${e.code}] ${e.message}`), { code: e.code, context: e.context });
  }
}

const CREATE = 'Create a local pool.yaml';
const PICK = 'Pick a pool file…';
const RUNNING = 'Use a running pool…';

/**
 * The pool a run goes to, started if need be. When the settings' pool does not run, it
 * offers to start it on this machine from the notebook's pool file (`poolFile`, default
 * pool.yaml next to it); with no pool file, there is no dead end: create a local pool.yaml,
 * pick a pool file, or use a pool that runs. Resolves with the pool's name, or undefined
 * when the user declines (the run is then "not started", not a failure).
 */
export async function ensurePool(engine: Engine, settings: RunSettings, dir: string, log: (line: string) => void, onAnswered?: (waitedMs: number) => void): Promise<string | undefined> {
  if (process.env.SKYBATCH_COORDINATOR_URL || engine.pools.poolRunning(settings.pool)) return settings.pool;
  let file = path.resolve(dir, settings.poolFile ?? 'pool.yaml');
  const asked = Date.now(); // the time the user takes to answer is not job time
  if (!fs.existsSync(file)) {
    const running = engine.pools.listPools().filter((p) => engine.pools.poolRunning(p));
    const choice = await vscode.window.showInformationMessage(
      `Pool '${settings.pool}' is not running and there is no pool file (${path.relative(dir, file) || file}) to start it from.`,
      CREATE,
      PICK,
      ...(running.length ? [RUNNING] : []),
    );
    if (choice === CREATE) {
      fs.writeFileSync(file, TEMPLATE_POOL);
      void vscode.window.showInformationMessage(`Created ${file}: a local pool of 2 workers on this machine. Starting pool '${settings.pool}' from it.`);
    } else if (choice === PICK) {
      const picked = await vscode.window.showOpenDialog({ defaultUri: vscode.Uri.file(dir), canSelectMany: false, filters: { 'Pool file': ['yaml', 'yml'] }, title: `Start pool '${settings.pool}' from which pool file?` });
      if (!picked?.[0]) return undefined;
      file = picked[0].fsPath;
    } else if (choice === RUNNING) {
      const pool = await vscode.window.showQuickPick(running, { placeHolder: `Run this job on which pool? (the run cell names '${settings.pool}')` });
      if (pool) log(`running the job on pool '${pool}' instead of '${settings.pool}' (chosen when asked)`);
      onAnswered?.(Date.now() - asked);
      return pool;
    } else return undefined;
  } else {
    const auto = vscode.workspace.getConfiguration('skybatch').get<boolean>('applyPoolWithoutAsking', false);
    log(`pool '${settings.pool}' is not running`);
    const choice = auto ? 'Apply Pool' : await vscode.window.showInformationMessage(`Pool '${settings.pool}' is not running. Start it on this machine from ${path.basename(file)}?`, 'Apply Pool', 'Cancel');
    if (choice !== 'Apply Pool') return undefined;
  }
  onAnswered?.(Date.now() - asked);
  log(`starting pool '${settings.pool}' from ${file}`);
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Starting pool '${settings.pool}'` }, () => applyPoolFile(engine, file, settings.pool, log));
  log(`pool '${settings.pool}' is up`);
  return settings.pool;
}
