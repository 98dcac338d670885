import { timingSafeEqual, createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { SkybatchError, toWireError } from '../../formats/errors.js';
import { ClientMessage, CoordinatorToClient, JobEvent, PROTOCOL_VERSION, WorkerMessage } from '../protocol.js';
import type { Coordinator } from './coordinator.js';
import { bundleFile } from './job-store.js';
import * as fs from 'node:fs';

const HEARTBEAT_MS = 1000;
const MISSED_BEATS = 3;

export interface ServerOptions {
  host: string;
  port: number;
  token: string;
  log: (line: string) => void;
  /** Serve wss:// with this certificate and key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
  /** Asked by a client's `scale` request; the local backend resizes. */
  onScale?: (workers: number) => void;
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
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 512 * 1024 * 1024 });
  private heartbeat?: NodeJS.Timeout;

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
    ws.once('message', (data) => {
      let hello: WorkerMessage | ClientMessage;
      try {
        hello = JSON.parse(data.toString());
      } catch {
        ws.close(1002, 'bad hello');
        return;
      }
      if (hello.type !== 'hello' || hello.protocolVersion !== PROTOCOL_VERSION) {
        this.opts.log(`closing a connection with protocol ${(hello as { protocolVersion?: number }).protocolVersion}; this coordinator speaks ${PROTOCOL_VERSION}`);
        ws.close(1002, `protocol ${PROTOCOL_VERSION} expected`);
        return;
      }
      if (hello.role === 'worker') this.serveWorker(ws, hello);
      else this.serveClient(ws);
    });
  }

  private serveWorker(ws: WebSocket, hello: Extract<WorkerMessage, { type: 'hello' }>): void {
    const id = this.coordinator.addWorker({ send: (m) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m)), close: () => ws.close() }, hello);
    this.opts.log(`worker ${hello.name} (${hello.host}, pid ${hello.pid}) joined as ${id}`);
    ws.on('message', (data) => this.coordinator.onWorkerMessage(id, JSON.parse(data.toString()) as WorkerMessage));
    ws.on('close', (code) => {
      this.opts.log(`worker ${hello.name} left (code ${code})`);
      this.coordinator.removeWorker(id, code === 1006 ? 'connection dropped or heartbeat missed' : `connection closed (${code})`);
    });
  }

  private serveClient(ws: WebSocket): void {
    const send = (m: CoordinatorToClient) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m));
    const unsubscribe: (() => void)[] = [];
    ws.on('close', () => unsubscribe.forEach((u) => u()));
    ws.on('message', (data) => {
      const msg = JSON.parse(data.toString()) as ClientMessage;
      if (msg.type === 'hello') return;
      try {
        const result = this.handle(msg, (jobId) => {
          const push = (event: JobEvent) => send({ type: 'event', event });
          unsubscribe.push(this.coordinator.subscribe({ jobId, send: push }));
          return push;
        });
        send({ type: 'reply', reqId: msg.reqId, ok: true, result });
      } catch (err) {
        send({ type: 'reply', reqId: msg.reqId, ok: false, error: toWireError(err) });
      }
    });
  }

  private handle(msg: Exclude<ClientMessage, { type: 'hello' }>, subscribe: (jobId?: string) => (e: JobEvent) => void): unknown {
    switch (msg.type) {
      case 'submit': {
        // Subscribing in the same tick as the submit: no event of the job can be missed.
        const { jobId } = this.coordinator.submit(msg.job, msg.bundle);
        const job = this.coordinator.jobSummary(jobId)!;
        subscribe(jobId)({ kind: 'jobSubmitted', job }); // clients buffer events that precede the reply
        return { jobId };
      }
      case 'resume': {
        const job = this.coordinator.resume(msg.jobId, msg.job, msg.bundle);
        subscribe(msg.jobId)({ kind: 'jobSubmitted', job });
        return { jobId: msg.jobId };
      }
      case 'subscribe':
        subscribe(msg.jobId);
        return msg.jobId ? this.coordinator.jobSummary(msg.jobId) : this.coordinator.status();
      case 'cancel':
        this.coordinator.cancel(msg.jobId);
        return this.coordinator.jobSummary(msg.jobId);
      case 'status':
        return this.coordinator.status();
      case 'batches':
        return this.coordinator.batchInfo(msg.jobId);
      case 'hasBundle':
        return { has: fs.existsSync(bundleFile(msg.hash)) };
      case 'scale':
        if (!Number.isInteger(msg.workers) || msg.workers < 1) throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `workers must be a positive integer, got ${msg.workers}`);
        this.opts.onScale?.(msg.workers);
        return this.coordinator.status();
      case 'shutdown':
        setImmediate(() => this.opts.onShutdown?.());
        return { ok: true };
    }
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}
