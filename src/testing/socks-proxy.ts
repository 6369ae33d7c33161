/**
 * An in-process SOCKS5 proxy for tests: RFC 1928 CONNECT with IPv4, domain-name and IPv6
 * destinations, RFC 1929 username/password authentication (required or optional), failure
 * injection, and a record of every session in the same call-history shape as the HTTP recording
 * proxy.
 *
 * It relays to loopback only. A requested name is never looked up in DNS: it is found in the
 * `hosts` map (so `matrixabc.onion` can reach a local test origin, as Tor would reach the hidden
 * service) or refused with reply 0x04 (host unreachable); an address outside loopback is refused
 * with reply 0x02 (connection not allowed by ruleset). A test can therefore never leak a look-up or
 * a connection to the network, whatever the client under test asks for.
 *
 * @module
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';

import { CallLog, type CallCriteria, type CallHistory, type CallPredicate, type FilterCallsOptions } from './call-history.js';
import { checkLoopbackHost, checkPort } from './listen-options.js';
import { verifyCredentials } from './recording-proxy/auth.js';
import { errorCode, type Mutable } from './recording-proxy/calls.js';
import { actOutOnSocket, FaultInjector } from './recording-proxy/faults.js';
import { SwitchableListener } from './recording-proxy/listener.js';
import { openTunnel, type TunnelRecord } from './recording-proxy/tunnel.js';
import {
  AddressTypeError,
  ByteReader,
  encodeReply,
  readMethods,
  readRequest,
  readUsernamePassword,
  SOCKS_COMMAND,
  SOCKS_METHOD,
  SOCKS_REPLY,
  type SocksAddressType,
} from './socks-wire.js';

export { socksReplyName } from './socks-wire.js';
export type { SocksAddressType } from './socks-wire.js';

/** A user name and password, as carried by the RFC 1929 sub-negotiation. */
export interface SocksCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * A custom RFC 1929 check. Receives the credentials the client sent; a throw, a rejection or any
 * answer but `true` refuses them.
 */
export type SocksAuthenticator = (credentials: SocksCredentials) => boolean | Promise<boolean>;

/**
 * How the SOCKS proxy misbehaves on purpose.
 *
 * - `{ reply, times? }`: answer the next `times` CONNECT requests (**Default:** every one until
 *   changed) with this RFC 1928 §6 reply code (1–255, e.g. `0x05` connection refused), after
 *   method selection and authentication, then close.
 * - `'refuse'`: the listening socket is closed, so new connections are refused (`ECONNREFUSED`);
 *   the port is kept and listening resumes when the failure is cleared.
 * - `'reset'`: reset the TCP connection (RST) — on accept, before any byte (no call is recorded,
 *   as with the HTTP proxy; `connections` counts it), or instead of the reply (see `stage`).
 * - `'hang'`: never answer — the greeting or the request (see `stage`); the connection stays open
 *   until the client gives up or the proxy is closed.
 * - `'garbage'`: answer bytes that are not SOCKS (the HTTP proxy's garbage: its first byte is not
 *   version 5), then close.
 */
export type SocksConnectFailure =
  | { readonly reply: number; readonly times?: number }
  | 'refuse'
  | 'reset'
  | 'hang'
  | 'garbage';

/** Failure injection, set at creation with `fail` or later with `setFailure()`. */
export interface SocksFailureInjection {
  /** What to do with sessions; see {@link SocksConnectFailure}. */
  readonly connect?: SocksConnectFailure;
  /**
   * Where `'reset'`, `'hang'` and `'garbage'` act: `'greeting'` (`'reset'` on accept, the others
   * in answer to the method greeting: the server is not a working SOCKS server) or `'request'` (after method
   * selection and authentication, instead of the reply to CONNECT). **Default:** `'greeting'`.
   */
  readonly stage?: 'greeting' | 'request';
  /**
   * Refuse authentication whatever the client sends: `'reject'` answers the RFC 1929
   * sub-negotiation with a failure status (only when username/password was selected);
   * `'no-acceptable-method'` answers the greeting with method 0xFF. **Default:** none.
   */
  readonly auth?: 'reject' | 'no-acceptable-method';
  /** Wait this many milliseconds after a CONNECT request arrives before answering it. **Default:** `0`. */
  readonly delayMs?: number;
}

