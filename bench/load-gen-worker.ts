/**
 * One load-generator process: holds `count` real ws connections to a coordinator, each
 * speaking the worker protocol as runtime/worker/agent.ts does (hello with the pool token,
 * welcome → ready, then batchStarted/batchDone for every batch, no-op or after a fixed
 * delay; several batches a frame both ways, `batches` and `batchReports`), and reconnecting like the agent when the connection drops. Reports to its parent
 * over IPC: how many are connected and ready, and how many batches it has answered.
 *
 *   node load-gen-worker.js URL TOKEN FIRST COUNT DELAY_MS
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION, type BatchAssignment, type BatchReportItem, type CoordinatorToWorker, type WorkerMessage } from '../runtime/protocol.js';

const [url, token, firstArg, countArg, delayArg] = process.argv.slice(2);
const first = Number(firstArg);
const count = Number(countArg);
const delayMs = Number(delayArg);
const RECONNECT_MS = 500; // as the agent

let done = 0;
let ready = 0;
let stopping = false;

function connect(n: number): void {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, generateMask: (mask) => void mask.fill(0) }); // unmasked, as the agent (UNMASKED)
  let isReady = false;
  const send = (m: WorkerMessage): boolean => {
    if (ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(m));
    return true;
  };
  ws.on('open', () => send({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'worker', name: `lg-${n}`, host: 'load-gen', pid: process.pid, batchFrames: true }));
  // Like the agent: the reports of one tick leave in one frame.
  const report = (jobId: string, reports: BatchReportItem[]): boolean =>
    send(reports.length === 1 ? { ...reports[0], jobId } : { type: 'batchReports', jobId, reports });
  const done1 = (jobId: string, { index, attempt, start, end, wantSample }: BatchAssignment): BatchReportItem => ({ type: 'batchDone', index, attempt, items: end - start + 1, ...(wantSample ? { sample: [{ i: start }] } : {}) });
  // With a delay, batches run one after another, as in a mapper process: a worker holds its
  // credit's worth of batches but works on one (the coordinator times batches by that).
  const queue: { jobId: string; b: BatchAssignment }[] = [];
  let busy = false;
  const next = () => {
    const q = queue.shift();
    if (!q) {
      busy = false;
      return;
    }
    busy = true;
    report(q.jobId, [{ type: 'batchStarted', index: q.b.index, attempt: q.b.attempt }]);
    setTimeout(() => {
      // counted only when it reached an open socket: answers lost with a killed coordinator are not dispatches
      if (report(q.jobId, [done1(q.jobId, q.b)])) done++;
      next();
    }, delayMs);
  };
  const run = (jobId: string, batches: BatchAssignment[]) => {
    if (delayMs > 0) {
      for (const b of batches) queue.push({ jobId, b });
      if (!busy) next();
      return;
    }
    // no-op batches: done in the tick they came, reported done only (as the agent does)
    const reports = batches.map((b) => done1(jobId, b));
    if (report(jobId, reports)) done += reports.length;
  };
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString()) as CoordinatorToWorker;
    if (msg.type === 'welcome') {
      send({ type: 'ready' });
      isReady = true;
      ready++;
    } else if (msg.type === 'batch') {
      run(msg.jobId, [msg]);
    } else if (msg.type === 'batches') {
      run(msg.jobId, msg.batches);
    } else if (msg.type === 'shutdown') {
      ws.close();
    }
  });
  ws.on('error', () => undefined); // a refused connection ends in 'close', which retries
  ws.on('close', () => {
    queue.length = 0; // the coordinator takes back what this connection held
    if (isReady) ready--;
    if (!stopping) setTimeout(() => connect(n), RECONNECT_MS);
  });
  sockets[n - first] = ws;
}

const sockets: WebSocket[] = [];
// A few connections a tick, so a thousand workers do not all open in one burst.
for (let i = 0; i < count; i++) setTimeout(() => connect(first + i), Math.floor(i / 20) * 5);

let last = '';
setInterval(() => {
  const report = JSON.stringify({ done, ready });
  if (report !== last) process.send?.({ done, ready });
  last = report;
}, 100);

process.on('message', (m: { type: string }) => {
  if (m.type !== 'stop') return;
  stopping = true;
  for (const ws of sockets) ws?.terminate();
  setTimeout(() => process.exit(0), 50);
});
process.on('disconnect', () => process.exit(0));
