/**
 * Plain-http requests forwarded by the proxy, on the node:http side (RFC 9112 §3.2.2): the request
 * line rewritten to absolute form and the proxy's credentials added, both on the way out, and a 407
 * from the proxy turned into {@link ProxyAuthenticationError}.
 *
 * Where the rewrite happens. Never in the `ClientRequest`: its rendered head and its header table
 * are printed by `util.inspect` and `JSON.stringify` of the request, of `res.req`, and of every error
 * object that carries the request (axios's `error.request`). The agent's `connect()` hands node:http
 * a {@link ForwardingSocket} instead of the socket to the proxy: a Duplex (which node:http and
 * agent-base accept in place of a socket) whose write side replaces the origin-form request line of
 * each request head with the absolute-form one followed by `Proxy-Authorization`, and passes every
 * other byte through. The credential exists as text only in the chunk handed to the proxy socket,
 * which only the ForwardingSocket holds (a #private field); the request, the ForwardingSocket's
 * buffers and its printed form hold the head as node:http wrote it, without credentials.
 *
 * Message boundaries, with public API only (issue #13: this used to read node:http's private
 * `socket._httpMessage`, `req._header` and `req.outputData`). node:http never pipelines: a socket
 * carries one request at a time, and
 * - it sets `req.socket` (public) when it binds a request to a socket, before the request writes
 *   anything to it, and binds the next request only once every chunk of the previous one has been
 *   written out (`'finish'`);
 * - the first chunk a request writes is always its head, which begins with `METHOD path HTTP/1.1`
 *   built from the public `req.method` and `req.path`.
 * So the first write after a forwarded request is bound to the ForwardingSocket is that request's
 * head, and it is the only one rewritten: it must begin with the request line node:http renders
 * from that request's method and path, else the write fails and nothing is sent. Every later chunk
 * of the same request (a body that begins with `GET http://x/ HTTP/1.1\r\n` included) passes byte for
 * byte; a write while no request is bound or after the bound one finished fails. Each check fails
 * closed and loudly (the request errors with {@link InvalidUrlError}), so a Node release that broke
 * either assumption would fail the tests in test/integration/agents instead of sending anything.
 * @module
 */
import { Buffer } from 'node:buffer';
import { IncomingMessage, type ClientRequest } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Duplex } from 'node:stream';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import { authorityOf } from '../dispatch/tunnel.js';
import { HeaderInjectionError, InvalidUrlError, ProxyAuthenticationError } from '../errors.js';
import type { Target } from '../match/target.js';
import { hasControlOrSpace } from '../redact.js';

type WriteCallback = (error?: Error | null) => void;
interface WriteRequest {
  chunk: unknown;
  encoding: BufferEncoding;
}

/** The request line a forwarded request's head begins with, and the one sent in its place. */
interface HeadRewrite {
  /** `METHOD path HTTP/1.1\r\n`, as node:http renders it from the request. */
  readonly originLine: string;
  /** `METHOD http://host:port/path HTTP/1.1\r\n`, the absolute form for the proxy. */
  readonly absoluteLine: string;
}

/** Encodings in which a string chunk is the text of the bytes sent (node:http writes heads as latin1, or utf8 with a string body). */
const TEXT_ENCODINGS: ReadonlySet<string> = new Set(['latin1', 'binary', 'utf8', 'utf-8', 'ascii']);

/**
 * The forwarded requests of one agent whose head has not gone out yet, each with its rewrite.
 * A request leaves when its head is taken by the socket it was bound to, or when it closes.
 */
export class ForwardedRequests {
  readonly #pending = new Map<ClientRequest, HeadRewrite>();