/** Options for {@link createRecordingSocksProxy}. Unknown keys are rejected. */
export interface RecordingSocksProxyOptions {
  /** Loopback address to listen on: `127.0.0.0/8` or `::1`. **Default:** `'127.0.0.1'`. */
  readonly host?: string;
  /** Port to listen on. **Default:** `0` (an ephemeral port). */
  readonly port?: number;
  /**
   * Username/password authentication (RFC 1929): fixed credentials (compared in constant time)
   * or a custom check. **Default:** none — only method 0x00 (no authentication) is accepted.
   */
  readonly auth?: SocksCredentials | SocksAuthenticator;
  /**
   * With `auth`: whether clients must authenticate. `false` also accepts method 0x00 from a client
   * that does not offer username/password (one that offers it is still checked).
   * **Default:** `true`.
   */
  readonly authRequired?: boolean;
  /**
   * Names the proxy "resolves", each to a loopback address, e.g.
   * `{ 'matrixabc.onion': '127.0.0.1' }`. Compared case-insensitively, one trailing dot ignored.
   * `localhost` is always there (127.0.0.1) unless given. A name not in the map gets reply 0x04
   * (host unreachable); no DNS look-up is ever made. **Default:** `{}`.
   */
  readonly hosts?: Readonly<Record<string, string>>;
  /**
   * Decide which destinations may be reached (the requested name or address, and port); a
   * `false` answer is reply 0x02 (connection not allowed by ruleset). **Default:** every
   * loopback destination is allowed.
   */
  readonly allowTarget?: (host: string, port: number) => boolean;
  /** Initial failure injection. **Default:** none. */
  readonly fail?: SocksFailureInjection;
}

/**
 * Where a session ended up.
 *
 * - `'pending'`: still negotiating.
 * - `'connected'`: the CONNECT succeeded (reply 0x00) and the tunnel was opened.
 * - `'rejected'`: the proxy refused it: not SOCKS5, no acceptable method, authentication failed,
 *   unsupported command or address type, unknown name, destination not allowed.
 * - `'failed'`: the destination could not be reached (reply 0x01/0x03/0x04/0x05), or the client
 *   left before the reply.
 * - `'injected'`: failure injection answered it.
 */
export type SocksCallOutcome = 'pending' | 'connected' | 'rejected' | 'failed' | 'injected';

/**
 * One SOCKS session (one TCP connection) received by the recording SOCKS proxy. Live: fields fill
 * in as the session goes on.
 *
 * `password` is not enumerable: `util.inspect`, `JSON.stringify`, spreading and
 * {@link describeSocksCall} never show it; read it explicitly when a test must.
 */
