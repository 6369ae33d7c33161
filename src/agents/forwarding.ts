/**
 * Plain-http requests forwarded by the proxy, on the node:http side (RFC 9112 §3.2.2): the request
 * line rewritten to absolute form, the proxy's credentials added on the wire, and a 407 from the
 * proxy turned into {@link ProxyAuthenticationError}.
 *
 * Where the credentials go. Never into the `ClientRequest`: its rendered head (`_header`) and its
 * header table are printed by `util.inspect` and `JSON.stringify` of the request, of `res.req`, and
 * of every error object that carries the request (axios's `error.request`). The socket to the proxy
 * is ours instead (the agent opens it), and {@link carryProxyCredentials} makes its `_write` and
 * `_writev` (the last JavaScript step before the bytes go to the kernel or to TLS) insert
 * `Proxy-Authorization` right after the request line of each request head. The credential exists as
 * text only in the chunk handed to the handle; the socket's own fields hold nothing of it (the
 * writable buffer holds the chunks as node:http wrote them, before the insertion).
 *
 * Message boundaries. node:http never pipelines: a socket carries one request at a time, and
 * - it sets `socket._httpMessage = req` before the request writes anything (`tickOnSocket`, before
 *   `'socket'` is emitted and before `_flush`), and a request writes to its socket only while
 *   `socket._httpMessage === req` (`OutgoingMessage._writeRaw`);
 * - it hands the socket to the next request only once every chunk of the previous one has been
 *   written out (`writableFinished`, or `'finish'`), so chunks reach `_write` in write order and
 *   every chunk seen while `_httpMessage` is a request belongs to that request;
 * - the first chunk a request writes is always its head (`_send` puts `_header` first, alone or in
 *   front of the first string chunk of the body).
 * So the first chunk seen for a new `_httpMessage` is that request's head, and it is the only one
 * touched: it must begin with the exact request line {@link forwardInAbsoluteForm} set for that very
 * request, else the write fails and nothing is sent. Every later chunk of the same request (a body
 * that happens to begin with `GET http://x/ HTTP/1.1\r\n` included) passes byte for byte, and so
 * does a write with no request bound: it fails. The line is looked up per request, so neither a
 * reused keep-alive socket, a request abandoned before it wrote, nor the order of the `'socket'`
 * event and the first write can shift an injection onto another message.
 * @module
 */
import { Buffer } from 'node:buffer';
import { IncomingMessage, type ClientRequest } from 'node:http';
import type { Socket } from 'node:net';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import { authorityOf } from '../dispatch/tunnel.js';
import { HeaderInjectionError, InvalidUrlError, ProxyAuthenticationError } from '../errors.js';
import type { Target } from '../match/target.js';
import { hasControlOrSpace } from '../redact.js';

/** The parts of ClientRequest that exist at run time but that @types/node leaves out. */
interface RequestInternals {
  /** The rendered request head; set early when headers are given as an array or carry `Expect`. */
  _header: string | null;
  /** True once the head was passed to `_send`: with `Expect`, in the constructor, before any socket. */
  _headerSent: boolean;
  /** What the request wrote before it had a socket, in order; the head first. */
  outputData: { data: unknown }[];
  /** The length of `outputData`, for back-pressure. */
  outputSize: number;
}

/** The parts of a socket node:http uses that @types/node leaves out. */
interface SocketInternals {
  /** The request the socket carries (node:http's own field); `null` or absent when it carries none. */
  readonly _httpMessage?: unknown;
}

type WriteCallback = (error?: Error | null) => void;
interface WriteRequest {
  chunk: unknown;
  encoding: BufferEncoding;
}

/**
 * The absolute-form request line set for each forwarded request, `METHOD target HTTP/1.1\r\n`: what
 * its head must begin with for the credentials to be added. Module-private, keyed weakly.
 */
const requestLines = new WeakMap<object, string>();

/** Encodings in which a string chunk is the text of the bytes sent (node:http writes heads as latin1, or utf8 with a string body). */
const TEXT_ENCODINGS: ReadonlySet<string> = new Set(['latin1', 'binary', 'utf8', 'utf-8', 'ascii']);

/** Before the first request on a socket: no `_httpMessage` equals it. */
const NO_REQUEST_YET: unique symbol = Symbol('no request yet');

/**
 * Turn a request into an absolute-form one for the proxy (RFC 9112 §3.2.2): the target is the host
 * and port connected to followed by the caller's path, byte for byte (no URL parsing, so `%2F` and
 * `..` survive). `Proxy-Authorization` is not set here: {@link carryProxyCredentials} adds it on the
 * socket, for the proxy, which strips it (RFC 9110 §11.7.2).
 */
