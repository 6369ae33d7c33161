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
 * This module is the public surface and the HTTP request flow (authenticate, inject, refuse or
 * serve); each job has a module in `./recording-proxy/`: `listener` (port, refusal, sockets),
 * `calls` (records and their numbering), `auth`, `faults`, `targets`, `tunnel` (CONNECT),
 * `forward` (absolute-form) and `answers` (the proxy's own responses).
 *
 * @module
 */
import type { Buffer } from 'node:buffer';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Duplex } from 'node:stream';

import { CallLog, type CallCriteria, type CallHistory, type CallPredicate, type FilterCallsOptions } from './call-history.js';
import { checkLoopbackHost, checkPort, checkTlsMaterial, formatOrigin, throwawayTlsMaterial, type TlsMaterial } from './listen-options.js';
import { endWithRawResponse, respondStatus } from './recording-proxy/answers.js';
import {
  basicChallenge,
  checkAuth,
  checkRealm,
  DEFAULT_REALM,
  proxyAuthorization,
  verifyCredentials,
  type BasicCredentials,
  type ProxyAuthenticator,
} from './recording-proxy/auth.js';
import { openProxyCall, type Mutable, type ProxyCall } from './recording-proxy/calls.js';
import { actOutOnSocket, checkFailure, FaultInjector, type FailureInjection } from './recording-proxy/faults.js';
import { forwardRequest, type ForwardContext } from './recording-proxy/forward.js';
import { SwitchableListener } from './recording-proxy/listener.js';
import { parseAbsoluteForm, parseHostPort, type HostPort } from './recording-proxy/targets.js';
import { openTunnel } from './recording-proxy/tunnel.js';
import { checkHostMap, type HostMap } from './hosts.js';

export type { BasicCredentials, ProxyAuthenticator } from './recording-proxy/auth.js';
export type { ProxyCall, ProxyCallOutcome } from './recording-proxy/calls.js';
export type { ConnectFailure, FailureInjection } from './recording-proxy/faults.js';
export type { TlsMaterial } from './listen-options.js';

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
  /**
   * Host names the proxy resolves itself, to loopback addresses, e.g.
   * `{ 'matrix.example.test': '127.0.0.1' }`: tests can then use real-looking names (a Matrix
   * server name, a `.well-known` host, an SRV target). Calls record the name as asked for; other
   * names resolve as usual. **Default:** none.
   */
  readonly hosts?: HostMap;
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

const OPTION_KEYS = new Set(['host', 'port', 'tls', 'auth', 'realm', 'fail', 'allowTarget', 'hosts']);

class RecordingProxyServer implements RecordingProxy {
  readonly host: string;
  readonly protocol: 'http:' | 'https:';
  readonly ca: string | undefined;
  readonly history: CallHistory<ProxyCall>;

  readonly #log = new CallLog<ProxyCall>();
  readonly #faults = new FaultInjector();
  readonly #listener: SwitchableListener;
  readonly #server: http.Server;
  readonly #agent = new http.Agent({ keepAlive: true });
  readonly #forwarding: ForwardContext;
  readonly #auth: BasicCredentials | ProxyAuthenticator | undefined;
  readonly #realm: string | null;
  readonly #allowTarget: ((host: string, port: number, method: string) => boolean) | undefined;
  readonly #hosts: ReadonlyMap<string, string>;
  #closing: Promise<void> | undefined;
  #tunnelsOpened = 0;
  #openTunnels = 0;