export interface SocksCall {
  /** 1-based sequence number within this proxy. */
  readonly id: number;
  /** The client's address and port, e.g. `'127.0.0.1:53422'`. */
  readonly client: string;
  /** The first byte the client sent: `5` for SOCKS5 (`4` from a SOCKS4 client, which is refused). */
  readonly version: number | undefined;
  /** Methods offered in the greeting (RFC 1928 §3), e.g. `[0, 2]`. */
  readonly methodsOffered: readonly number[];
  /** Method selected by the proxy: `0` none, `2` username/password, `255` none acceptable. */
  readonly method: number | undefined;
  /** Whether the client offered username/password (method 2). */
  readonly authOffered: boolean;
  /** Whether the RFC 1929 sub-negotiation took place. */
  readonly authUsed: boolean;
  /** The user name the client sent, when `authUsed`. */
  readonly username: string | undefined;
  /** The password the client sent, when `authUsed`. Not enumerable (see above). */
  readonly password: string | undefined;
  /** Whether the session passed authentication; `true` when none was needed. */
  readonly authenticated: boolean;
  /** RFC 1928 §4 command: `1` CONNECT, `2` BIND, `3` UDP ASSOCIATE. */
  readonly command: number | undefined;
  /** How the destination was given: a name (`socks5h` clients) or an address (`socks5` clients). */
  readonly addressType: SocksAddressType | undefined;
  /** The destination name exactly as requested (ATYP 3), e.g. `'matrixabc.onion'`. */
  readonly name: string | undefined;
  /** The destination address as requested (ATYP 1 or 4), canonical text, e.g. `'::1'`. */
  readonly address: string | undefined;
  /** `name ?? address`, lowercase; `''` before the request arrived. */
  readonly host: string;
  /** Destination port; `0` before the request arrived. */
  readonly port: number;
  /** `host:port`, IPv6 in brackets; `''` before the request arrived. */
  readonly target: string;
  /** The loopback address the proxy connected to (a name mapped through `hosts`). */
  readonly connectedTo: string | undefined;
  /** Where the session ended up. */
  readonly outcome: SocksCallOutcome;
  /** RFC 1928 §6 reply code sent (`0` success); `undefined` if none was sent. */
  readonly reply: number | undefined;
  /** Error code (e.g. `'ECONNREFUSED'`) when the destination could not be reached or broke off. */
  readonly errorCode: string | undefined;
  /** Tunnel bytes sent towards the destination (filled when the tunnel closes). */
  readonly bytesUp: number;
  /** Tunnel bytes received from the destination (filled when the tunnel closes). */
  readonly bytesDown: number;
  /** When the TCP connection was accepted. */
  readonly openedAt: Date;
  /** When the CONNECT request arrived. */
  readonly requestedAt: Date | undefined;
  /** When the reply was sent. */
  readonly repliedAt: Date | undefined;
  /** When the connection closed. */
  readonly closedAt: Date | undefined;
}

