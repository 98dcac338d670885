import * as fs from 'node:fs';
import WebSocket from 'ws';
import { SkybatchError, fromWireError } from '../../formats/common/errors.js';
import { locatePool } from '../store/pool-store.js';
import { checkFrame, coordinatorToClient, replies } from '../protocol-guards.js';
import { ClientRequest, CoordinatorToClient, JobEvent, PROTOCOL_VERSION, ReplyTo } from '../protocol.js';

const HANDSHAKE_TIMEOUT_MS = 10_000;

type Pending = { type: ClientRequest['type']; resolve: (v: unknown) => void; reject: (e: Error) => void };
type RequestBody = ClientRequest extends infer R ? (R extends { reqId: number } ? Omit<R, 'reqId'> : never) : never;

/**
 * A client's connection to a coordinator: typed requests with replies, and the event
 * stream. Used by `Dataset.map`, the CLI and the VS Code extension alike.
 */
export class CoordinatorClient {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(e: JobEvent) => void>();
  private readonly closeListeners = new Set<(why: string) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const checked = checkFrame(coordinatorToClient, data.toString(), 'the coordinator');
      if (checked.ok) this.onMessage(checked.msg);
      else this.onBadFrame(checked.error, checked.reqId);
    });
    ws.on('close', (code, reason) => {
      const why = `connection to the coordinator closed (${code}${reason.length ? ` ${reason}` : ''})`;
      for (const p of this.pending.values()) p.reject(new SkybatchError('SKYBATCH_E_PROTOCOL', why));
      this.pending.clear();
      for (const l of this.closeListeners) l(why);
    });
  }

  /** Connects with the pool's token; a refused token is a clear `SKYBATCH_E_AUTH` error. */
  static async connect(url: string, token: string, caFile?: string): Promise<CoordinatorClient> {
    // A coordinator that accepts TCP but never answers (stopped, hung) fails the connect instead of hanging it.
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, handshakeTimeout: HANDSHAKE_TIMEOUT_MS, ...(caFile ? { ca: fs.readFileSync(caFile) } : {}) });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) =>
        reject(new SkybatchError('SKYBATCH_E_AUTH', `the coordinator at ${url} refused the connection (HTTP ${res.statusCode}): wrong or missing pool token`)),
      );
      ws.once('error', (err) => reject(new SkybatchError('SKYBATCH_E_PROTOCOL', `cannot reach the coordinator at ${url}: ${err.message}`, { cause: err })));
    });
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'client' }));
    return new CoordinatorClient(ws);
  }

  static async forPool(pool: string): Promise<CoordinatorClient> {
    const { url, token, ca } = locatePool(pool);
    return CoordinatorClient.connect(url, token, ca);
  }

  /** Sends a request; its reply type follows from its `type` (see `ClientReplies`), and the reply is checked against it. */
  request<B extends RequestBody>(body: B): Promise<ReplyTo<B>> {
    const reqId = this.nextId++;
    return new Promise<ReplyTo<B>>((resolve, reject) => {
      this.pending.set(reqId, { type: body.type, resolve: resolve as (v: unknown) => void, reject });
      this.ws.send(JSON.stringify({ ...body, reqId }));
    });
  }

  onEvent(listener: (e: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onClose(listener: (why: string) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  private onMessage(msg: CoordinatorToClient): void {
    if (msg.type === 'event') {
      for (const l of this.listeners) l(msg.event);
      return;
    }
    if (msg.type === 'error') {
      // the coordinator refused a frame of ours that had no request id: a bug on this side
      process.emitWarning(msg.error.message, { code: msg.error.code });
      return;
    }
    const p = this.pending.get(msg.reqId);
    if (!p) return;
    this.pending.delete(msg.reqId);
    if (!msg.ok) {
      p.reject(fromWireError(msg.error));
      return;
    }
    const result = replies[p.type].safeParse(msg.result);
    if (result.success) p.resolve(result.data);
    else p.reject(new SkybatchError('SKYBATCH_E_BAD_FRAME', `the coordinator's answer to '${p.type}' is malformed: ${result.error.issues[0].path.join('.')}: ${result.error.issues[0].message}`));
  }

  /**
   * A frame from the coordinator that is not the protocol: the request it answers fails;
   * without one, the connection cannot be trusted any more and is closed with the reason.
   */
  private onBadFrame(err: SkybatchError, reqId: number | undefined): void {
    const p = reqId === undefined ? undefined : this.pending.get(reqId);
    if (p) {
      this.pending.delete(reqId!);
      p.reject(err);
    } else {
      this.ws.close(1008, err.code);
    }
  }

  close(): void {
    this.ws.close();
  }
}
