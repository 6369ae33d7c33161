/**
 * Starting and shutting down the kit's servers: listening on an exact port, and every socket
 * destroyed and awaited until it has closed, so `close()` resolves only when no connection is left
 * (tests then see exact descriptor counts).
 * @internal
 * @module
 */
import type { Server } from 'node:net';
import type { Duplex } from 'node:stream';

/** Destroy every socket and resolve once all of them have emitted `close`. */
export async function destroySockets(sockets: Iterable<Duplex>): Promise<void> {
  const closed: Promise<void>[] = [];
  for (const socket of sockets) {
    if (!socket.closed) {
      closed.push(
        new Promise<void>((resolve) => {
          socket.once('close', () => {
            resolve();
          });
        }),
      );
    }
    socket.destroy();
  }
  await Promise.all(closed);
}

/** Stop a server listening; resolves when it has closed (its sockets are the caller's to destroy). */
export function closeServer(server: Server | undefined): Promise<void> {
  if (server === undefined) return Promise.resolve();
  return new Promise<void>((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

/**
 * Listen on `host`:`port` (0: ephemeral) exclusively and resolve with the port bound. A listen error
 * (`EADDRINUSE`) rejects; later accept errors (EMFILE and the like) are swallowed so that they cannot
 * crash the test process.
 */
export async function listenOn(server: Server, host: string, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  const address = server.address();
  return address !== null && typeof address === 'object' ? address.port : port;
}
