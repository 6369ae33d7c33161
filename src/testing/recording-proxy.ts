/**
 * An in-process forward proxy for tests: CONNECT tunnels and absolute-form
 * forwarding, optional Basic proxy authentication, optional TLS on the proxy
 * itself, failure injection, and a record of every call.
 *
 * It plays the part that TooTallNate's `proxy` package plays in
 * proxy-agents' tests, but records calls in an undici `MockCallHistory`
 * shape, forwards request targets byte-exact, and never needs
 * `rejectUnauthorized: false` (a TLS proxy hands out the CA that signed it).
 *
 * @module
 */
import { Buffer } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

import {
  createCallRecorder,
  type CallCriteria,
  type CallHistory,
  type CallPredicate,
  type FilterCallsOptions,
} from './call-history.js';
import { createTestCertificateAuthority } from './certificates.js';
import { closeServer, destroySockets } from './sockets.js';

/** A user name and password, as carried by `Proxy-Authorization: Basic` (RFC 7617). */
export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * A custom authentication check. Receives the decoded Basic credentials
 * (`undefined` when the header is missing, malformed, repeated or not Basic)
 * and the request head. A throw or rejection counts as "not authenticated".
 */
export type ProxyAuthenticator = (
  credentials: BasicCredentials | undefined,
  request: http.IncomingMessage,
) => boolean | Promise<boolean>;

/** PEM material for a TLS listener. */
export interface TlsMaterial {
  /** Server certificate chain, PEM. */
  readonly cert: string;
  /** Private key for `cert`, PEM. */
  readonly key: string;
  /** The CA that clients should trust; exposed as `ca` on the server object. */
  readonly ca?: string;
}

/**
 * How the proxy misbehaves on purpose.
 *
 * - `{ status, times? }`: answer CONNECTs and forwarded requests with `status`
 *   (300–599) instead of serving them, for the next `times` calls
 *   (**Default:** every call until changed). A 407 carries `Proxy-Authenticate`.
 * - `'refuse'`: the listening socket is closed, so new connections are refused
 *   (`ECONNREFUSED`); the port number is kept and listening resumes when the
 *   failure is cleared. Connections already open keep working.
 * - `'reset'`: every new TCP connection is reset (RST) as soon as it is
 *   accepted, before TLS or HTTP; a request arriving on an already-open
 *   keep-alive connection resets that connection (on a TLS proxy it is closed
 *   without RST, since Node can only reset raw TCP sockets).
 * - `'hang'`: read the request and never answer; the connection stays open
 *   until the client gives up or the proxy is closed.
 * - `'garbage'`: answer bytes that are not HTTP, then close.
 */
export type ConnectFailure =
  | { readonly status: number; readonly times?: number }
  | 'refuse'
  | 'reset'
  | 'hang'
  | 'garbage';

/** Failure injection, set at creation with `fail` or later with `setFailure()`. */
export interface FailureInjection {
  /** What to do with CONNECTs and forwarded requests; see {@link ConnectFailure}. */
  readonly connect?: ConnectFailure;
  /**
   * Wait this many milliseconds after a request head arrives before answering
   * it (normally or with the injected failure). **Default:** `0`.
   */
  readonly delayMs?: number;
}

/** Options for {@link createRecordingProxy}. Unknown keys are rejected. */
export interface RecordingProxyOptions {
  /**
   * Loopback address to listen on: `127.0.0.0/8` or `::1`. Anything else is
   * refused, because an open forward proxy on a reachable interface is an
   * abuse vector. **Default:** `'127.0.0.1'`.
   */
  readonly host?: string;
  /** Port to listen on. **Default:** `0` (an ephemeral port). */
  readonly port?: number;
  /**
   * Serve the proxy itself over TLS (an `https://` proxy). `true` makes a
   * throwaway CA and a leaf for `localhost`, `127.0.0.1` and `::1`, and
   * exposes the CA as `ca`. **Default:** plain HTTP.
   */
  readonly tls?: true | TlsMaterial;
  /**
   * Require `Proxy-Authorization: Basic` on CONNECTs and forwarded requests:
   * fixed credentials (compared in constant time) or a custom check.
   * **Default:** no authentication.
   */
  readonly auth?: BasicCredentials | ProxyAuthenticator;
  /**
   * Realm in the `Proxy-Authenticate` challenge of a 407; `null` sends a bare
   * `Basic` challenge with no realm parameter (RFC 7617 requires one, so this
   * tests client tolerance). **Default:** `'matrix-egress-test'`.
   */
  readonly realm?: string | null;
  /** Initial failure injection. **Default:** none. */
  readonly fail?: FailureInjection;
  /**
   * Decide which targets may be reached; a `false` answer is a 403 with
   * outcome `'rejected'`, as a proxy that allows CONNECT only to port 443
   * would do. **Default:** every target is allowed.
   */
  readonly allowTarget?: (host: string, port: number, method: string) => boolean;
}

