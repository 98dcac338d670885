import * as http from 'node:http';
import { AddressInfo } from 'node:net';

/** What the proxy does to one request. */
export type Fault =
  /** answers 503 SlowDown without forwarding */
  | '503'
  /** drops the client's connection before forwarding */
  | 'reset'
  /** forwards a GET, then drops the connection halfway through the response body */
  | 'truncate'
  /** holds the request and never answers (the client must time out) */
  | 'stall';

export interface FaultProxyOptions {
  /** Upstream base URL, e.g. `http://127.0.0.1:8000`. */
  target: string;
  /** Share of requests that get a fault, 0..1. Default 0. */
  faultRate?: number;
  /** Fault exactly every Nth request (1-based count) instead of at random. */
  faultEvery?: number;
  /** Faults to draw from, evenly. Default `['503', 'reset']`. */
  faults?: Fault[];
  /** Answer every request with this status and an S3 error body, forwarding nothing. */
  permanentStatus?: number;
  /** PRNG seed, so a failing run can be repeated. Default 1. */
  seed?: number;
}

/**
 * An HTTP proxy on 127.0.0.1 that injects faults between a client and a real server. The
 * Host header is passed through unchanged, so SigV4 signatures made for the proxy's address
 * still verify upstream.
 */
export class FaultProxy {
  /** Requests received, faulted or not. */
  requests = 0;
  /** Faults injected, by kind. */
  readonly injected: Record<Fault, number> = { '503': 0, reset: 0, truncate: 0, stall: 0 };
  private readonly server: http.Server;
  private readonly agent = new http.Agent({ keepAlive: true });
  private readonly target: URL;
  private rand: () => number;

  private constructor(private readonly opts: FaultProxyOptions) {
    this.target = new URL(opts.target);
    this.rand = mulberry32(opts.seed ?? 1);
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(opts: FaultProxyOptions): Promise<FaultProxy> {
    const p = new FaultProxy(opts);
    await new Promise<void>((resolve, reject) => p.server.once('error', reject).listen(0, '127.0.0.1', resolve));
    return p;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.agent.destroy();
  }

  private pick(req: http.IncomingMessage): Fault | undefined {
    const every = this.opts.faultEvery;
    if (every ? this.requests % every !== 0 : this.rand() >= (this.opts.faultRate ?? 0)) return undefined;
    const kinds = (this.opts.faults ?? ['503', 'reset']).filter((f) => f !== 'truncate' || req.method === 'GET');
    return kinds.length ? kinds[Math.floor(this.rand() * kinds.length)] : undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests++;
    if (this.opts.permanentStatus) {
      req.resume();
      req.on('end', () => reply(res, this.opts.permanentStatus!, 'AccessDenied', 'Access Denied'));
      return;
    }
    const fault = this.pick(req);
    if (fault) this.injected[fault]++;
    if (fault === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault === 'stall') {
      req.resume(); // read the request, answer nothing; the socket dies with the client's timeout
      return;
    }
    if (fault === '503') {
      req.resume();
      req.on('end', () => reply(res, 503, 'SlowDown', 'Please reduce your request rate.'));
      return;
    }
    const headers = { ...req.headers };
    delete headers.expect; // node already answered 100-continue to the client
    const up = http.request(
      { host: this.target.hostname, port: this.target.port, method: req.method, path: req.url, headers, agent: this.agent },
      (upRes) => {
        const length = Number(upRes.headers['content-length'] ?? 0);
        if (fault !== 'truncate' || length < 2) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        let sent = 0;
        const cut = Math.floor(length / 2);
        upRes.on('data', (chunk: Buffer) => {
          if (sent >= cut) return;
          const part = chunk.subarray(0, cut - sent);
          sent += part.length;
          res.write(part);
          if (sent >= cut) {
            upRes.destroy();
            res.socket?.destroy();
          }
        });
      },
    );
    up.on('error', () => res.socket?.destroy());
    req.pipe(up);
  }
}

function reply(res: http.ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A small deterministic PRNG (mulberry32): each seed replays the same sequence. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