  /** Register a forwarded request before it is queued. */
  add(req: ClientRequest, rewrite: HeadRewrite): void {
    this.#pending.set(req, rewrite);
    req.once('close', () => this.#pending.delete(req));
  }

  /**
   * The request bound to `socket` (node:http's public `req.socket`) whose head has not gone out,
   * removed from the pending ones; undefined when there is none, or more than one (which node:http
   * never does: refuse rather than guess).
   */
  take(socket: Duplex): [ClientRequest, HeadRewrite] | undefined {
    let found: [ClientRequest, HeadRewrite] | undefined;
    for (const [req, rewrite] of this.#pending) {
      if ((req.socket as unknown) !== socket) continue;
      if (found !== undefined) return undefined;
      found = [req, rewrite];
    }
    if (found !== undefined) this.#pending.delete(found[0]);
    return found;
  }
}

/**
 * Prepare a request for the proxy (RFC 9112 §3.2.2): its head will go out with the target as the host
 * and port connected to followed by the caller's path, byte for byte (no URL parsing, so `%2F` and
 * `..` survive), and with `Proxy-Authorization` for the proxy, which strips it (RFC 9110 §11.7.2).
 * The request itself is not changed: the {@link ForwardingSocket} rewrites its head on the way out.
 */
export function forwardInAbsoluteForm(req: ClientRequest, target: Target, proxy: ProxyEndpoint, requests: ForwardedRequests): void {
  if (!req.path.startsWith('/')) throw new InvalidUrlError('A request forwarded by a proxy needs a path starting with "/"');
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const absolute = `http://${host}${target.port === 80 ? '' : `:${String(target.port)}`}${req.path}`;
  if (hasControlOrSpace(absolute)) throw new HeaderInjectionError('The request target');
  requests.add(req, { originLine: `${req.method} ${req.path} HTTP/1.1\r\n`, absoluteLine: `${req.method} ${absolute} HTTP/1.1\r\n` });
  failOnProxy407(req, proxy, authorityOf({ hostname: target.host, port: target.port }));
}

/**
 * What node:http gets instead of the socket to the proxy: the same bytes both ways, except that the
 * head of each forwarded request goes out in absolute form with `Proxy-Authorization` (see the module
 * notes). The socket methods node:http and its Agent call (`setKeepAlive`, `setNoDelay`,
 * `setTimeout`, `ref`, `unref`, `destroySoon`, addresses) are passed on to the proxy socket.
 */
export class ForwardingSocket extends Duplex {
  readonly #socket: Socket;
  readonly #proxy: ProxyEndpoint;
  readonly #requests: ForwardedRequests;
  /** The request whose head went out last, until it finishes: its later chunks pass untouched. */
  #current: ClientRequest | undefined;

  constructor(socket: Socket, proxy: ProxyEndpoint, requests: ForwardedRequests) {
    // Strings stay strings, so a head keeps the encoding node:http chose for it.
    super({ decodeStrings: false, allowHalfOpen: false });
    this.#socket = socket;
    this.#proxy = proxy;
    this.#requests = requests;
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (error) => this.destroy(error));
    socket.on('close', () => this.destroy());
    socket.on('timeout', () => this.emit('timeout'));
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: unknown, encoding: BufferEncoding, callback: WriteCallback): void {
    const first = this.#outgoing(chunk, encoding);
    if (first instanceof Error) {
      callback(first);
      return;
    }
    this.#socket.write(first as string | Uint8Array, encoding, callback);
  }

  override _writev(chunks: WriteRequest[], callback: WriteCallback): void {
    const [head, ...rest] = chunks;
    if (head === undefined) {
      callback();
      return;
    }
    const first = this.#outgoing(head.chunk, head.encoding);
    if (first instanceof Error) {
      callback(first);
      return;
    }
    // One write per chunk, sent together: node:http corks its head and body the same way.
    this.#socket.cork();
    const all = [{ chunk: first, encoding: head.encoding }, ...rest];
    all.forEach(({ chunk, encoding }, i) => {
      this.#socket.write(chunk as string | Uint8Array, encoding, i === all.length - 1 ? callback : undefined);
    });
    this.#socket.uncork();
  }

  override _final(callback: WriteCallback): void {
    this.#socket.end(callback);
  }

  override _destroy(error: Error | null, callback: WriteCallback): void {
    this.#socket.destroy();
    callback(error);
  }