/**
 * Where a call ended up.
 *
 * - `'pending'`: the request head arrived and no answer has been decided yet.
 * - `'tunnelled'`: CONNECT answered 200 and the tunnel was opened.
 * - `'forwarded'`: an absolute-form request was relayed to the origin.
 * - `'rejected'`: the proxy refused it (400 bad target, 403 `allowTarget`, 407 auth).
 * - `'failed'`: the target could not be reached or broke off (502, or a cut
 *   stream), or the client left before it was answered.
 * - `'injected'`: failure injection answered it (status, hang, garbage, reset).
 */
export type ProxyCallOutcome = 'pending' | 'tunnelled' | 'forwarded' | 'rejected' | 'failed' | 'injected';

/** One request received by the recording proxy. Live: closing fields fill in later. */
export interface ProxyCall {
  /** 1-based sequence number within this proxy. */
  readonly id: number;
  /** Identifies the client connection the request came on; equal ids mean a reused connection. */
  readonly connectionId: number;
  /** `'CONNECT'` or the HTTP method of a forwarded request. */
  readonly method: string;
  /** The request target exactly as received, e.g. `'example.org:443'` or `'http://127.0.0.1:8080/a%2Fb'`. */
  readonly target: string;
  /** Target host, lowercase, IPv6 without brackets; `''` when the target could not be parsed. */
  readonly host: string;
  /** Target port (80 when an absolute-form URL has none); `0` when the target could not be parsed. */
  readonly port: number;
  /** For absolute-form requests: the origin-form target sent to the origin, byte-exact. */
  readonly path: string | undefined;
  /** HTTP version of the request line, e.g. `'1.1'`. */
  readonly httpVersion: string;
  /**
   * TLS server name (SNI) the client sent to a TLS proxy; `undefined` for a
   * plain proxy or when none was sent (RFC 6066 §3 forbids IP literals in SNI).
   */
  readonly servername: string | undefined;
  /** Received headers with lowercase names, as Node folds them (duplicates joined, some dropped). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  /** Received header lines, names in their original case: `[name, value, name, value, …]`. */
  readonly rawHeaders: readonly string[];
  /** Decoded `Proxy-Authorization: Basic` credentials, whether or not they were accepted. */
  readonly authorization: BasicCredentials | undefined;
  /** Whether the call passed authentication; always `true` when the proxy requires none. */
  readonly authenticated: boolean;
  /** Where the call ended up. */
  readonly outcome: ProxyCallOutcome;
  /** Status sent to the client (the origin's for forwarded requests); `undefined` if none was sent. */
  readonly statusCode: number | undefined;
  /** Error code (e.g. `'ECONNREFUSED'`) when the target could not be reached or broke off. */
  readonly errorCode: string | undefined;
  /**
   * Bytes sent towards the target: tunnel bytes (filled when the tunnel
   * closes) or the forwarded request body.
   */
  readonly bytesUp: number;
  /** Bytes received from the target: tunnel bytes or the forwarded response body. */
  readonly bytesDown: number;
  /** When the request head arrived. */
  readonly openedAt: Date;
  /** When the exchange (tunnel, response, or connection for hangs) ended. */
  readonly closedAt: Date | undefined;
}