export function forwardInAbsoluteForm(req: ClientRequest, target: Target, proxy: ProxyEndpoint): void {
  if (!req.path.startsWith('/')) throw new InvalidUrlError('A request forwarded by a proxy needs a path starting with "/"');
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const absolute = `http://${host}${target.port === 80 ? '' : `:${String(target.port)}`}${req.path}`;
  if (hasControlOrSpace(absolute)) throw new HeaderInjectionError('The request target');
  const requestLine = `${req.method} ${absolute} HTTP/1.1\r\n`;
  const internals = req as unknown as RequestInternals;
  const rendered = internals._header;
  if (rendered !== null && rendered !== '') {
    // Headers given as an array (or with Expect) are rendered in the ClientRequest constructor,
    // before the agent sees the request: patch the request line of that head.
    const originLine = `${req.method} ${req.path} HTTP/1.1\r\n`;
    const unpatchable = (): InvalidUrlError => new InvalidUrlError('The request head could not be rewritten for the proxy');
    if (!rendered.startsWith(originLine)) throw unpatchable();
    internals._header = requestLine + rendered.slice(originLine.length);
    if (internals._headerSent) {
      // With Expect, `_storeHeader` also queues the head at once (`_send('')`), and with no socket
      // yet it waits first in `outputData`: that copy is the one that will be written.
      const queued = internals.outputData[0];
      if (typeof queued?.data !== 'string' || !queued.data.startsWith(originLine)) throw unpatchable();
      queued.data = requestLine + queued.data.slice(originLine.length);
      internals.outputSize += requestLine.length - originLine.length;
    }
  }
  req.path = absolute;
  requestLines.set(req, requestLine);
  failOnProxy407(req, proxy, authorityOf({ hostname: target.host, port: target.port }));
}

/**
 * Make a socket to the proxy add `Proxy-Authorization` to the head of every forwarded request it
 * carries (see the module notes for why this is exact at message boundaries). The credential stays
 * in `proxy` (a #private field) and in this closure; nothing is stored on the socket but the two
 * wrapped methods. A head that does not begin with the request line set for its request, or a write
 * with no forwarded request bound, fails the socket (and so the request) instead of going out
 * without the credentials. Without credentials the socket is returned as it is.
 */
export function carryProxyCredentials(socket: Socket, proxy: ProxyEndpoint): Socket {
  if (!proxy.hasCredentials) return socket;
  const internals = socket as unknown as SocketInternals;
  const write = socket._write.bind(socket);
  const writev = socket._writev?.bind(socket);
  /** The request whose head went out last: its later chunks pass untouched. */
  let current: unknown = NO_REQUEST_YET;

  /** The head of the request now bound, with the credentials after its request line; undefined to refuse. */
  const headWithCredentials = (message: unknown, chunk: unknown, encoding: BufferEncoding): unknown => {
    // Still connecting, net.Socket would park the chunk in `_pendingData`; our sockets never are.
    if (socket.connecting || typeof message !== 'object' || message === null) return undefined;
    const line = requestLines.get(message);
    const authorization = proxy.proxyAuthorization();
    if (line === undefined || authorization === undefined) return undefined;
    return insertAfterRequestLine(chunk, encoding, line, `Proxy-Authorization: ${authorization}\r\n`);
  };

  const replacement: Pick<Socket, '_write' | '_writev'> = {
    _write(chunk: unknown, encoding: BufferEncoding, callback: WriteCallback): void {
      const message = internals._httpMessage;
      if (message === current) {
        write(chunk, encoding, callback);
        return;
      }
      const head = headWithCredentials(message, chunk, encoding);
      if (head === undefined) {
        callback(refusedHead());
        return;
      }
      current = message;
      write(head, encoding, callback);
    },
  };
  if (writev !== undefined) {
    replacement._writev = (chunks: WriteRequest[], callback: WriteCallback): void => {
      const message = internals._httpMessage;
      const [first] = chunks;
      if (message === current || first === undefined) {
        writev(chunks, callback);
        return;
      }
      const head = headWithCredentials(message, first.chunk, first.encoding);
      if (head === undefined) {
        callback(refusedHead());
        return;
      }
      current = message;
      // A copy: the array may be the writable state's own buffer. `allBuffers` (set by Writable)
      // stays true or false, as the head keeps its type.
      const copy: WriteRequest[] = Object.assign(chunks.slice(), { allBuffers: (chunks as { allBuffers?: unknown }).allBuffers });
      copy[0] = { chunk: head, encoding: first.encoding };
      writev(copy, callback);
    };
  }
  for (const [name, value] of Object.entries(replacement)) {
    Object.defineProperty(socket, name, { value, writable: true, configurable: true, enumerable: false });
  }
  return socket;
}

/**
 * `chunk` with `field` inserted after `line`, which it must begin with; undefined when it does not.
 * A string chunk stays a string in its encoding (node:http sends a head with a string body as one
 * string), a Buffer is compared with the line's latin1 bytes (how node:http encodes a head alone).
 */
function insertAfterRequestLine(chunk: unknown, encoding: BufferEncoding, line: string, field: string): unknown {
  if (typeof chunk === 'string') {
    if (!TEXT_ENCODINGS.has(encoding.toLowerCase()) || !chunk.startsWith(line)) return undefined;
    return line + field + chunk.slice(line.length);
  }
  if (chunk instanceof Uint8Array) {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const lineBytes = Buffer.from(line, 'latin1');
    if (bytes.length < lineBytes.length || !bytes.subarray(0, lineBytes.length).equals(lineBytes)) return undefined;
    return Buffer.concat([lineBytes, Buffer.from(field, 'latin1'), bytes.subarray(lineBytes.length)]);
  }
  return undefined;
}

function refusedHead(): InvalidUrlError {
  return new InvalidUrlError(
    'A request to the proxy was refused: its head does not begin with the request line set for the proxy (was the request changed after it was created?), so Proxy-Authorization could not be added',
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
