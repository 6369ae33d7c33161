/**
 * A loopback HTTP or HTTPS origin server for tests, recording every request
 * it receives with the request target exactly as sent on the wire.
 *
 * Pair it with the recording proxy to check both ends of a route: what the
 * proxy was asked for, and what finally reached the origin (for example that
 * `Proxy-Authorization` never does, RFC 9110 §11.7.2).
 *
 * @module
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

import {
  CallLog,
  type CallCriteria,
  type CallHistory,
  type CallPredicate,
  type FilterCallsOptions,
} from './call-history.js';
import { closeServer, destroySockets, listenOn } from './sockets.js';
import { plainHeaders } from './headers.js';
import {
  checkLoopbackHost,
  checkPort,
  checkTlsMaterial,
  formatOrigin,
  throwawayTlsMaterial,
  type TlsMaterial,
} from './listen-options.js';

/** One request received by a {@link TestOrigin}. */
export interface OriginRequest {
  /** 1-based sequence number within this origin. */
  readonly id: number;
  /** Identifies the client connection; equal ids mean a reused (kept-alive) connection. */
  readonly connectionId: number;
  /** HTTP method. */
  readonly method: string;
  /** The request target exactly as received (`/a%2Fb/../c` stays so). */
  readonly url: string;
  /** HTTP version of the request line, e.g. `'1.1'`. */
  readonly httpVersion: string;
  /** Received headers with lowercase names, as Node folds them (duplicates joined, some dropped). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  /** Received header lines, names in their original case: `[name, value, name, value, …]`. */
  readonly rawHeaders: readonly string[];
  /** Peer address: the proxy's for proxied requests, the client's for direct ones. */
  readonly remoteAddress: string;
  /** Peer port. */
  readonly remotePort: number;
  /** TLS server name (SNI) the client sent; `undefined` over plain HTTP or when none was sent. */
  readonly servername: string | undefined;
  /** When the request head arrived. */
  readonly receivedAt: Date;
}

/**
 * Answers requests in place of the default handler. A throw or rejection
 * becomes a 500 (or a destroyed connection once headers were sent).
 */
export type OriginHandler = (
  req: http.IncomingMessage,
  res: http.ServerResponse,
  call: OriginRequest,
) => void | Promise<void>;

/** Options for {@link createTestOrigin}. Unknown keys are rejected. */
export interface TestOriginOptions {
  /** Loopback address to listen on: `127.0.0.0/8` or `::1`. **Default:** `'127.0.0.1'`. */
  readonly host?: string;
  /** Port to listen on. **Default:** `0` (an ephemeral port). */
  readonly port?: number;
  /**
   * Serve HTTPS. `true` makes a throwaway CA and a leaf for `localhost`,
   * `127.0.0.1` and `::1`, exposed as `ca`. Pass `{ cert, key }` to serve an
   * expired, wrong-name or self-signed certificate. **Default:** plain HTTP.
   */
  readonly tls?: true | TlsMaterial;
  /**
   * Custom request handler. **Default:** drain the body, then answer 200 with
   * JSON `{ "ok": true, "method": …, "url": … }`.
   */
  readonly handler?: OriginHandler;
}