/** A running recording proxy. Close it with `close()` or `await using`. */
export interface RecordingProxy {
  /** Proxy URL without credentials, e.g. `'http://127.0.0.1:41234'` or `'https://[::1]:41234'`. */
  readonly url: string;
  /** The address listened on (no brackets). */
  readonly host: string;
  /** The port listened on; kept across `'refuse'` periods. */
  readonly port: number;
  /** `'https:'` when the proxy itself speaks TLS. */
  readonly protocol: 'http:' | 'https:';
  /** PEM CA that signed the proxy certificate (TLS proxies), for the client's `proxyTls.ca`. */
  readonly ca: string | undefined;
  /** Every call, in undici `MockCallHistory` shape. */
  readonly history: CallHistory<ProxyCall>;
  /** TCP connections accepted since creation (including ones reset by failure injection). */
  readonly connections: number;
  /** CONNECT tunnels opened since creation. */
  readonly tunnelsOpened: number;
  /** CONNECT tunnels open right now. */
  readonly openTunnels: number;
  /** The failure injection in force, if any. */
  readonly failure: FailureInjection | undefined;
  /** Shorthand for `history.calls()`. */
  calls(): readonly ProxyCall[];
  /** Shorthand for `history.lastCall()`. */
  lastCall(): ProxyCall | undefined;
  /** Shorthand for `history.filterCalls()`; fields combine with AND by default. */
  filterCalls(
    criteria: CallCriteria<ProxyCall> | CallPredicate<ProxyCall>,
    options?: FilterCallsOptions,
  ): readonly ProxyCall[];
  /** Shorthand for `history.clear()`. Counters are not reset. */
  clear(): void;
  /**
   * The proxy URL with percent-encoded userinfo, for tests that configure a
   * client from a URL (e.g. an `https_proxy` value). `url` never carries
   * credentials; this is the only place they are put into one.
   */
  urlWithCredentials(username: string, password: string): string;
  /**
   * Replace the failure injection (`undefined` clears it). Resolves once it is
   * in force: for `'refuse'` when the listener is closed, and when leaving
   * `'refuse'` when the listener is bound again on the same port.
   *
   * @throws TypeError (as a rejection) for an invalid injection; the listen
   * error (e.g. `EADDRINUSE`) if the port was taken while refusing.
   */
  setFailure(fail: FailureInjection | undefined): Promise<void>;
  /**
   * Stop listening and destroy every client connection, tunnel and upstream
   * connection. Idempotent: later calls return the same promise.
   */
  close(): Promise<void>;
  /** Same as {@link RecordingProxy.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };
type ActiveFailure = Exclude<ConnectFailure, 'refuse' | 'reset'> | 'reset';

interface FailureState {
  readonly spec: FailureInjection | undefined;
  readonly connect: ConnectFailure | undefined;
  remaining: number;
  readonly delayMs: number;
}

interface HostPort {
  readonly host: string;
  readonly port: number;
}

const DEFAULT_REALM = 'matrix-egress-test';
const VIA = '1.1 matrix-egress-recording-proxy';
const GARBAGE = Buffer.from('\u0000\u00ff\u00feNOT-HTTP garbage \u0001\u0002\r\n\r\n', 'latin1');

// RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Connection (a pre-standard
// alias still sent by some clients) and Proxy-Authenticate/Authorization,
// which belong to the client–proxy hop (RFC 9110 §11.7).
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const OPTION_KEYS = new Set(['host', 'port', 'tls', 'auth', 'realm', 'fail', 'allowTarget']);

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Validate a loopback listen address and return it without brackets.
 *
 * @internal Shared with the test origin.
 */
export function checkLoopbackHost(option: string, host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = net.isIP(bare);
  if (family === 0 || !LOOPBACK.check(bare, family === 4 ? 'ipv4' : 'ipv6')) {
    throw new TypeError(`Option \`${option}\`: must be a loopback IP literal (127.0.0.0/8 or ::1), got ${JSON.stringify(host)}`);
  }
  return bare;
}

/** @internal Shared with the test origin. */
export function checkPort(option: string, port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`Option \`${option}\`: must be an integer from 0 to 65535`);
  }
  return port;
}

/** @internal Shared with the test origin. */
export function checkTlsMaterial(option: string, tls: unknown): TlsMaterial {
  if (typeof tls !== 'object' || tls === null) {
    throw new TypeError(`Option \`${option}\`: must be \`true\` or { cert, key, ca? } PEM strings`);
  }
  const { cert, key, ca } = tls as Record<string, unknown>;
  if (typeof cert !== 'string' || typeof key !== 'string' || (ca !== undefined && typeof ca !== 'string')) {
    throw new TypeError(`Option \`${option}\`: cert and key must be PEM strings, and ca a PEM string when given`);
  }
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

/** @internal Shared with the test origin: `http://127.0.0.1:1234` or `https://[::1]:1234`. */
export function formatOrigin(protocol: 'http:' | 'https:', host: string, port: number): string {
  return `${protocol}//${net.isIPv6(host) ? `[${host}]` : host}:${String(port)}`;
}

/** @internal Shared with the test origin. */
export function throwawayTlsMaterial(commonName: string): Required<TlsMaterial> {
  const authority = createTestCertificateAuthority({ commonName });
  const leaf = authority.issue({ hosts: ['localhost', '127.0.0.1', '::1'] });
  return { cert: leaf.cert, key: leaf.key, ca: authority.cert };
}

function checkRealm(realm: unknown): string | null {
  // The realm is a quoted-string (RFC 9110 §11.2); refuse what would need escaping or split the header.
  if (realm === null || (typeof realm === 'string' && /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/.test(realm))) {
    return realm;
  }
  throw new TypeError('Option `realm`: must be null or printable ASCII without `"` or `\\`');
}

function checkAuth(auth: unknown): BasicCredentials | ProxyAuthenticator {
  if (typeof auth === 'function') {
    return auth as ProxyAuthenticator;
  }
  if (typeof auth === 'object' && auth !== null) {
    const { username, password } = auth as Record<string, unknown>;
    // RFC 7617 §2: the user-id cannot contain a colon.
    if (typeof username === 'string' && !username.includes(':') && typeof password === 'string') {
      return { username, password };
    }
  }
  throw new TypeError('Option `auth`: must be { username, password } strings (username without ":") or a function');
}

function checkFailure(option: string, fail: unknown): FailureInjection | undefined {
  if (fail === undefined) {
    return undefined;
  }
  if (typeof fail !== 'object' || fail === null) {
    throw new TypeError(`Option \`${option}\`: must be an object { connect?, delayMs? }`);
  }
  for (const key of Object.keys(fail)) {
    if (key !== 'connect' && key !== 'delayMs') {
      throw new TypeError(`Option \`${option}.${key}\`: unknown option`);
    }
  }
  const { connect, delayMs } = fail as Record<string, unknown>;
  if (delayMs !== undefined && (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0)) {
    throw new TypeError(`Option \`${option}.delayMs\`: must be a non-negative number of milliseconds`);
  }
  if (connect !== undefined && connect !== 'refuse' && connect !== 'reset' && connect !== 'hang' && connect !== 'garbage') {
    if (typeof connect !== 'object' || connect === null) {
      throw new TypeError(
        `Option \`${option}.connect\`: must be { status, times? }, 'refuse', 'reset', 'hang' or 'garbage'`,
      );
    }
    const { status, times, ...rest } = connect as Record<string, unknown>;
    const unknownKey = Object.keys(rest)[0];
    if (unknownKey !== undefined) {
      throw new TypeError(`Option \`${option}.connect.${unknownKey}\`: unknown option`);
    }
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 300 || status > 599) {
      throw new TypeError(`Option \`${option}.connect.status\`: must be an integer from 300 to 599`);
    }
    if (times !== undefined && (typeof times !== 'number' || !Number.isInteger(times) || times < 1)) {
      throw new TypeError(`Option \`${option}.connect.times\`: must be a positive integer`);
    }
  }
  return fail;
}