/** A running recording SOCKS proxy. Close it with `close()` or `await using`. */
export interface RecordingSocksProxy {
  /** `socks5://host:port`: clients resolve names themselves and send addresses. */
  readonly socks5Url: string;
  /** `socks5h://host:port`: clients send names for the proxy to resolve. */
  readonly socks5hUrl: string;
  /** The address listened on (no brackets). */
  readonly host: string;
  /** The port listened on; kept across `'refuse'` periods. */
  readonly port: number;
  /** Every session, in undici `MockCallHistory` shape. */
  readonly history: CallHistory<SocksCall>;
  /** TCP connections accepted since creation. */
  readonly connections: number;
  /** Tunnels opened (CONNECT answered 0x00) since creation. */
  readonly tunnelsOpened: number;
  /** Tunnels open right now. */
  readonly openTunnels: number;
  /** The failure injection in force, if any. */
  readonly failure: SocksFailureInjection | undefined;
  /** Shorthand for `history.calls()`. */
  calls(): readonly SocksCall[];
  /** Shorthand for `history.lastCall()`. */
  lastCall(): SocksCall | undefined;
  /** Shorthand for `history.filterCalls()`; fields combine with AND by default. */
  filterCalls(
    criteria: CallCriteria<SocksCall> | CallPredicate<SocksCall>,
    options?: FilterCallsOptions,
  ): readonly SocksCall[];
  /** Shorthand for `history.clear()`. Counters are not reset. */
  clear(): void;
  /**
   * The proxy URL with percent-encoded userinfo, e.g. for a `proxyRules` entry.
   *
   * @param scheme - **Default:** `'socks5h:'`.
   */
  urlWithCredentials(username: string, password: string, scheme?: 'socks5:' | 'socks5h:'): string;
  /**
   * Replace the failure injection (`undefined` clears it). Resolves once it is in force.
   *
   * @throws TypeError (as a rejection) for an invalid injection.
   */
  setFailure(fail: SocksFailureInjection | undefined): Promise<void>;
  /** Stop listening and destroy every connection and tunnel. Idempotent. */
  close(): Promise<void>;
  /** Same as {@link RecordingSocksProxy.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

interface FailureState {
  readonly spec: SocksFailureInjection | undefined;
  remaining: number;
}

const OPTION_KEYS = new Set(['host', 'port', 'auth', 'authRequired', 'hosts', 'allowTarget', 'fail']);
const FAIL_KEYS = new Set(['connect', 'stage', 'auth', 'delayMs']);

function checkAuth(auth: unknown): SocksCredentials | SocksAuthenticator {
  if (typeof auth === 'function') return auth as SocksAuthenticator;
  if (typeof auth === 'object' && auth !== null) {
    const { username, password } = auth as Record<string, unknown>;
    // RFC 1929 §2: ULEN and PLEN are one byte each, and neither may be 0.
    if (
      typeof username === 'string' &&
      typeof password === 'string' &&
      between(Buffer.byteLength(username), 1, 255) &&
      between(Buffer.byteLength(password), 1, 255)
    ) {
      return Object.freeze({ username, password });
    }
  }
  throw new TypeError('Option `auth`: must be { username, password } (each 1–255 bytes of UTF-8) or a function');
}

function between(value: number, low: number, high: number): boolean {
  return Number.isInteger(value) && value >= low && value <= high;
}

function normaliseName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

function checkHosts(hosts: unknown): Map<string, string> {
  if (typeof hosts !== 'object' || hosts === null) {
    throw new TypeError('Option `hosts`: must be an object mapping names to loopback addresses');
  }
  const map = new Map<string, string>([['localhost', '127.0.0.1']]);
  for (const [name, address] of Object.entries(hosts)) {
    if (!/^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?$/.test(name) || name.length > 255) {
      throw new TypeError(`Option \`hosts\`: ${JSON.stringify(name)} is not a host name`);
    }
    if (typeof address !== 'string') {
      throw new TypeError(`Option \`hosts.${name}\`: must be a loopback IP literal`);
    }
    map.set(normaliseName(name), checkLoopbackHost(`hosts.${name}`, address));
  }
  return map;
}

function checkFailure(option: string, fail: unknown): SocksFailureInjection | undefined {
  if (fail === undefined) return undefined;
  if (typeof fail !== 'object' || fail === null) {
    throw new TypeError(`Option \`${option}\`: must be an object { connect?, stage?, auth?, delayMs? }`);
  }
  for (const key of Object.keys(fail)) {
    if (!FAIL_KEYS.has(key)) throw new TypeError(`Option \`${option}.${key}\`: unknown option`);
  }
  const { connect, stage, auth, delayMs } = fail as Record<string, unknown>;
  if (delayMs !== undefined && (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0)) {
    throw new TypeError(`Option \`${option}.delayMs\`: must be a non-negative number of milliseconds`);
  }
  if (stage !== undefined && stage !== 'greeting' && stage !== 'request') {
    throw new TypeError(`Option \`${option}.stage\`: must be 'greeting' or 'request'`);
  }
  if (auth !== undefined && auth !== 'reject' && auth !== 'no-acceptable-method') {
    throw new TypeError(`Option \`${option}.auth\`: must be 'reject' or 'no-acceptable-method'`);
  }
  if (connect !== undefined && connect !== 'refuse' && connect !== 'reset' && connect !== 'hang' && connect !== 'garbage') {
    if (typeof connect !== 'object' || connect === null) {
      throw new TypeError(`Option \`${option}.connect\`: must be { reply, times? }, 'refuse', 'reset', 'hang' or 'garbage'`);
    }
    const { reply, times, ...rest } = connect as Record<string, unknown>;
    const unknownKey = Object.keys(rest)[0];
    if (unknownKey !== undefined) throw new TypeError(`Option \`${option}.connect.${unknownKey}\`: unknown option`);
    if (typeof reply !== 'number' || !between(reply, 1, 255)) {
      throw new TypeError(`Option \`${option}.connect.reply\`: must be an integer from 1 to 255 (0 is success)`);
    }
    if (times !== undefined && (typeof times !== 'number' || !between(times, 1, Number.MAX_SAFE_INTEGER))) {
      throw new TypeError(`Option \`${option}.connect.times\`: must be a positive integer`);
    }
  }
  return fail;
}

function failureState(given: SocksFailureInjection | undefined): FailureState {
  // A frozen copy, so that mutating the caller's object later changes nothing.
  const connect = typeof given?.connect === 'object' ? Object.freeze({ ...given.connect }) : given?.connect;
  const spec = given === undefined ? undefined : Object.freeze({ ...given, ...(connect === undefined ? {} : { connect }) });
  return {
    spec,
    remaining: typeof connect === 'object' ? (connect.times ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY,
  };
}

/** RFC 1928 §6 reply for a failed connect, as Dante and OpenSSH map errno. */
function replyFor(code: string): number {
  switch (code) {
    case 'ECONNREFUSED':
      return SOCKS_REPLY.connectionRefused;
    case 'EHOSTUNREACH':
    case 'ETIMEDOUT':
      return SOCKS_REPLY.hostUnreachable;
    case 'ENETUNREACH':
      return SOCKS_REPLY.networkUnreachable;
    default:
      return SOCKS_REPLY.generalFailure;
  }
}

function formatTarget(host: string, port: number): string {
  return `${net.isIPv6(host) ? `[${host}]` : host}:${String(port)}`;
}

class RecordingSocksProxyServer implements RecordingSocksProxy {
  readonly host: string;
  readonly history: CallHistory<SocksCall>;

