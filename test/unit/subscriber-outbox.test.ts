import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { SubscriberOutbox } from '../../runtime/coordinator/subscriber-outbox.js';
import type { JobEvent } from '../../runtime/protocol.js';

const SOFT = 64 * 1024;
const HARD = 1024 * 1024;

/** A real ws connection on loopback: the server's end, and a client whose socket stops reading when paused. */
async function connection(): Promise<{ server: WebSocket; client: WebSocket; clientSocket: Socket; close: () => Promise<void> }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const serverSide = new Promise<WebSocket>((r) => wss.once('connection', (ws) => r(ws)));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  await new Promise<void>((r, j) => (client.once('open', () => r()), client.once('error', j)));
  const server = await serverSide;
  const clientSocket = (client as unknown as { _socket: Socket })._socket;
  return {
    server,
    client,
    clientSocket,
    close: async () => {
      client.terminate();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
  };
}

const progress = (n: number): JobEvent => ({ kind: 'progress', jobId: '1', batchesDone: n, batchesTotal: 1e6, itemsDone: n, itemsTotal: 1e6, failed: 0, retrying: 0, itemsPerSec: 1 });
const done = (n: number): JobEvent => ({ kind: 'batch', jobId: '1', index: n, start: n, end: n, state: 'done', worker: 'w1', attempt: 1 });
const log = (line: string): JobEvent => ({ kind: 'log', jobId: '1', stream: 'stdout', line });
const tick = () => new Promise((r) => setImmediate(r));

/** Sends logs until the server side holds more than `bytes` for the paused client (the kernel's buffers fill first). */
async function fallBehind(server: WebSocket, outbox: SubscriberOutbox, bytes: number): Promise<void> {
  const line = 'x'.repeat(16 * 1024);
  for (let i = 0; server.bufferedAmount <= bytes; i++) {
    assert.ok(i < 10_000, 'the paused client never fell behind');
    outbox.push(log(line));
    if (i % 16 === 0) await tick();
  }
}

describe('subscriber outbox', () => {
  it('holds no per-batch or progress events for a subscriber that stopped reading, and sends it the latest progress once it reads again', async (t) => {
    const c = await connection();
    t.after(() => c.close());
    const outbox = new SubscriberOutbox(c.server, () => {}, { soft: SOFT, hard: 64 * HARD });
    c.clientSocket.pause();
    await fallBehind(c.server, outbox, SOFT);
    const behind = c.server.bufferedAmount;
    for (let n = 1; n <= 20_000; n++) {
      outbox.push(done(n));
      outbox.push(progress(n));
    }
    await tick();
    // 40,000 events of about 150 bytes: 6 MB if they were queued
    assert.ok(c.server.bufferedAmount - behind < 4096, `the server side grew by ${c.server.bufferedAmount - behind} bytes`);

    const seen: JobEvent[] = [];
    c.client.on('message', (data) => seen.push((JSON.parse(data.toString()) as { event: JobEvent }).event));
    c.clientSocket.resume();
    const deadline = Date.now() + 20_000;
    while (!seen.some((e) => e.kind === 'progress') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const got = seen.filter((e) => e.kind === 'progress');
    assert.equal(got.length, 1, 'one coalesced progress event');
    assert.equal((got[0] as Extract<JobEvent, { kind: 'progress' }>).batchesDone, 20_000);
    assert.ok(!seen.some((e) => e.kind === 'batch'), 'per-batch events were dropped');
  });

  it('disconnects a subscriber that falls behind past the hard limit, and logs why', async (t) => {
    const c = await connection();
    t.after(() => c.close());
    const lines: string[] = [];
    const outbox = new SubscriberOutbox(c.server, (l) => lines.push(l), { soft: SOFT, hard: HARD });
    const closed = new Promise<void>((r) => c.server.once('close', () => r()));
    c.clientSocket.pause();
    const line = 'y'.repeat(16 * 1024);
    for (let i = 0; c.server.readyState === c.server.OPEN; i++) {
      assert.ok(i < 20_000, 'never disconnected');
      outbox.push(log(line));
      if (i % 16 === 0) await tick();
    }
    await closed;
    assert.match(lines.join('\n'), /disconnecting a subscriber \d+ MB behind/);
  });
});