function failureState(given: FailureInjection | undefined): FailureState {
  // A frozen copy, so that mutating the caller's object later changes nothing.
  const connect = typeof given?.connect === 'object' ? Object.freeze({ ...given.connect }) : given?.connect;
  const spec = given === undefined ? undefined : Object.freeze({ ...given, ...(connect === undefined ? {} : { connect }) });
  return {
    spec,
    connect,
    remaining: typeof connect === 'object' ? (connect.times ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY,
    delayMs: spec?.delayMs ?? 0,
  };
}

/**
 * Parse `host:port`, `[v6]:port` or (with a default port) a bare host.
 * Hosts are restricted to what a URI reg-name or IP literal can be once
 * percent-decoding is ruled out (RFC 3986 §3.2.2).
 */
function parseHostPort(text: string, defaultPort: number | undefined): HostPort | undefined {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) {
      return undefined;
    }
    host = text.slice(1, end);
    const after = text.slice(end + 1);
    if (after !== '' && !after.startsWith(':')) {
      return undefined;
    }
    portText = after === '' ? undefined : after.slice(1);
    if (!net.isIPv6(host) || host.includes('%')) {
      return undefined;
    }
  } else {
    const colon = text.lastIndexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (!/^[A-Za-z0-9._~-]+$/.test(host)) {
      return undefined;
    }
  }
  let port: number;
  if (portText === undefined || portText === '') {
    if (defaultPort === undefined) {
      return undefined;
    }
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) {
      return undefined;
    }
    port = Number(portText);
  }
  if (port < 1 || port > 65535) {
    return undefined;
  }
  return { host: host.toLowerCase(), port };
}

interface AbsoluteTarget extends HostPort {
  readonly authority: string;
  readonly path: string;
}

/**
 * Split an absolute-form target (RFC 9112 §3.2.2) into authority and path
 * without touching the path: no percent-decoding and no dot-segment removal,
 * because Matrix federation signatures cover the URI as sent.
 */
function parseAbsoluteForm(target: string): AbsoluteTarget | undefined {
  const match = /^http:\/\/([^/?#]*)(.*)$/is.exec(target);
  const authority = match?.[1];
  const rest = match?.[2];
  if (authority === undefined || rest === undefined || authority.includes('@')) {
    return undefined;
  }
  const hostPort = parseHostPort(authority, 80);
  if (hostPort === undefined) {
    return undefined;
  }
  // RFC 9112 §3.2.1: an empty path is sent as "/".
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { ...hostPort, authority, path };
}

function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) {
      values.push(rawHeaders[i + 1] ?? '');
    }
  }
  return values;
}

/** Decode `Basic <token68>` (RFC 7617); scheme names are case-insensitive (RFC 9110 §11.1). */
function parseBasic(value: string): BasicCredentials | undefined {
  const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(value);
  const token = match?.[1];
  if (token === undefined) {
    return undefined;
  }
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) {
    return undefined;
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Compare digests so the time taken depends on neither the length nor the content of the secret. */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * Drop hop-by-hop fields: the fixed RFC 9110 §7.6.1 list and every field
 * named in Connection. Flat `[name, value, …]` in, the same shape out.
 */
function endToEndHeaders(rawHeaders: readonly string[], alsoDrop: readonly string[] = []): string[] {
  const drop = new Set([...HOP_BY_HOP, ...alsoDrop]);
  for (const value of headerValues(rawHeaders, 'connection')) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') {
        drop.add(name);
      }
    }
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    if (!drop.has(name.toLowerCase())) {
      kept.push(name, rawHeaders[i + 1] ?? '');
    }
  }
  return kept;
}

