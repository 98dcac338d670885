import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { cliError, runCli } from './cli-process.js';
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

/**
 * Makes sure the settings' pool runs: when it does not, offers to start it on this
 * machine from the notebook's pool file (`poolFile`, default pool.yaml next to it).
 * Resolves false when the user declines or no pool file exists.
 */
export async function ensurePool(engine: Engine, settings: RunSettings, dir: string, log: (line: string) => void, onAnswered?: (waitedMs: number) => void): Promise<boolean> {
  if (process.env.SKYBATCH_COORDINATOR_URL || engine.pools.poolRunning(settings.pool)) return true;
  const file = path.resolve(dir, settings.poolFile ?? 'pool.yaml');
  if (!fs.existsSync(file)) {
    void vscode.window.showErrorMessage(`Pool '${settings.pool}' is not running and ${file} does not exist: add 'poolFile:' to the run cell or run "Sky Batch: Apply Pool".`);
    return false;
  }
  const auto = vscode.workspace.getConfiguration('skybatch').get<boolean>('applyPoolWithoutAsking', false);
  log(`pool '${settings.pool}' is not running`);
  const asked = Date.now();
  const choice = auto ? 'Apply Pool' : await vscode.window.showInformationMessage(`Pool '${settings.pool}' is not running. Start it on this machine from ${path.basename(file)}?`, 'Apply Pool', 'Cancel');
  if (!auto) onAnswered?.(Date.now() - asked);
  if (choice !== 'Apply Pool') return false;
  log(`starting pool '${settings.pool}' from ${file}`);
  await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Starting pool '${settings.pool}'` }, () => applyPoolFile(engine, file, settings.pool, log));
  log(`pool '${settings.pool}' is up`);
  return true;
}
