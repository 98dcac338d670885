/** A job competing for workers: its weight (`priority`, default 1) and how many workers it can use now. */
export interface ShareClaim {
  id: string;
  weight: number;
  /** Workers holding its batches plus the batches it could hand out now: more would sit idle. */
  demand: number;
}

/** The weight of a job without `priority`. */
export const DEFAULT_PRIORITY = 1;

/**
 * How many of `slots` workers each job should have: weighted max-min fair shares, handed out
 * one worker at a time to the job with the largest `weight / (workers + 1)` (the D'Hondt
 * rule), never past a job's demand, ties to the older job (`claims` is oldest first). Equal
 * weights give equal shares; what a job cannot use goes to the others. With fewer workers
 * than jobs the oldest jobs get them: a worker is never split in time between jobs, since
 * each switch costs a mapper start and its one-time setup.
 */
export function shareTargets(claims: readonly ShareClaim[], slots: number): Map<string, number> {
  const given = new Map(claims.map((c) => [c.id, 0]));
  for (let s = 0; s < slots; s++) {
    let best: ShareClaim | undefined;
    let bestQuotient = -1;
    for (const c of claims) {
      const n = given.get(c.id)!;
      if (n >= c.demand) continue;
      const q = c.weight / (n + 1);
      if (q > bestQuotient) {
        best = c;
        bestQuotient = q;
      }
    }
    if (!best) break;
    given.set(best.id, given.get(best.id)! + 1);
  }
  return given;
}
