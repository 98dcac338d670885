import * as fs from 'node:fs';
import * as net from 'node:net';

/** CPU seconds (user + system) a live process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

/** Resident memory of a live process in MB, from /proc/<pid>/status; undefined once it is gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Direct children of `pid` whose command line contains `marker`. Read from each of its
 * threads' `children` lists, not by a scan of every process: the double-text section polls
 * this every 20 ms while it measures, and a scan of /proc took about 1 ms each time.
 */
export function childPids(pid: number, marker = ''): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out; // gone
  }
  for (const t of tasks) {
    let kids: string;
    try {
      kids = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8');
    } catch {
      continue; // thread gone
    }
    for (const d of kids.split(' ')) {
      if (!d) continue;
      try {
        if (!alive(Number(d))) continue;
        if (marker && !fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker)) continue;
        out.push(Number(d));
      } catch {
        // exited meanwhile
      }
    }
  }
  return out;
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch {
    return false;
  }
}

export function kill(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (!pid) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** A TCP port free on the loopback interface right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Samples a process's RSS every `everyMs` until stopped: the series (seconds since start,
 * MB) and the peak. Several pids may be followed; a pid that ends keeps its last samples.
 */
export class RssSampler {
  readonly series: { t: number; mb: number }[] = [];
  peak = 0;
  private readonly t0 = performance.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private pid: number,
    everyMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  /** Follows another process from now on (a restarted coordinator). */
  follow(pid: number): void {
    this.pid = pid;
    this.sample();
  }

  sample(): number | undefined {
    const mb = rssMb(this.pid);
    if (mb === undefined) return undefined;
    this.series.push({ t: (performance.now() - this.t0) / 1000, mb });
    if (mb > this.peak) this.peak = mb;
    return mb;
  }

  get first(): number {
    return this.series[0]?.mb ?? 0;
  }

  get last(): number {
    return this.series[this.series.length - 1]?.mb ?? 0;
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
