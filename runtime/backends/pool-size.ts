import { DEFAULT_IDLE_DELAY_S, PoolConfig, autoscaleOf } from '../pool-config.js';
import type { PoolSummary } from '../protocol.js';
import { AutoscalePolicy, Autoscaler, PoolLoad } from './autoscaler.js';
import type { PoolSizer } from './pool-sizer.js';

/** What the pool's size follows: the coordinator's load, and where `pool status` reads the autoscaler's reason. */
export interface SizedCoordinator {
  load(): PoolLoad;
  autoscaleView?: () => PoolSummary['autoscale'];
}

/**
 * Keeps a pool at its configured size: a fixed `pool.workers`, or an autoscaler between
 * `{ min, max }`. `apply` takes a config from `pool apply` (a pool may switch between the two).
 */
export function sizePool(sizer: PoolSizer, coordinator: SizedCoordinator, log: (line: string) => void): { apply(config: PoolConfig): void; close(): void } {
  let scaler: Autoscaler | undefined;
  return {
    apply(config) {
      const range = autoscaleOf(config);
      const delayMs = (config.pool.idle_delay ?? DEFAULT_IDLE_DELAY_S) * 1000;
      if (!range) {
        scaler?.close();
        scaler = undefined;
        coordinator.autoscaleView = undefined;
        sizer.resize(config.pool.workers);
      } else if (scaler) {
        scaler.update(range, delayMs);
      } else {
        const s = new Autoscaler(sizer, () => coordinator.load(), new AutoscalePolicy(range, delayMs), log);
        scaler = s;
        coordinator.autoscaleView = () => s.view();
      }
    },
    close() {
      scaler?.close();
    },
  };
}