  /** The chunk to send for the first chunk of a write: a head rewritten, a body chunk as it is, or an Error to refuse. */
  #outgoing(chunk: unknown, encoding: BufferEncoding): unknown {
    const next = this.#requests.take(this);
    if (next !== undefined) {
      const [req, rewrite] = next;
      const authorization = this.#proxy.proxyAuthorization();
      const fields = authorization === undefined ? '' : `Proxy-Authorization: ${authorization}\r\n`;
      const head = replaceRequestLine(chunk, encoding, rewrite, fields);
      if (head === undefined) return refusedHead();
      this.#current = req;
      req.once('finish', () => {
        if (this.#current === req) this.#current = undefined;
      });
      return head;
    }
    // @types/node types `req.socket` as a net.Socket; node:http sets it to whatever the agent gave it.
    if (this.#current !== undefined && (this.#current.socket as unknown) === this) return chunk;
    return refusedHead();
  }

  /** Passed on to the proxy socket (node:http's Agent calls it on reuse). */
  setKeepAlive(enable?: boolean, initialDelay?: number): this {
    this.#socket.setKeepAlive(enable, initialDelay);
    return this;
  }

  /** Passed on to the proxy socket. */
  setNoDelay(noDelay?: boolean): this {
    this.#socket.setNoDelay(noDelay);
    return this;
  }

  /** The proxy socket's idle timeout; its `'timeout'` is emitted here. */
  setTimeout(timeout: number, callback?: () => void): this {
    this.#socket.setTimeout(timeout);
    if (callback !== undefined) {
      if (timeout === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    return this;
  }

  /** The idle timeout in force (node:http's Agent reads it before setting its own). */
  get timeout(): number | undefined {
    return this.#socket.timeout;
  }

  /** Passed on to the proxy socket (a pooled socket must not keep the process alive). */
  ref(): this {
    this.#socket.ref();
    return this;
  }

  /** Passed on to the proxy socket. */
  unref(): this {
    this.#socket.unref();
    return this;
  }

  /** End the write side once everything queued is written, then close (as net.Socket's does). */
  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  /** Never connecting: a ForwardingSocket is made around a connected socket. */
  get connecting(): boolean {
    return false;
  }

  address(): AddressInfo | object {
    return this.#socket.address();
  }

  get remoteAddress(): string | undefined {
    return this.#socket.remoteAddress;
  }

  get remotePort(): number | undefined {
    return this.#socket.remotePort;
  }

  get remoteFamily(): string | undefined {
    return this.#socket.remoteFamily;
  }

  get localAddress(): string | undefined {
    return this.#socket.localAddress;
  }

  get localPort(): number | undefined {
    return this.#socket.localPort;
  }
}

/**
 * `chunk` with its first line replaced by the absolute-form line and `fields` after it; undefined
 * when it does not begin with the origin-form line. A string chunk stays a string in its encoding
 * (node:http sends a head with a string body as one string); a Buffer is compared with the line's
 * latin1 bytes (how node:http encodes a head alone).
 */
function replaceRequestLine(chunk: unknown, encoding: BufferEncoding, rewrite: HeadRewrite, fields: string): unknown {
  const { originLine, absoluteLine } = rewrite;
  if (typeof chunk === 'string') {
    if (!TEXT_ENCODINGS.has(encoding.toLowerCase()) || !chunk.startsWith(originLine)) return undefined;
    return absoluteLine + fields + chunk.slice(originLine.length);
  }
  if (chunk instanceof Uint8Array) {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const lineBytes = Buffer.from(originLine, 'latin1');
    if (bytes.length < lineBytes.length || !bytes.subarray(0, lineBytes.length).equals(lineBytes)) return undefined;
    return Buffer.concat([Buffer.from(absoluteLine + fields, 'latin1'), bytes.subarray(lineBytes.length)]);
  }
  return undefined;
}

function refusedHead(): InvalidUrlError {
  return new InvalidUrlError(
    'A request to the proxy was refused: its head does not begin with the request line of its request (was the request changed after it was created?), or no forwarded request was bound to the connection, so it could not be rewritten for the proxy',
  );
}

/**
 * A 407 to a forwarded request comes from the proxy (an origin never sends one, RFC 9110 §15.5.8):
 * fail the request with {@link ProxyAuthenticationError} instead of emitting `'response'`, so the
 * proxy's answer is never taken for the origin's. `emit` is the only hook that runs before the
 * caller's `'response'` listeners.
 */
function failOnProxy407(req: ClientRequest, proxy: ProxyEndpoint, target: string): void {
  const emit = req.emit.bind(req);
  req.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
    const response = args[0];
    if (event === 'response' && response instanceof IncomingMessage && response.statusCode === 407) {
      const challenge = response.headers['proxy-authenticate'] ?? '';
      const realm = /realm="([^"]*)"/i.exec(challenge)?.[1];
      // Destroying the request destroys its socket; node:http then emits the error on the request.
      req.destroy(new ProxyAuthenticationError(proxy.url, target, realm, proxy.hasCredentials, true));
      return true;
    }
    return emit(event, ...args);
  }) as ClientRequest['emit'];
}