  private constructor(options: RecordingProxyOptions, host: string, tls: TlsMaterial | undefined) {
    this.host = host;
    this.protocol = tls === undefined ? 'http:' : 'https:';
    this.ca = tls?.ca;
    // The validated copy: mutating the caller's credentials object later changes nothing.
    this.#auth = options.auth === undefined ? undefined : checkAuth(options.auth);
    this.#realm = options.realm === undefined ? DEFAULT_REALM : options.realm;
    this.#allowTarget = options.allowTarget;
    this.#hosts = options.hosts === undefined ? new Map<string, string>() : checkHostMap('hosts', options.hosts);
    this.history = this.#log.history;
    // The HTTP(S) server never listens itself: connections are fed to it by
    // the listener, so that 'refuse' can close the port without touching open ones.
    this.#server = tls === undefined ? http.createServer() : https.createServer({ cert: tls.cert, key: tls.key });
    this.#server.on('connect', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      void this.#onConnect(req, socket, head);
    });
    this.#server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      void this.#onRequest(req, res);
    });
    this.#listener = new SwitchableListener({
      host,
      port: options.port ?? 0,
      refusing: () => this.#faults.refusing,
      resetting: () => this.#faults.resetting,
      accepted: (socket) => this.#server.emit('connection', socket),
    });
    this.#forwarding = {
      agent: this.#agent,
      track: (socket) => {
        this.#listener.track(socket);
      },
      respond: (res, status) => {
        this.#respond(res, status);
      },
    };
  }

  get port(): number {
    return this.#listener.port;
  }

  get url(): string {
    return formatOrigin(this.protocol, this.host, this.port);
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

  get failure(): FailureInjection | undefined {
    return this.#faults.spec;
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
    this.#faults.set(spec);
    return this.#listener.applyRefusal();
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Construct and bind. Binds once even under 'refuse', so the port number is known and stable. */
  static async create(
    options: RecordingProxyOptions,
    host: string,
    tls: TlsMaterial | undefined,
    fail: FailureInjection | undefined,
  ): Promise<RecordingProxyServer> {
    const proxy = new RecordingProxyServer(options, host, tls);
    await proxy.#listener.start();
    await proxy.setFailure(fail);
    return proxy;
  }

  async #authenticate(req: http.IncomingMessage, call: Mutable<ProxyCall>): Promise<void> {
    const credentials = proxyAuthorization(req.rawHeaders);
    call.authorization = credentials;
    call.authenticated = await verifyCredentials(this.#auth, credentials, req);
  }

  #challenge(): string {
    return basicChallenge(this.#realm);
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
    this.#listener.track(socket);
    const call = openProxyCall(this.#log, req, socket);
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
    openTunnel(call, socket, head, this.#resolved(target), {
      track: (upstream) => {
        this.#listener.track(upstream);
      },
      established: () => {
        call.statusCode = 200;
        this.#tunnelsOpened += 1;
        this.#openTunnels += 1;
        // RFC 9110 §9.3.6: a 2xx to CONNECT carries no Content-Length or Transfer-Encoding.
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      },
      unreachable: () => {
        call.statusCode = 502;
        endWithRawResponse(socket, 502);
      },
      closed: () => {
        this.#openTunnels -= 1;
      },
    });
  }

  async #onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const socket = req.socket;
    const call = openProxyCall(this.#log, req, socket);
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
    forwardRequest(this.#forwarding, call, req, res, this.#resolved(target));
  }

  /** `target` with its host replaced by its address from the `hosts` option, when it has one. */
  #resolved<T extends HostPort>(target: T): T {
    const address = this.#hosts.get(target.host.replace(/\.$/, ''));
    return address === undefined ? target : { ...target, host: address };
  }

  #respond(res: http.ServerResponse, status: number): void {
    respondStatus(res, status, this.#challenge());
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
    const failure = this.#faults.take();
    await this.#faults.sleep(this.#faults.delayMs);
    if (this.#listener.closed || socket.destroyed) {
      call.outcome = call.outcome === 'pending' ? 'failed' : call.outcome;
      return true;
    }
    if (failure === undefined) return false;
    call.outcome = 'injected';
    if (typeof failure === 'object') {
      call.statusCode = failure.status;
      answerStatus(failure.status);
    } else {
      actOutOnSocket(failure, socket);
    }
    return true;
  }

  async #shutdown(): Promise<void> {
    this.#faults.wakeAll();
    const closed = this.#listener.close();
    this.#agent.destroy();
    await closed;
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
