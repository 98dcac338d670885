import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/** Sockets corked by `sendCorked` whose uncork is already scheduled. */
const corked = new WeakSet<Socket>();

/**
 * Sends a text frame, holding the socket's writes until the current tick ends so that every
 * frame sent meanwhile leaves in one write syscall. Profiles showed one `writev` per frame
 * taking more than half of the coordinator's busy time at batchSize 1 (docs/bench.md); the
 * frames stay separate, so peers see no difference. ws keeps its socket private (`_socket`);
 * without it this is a plain `send`.
 */
export function sendCorked(ws: WebSocket, text: string): void {
  const sock = (ws as unknown as { _socket?: Socket })._socket;
  if (sock && !corked.has(sock) && !sock.destroyed) {
    corked.add(sock);
    sock.cork();
    // A tick later than the journal's flush of this tick (`Journal.append`): what the
    // frames announce is written first.
    process.nextTick(() =>
      process.nextTick(() => {
        corked.delete(sock);
        sock.uncork();
      }),
    );
  }
  ws.send(text);
}
