import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { toWireError } from '../../formats/common/errors.js';
import type { WorkerMessage } from '../protocol.js';
import { SetupProcess } from './setup-process.js';

export interface SetupPorts {
  workdir: string;
  worker: string;
  send: (msg: WorkerMessage) => void;
  log: (line: string) => void;
  /** The environment setup runs in, read when it starts (the pool's envs change on `pool apply`). */
  env: () => NodeJS.ProcessEnv;
}

/**
 * Runs the pool's `setup` once per working directory (a marker file holds the hash of the
 * script that ran), in a process group of its own that is stopped on timeout, when a changed
 * setup replaces it, and when the worker stops. Reports `ready`, `setupLog` and `setupFailed`.
 */
export class SetupRunner {
  /** The setup that is running, if any. */
  private running?: { hash: string; proc: SetupProcess };

  constructor(private readonly ports: SetupPorts) {}

  async run(setup: string | undefined, timeoutMs: number): Promise<void> {
    const { workdir, send, log } = this.ports;
    const marker = path.join(workdir, '.skybatch-setup-done');
    const hash = createHash('sha256').update(setup ?? '').digest('hex');
    const running = this.running;
    if (running?.hash === hash) return; // a reconnect while it runs: its end is reported on the new connection
    this.running = undefined;
    running?.proc.stop();
    if (!setup || (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === hash)) {
      send({ type: 'ready' });
      return;
    }
    fs.rmSync(marker, { force: true });
    log('running setup');
    const proc = new SetupProcess({
      script: setup,
      cwd: workdir,
      env: this.ports.env(),
      timeoutMs,
      worker: this.ports.worker,
      onLine: (stream, line) => {
        log(`setup: ${line}`);
        send({ type: 'setupLog', stream, line });
      },
    });
    const run = { hash, proc };
    this.running = run;
    const error = await proc.result;
    if (this.running !== run) return; // replaced by a changed setup, or the worker is stopping
    this.running = undefined;
    if (!error) {
      fs.writeFileSync(marker, hash);
      send({ type: 'ready' });
    } else {
      log(error.message);
      send({ type: 'setupFailed', error: toWireError(error) });
    }
  }

  /** Stops the running setup, if any (the worker is stopping). */
  stop(): void {
    this.running?.proc.stop();
  }
}
