import { timingSafeEqual, createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import type * as Ws from 'ws';
import { requireCjs } from '../../formats/common/lazy-require.js';
import { SkybatchError, WireError, toWireError } from '../../formats/common/errors.js';
import { MAX_FRAME_BYTES, checkFrame, clientMessage, hello as helloMessage, workerMessage } from '../protocol-guards.js';
import { BatchAssignment, ClientReplies, ClientRequest, CoordinatorToClient, CoordinatorToWorker, EventDetail, FENCED_CLOSE_CODE, JobEvent, PROTOCOL_VERSION, WorkerMessage } from '../protocol.js';
import type { Coordinator } from './coordinator.js';
import { sendCorked } from '../corked-send.js';
import { SubscriberOutbox } from './subscriber-outbox.js';
import { bundleFile } from '../store/job-store.js';
import * as fs from 'node:fs';

const { WebSocket, WebSocketServer } = requireCjs<typeof Ws>('ws');
type WebSocket = Ws.WebSocket;

const HEARTBEAT_MS = 1000;
const MISSED_BEATS = 3;
/** A connection must say who it is this soon, or it is closed: idle sockets cost a slot and a timer each. */
const HELLO_TIMEOUT_MS = 5000;
/** Malformed frames a connection may send before it is closed (a buggy or hostile peer). */
const MAX_STRIKES = 5;

type Subscribe = (jobId?: string, detail?: EventDetail) => (e: JobEvent) => void;

export interface ServerOptions {
  host: string;
  port: number;
  token: string;
  log: (line: string) => void;
  /** Serve wss:// with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Asked by a client's `scale` request; the local backend resizes. */
  onScale?: (workers: number) => void;
  /** Whether to take a worker's hello: a reason to refuse it (a stale launch of its backend), or undefined. */
  admitWorker?: (hello: Extract<WorkerMessage, { type: 'hello' }>) => string | undefined;
  onShutdown?: () => void;
}

/** Constant-time token check: hashing first makes both sides the same length. */
export function tokenMatches(given: string | undefined, expected: string): boolean {
  if (!given) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * The coordinator's ws endpoint. Every connection presents the pool token as a bearer
 * header in the upgrade; a wrong one is refused with 401 and logged. The first message
 * says whether the peer is a worker or a client. Workers are pinged every second and
 * dropped after three missed pongs.
 */
export class CoordinatorServer {
  private readonly http: http.Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  private heartbeat?: NodeJS.Timeout;
  /** Connected workers that came with a backend's launch id, by name. */
  private readonly launched = new Map<string, Map<WebSocket, Extract<WorkerMessage, { type: 'hello' }>>>();

  constructor(
    private readonly coordinator: Coordinator,
    private readonly opts: ServerOptions,
  ) {
    const answer = (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain' });
      res.end('skybatch coordinator: connect with a WebSocket\n');
    };
    this.http = opts.tls ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key }, answer) : http.createServer(answer);
    this.http.on('upgrade', (req, socket, head) => {
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
      if (!tokenMatches(token, opts.token)) {
        opts.log(`refused a connection from ${req.socket.remoteAddress}: ${token ? 'wrong' : 'missing'} token`);
        socket.end('HTTP/1.1 401 Unauthorized\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.opts.port, this.opts.host, () => resolve());
    });
    const missed = new WeakMap<WebSocket, number>();
    this.heartbeat = setInterval(() => {
      for (const ws of this.wss.clients) {
        const n = (missed.get(ws) ?? 0) + 1;
        if (n > MISSED_BEATS) {
          ws.terminate();
          continue;
        }
        missed.set(ws, n);
        ws.ping();
      }
    }, HEARTBEAT_MS);
    this.wss.on('connection', (ws) => ws.on('pong', () => missed.set(ws, 0)));
    return this.url();
  }

  url(): string {
    const addr = this.http.address() as AddressInfo;
    const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    return `${this.opts.tls ? 'wss' : 'ws'}://${host}:${addr.port}`;
  }

  private onConnection(ws: WebSocket): void {
    this.wss.emit('connection', ws);
    // ws closes the connection itself on a frame it cannot take (too big: 1009, bad UTF-8: 1007) and reports it here
    ws.on('error', (err) => this.opts.log(`connection closed for a bad frame: ${err.message}`));
    const timer = setTimeout(() => {
      this.opts.log(`closing a connection that sent no hello within ${HELLO_TIMEOUT_MS} ms`);
      ws.close(1008, `no hello within ${HELLO_TIMEOUT_MS} ms`);
    }, HELLO_TIMEOUT_MS);
    ws.once('close', () => clearTimeout(timer));
    ws.once('message', (data) => {
      clearTimeout(timer);
      this.guard('a hello', () => this.onHello(ws, data.toString()));
    });
  }

  private onHello(ws: WebSocket, text: string): void {
    const raw = parseJson(text);
    if (isHello(raw) && raw.protocolVersion !== PROTOCOL_VERSION) {
      this.opts.log(`closing a connection with protocol ${String(raw.protocolVersion)}; this coordinator speaks ${PROTOCOL_VERSION}`);
      ws.close(1002, `protocol ${PROTOCOL_VERSION} expected`);
      return;
    }
    const checked = checkFrame(helloMessage, raw ?? text, 'a new connection');
    if (!checked.ok) {
      this.opts.log(`closing a connection whose first frame is not a hello: ${checked.error.message}`);
      send(ws, { type: 'error', error: replyError(checked.error) });
      ws.close(1008, closeReason(checked.error));
      return;
    }
    if (checked.msg.role === 'worker') {
      const refusal = this.opts.admitWorker?.(checked.msg);
      if (refusal !== undefined) return this.fence(ws, checked.msg, refusal);
      this.fenceEarlierLaunches(ws, checked.msg);
      this.serveWorker(ws, checked.msg);
    } else this.serveClient(ws);
  }

  private serveWorker(ws: WebSocket, hello: Extract<WorkerMessage, { type: 'hello' }>): void {
    const id = this.coordinator.addWorker({ send: hello.batchFrames ? batchingSend(ws) : (m) => send(ws, m), close: () => ws.close() }, hello);
    const who = `worker ${hello.name}`;
    this.opts.log(`${who} (${hello.host}, pid ${hello.pid}) joined as ${id}`);
    const strike = this.strikes(ws, who);
    ws.on('message', (data) =>
      this.guard(`a frame from ${who}`, () => {
        const checked = checkFrame(workerMessage, data.toString(), who);
        if (!checked.ok) {
          send(ws, { type: 'error', error: replyError(checked.error) });
          strike(checked.error);
        } else if (checked.msg.type === 'batchReports') {
          const { jobId, reports } = checked.msg;
          for (const r of reports) this.coordinator.onWorkerMessage(id, { ...r, jobId });
        } else if (checked.msg.type !== 'hello') {
          this.coordinator.onWorkerMessage(id, checked.msg);
        }
      }),
    );
    ws.on('close', (code) =>
      this.guard(`the departure of ${who}`, () => {
        this.opts.log(`${who} left (code ${code})`);
        this.coordinator.removeWorker(id, code === 1006 ? 'connection dropped or heartbeat missed' : `connection closed (${code})`);
      }),
    );
  }

  /**
   * The backend just admitted this launch of a worker, so it is the current one: any other
   * launch of that name still connected (an earlier Slurm run that kept its connection while
   * Slurm gave up on its node, an ssh session that outlived its replacement) is fenced off,
   * so one worker slot never has two live workers.
   */
  private fenceEarlierLaunches(ws: WebSocket, hello: Extract<WorkerMessage, { type: 'hello' }>): void {
    const launch = hello.launch;
    if (launch === undefined) return;
    let byWs = this.launched.get(hello.name);
    if (!byWs) this.launched.set(hello.name, (byWs = new Map()));
    for (const [other, earlier] of byWs) {
      if (earlier.launch === launch) continue;
      byWs.delete(other);
      this.fence(other, earlier, `launch ${launch} (pid ${hello.pid}) replaced launch ${earlier.launch}`);
    }
    byWs.set(ws, hello);
    ws.once('close', () => {
      byWs.delete(ws);
      if (!byWs.size && this.launched.get(hello.name) === byWs) this.launched.delete(hello.name);
    });
  }

  /** Refuses a worker its backend no longer runs; the close code tells it not to come back. */
  private fence(ws: WebSocket, hello: Extract<WorkerMessage, { type: 'hello' }>, why: string): void {
    const err = new SkybatchError('SKYBATCH_E_FENCED', `refused worker ${hello.name} (${hello.host}, pid ${hello.pid}): ${why}`, { context: { worker: hello.name } });
    this.opts.log(err.message);
    send(ws, { type: 'error', error: replyError(err) });
    ws.close(FENCED_CLOSE_CODE, closeReason(err));
  }

  private serveClient(ws: WebSocket): void {
    const unsubscribe: (() => void)[] = [];
    const strike = this.strikes(ws, 'a client');
    const outbox = new SubscriberOutbox(ws, this.opts.log);
    ws.on('close', () => unsubscribe.forEach((u) => u()));
    ws.on('message', (data) => this.guard('a frame from a client', () => this.onClientFrame(ws, data.toString(), strike, unsubscribe, outbox)));
  }

  private onClientFrame(ws: WebSocket, text: string, strike: (err: SkybatchError) => void, unsubscribe: (() => void)[], outbox: SubscriberOutbox): void {
    const checked = checkFrame(clientMessage, text, 'a client');
    if (!checked.ok) {
      const error = replyError(checked.error);
      send(ws, checked.reqId === undefined ? { type: 'error', error } : { type: 'reply', reqId: checked.reqId, ok: false, error });
      if (checked.strike) strike(checked.error);
      return;
    }
    const msg = checked.msg;
    if (msg.type === 'hello') return;
    try {
      const result = this.handle(msg, (jobId, detail) => {
        const push = (event: JobEvent) => outbox.push(event);
        unsubscribe.push(this.coordinator.subscribe({ jobId, detail, send: push }));
        return push;
      });
      send(ws, { type: 'reply', reqId: msg.reqId, ok: true, result });
    } catch (err) {
      if (!(err instanceof SkybatchError)) this.opts.log(`internal error handling a '${msg.type}' request: ${(err as Error)?.stack ?? String(err)}`);
      send(ws, { type: 'reply', reqId: msg.reqId, ok: false, error: replyError(err, msg.type) });
    }
  }

  /** Counts a connection's malformed frames; the last one allowed closes it. */
  private strikes(ws: WebSocket, who: string): (err: SkybatchError) => void {
    let n = 0;
    return (err) => {
      this.opts.log(`refused a frame from ${who}: ${err.message}`);
      if (++n < MAX_STRIKES) return;
      this.opts.log(`closing the connection of ${who} after ${n} bad frames`);
      ws.close(1008, `${n} bad frames`);
    };
  }

  /** Runs a handler so that nothing it throws leaves the process: one bad frame never takes the pool down. */
  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.opts.log(`internal error handling ${what}: ${(err as Error)?.stack ?? String(err)}`);
    }
  }

  private handle(msg: ClientRequest, subscribe: Subscribe): unknown {
    const handler = this.handlers[msg.type] as (m: ClientRequest, s: Subscribe) => unknown;
    return handler(msg, subscribe);
  }

  /** One handler per request, each returning exactly what `ClientReplies` says its reply carries. */
  private readonly handlers: { [K in ClientRequest['type']]: (msg: Extract<ClientRequest, { type: K }>, subscribe: Subscribe) => ClientReplies[K] } = {
    submit: (msg, subscribe) => {
      // Subscribing in the same tick as the submit: no event of the job can be missed.
      const { jobId } = this.coordinator.submit(msg.job, msg.bundle);
      const job = this.coordinator.jobSummary(jobId)!;
      subscribe(jobId, msg.events)({ kind: 'jobSubmitted', job }); // clients buffer events that precede the reply
      return { jobId };
    },
    resume: (msg, subscribe) => {
      const job = this.coordinator.resume(msg.jobId, msg.job, msg.bundle);
      subscribe(msg.jobId, msg.events)({ kind: 'jobSubmitted', job });
      return { jobId: msg.jobId };
    },
    subscribe: (msg, subscribe) => {
      subscribe(msg.jobId, msg.events);
      return msg.jobId ? this.coordinator.jobSummary(msg.jobId) : this.coordinator.status();
    },
    cancel: (msg) => {
      this.coordinator.cancel(msg.jobId);
      return this.coordinator.jobSummary(msg.jobId)!;
    },
    status: () => this.coordinator.status(),
    batches: (msg) => this.coordinator.batchInfo(msg.jobId),
    hasBundle: (msg) => ({ has: fs.existsSync(bundleFile(msg.hash)) }),
    scale: (msg) => {
      this.opts.onScale?.(msg.workers);
      return this.coordinator.status();
    },
    shutdown: () => {
      setImmediate(() => this.opts.onShutdown?.());
      return { ok: true };
    },
  };

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await new Promise((r) => setImmediate(r)); // frames still corked this tick (sendCorked), such as workers' shutdown, leave first
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

function send(ws: WebSocket, m: CoordinatorToClient | CoordinatorToWorker): void {
  if (ws.readyState === ws.OPEN) sendCorked(ws, JSON.stringify(m));
}

/**
 * Sends to a worker that takes `batches` frames: the batches of one job assigned in one tick
 * leave as one frame (one parse and one check on the worker instead of one per batch). Any
 * other frame sends those queued before it first, so the worker sees everything in order.
 */
function batchingSend(ws: WebSocket): (m: CoordinatorToWorker) => void {
  let jobId = '';
  let queued: BatchAssignment[] = [];
  const flush = () => {
    if (!queued.length) return;
    const batches = queued;
    queued = [];
    send(ws, batches.length === 1 ? { type: 'batch', jobId, ...batches[0] } : { type: 'batches', jobId, batches });
  };
  return (m) => {
    if (m.type !== 'batch') {
      flush();
      send(ws, m);
      return;
    }
    if (queued.length && m.jobId !== jobId) flush();
    jobId = m.jobId;
    if (queued.push({ index: m.index, start: m.start, end: m.end, attempt: m.attempt, wantSample: m.wantSample }) === 1) process.nextTick(flush);
  };
}

/**
 * An error as a reply carries it: coded, without the coordinator's stack (of no use to the
 * peer, and it describes the server). Anything not a SkybatchError is the coordinator's own
 * fault: `SKYBATCH_E_INTERNAL`, with the details in coordinator.log.
 */
function replyError(err: unknown, request?: string): WireError {
  if (err instanceof SkybatchError) {
    const { stack: _stack, ...wire } = toWireError(err);
    return wire;
  }
  return { code: 'SKYBATCH_E_INTERNAL', message: `the coordinator failed handling ${request ? `a '${request}' request` : 'a frame'}: ${(err as Error)?.message ?? String(err)} (details in coordinator.log)`, retryable: false };
}

/** A close frame's reason is at most 123 bytes. */
function closeReason(err: SkybatchError): string {
  return Buffer.from(`${err.code}: ${err.message}`).subarray(0, 120).toString().replace(/\uFFFD$/, '');
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isHello(v: unknown): v is { type: 'hello'; protocolVersion: unknown } {
  return typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'hello';
}
