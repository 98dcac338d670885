/**
 * An event subscriber that stops reading: `node paused-subscriber.js URL TOKEN`. It
 * subscribes to every event of the pool, tells its parent over IPC once subscribed, and the
 * parent then freezes it (SIGSTOP), as a laptop lid closing or a stuck UI would.
 */
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../runtime/protocol.js';

const [url, token] = process.argv.slice(2);
const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
let events = 0;
ws.on('open', () => {
  ws.send(JSON.stringify({ type: 'hello', protocolVersion: PROTOCOL_VERSION, role: 'client' }));
  ws.send(JSON.stringify({ type: 'subscribe', reqId: 1 }));
});
ws.on('message', (data) => {
  const msg = JSON.parse(data.toString()) as { type: string; reqId?: number };
  if (msg.type === 'reply' && msg.reqId === 1) process.send?.({ type: 'subscribed' });
  else events++;
});
ws.on('close', () => process.exit(0));
ws.on('error', (err) => {
  process.stderr.write(`paused subscriber: ${err.message}\n`);
  process.exit(1);
});
