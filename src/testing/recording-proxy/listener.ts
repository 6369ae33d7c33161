/**
 * The listening side of a kit proxy: a TCP listener on a loopback port that can be closed and
 * re-opened on the same port (failure `'refuse'`) without touching open connections, that can reset
 * new connections on accept (`'reset'`), and that tracks every socket so close() leaves none. It
 * hands accepted connections on (to an HTTP server, or a SOCKS5 handshake) and speaks no protocol.
 * @internal
 * @module
 */
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

import { closeServer, destroySockets, listenOn } from '../sockets.js';
import { resetSocket } from './faults.js';

/** What a {@link SwitchableListener} asks its owner. */
export interface SwitchableListenerOptions {
  /** Loopback address, already validated. */
  readonly host: string;
  /** Port to bind (0: ephemeral); the bound port is kept across refusals. */
  readonly port: number;
  /** Whether the port should be closed now; read each time the state is applied. */
  refusing(): boolean;
  /** Whether a new connection is to be reset on accept. */
  resetting(): boolean;
  /** A new connection, already tracked and with an error handler. */
  accepted(socket: net.Socket): void;
}

/** A loopback TCP listener whose port can refuse connections for a while, tracking every socket. */
export class SwitchableListener {
  readonly host: string;
  readonly #options: SwitchableListenerOptions;
  readonly #sockets = new Set<Duplex>();
  #server: net.Server | undefined;
  #port: number;
  #connections = 0;
  #change: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;

  constructor(options: SwitchableListenerOptions) {
    this.#options = options;
    this.host = options.host;
    this.#port = options.port;
  }

  /** The port bound (the one asked for until the first bind). */
  get port(): number {
    return this.#port;
  }

  /** TCP connections accepted since creation (including ones reset on accept). */
  get connections(): number {
    return this.#connections;
  }

  /** Whether close() has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Bind once, whatever the refusal state, so the port number is known and stable. */
  start(): Promise<void> {
    return this.#listen();
  }

  /**
   * Close or re-open the port to match `refusing()`. Changes are serialised, so rapid toggles
   * cannot interleave; resolves once this change is in force.
   */
  applyRefusal(): Promise<void> {
    this.#change = this.#change.catch(() => undefined).then(() => this.#apply());
    return this.#change;
  }

  /** Track a socket so close() destroys it; destroys it at once if closing. */
  track(socket: Duplex): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    if (!this.#sockets.has(socket)) {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    }
  }

  /** Stop listening and destroy every tracked socket. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await Promise.all([closeServer(server), destroySockets(this.#sockets)]);
  }

  async #apply(): Promise<void> {
    if (this.#closing !== undefined) {
      return;
    }
    const refuse = this.#options.refusing();
    if (refuse && this.#server !== undefined) {
      const server = this.#server;
      this.#server = undefined;
      // close() releases the port synchronously; its callback would wait for open connections, so don't.
      server.close();
      await new Promise<void>((resolve) => setImmediate(resolve));
    } else if (!refuse && this.#server === undefined) {
      await this.#listen();
    }
  }

  async #listen(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.#accept(socket);
    });
    this.#port = await listenOn(server, this.host, this.#port);
    if (this.#closing !== undefined) {
      server.close();
      return;
    }
    this.#server = server;
  }

  #accept(socket: net.Socket): void {
    this.#connections += 1;
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    if (this.#options.resetting()) {
      socket.on('error', () => undefined);
      resetSocket(socket);
      return;
    }
    this.track(socket);
    socket.on('error', () => undefined);
    this.#options.accepted(socket);
  }
}