/** @internal Shared with the test origin: `IncomingHttpHeaders` without `undefined` values, frozen. */
export function plainHeaders(headers: http.IncomingHttpHeaders): Record<string, string | readonly string[]> {
  const result: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) {
      result[name] = value;
    }
  }
  return Object.freeze(result);
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ERR_UNKNOWN';
}

/** Write a complete response on a raw socket (the CONNECT path) and close it. */
function endWithRawResponse(socket: Duplex, status: number, extraHeaders: readonly string[] = []): void {
  const body = `${String(status)} ${http.STATUS_CODES[status] ?? 'Unknown'}\n`;
  let head = `HTTP/1.1 ${String(status)} ${http.STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const line of extraHeaders) {
    head += `${line}\r\n`;
  }
  head += `Content-Type: text/plain\r\nContent-Length: ${String(Buffer.byteLength(body))}\r\nConnection: close\r\n\r\n`;
  socket.end(head + body);
}

function resetSocket(socket: Duplex): void {
  if (!(socket instanceof net.Socket)) {
    socket.destroy();
    return;
  }
  // resetAndDestroy() works only on raw TCP handles (Node ≥ 16.17); a TLSSocket throws, so close it instead.
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

class RecordingProxyServer implements RecordingProxy {
  readonly host: string;
  readonly protocol: 'http:' | 'https:';
  readonly ca: string | undefined;
  readonly history: CallHistory<ProxyCall>;

  readonly #record: (call: ProxyCall) => void;
  readonly #server: http.Server;
  readonly #agent = new http.Agent({ keepAlive: true });
  readonly #auth: BasicCredentials | ProxyAuthenticator | undefined;
  readonly #realm: string | null;
  readonly #allowTarget: ((host: string, port: number, method: string) => boolean) | undefined;
  readonly #sockets = new Set<Duplex>();
  readonly #sleepers = new Set<() => void>();
  readonly #connectionIds = new WeakMap<object, number>();
  #listener: net.Server | undefined;
  #port: number;
  #failure: FailureState = failureState(undefined);
  #failureChange: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;
  #nextCallId = 1;
  #nextConnectionId = 1;
  #connections = 0;
  #tunnelsOpened = 0;
  #openTunnels = 0;

  private constructor(options: RecordingProxyOptions, host: string, tls: TlsMaterial | undefined) {
    this.host = host;
    this.#port = options.port ?? 0;
    this.protocol = tls === undefined ? 'http:' : 'https:';
    this.ca = tls?.ca;
    // The validated copy: mutating the caller's credentials object later changes nothing.
    this.#auth = options.auth === undefined ? undefined : checkAuth(options.auth);
    this.#realm = options.realm === undefined ? DEFAULT_REALM : options.realm;
    this.#allowTarget = options.allowTarget;
    const recorder = createCallRecorder<ProxyCall>();
    this.history = recorder.history;
    this.#record = recorder.record;
    // The HTTP(S) server never listens itself: connections are fed to it by
    // #listener, so that 'refuse' can close the port without touching open ones.
    this.#server = tls === undefined ? http.createServer() : https.createServer({ cert: tls.cert, key: tls.key });
    this.#server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.#onConnect(req, socket, head);
    });
    this.#server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      void this.#onRequest(req, res);
    });
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

  get tunnelsOpened(): number {
    return this.#tunnelsOpened;
  }

  get openTunnels(): number {
    return this.#openTunnels;
  }

  get failure(): FailureInjection | undefined {
    return this.#failure.spec;
  }

  calls(): readonly ProxyCall[] {
    return this.history.calls();
  }

  lastCall(): ProxyCall | undefined {
    return this.history.lastCall();
  }

  filterCalls(
    criteria: CallCriteria<ProxyCall> | CallPredicate<ProxyCall>,
    options?: FilterCallsOptions,
  ): readonly ProxyCall[] {
    return this.history.filterCalls(criteria, options);
  }

  clear(): void {
    this.history.clear();
  }

  urlWithCredentials(username: string, password: string): string {
    const hostPort = this.url.slice(`${this.protocol}//`.length);
    return `${this.protocol}//${encodeURIComponent(username)}:${encodeURIComponent(password)}@${hostPort}`;
  }

  setFailure(fail: FailureInjection | undefined): Promise<void> {
    let spec: FailureInjection | undefined;
    try {
      spec = checkFailure('fail', fail);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new TypeError(String(error)));
    }
    this.#failure = failureState(spec);
    // Serialise listener changes so rapid refuse/accept toggles cannot interleave.
    this.#failureChange = this.#failureChange.catch(() => undefined).then(() => this.#applyListenerState());
    return this.#failureChange;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Bind (or re-bind) the listener unless 'refuse' is in force; close it if it is. */
  async #applyListenerState(): Promise<void> {
    if (this.#closing !== undefined) {
      return;
    }
    const refuse = this.#failure.connect === 'refuse';
    if (refuse && this.#listener !== undefined) {
      const listener = this.#listener;
      this.#listener = undefined;
      // close() releases the port synchronously; its callback would wait for open connections, so don't.
      listener.close();
      await new Promise<void>((resolve) => setImmediate(resolve));
    } else if (!refuse && this.#listener === undefined) {
      await this.#listen();
    }
  }

  async #listen(): Promise<void> {
    const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.#accept(socket);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: this.host, port: this.#port, exclusive: true }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    // Accept errors (EMFILE and the like) must not crash the test process.
    listener.on('error', () => undefined);
    const address = listener.address();
    if (address !== null && typeof address === 'object') {
      this.#port = address.port;
    }
    if (this.#closing !== undefined) {
      listener.close();
      return;
    }
    this.#listener = listener;
  }

  /** Construct and bind. Binds once even under 'refuse', so the port number is known and stable. */
  static async create(
    options: RecordingProxyOptions,
    host: string,
    tls: TlsMaterial | undefined,
    fail: FailureInjection | undefined,
  ): Promise<RecordingProxyServer> {
    const proxy = new RecordingProxyServer(options, host, tls);
    await proxy.#listen();
    await proxy.setFailure(fail);
    return proxy;
  }

  #accept(socket: net.Socket): void {
    this.#connections += 1;
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    if (this.#failure.connect === 'reset') {
      socket.on('error', () => undefined);
      resetSocket(socket);
      return;
    }
    this.#track(socket);
    socket.on('error', () => undefined);
    this.#server.emit('connection', socket);
  }

  #track(socket: Duplex): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    if (!this.#sockets.has(socket)) {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    }
  }

  #connectionId(socket: object): number {
    let id = this.#connectionIds.get(socket);
    if (id === undefined) {
      id = this.#nextConnectionId++;
      this.#connectionIds.set(socket, id);
    }
    return id;
  }

  #open(req: http.IncomingMessage, socket: Duplex): Mutable<ProxyCall> {
    const servername: unknown = (socket as Partial<TLSSocket>).servername;
    const call: Mutable<ProxyCall> = {
      id: this.#nextCallId++,
      connectionId: this.#connectionId(socket),
      method: req.method ?? '',
      target: req.url ?? '',
      host: '',
      port: 0,
      path: undefined,
      httpVersion: req.httpVersion,
      servername: typeof servername === 'string' ? servername : undefined,
      headers: plainHeaders(req.headers),
      rawHeaders: Object.freeze([...req.rawHeaders]),
      authorization: undefined,
      authenticated: false,
      outcome: 'pending',
      statusCode: undefined,
      errorCode: undefined,
      bytesUp: 0,
      bytesDown: 0,
      openedAt: new Date(),
      closedAt: undefined,
    };
    this.#record(call);
    return call;
  }

  async #authenticate(req: http.IncomingMessage, call: Mutable<ProxyCall>): Promise<void> {
    // Proxy-Authorization is a singleton field (RFC 9110 §5.3): a repeated one is ambiguous, so it counts as none.
    const values = headerValues(req.rawHeaders, 'proxy-authorization');
    const credentials = values.length === 1 && values[0] !== undefined ? parseBasic(values[0]) : undefined;
    call.authorization = credentials;
    const auth = this.#auth;
    if (auth === undefined) {
      call.authenticated = true;
    } else if (typeof auth === 'function') {
      try {
        // A JS caller's authenticator may return a truthy non-boolean; only `true` admits.
        const verdict: unknown = await auth(credentials, req);
        call.authenticated = verdict === true;
      } catch {
        call.authenticated = false;
      }
    } else if (credentials === undefined) {
      call.authenticated = false;
    } else {
      // Both comparisons always run (no short-circuit) so timing reveals nothing about which part was wrong.
      const userOk = sameSecret(credentials.username, auth.username);
      const passwordOk = sameSecret(credentials.password, auth.password);
      call.authenticated = userOk && passwordOk;
    }
  }

  /** Take the injected failure for one call, counting down `times`. */
  #takeFailure(): ActiveFailure | undefined {
    const state = this.#failure;
    const connect = state.connect;
    if (connect === undefined || connect === 'refuse') {
      return undefined;
    }
    if (typeof connect === 'object') {
      if (state.remaining <= 0) {
        return undefined;
      }
      state.remaining -= 1;
    }
    return connect;
  }

  #sleep(ms: number): Promise<void> {
    if (ms <= 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  #challenge(): string {
    return this.#realm === null ? 'Basic' : `Basic realm="${this.#realm}"`;
  }

  #refusal(call: Mutable<ProxyCall>, hostPort: HostPort | undefined): number | undefined {
    if (hostPort === undefined) {
      return 400;
    }
    if (!call.authenticated) {
      return 407;
    }
    if (this.#allowTarget !== undefined && !this.#allowTarget(hostPort.host, hostPort.port, call.method)) {
      return 403;
    }
    return undefined;
  }

  async #onConnect(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // After 'connect' Node removes its own error handler from the socket (it is ours now).
    socket.on('error', () => undefined);
    this.#track(socket);
    const call = this.#open(req, socket);
    socket.once('close', () => {
      call.closedAt ??= new Date();
    });
    // RFC 9110 §9.3.6: CONNECT uses authority-form, and the port is mandatory.
    const target = parseHostPort(call.target, undefined);
    if (target !== undefined) {
      call.host = target.host;
      call.port = target.port;
    }
    const handled = await this.#authenticateAndInject(req, call, socket, (status) => {
      endWithRawResponse(socket, status, status === 407 ? [`Proxy-Authenticate: ${this.#challenge()}`] : []);
    });
    if (handled) return;
    const refusal = this.#refusal(call, target);
    if (refusal !== undefined || target === undefined) {
      call.outcome = 'rejected';
      call.statusCode = refusal ?? 400;
      endWithRawResponse(socket, call.statusCode, refusal === 407 ? [`Proxy-Authenticate: ${this.#challenge()}`] : []);
      return;
    }
    this.#tunnel(call, socket, head, target);
  }

  #tunnel(call: Mutable<ProxyCall>, socket: Duplex, head: Buffer, target: HostPort): void {
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.#track(upstream);
    let established = false;
    upstream.on('error', (error) => {
      call.errorCode ??= errorCode(error);
      if (!established) {
        call.outcome = 'failed';
        call.statusCode = 502;
        endWithRawResponse(socket, 502);
      } else {
        socket.destroy();
      }
    });
    socket.once('close', () => {
      upstream.destroy();
      if (!established) {
        call.outcome = 'failed';
      }
    });
    upstream.once('connect', () => {
      established = true;
      call.outcome = 'tunnelled';
      call.statusCode = 200;
      this.#tunnelsOpened += 1;
      this.#openTunnels += 1;
      let open = 2;
      const closeOne = (): void => {
        open -= 1;
        if (open === 0) {
          call.bytesUp = upstream.bytesWritten;
          call.bytesDown = upstream.bytesRead;
          call.closedAt = new Date();
          this.#openTunnels -= 1;
        }
      };
      socket.once('close', closeOne);
      upstream.once('close', closeOne);
      socket.on('error', () => upstream.destroy());
      // RFC 9110 §9.3.6: a 2xx to CONNECT carries no Content-Length or Transfer-Encoding.
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) {
        upstream.write(head);
      }
      socket.pipe(upstream);
      upstream.pipe(socket);
    });
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const socket = req.socket;
    const call = this.#open(req, socket);
    res.once('close', () => {
      call.closedAt ??= new Date();
    });
    const target = parseAbsoluteForm(call.target);
    if (target !== undefined) {
      call.host = target.host;
      call.port = target.port;
      call.path = target.path;
    }
    const handled = await this.#authenticateAndInject(req, call, socket, (status) => {
      this.#respond(res, status);
    });
    if (handled) return;
    // Origin-form and asterisk-form are for origin servers, not proxies (RFC 9112 §3.2); https:// goes by CONNECT.
    const refusal = this.#refusal(call, target);
    if (refusal !== undefined || target === undefined) {
      call.outcome = 'rejected';
      call.statusCode = refusal ?? 400;
      this.#respond(res, call.statusCode);
      return;
    }
    this.#forward(call, req, res, target);
  }

  #respond(res: http.ServerResponse, status: number): void {
    const body = `${String(status)} ${http.STATUS_CODES[status] ?? 'Unknown'}\n`;
    const headers: string[] = ['Content-Type', 'text/plain', 'Content-Length', String(Buffer.byteLength(body))];
    if (status === 407) {
      // RFC 9110 §15.5.8: a 407 MUST carry a Proxy-Authenticate challenge.
      headers.push('Proxy-Authenticate', this.#challenge());
    }
    res.writeHead(status, headers);
    res.end(body);
  }

  #forward(
    call: Mutable<ProxyCall>,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    target: AbsoluteTarget,
  ): void {
    // RFC 9112 §3.2.2: a proxy replaces Host with the authority of the absolute-form target.
    // RFC 9110 §7.6.3: a proxy MUST add Via.
    const headers = ['Host', target.authority, ...endToEndHeaders(req.rawHeaders, ['host']), 'Via', VIA];
    let upstreamRequest: http.ClientRequest;
    try {
      upstreamRequest = http.request({
        host: target.host,
        port: target.port,
        method: call.method,
        path: target.path,
        headers,
        setHost: false,
        agent: this.#agent,
      });
    } catch (error) {
      call.outcome = 'rejected';
      call.statusCode = 400;
      call.errorCode = errorCode(error);
      this.#respond(res, 400);
      return;
    }
    upstreamRequest.on('socket', (upstreamSocket) => {
      this.#track(upstreamSocket);
    });
    upstreamRequest.on('response', (upstreamResponse) => {
      const status = upstreamResponse.statusCode ?? 502;
      call.outcome = 'forwarded';
      call.statusCode = status;
      res.writeHead(status, upstreamResponse.statusMessage, [
        ...endToEndHeaders(upstreamResponse.rawHeaders),
        'Via',
        VIA,
      ]);
      upstreamResponse.on('data', (chunk: Buffer) => {
        call.bytesDown += chunk.length;
      });
      upstreamResponse.on('error', (error) => {
        call.outcome = 'failed';
        call.errorCode ??= errorCode(error);
        res.destroy();
      });
      upstreamResponse.pipe(res);
    });
    upstreamRequest.on('error', (error) => {
      call.errorCode ??= errorCode(error);
      call.outcome = 'failed';
      // The client may already be gone (its close destroys this request); never write to a dead response.
      if (res.headersSent || res.destroyed) {
        res.destroy();
      } else {
        call.statusCode = 502;
        this.#respond(res, 502);
      }
    });
    res.once('close', () => {
      if (!res.writableFinished) {
        upstreamRequest.destroy();
      }
    });
    req.on('data', (chunk: Buffer) => {
      call.bytesUp += chunk.length;
    });
    req.pipe(upstreamRequest);
  }

  /**
   * The steps CONNECT and forwarded requests share: check credentials, take the injected failure,
   * wait `delayMs`, then act out the failure. True when the call is finished (failed or injected).
   */
  async #authenticateAndInject(
    req: http.IncomingMessage,
    call: Mutable<ProxyCall>,
    socket: Duplex,
    answerStatus: (status: number) => void,
  ): Promise<boolean> {
    await this.#authenticate(req, call);
    const failure = this.#takeFailure();
    await this.#sleep(this.#failure.delayMs);
    if (this.#closing !== undefined || socket.destroyed) {
      call.outcome = call.outcome === 'pending' ? 'failed' : call.outcome;
      return true;
    }
    if (failure === undefined) return false;
    call.outcome = 'injected';
    if (failure === 'reset') {
      resetSocket(socket);
    } else if (failure === 'garbage') {
      socket.end(GARBAGE);
    } else if (failure === 'hang') {
      // Never answer, but let go when the client does: a socket detached from the HTTP server after
      // CONNECT is half-open by default and would sit in CLOSE_WAIT until close().
      socket.once('end', () => {
        socket.destroy();
      });
    } else {
      call.statusCode = failure.status;
      answerStatus(failure.status);
    }
    return true;
  }

  async #shutdown(): Promise<void> {
    for (const wake of [...this.#sleepers]) {
      wake();
    }
    const listener = this.#listener;
    this.#listener = undefined;
    const listenerClosed = closeServer(listener);
    const socketsClosed = destroySockets(this.#sockets);
    this.#agent.destroy();
    await Promise.all([listenerClosed, socketsClosed]);
  }
}