  readonly #log = new CallLog<SocksCall>();
  readonly #listener: SwitchableListener;
  readonly #auth: SocksCredentials | SocksAuthenticator | undefined;
  readonly #authRequired: boolean;
  readonly #hosts: Map<string, string>;
  readonly #allowTarget: ((host: string, port: number) => boolean) | undefined;
  // Only its sleep()/wakeAll() are used: `delayMs` waits that close() ends early.
  readonly #delays = new FaultInjector();
  #failure: FailureState = failureState(undefined);
  #tunnelsOpened = 0;
  #openTunnels = 0;

  private constructor(options: RecordingSocksProxyOptions, host: string) {
    this.host = host;
    this.history = this.#log.history;
    this.#auth = options.auth === undefined ? undefined : checkAuth(options.auth);
    this.#authRequired = options.authRequired ?? true;
    this.#hosts = checkHosts(options.hosts ?? {});
    this.#allowTarget = options.allowTarget;
    this.#listener = new SwitchableListener({
      host,
      port: options.port ?? 0,
      refusing: () => this.#failure.spec?.connect === 'refuse',
      resetting: () => this.#failure.spec?.connect === 'reset' && (this.#failure.spec.stage ?? 'greeting') === 'greeting',
      accepted: (socket) => {
        this.#accept(socket);
      },
    });
  }

  static async create(
    options: RecordingSocksProxyOptions,
    host: string,
    fail: SocksFailureInjection | undefined,
  ): Promise<RecordingSocksProxyServer> {
    const proxy = new RecordingSocksProxyServer(options, host);
    await proxy.#listener.start();
    await proxy.setFailure(fail);
    return proxy;
  }

  get port(): number {
    return this.#listener.port;
  }

  get socks5Url(): string {
    return `socks5://${formatTarget(this.host, this.port)}`;
  }

  get socks5hUrl(): string {
    return `socks5h://${formatTarget(this.host, this.port)}`;
  }

  get connections(): number {
    return this.#listener.connections;
  }

  get tunnelsOpened(): number {
    return this.#tunnelsOpened;
  }

  get openTunnels(): number {
    return this.#openTunnels;
  }

  get failure(): SocksFailureInjection | undefined {
    return this.#failure.spec;
  }

  calls(): readonly SocksCall[] {
    return this.history.calls();
  }

  lastCall(): SocksCall | undefined {
    return this.history.lastCall();
  }

  filterCalls(
    criteria: CallCriteria<SocksCall> | CallPredicate<SocksCall>,
    options?: FilterCallsOptions,
  ): readonly SocksCall[] {
    return this.history.filterCalls(criteria, options);
  }

  clear(): void {
    this.history.clear();
  }

  urlWithCredentials(username: string, password: string, scheme: 'socks5:' | 'socks5h:' = 'socks5h:'): string {
    // Checked at run time too: JavaScript callers get no compile-time check.
    const given: unknown = scheme;
    if (given !== 'socks5:' && given !== 'socks5h:') {
      throw new TypeError("urlWithCredentials: scheme must be 'socks5:' or 'socks5h:'");
    }
    const userinfo = `${encodeURIComponent(username)}:${encodeURIComponent(password)}`;
    return `${scheme}//${userinfo}@${formatTarget(this.host, this.port)}`;
  }

  setFailure(fail: SocksFailureInjection | undefined): Promise<void> {
    let spec: SocksFailureInjection | undefined;
    try {
      spec = checkFailure('fail', fail);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new TypeError(String(error)));
    }
    this.#failure = failureState(spec);
    return this.#listener.applyRefusal();
  }

  close(): Promise<void> {
    this.#delays.wakeAll();
    return this.#listener.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #accept(socket: net.Socket): void {
    const call = this.#open(socket);
    socket.once('close', () => {
      call.closedAt ??= new Date();
      if (call.outcome === 'pending') call.outcome = 'failed';
    });
    this.#session(socket, call).catch((error: unknown) => {
      if (call.outcome === 'pending') call.outcome = 'failed';
      call.errorCode ??= error instanceof Error && error.name === 'ShortReadError' ? 'ERR_SOCKS_SHORT_READ' : errorCode(error);
      socket.destroy();
    });
  }

  #open(socket: net.Socket): Mutable<SocksCall> {
    const call = {
      id: this.#log.nextCallId(),
      client: formatTarget(socket.remoteAddress ?? '', socket.remotePort ?? 0),
      version: undefined,
      methodsOffered: Object.freeze([]),
      method: undefined,
      authOffered: false,
      authUsed: false,
      username: undefined,
      authenticated: false,
      command: undefined,
      addressType: undefined,
      name: undefined,
      address: undefined,
      host: '',
      port: 0,
      target: '',
      connectedTo: undefined,
      outcome: 'pending',
      reply: undefined,
      errorCode: undefined,
      bytesUp: 0,
      bytesDown: 0,
      openedAt: new Date(),
      requestedAt: undefined,
      repliedAt: undefined,
      closedAt: undefined,
    } as Omit<Mutable<SocksCall>, 'password'> as Mutable<SocksCall>;
    // Not enumerable, so inspect, JSON and spreads of a call never carry the password.
    Object.defineProperty(call, 'password', { value: undefined, writable: true, enumerable: false, configurable: false });
    this.#log.record(call);
    return call;
  }

  /** The failure to act out at `stage`, counting down `times` for reply injections. */
  #takeFailure(stage: 'greeting' | 'request'): SocksConnectFailure | undefined {
    const spec = this.#failure.spec;
    const connect = spec?.connect;
    if (connect === undefined || connect === 'refuse') return undefined;
    if (typeof connect === 'object') {
      if (stage !== 'request' || this.#failure.remaining <= 0) return undefined;
      this.#failure.remaining -= 1;
      return connect;
    }
    return (spec?.stage ?? 'greeting') === stage ? connect : undefined;
  }

  /** Act out reset/hang/garbage; true when one was acted out. */
  #actOut(failure: SocksConnectFailure | undefined, socket: net.Socket, call: Mutable<SocksCall>): boolean {
    if (failure === undefined || typeof failure === 'object' || failure === 'refuse') return false;
    call.outcome = 'injected';
    actOutOnSocket(failure, socket);
    return true;
  }

  #reply(socket: net.Socket, call: Mutable<SocksCall>, code: number, outcome: SocksCallOutcome): void {
    call.reply = code;
    call.repliedAt = new Date();
    call.outcome = outcome;
    // RFC 1928 §6: on a failure reply the server MUST close the connection soon after.
    socket.end(encodeReply(code));
  }

  async #session(socket: net.Socket, call: Mutable<SocksCall>): Promise<void> {
    const reader = new ByteReader(socket);
    call.version = await reader.byte();
    if (call.version !== 5) {
      // A SOCKS4 or HTTP client: nothing in SOCKS5 to answer with.
      call.outcome = 'rejected';
      call.errorCode = 'ERR_SOCKS_VERSION';
      socket.destroy();
      return;
    }
    const methods = await readMethods(reader);
    call.methodsOffered = Object.freeze(methods);
    call.authOffered = methods.includes(SOCKS_METHOD.usernamePassword);
    if (this.#actOut(this.#takeFailure('greeting'), socket, call)) return;

    const method = this.#chooseMethod(methods);
    call.method = method;
    if (method === SOCKS_METHOD.noAcceptable) {
      // RFC 1928 §3: the client MUST close the connection; we close it too.
      call.outcome = this.#failure.spec?.auth === 'no-acceptable-method' ? 'injected' : 'rejected';
      socket.end(Buffer.from([0x05, SOCKS_METHOD.noAcceptable]));
      return;
    }
    socket.write(Buffer.from([0x05, method]));
    if (method === SOCKS_METHOD.usernamePassword) {
      if (!(await this.#authenticate(reader, socket, call))) return;
    } else {
      call.authenticated = true;
    }

    if ((await reader.byte()) !== 5) {
      call.outcome = 'rejected';
      call.errorCode = 'ERR_SOCKS_VERSION';
      socket.destroy();
      return;
    }
    let request;
    try {
      request = await readRequest(reader);
    } catch (error) {
      if (!(error instanceof AddressTypeError)) throw error;
      call.requestedAt = new Date();
      this.#reply(socket, call, SOCKS_REPLY.addressTypeNotSupported, 'rejected');
      return;
    }
    call.requestedAt = new Date();
    call.command = request.command;
    call.addressType = request.addressType;
    if (request.addressType === 'domain') call.name = request.host;
    else call.address = request.host;
    call.host = request.addressType === 'domain' ? normaliseName(request.host) : request.host;
    call.port = request.port;
    call.target = formatTarget(call.host, call.port);

    await this.#delays.sleep(this.#failure.spec?.delayMs ?? 0);
    if (this.#listener.closed || socket.destroyed) return;
    const failure = this.#takeFailure('request');
    if (typeof failure === 'object') {
      this.#reply(socket, call, failure.reply, 'injected');
      return;
    }
    if (this.#actOut(failure, socket, call)) return;
    if (request.command !== SOCKS_COMMAND.connect) {
      this.#reply(socket, call, SOCKS_REPLY.commandNotSupported, 'rejected');
      return;
    }
    const destination = this.#destination(request.addressType, call.host);
    if (typeof destination === 'number') {
      this.#reply(socket, call, destination, 'rejected');
      return;
    }
    if (this.#allowTarget !== undefined && !this.#allowTarget(call.host, call.port)) {
      this.#reply(socket, call, SOCKS_REPLY.notAllowed, 'rejected');
      return;
    }
    call.connectedTo = destination;
    // Detach the reader first: bytes the client pipelined behind the request go upstream first.
    const early = reader.release();
    // The shared tunnel writes the HTTP kit's outcome words; 'tunnelled' is renamed in established().
    openTunnel(call as unknown as TunnelRecord, socket, early, { host: destination, port: call.port }, {
      track: (stream) => {
        this.#listener.track(stream);
      },
      established: (upstream) => {
        this.#tunnelsOpened += 1;
        this.#openTunnels += 1;
        call.outcome = 'connected';
        call.reply = SOCKS_REPLY.succeeded;
        call.repliedAt = new Date();
        // RFC 1928 §6: BND.ADDR/BND.PORT are the address the server connected from.
        socket.write(encodeReply(SOCKS_REPLY.succeeded, { address: upstream.localAddress ?? '0.0.0.0', port: upstream.localPort ?? 0 }));
      },
      unreachable: () => {
        this.#reply(socket, call, replyFor(call.errorCode ?? ''), 'failed');
      },
      closed: () => {
        this.#openTunnels -= 1;
      },
    });
  }

  #chooseMethod(offered: readonly number[]): number {
    if (this.#failure.spec?.auth === 'no-acceptable-method') return SOCKS_METHOD.noAcceptable;
    if (this.#auth !== undefined && offered.includes(SOCKS_METHOD.usernamePassword)) return SOCKS_METHOD.usernamePassword;
    if ((this.#auth === undefined || !this.#authRequired) && offered.includes(SOCKS_METHOD.noAuth)) return SOCKS_METHOD.noAuth;
    return SOCKS_METHOD.noAcceptable;
  }

  /** RFC 1929 sub-negotiation; true when the client may go on. */
  async #authenticate(reader: ByteReader, socket: net.Socket, call: Mutable<SocksCall>): Promise<boolean> {
    const { version, username, password } = await readUsernamePassword(reader);
    call.authUsed = true;
    call.username = username;
    call.password = password;
    const auth = this.#auth;
    const check =
      typeof auth === 'function' ? (credentials: SocksCredentials | undefined) => credentials !== undefined && auth(credentials) : auth;
    const injected = this.#failure.spec?.auth === 'reject';
    const ok = version === 0x01 && !injected && auth !== undefined && (await verifyCredentials(check, { username, password }, undefined));
    call.authenticated = ok;
    if (ok) {
      socket.write(Buffer.from([0x01, 0x00]));
      return true;
    }
    // RFC 1929 §2: on a failure status the server MUST close the connection.
    call.outcome = injected ? 'injected' : 'rejected';
    socket.end(Buffer.from([0x01, 0x01]));
    return false;
  }

  /** The loopback address to connect to, or the reply code refusing the destination. */
  #destination(addressType: SocksAddressType, host: string): string | number {
    if (addressType === 'domain' && net.isIP(host) === 0) {
      return this.#hosts.get(host) ?? SOCKS_REPLY.hostUnreachable;
    }
    try {
      return checkLoopbackHost('destination', host);
    } catch {
      return SOCKS_REPLY.notAllowed;
    }
  }
}

/**
 * Start a recording SOCKS5 proxy on loopback.
 *
 * It speaks RFC 1928 (CONNECT; IPv4, domain-name and IPv6 destinations) and, with `auth`, RFC 1929
 * username/password. Destinations are loopback only: names come from the `hosts` map (no DNS),
 * anything else is refused with a reply code (see the module notes). Every TCP connection is one
 * recorded {@link SocksCall}.
 *
 * @param options - See {@link RecordingSocksProxyOptions}. **Default:** `127.0.0.1`, an ephemeral port, no auth.
 * @returns The running proxy, already listening.
 * @throws TypeError for an invalid or unknown option (named in the message).
 *
 * @example
 * ```ts
 * await using socks = await createRecordingSocksProxy({ hosts: { 'matrixabc.onion': '127.0.0.1' } });
 * const egress = createEgress({
 *   proxyRules: [{ hosts: '*.onion', proxy: socks.socks5hUrl }],
 * });
 * await egress.fetch('federation', `https://matrixabc.onion:${origin.port}/_matrix/federation/v1/version`);
 * expectSocksName(socks, 'matrixabc.onion', { port: origin.port });
 * ```
 */
export async function createRecordingSocksProxy(options: RecordingSocksProxyOptions = {}): Promise<RecordingSocksProxy> {
  const given: unknown = options;
  if (typeof given !== 'object' || given === null) throw new TypeError('createRecordingSocksProxy: options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw new TypeError(`Option \`${key}\`: unknown option`);
  }
  const host = checkLoopbackHost('host', options.host ?? '127.0.0.1');
  checkPort('port', options.port ?? 0);
  if (options.auth !== undefined) checkAuth(options.auth);
  if (options.authRequired !== undefined && typeof options.authRequired !== 'boolean') {
    throw new TypeError('Option `authRequired`: must be a boolean');
  }
  if (options.hosts !== undefined) checkHosts(options.hosts);
  if (options.allowTarget !== undefined && typeof options.allowTarget !== 'function') {
    throw new TypeError('Option `allowTarget`: must be a function');
  }
  const fail = checkFailure('fail', options.fail);
  return RecordingSocksProxyServer.create(options, host, fail);
}