/** A running test origin. Close it with `close()` or `await using`. */
export interface TestOrigin {
  /** Base URL, e.g. `'http://127.0.0.1:41234'` or `'https://[::1]:41234'` (no trailing slash). */
  readonly url: string;
  /** The address listened on (no brackets). */
  readonly host: string;
  /** The port listened on. */
  readonly port: number;
  /** `'https:'` when serving TLS. */
  readonly protocol: 'http:' | 'https:';
  /** PEM CA for the served certificate, when known (`tls: true`, or `tls.ca` given). */
  readonly ca: string | undefined;
  /** Every request, in undici `MockCallHistory` shape. */
  readonly history: CallHistory<OriginRequest>;
  /** TCP connections accepted since creation. */
  readonly connections: number;
  /** Shorthand for `history.calls()`. */
  calls(): readonly OriginRequest[];
  /** Shorthand for `history.lastCall()`. */
  lastCall(): OriginRequest | undefined;
  /** Shorthand for `history.filterCalls()`; fields combine with AND by default. */
  filterCalls(
    criteria: CallCriteria<OriginRequest> | CallPredicate<OriginRequest>,
    options?: FilterCallsOptions,
  ): readonly OriginRequest[];
  /** Shorthand for `history.clear()`. */
  clear(): void;
  /** Stop listening and destroy every connection, kept-alive ones included. Idempotent. */
  close(): Promise<void>;
  /** Same as {@link TestOrigin.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

const OPTION_KEYS = new Set(['host', 'port', 'tls', 'handler']);

const defaultHandler: OriginHandler = (req, res, call) => {
  req.resume();
  req.once('end', () => {
    const body = JSON.stringify({ ok: true, method: call.method, url: call.url });
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  });
};

class TestOriginServer implements TestOrigin {
  readonly host: string;
  readonly protocol: 'http:' | 'https:';
  readonly ca: string | undefined;
  readonly history: CallHistory<OriginRequest>;

  readonly #log = new CallLog<OriginRequest>();
  readonly #server: http.Server;
  readonly #handler: OriginHandler;
  readonly #sockets = new Set<Socket>();
  #port = 0;
  #connections = 0;
  #closing: Promise<void> | undefined;

  private constructor(host: string, tls: TlsMaterial | undefined, handler: OriginHandler) {
    this.host = host;
    this.protocol = tls === undefined ? 'http:' : 'https:';
    this.ca = tls?.ca;
    this.#handler = handler;
    this.history = this.#log.history;
    this.#server = tls === undefined ? http.createServer() : https.createServer({ cert: tls.cert, key: tls.key });
    // 'connection' is the raw TCP socket for both http and https servers; destroying it ends any TLS on top.
    this.#server.on('connection', (socket: Socket) => {
      this.#connections += 1;
      if (this.#closing !== undefined) {
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      void this.#onRequest(req, res);
    });
  }

  /** Construct and start listening. */
  static async create(
    host: string,
    port: number,
    tls: TlsMaterial | undefined,
    handler: OriginHandler,
  ): Promise<TestOriginServer> {
    const origin = new TestOriginServer(host, tls, handler);
    await origin.#listen(port);
    return origin;
  }

  get port(): number {
    return this.#port;
  }

  get url(): string {
    return formatOrigin(this.protocol, this.host, this.#port);
  }

  get connections(): number {
    return this.#connections;
  }

  calls(): readonly OriginRequest[] {
    return this.history.calls();
  }

  lastCall(): OriginRequest | undefined {
    return this.history.lastCall();
  }

  filterCalls(
    criteria: CallCriteria<OriginRequest> | CallPredicate<OriginRequest>,
    options?: FilterCallsOptions,
  ): readonly OriginRequest[] {
    return this.history.filterCalls(criteria, options);
  }

  clear(): void {
    this.history.clear();
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #listen(port: number): Promise<void> {
    this.#port = await listenOn(this.#server, this.host, port);
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const socket = req.socket;
    const servername: unknown = (socket as Partial<TLSSocket>).servername;
    const call: OriginRequest = Object.freeze({
      id: this.#log.nextCallId(),
      connectionId: this.#log.connectionId(socket),
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      headers: plainHeaders(req.headers),
      rawHeaders: Object.freeze([...req.rawHeaders]),
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: socket.remotePort ?? 0,
      servername: typeof servername === 'string' ? servername : undefined,
      receivedAt: new Date(),
    });
    this.#log.record(call);
    try {
      await this.#handler(req, res, call);
    } catch {
      if (res.headersSent) {
        res.destroy();
      } else {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end('handler failed\n');
      }
    }
  }

  async #shutdown(): Promise<void> {
    await Promise.all([closeServer(this.#server), destroySockets(this.#sockets)]);
  }
}

/**
 * Start a recording origin server on loopback.
 *
 * @param options - See {@link TestOriginOptions}. **Default:** plain HTTP on `127.0.0.1`, an ephemeral port, the JSON echo handler.
 * @returns The running origin, already listening.
 * @throws TypeError for an invalid or unknown option (named in the message).
 *
 * @example
 * ```ts
 * await using origin = await createTestOrigin({ tls: true });
 * const dispatcher = new Agent({ connect: { ca: origin.ca } });
 * await request(`${origin.url}/_matrix/federation/v1/version`, { dispatcher });
 * assert.equal(origin.lastCall()?.url, '/_matrix/federation/v1/version');
 * ```
 */
export async function createTestOrigin(options: TestOriginOptions = {}): Promise<TestOrigin> {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new TypeError(`Option \`${key}\`: unknown option`);
    }
  }
  const host = checkLoopbackHost('host', options.host ?? '127.0.0.1');
  const port = checkPort('port', options.port ?? 0);
  if (options.handler !== undefined && typeof options.handler !== 'function') {
    throw new TypeError('Option `handler`: must be a function');
  }
  let tls: TlsMaterial | undefined;
  if (options.tls === true) {
    tls = throwawayTlsMaterial('matrix-egress test origin CA');
  } else if (options.tls !== undefined) {
    tls = checkTlsMaterial('tls', options.tls);
  }
  return TestOriginServer.create(host, port, tls, options.handler ?? defaultHandler);
}