/**
 * Start a recording forward proxy on loopback.
 *
 * It answers `CONNECT host:port` with `200 Connection Established` and pipes
 * bytes both ways, and relays absolute-form `http://` requests with the
 * target path byte-exact, hop-by-hop fields (RFC 9110 §7.6.1) and
 * `Proxy-Authorization` removed, `Host` set from the target and `Via` added.
 * Anything else (origin-form, `https://` absolute-form) gets 400.
 *
 * @param options - See {@link RecordingProxyOptions}. **Default:** plain HTTP on `127.0.0.1`, an ephemeral port, no auth.
 * @returns The running proxy, already listening.
 * @throws TypeError for an invalid or unknown option (named in the message).
 *
 * @example
 * ```ts
 * await using proxy = await createRecordingProxy({ auth: { username: 'u', password: 'p' } });
 * const dispatcher = new ProxyAgent({ uri: proxy.url, token: basic('u', 'p') });
 * await request('https://127.0.0.1:8448/_matrix/key/v2/server', { dispatcher });
 * assert.equal(proxy.filterCalls({ method: 'CONNECT', host: '127.0.0.1' }).length, 1);
 * ```
 */
export async function createRecordingProxy(options: RecordingProxyOptions = {}): Promise<RecordingProxy> {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new TypeError(`Option \`${key}\`: unknown option`);
    }
  }
  const host = checkLoopbackHost('host', options.host ?? '127.0.0.1');
  checkPort('port', options.port ?? 0);
  if (options.auth !== undefined) {
    checkAuth(options.auth);
  }
  if (options.realm !== undefined) {
    checkRealm(options.realm);
  }
  if (options.allowTarget !== undefined && typeof options.allowTarget !== 'function') {
    throw new TypeError('Option `allowTarget`: must be a function');
  }
  const fail = checkFailure('fail', options.fail);
  let tls: TlsMaterial | undefined;
  if (options.tls === true) {
    tls = throwawayTlsMaterial('matrix-egress recording proxy CA');
  } else if (options.tls !== undefined) {
    tls = checkTlsMaterial('tls', options.tls);
  }
  return RecordingProxyServer.create(options, host, tls, fail);
}
