/**
 * Loopback origins for the benchmarks: one HTTPS (certificate from a throwaway CA) and one HTTP
 * server, each serving a small body and a 1 MiB body from memory.
 *
 * Not the test kit's `createTestOrigin`: that one records every request (headers copied and
 * frozen), which is what tests need but adds origin CPU and memory to every benchmark request.
 * @module
 */
import { once } from 'node:events';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createTestCertificateAuthority } from '../src/testing/certificates.js';

/** Size of the small body, in bytes. */
export const SMALL_BODY_BYTES = 128;
/** Size of the large body, in bytes. */
export const LARGE_BODY_BYTES = 1024 * 1024;

const SMALL_BODY = Buffer.alloc(SMALL_BODY_BYTES, 'a');
const LARGE_BODY = Buffer.alloc(LARGE_BODY_BYTES, 'b');

/** One running origin. */
export interface BenchOrigin {
  /** `https://127.0.0.1:<port>` or `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** TCP connections accepted so far (through a proxy: one per tunnel or per proxy-side connection). */
  readonly connections: number;
  close(): Promise<void>;
}

/** Both origins and the CA that signed the HTTPS one. */
export interface BenchOrigins {
  readonly https: BenchOrigin;
  readonly http: BenchOrigin;
  /** PEM of the throwaway CA: every client trusts exactly this (never `rejectUnauthorized: false`). */
  readonly ca: string;
  close(): Promise<void>;
}

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const body = req.url === '/1mib' ? LARGE_BODY : req.url === '/small' ? SMALL_BODY : undefined;
  // Drain any request body so the connection stays reusable.
  req.resume();
  if (body === undefined) {
    res.writeHead(404, { 'content-length': '0' });
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
  res.end(body);
}

async function listen(server: http.Server): Promise<BenchOrigin> {
  let connections = 0;
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  // Keep idle tunnels open for the whole run of one client; the client closes them.
  server.keepAliveTimeout = 60_000;
  server.listen({ host: '127.0.0.1', port: 0 });
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const scheme = server instanceof https.Server ? 'https' : 'http';
  return {
    url: `${scheme}://127.0.0.1:${String(port)}`,
    get connections() {
      return connections;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => { resolve(); }));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}

/** Start both origins on 127.0.0.1 with a fresh CA. */
export async function startOrigins(): Promise<BenchOrigins> {
  const ca = createTestCertificateAuthority({ commonName: 'matrix-egress bench CA' });
  const leaf = ca.issue({ hosts: ['localhost', '127.0.0.1'] });
  const secure = await listen(https.createServer({ cert: leaf.cert, key: leaf.key }, handler));
  const plain = await listen(http.createServer(handler));
  return {
    https: secure,
    http: plain,
    ca: ca.cert,
    async close() {
      await Promise.all([secure.close(), plain.close()]);
    },
  };
}
