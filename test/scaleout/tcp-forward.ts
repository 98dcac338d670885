import * as net from 'node:net';

/**
 * A plain TCP forwarder: listens on `host` (port 0) and pipes each connection to
 * `target`. The test's S3 (Ceph RGW) listens on 127.0.0.1, which inside a host's network
 * namespace is that host's own loopback; through this, on the bridge address, the hosts and
 * this machine reach the same RGW. Bytes pass untouched, so SigV4 signatures (over the Host
 * header the client sent) stay valid.
 */
export async function forwardTcp(host: string, target: { host: string; port: number }): Promise<{ url: string; port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound).pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
