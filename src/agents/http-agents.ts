/**
 * `http.Agent`s for node:http users (axios, got, matrix-bot-sdk-style request functions): one
 * keep-alive agent per connection type and scheme, choosing proxy or direct for every request from
 * the connection type's policy and `no_proxy`, matched on the host and port actually connected to.
 *
 * Built on agent-base's `Agent`, whose `connect()` may return a Promise of a socket and which keeps
 * Node's socket pool (keep-alive, `maxSockets`) intact. What we do not take from proxy-agents:
 * - https-proxy-agent: on a non-200 CONNECT it hands the proxy's answer to the caller as if the
 *   origin had sent it; our own CONNECT (src/dispatch/tunnel.ts) turns it into a typed error.
 * - http-proxy-agent: it rebuilds the target with `new URL(req.path, base)`, which removes dot
 *   segments (`/a/../b` → `/b`, breaking federation signatures); it takes the target host from the
 *   `Host` header rather than from the host connected to; it keeps the credentials in public
 *   `proxy` and `proxyHeaders` fields and sets `Proxy-Authorization` on the request itself, all
 *   printed by `util.inspect` (we add it on the way to the proxy: ./forwarding.ts); it waits for TCP
 *   `connect` only, with no time limit, so an `https://` proxy's TLS failure reaches the caller
 *   untyped and a silent proxy hangs the request; and it proxies every request, so it cannot serve
 *   hosts in and out of `no_proxy` with one agent. We keep its one good idea, rewriting each
 *   request in `addRequest` so that requests on a reused keep-alive socket are rewritten too.
 * @module
 */
import { setMaxListeners } from 'node:events';
import type { Agent as HttpAgent, ClientRequest, OutgoingHttpHeaders } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { connect as netConnect, type LookupFunction, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type SecureContext } from 'node:tls';
import { inspect } from 'node:util';
import { Agent as AgentBase, type AgentConnectOpts } from 'agent-base';
import type { EgressConfig } from '../config/compile.js';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import type { ConnectionPools } from '../dispatch/pools.js';
import { TlsSessionCache } from '../dispatch/session-cache.js';
import { serverNameFor, type HopTls, type TlsSettings } from '../dispatch/tls.js';
import { authorityOf, openProxySocket, openTunnel } from '../dispatch/tunnel.js';
import { openSocksTunnel } from '../dispatch/socks.js';
import { EgressClosedError, HeadersTimeoutError, ForbiddenHeaderError, InvalidUrlError } from '../errors.js';
import { targetFromHostPort, type Target } from '../match/target.js';
import { assertHostAllowed } from '../ssrf/connect.js';
import { directLookup } from '../dispatch/direct-lookup.js';
import type { ConnectionTypePolicy } from '../policy/connection-types.js';
import { decideRoute, type RouteDecision } from '../policy/route.js';
import type { EgressObserver } from '../observability/observer.js';
import { ForwardedRequests, ForwardingSocket, forwardInAbsoluteForm } from './forwarding.js';

/** Most distinct host:port routes an agent remembers before it starts over (as egress.ts does for dispatchers). */
const MAX_CACHED_ROUTES = 4096;

/** The request options an agent sees in `addRequest` and, merged with its own, in `connect`. */
interface RequestSocketOptions {
  readonly host?: string | null | undefined;
  readonly port?: number | string | null | undefined;
  readonly headers?: OutgoingHttpHeaders | readonly string[] | readonly (readonly string[])[] | undefined;
  readonly servername?: string | undefined;
  readonly socketPath?: string | undefined;
  readonly localAddress?: string | undefined;
  readonly family?: number | undefined;
}

/** The parts of http.Agent and ClientRequest that exist at run time but that @types/node leaves out. */
interface AgentWithAddRequest {
  addRequest(req: ClientRequest, options: RequestSocketOptions): void;
}
interface RequestInternals {
  /**
   * Node's way to fail a request that never got a socket: what http.Agent does when a connect fails.
   * Undocumented, but no public API fails a socketless request (`req.destroy(error)` emits nothing
   * until a socket arrives). Fenced by the test "a request refused by the agent fails promptly" in
   * test/integration/agents/http-agents.test.ts, which names this method when it goes.
   */
  onSocket(socket: undefined, error: Error): void;
}

// eslint-disable-next-line @typescript-eslint/unbound-method -- called with .call(this) below
const baseAddRequest = (AgentBase.prototype as unknown as AgentWithAddRequest).addRequest;

/** Everything an agent needs from its egress. Held in #private fields: nothing of it is printed. */
interface AgentContext {
  readonly config: EgressConfig;
  readonly policy: ConnectionTypePolicy;
  readonly tls: TlsSettings;
  readonly pools: ConnectionPools;
  /** Aborted when the egress closes: in-flight connects stop, new requests fail with {@link EgressClosedError}. */
  readonly lifetime: AbortSignal;
  /** Counts and publishes requests and connections (src/observability). */
  readonly observer: EgressObserver | undefined;
  /** Pools of the `proxyRules` entries with their own origin `ca`, by rule index. */
  readonly rulePools?: ReadonlyMap<number, ConnectionPools> | undefined;
}

/** Where one request goes. */
interface RequestRoute {
  readonly target: Target;
  /** The proxy to go through, or `null` for a direct connection. */
  readonly proxy: ProxyEndpoint | null;
  /** A Unix socket the caller asked for with `socketPath`: always direct, as nothing leaves the machine. */
  readonly socketPath: string | undefined;
  /** The origin TLS of the `proxyRules` entry that chose this route, when it has its own `ca`. */
  readonly originTls?: HopTls | undefined;
  /** Why: the policy's decision; `undefined` for a `socketPath` request. */
  readonly decision?: RouteDecision;
}

/** The shared half of both agents: per-request routing, header refusal, close, redacted inspect. */
abstract class RoutingAgent extends AgentBase {
  readonly #context: AgentContext;
  readonly #scheme: 'http' | 'https';
  readonly #routes = new Map<string, RequestRoute>();
  /** The resolver of direct connections: checked against the IP blocklist when the type asks for it (SPEC §8). */
  readonly #lookup: LookupFunction | undefined;

  constructor(context: AgentContext, scheme: 'http' | 'https') {
    super({ keepAlive: true });
    this.#context = context;
    this.#scheme = scheme;
    this.#lookup = directLookup(context.config, context.policy.ipBlocklist);
  }

  #closed(): boolean {
    return this.#context.lifetime.aborted;
  }

  /** Fixed per agent: agent-base would otherwise sniff the call stack for `https` frames. */
  override isSecureEndpoint(): boolean {
    return this.#scheme === 'https';
  }

  /** @internal Route of a request to `options.host`:`options.port` (no_proxy is matched on this host, not on `Host`). */
  protected routeOf(options: RequestSocketOptions): RequestRoute {
    const host = options.host ?? 'localhost';
    const port = Number(options.port ?? this.defaultPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidUrlError('The request port must be a whole number from 1 to 65535');
    const { socketPath } = options;
    // A proxy cannot reach our Unix socket, and a request that names one means it: no routing to do.
    if (typeof socketPath === 'string') return { target: targetFromHostPort(this.#scheme, host, port), proxy: null, socketPath };
    const key = `${host}\n${String(port)}`;
    let route = this.#routes.get(key);
    if (route === undefined) {
      const target = targetFromHostPort(this.#scheme, host, port);
      const decision = decideRoute(this.#context.config, this.#context.policy.name, target);
      const { rule } = decision;
      const originTls = rule === null ? undefined : this.#context.rulePools?.get(rule.index)?.originTls;
      route = { target, proxy: decision.proxy, socketPath: undefined, decision, ...(originTls !== undefined && { originTls }) };
      if (this.#routes.size >= MAX_CACHED_ROUTES) this.#routes.clear();
      this.#routes.set(key, route);
    }
    return route;
  }

  /**
   * @internal Called by node:http for every request, whether it will get a new or a pooled socket:
   * the one place to refuse and rewrite requests.
   */
  addRequest(req: ClientRequest, options: RequestSocketOptions): void {
    const { observer } = this.#context;
    const observed = observer?.observeRequest(req, this.#context.policy.name);
    try {
      if (this.#closed()) throw new EgressClosedError();
      refuseProxyAuthorization(req, options);
      const route = this.routeOf(options);
      if (observed !== undefined) {
        observed.route = route.proxy === null ? 'direct' : 'proxy';
        if (route.decision !== undefined) observer?.routeDecided('agent', route.decision, route.target);
      }
      // SPEC §8, as for the dispatchers: an IP-literal origin is checked whatever the route, before a
      // byte goes anywhere; a host name is checked on the addresses it resolves to (direct routes only).
      const { policy, config } = this.#context;
      if (policy.ipBlocklist && route.socketPath === undefined && route.target.ip !== undefined) assertHostAllowed(config.ipFilter, route.target.host);
      this.prepareRequest(req, route);
      guardHeaderSetters(req);
      armHeadersTimeout(req, authorityOf({ hostname: route.target.host, port: route.target.port }), config.headersTimeout);
    } catch (error) {
      (req as unknown as RequestInternals).onSocket(undefined, error instanceof Error ? error : new Error(String(error)));
      return;
    }
    baseAddRequest.call(this, req, options);
  }

  /** @internal Rewrite a request for its route before it is queued. */
  protected abstract prepareRequest(req: ClientRequest, route: RequestRoute): void;

  /** @internal Open a socket for the route of a new connection. */
  protected abstract open(route: RequestRoute, options: AgentConnectOpts, signal: AbortSignal): Promise<Duplex>;

  /** @internal agent-base calls this when the pool needs a new socket. */
  override async connect(_req: ClientRequest, options: AgentConnectOpts): Promise<Duplex> {
    const { lifetime } = this.#context;
    if (this.#closed()) throw new EgressClosedError();
    let socket: Duplex;
    try {
      const route = this.routeOf(options);
      socket = await this.open(route, options, lifetime);
      this.#context.observer?.trackConnection(route.proxy === null ? 'direct' : 'proxy', socket);
    } catch (error) {
      throw this.#closed() ? new EgressClosedError() : error;
    }
    // The egress may have closed while the connection was being opened.
    if (this.#closed()) {
      socket.destroy();
      throw new EgressClosedError();
    }
    return socket;
  }

  /** @internal The egress's pools, for `proxyConnection()`: one way to reach each proxy for both APIs. */
  protected get pools(): ConnectionPools {
    return this.#context.pools;
  }

  /** @internal */
  protected get tls(): TlsSettings {
    return this.#context.tls;
  }

  /**
   * @internal A SOCKS5 tunnel to the route's origin (./../dispatch/socks.ts): `socks5://` names are
   * resolved by the egress's resolver, checked against the IP blocklist for checked types.
   */
  protected openSocks(route: RequestRoute, proxy: ProxyEndpoint, secure: boolean, servername: string | undefined, signal: AbortSignal, sessions?: TlsSessionCache): Promise<Socket> {
    const { pools, policy } = this.#context;
    const resolve = proxy.protocol === 'socks5:' ? pools.socksResolver(policy.ipBlocklist) : undefined;
    const target = { hostname: route.target.host, port: route.target.port, secure, servername };
    return openSocksTunnel(pools.proxyConnection(proxy), target, route.originTls ?? this.tls.origin, resolve, signal, sessions);
  }

  /** @internal */
  protected get connectTimeout(): number {
    return this.#context.config.connectTimeout;
  }

  /**
   * @internal The address of a direct connection, with the socket options a caller may choose
   * (`socketPath`, `localAddress`, `family`). TLS options and `lookup` are the egress's, never the request's.
   */
  protected directAddress(route: RequestRoute, options: AgentConnectOpts): DirectAddress {
    const { localAddress, family } = options as { localAddress?: unknown; family?: unknown };
    return {
      host: route.target.host,
      port: route.target.port,
      ...(route.socketPath !== undefined && { path: route.socketPath }),
      ...(this.#lookup !== undefined && { lookup: this.#lookup }),
      ...(typeof localAddress === 'string' && { localAddress }),
      ...((family === 4 || family === 6) && { family }),
    };
  }

  /**
   * A summary instead of Node's dump of the pools: the sockets, the requests they carry and their
   * heads, at any depth.
   */
  [inspect.custom](): string {
    const count = (table: NodeJS.ReadOnlyDict<readonly unknown[]>): number =>
      Object.values(table).reduce((sum, list) => sum + (list?.length ?? 0), 0);
    const { policy, config } = this.#context;
    const proxy = policy.alwaysDirect || policy.route === 'direct'
      ? 'none'
      : (policy.proxySelection === 'https-only' || this.#scheme === 'https' ? config.httpsProxy : config.httpProxy)?.url ?? 'none';
    const fields = [
      `protocol: '${this.#scheme}:'`,
      `route: '${policy.route}'`,
      `proxy: '${proxy}'`,
      `sockets: ${String(count(this.sockets))}`,
      `freeSockets: ${String(count(this.freeSockets))}`,
      `pending: ${String(count(this.requests))}`,
    ];
    return `${this.constructor.name} { ${fields.join(', ')} }`;
  }
}

/** The agent for `http://` URLs: direct TCP, or absolute-form requests forwarded by the proxy. */
class EgressHttpAgent extends RoutingAgent {
  /** Forwarded requests whose head has yet to go out, for the {@link ForwardingSocket}s of this agent. */
  readonly #forwarded = new ForwardedRequests();

  constructor(context: AgentContext) {
    super(context, 'http');
  }

  /**
   * Forwarded requests share one pool of connections to the proxy, whatever the origin: an
   * absolute-form request names its own target (the undici forwarder pools the same way).
   */
  override getName(options?: AgentConnectOpts): string {
    if (options !== undefined) {
      try {
        const { proxy } = this.routeOf(options);
        // A SOCKS tunnel leads to one origin: those pool per origin, as direct connections do.
        if (proxy !== null && !proxy.isSocks) return `proxy ${proxy.url}`;
      } catch {
        // A request whose route cannot be decided was already failed in addRequest.
      }
    }
    return super.getName(options);
  }

  protected override prepareRequest(req: ClientRequest, route: RequestRoute): void {
    if (route.proxy !== null && !route.proxy.isSocks) forwardInAbsoluteForm(req, route.target, route.proxy, this.#forwarded);
  }

  protected override open(route: RequestRoute, options: AgentConnectOpts, signal: AbortSignal): Promise<Duplex> {
    const { proxy } = route;
    // Inside a SOCKS tunnel the origin gets origin-form requests, as on a direct connection (SPEC §9).
    if (proxy?.isSocks === true) return this.openSocks(route, proxy, false, undefined, signal);
    if (proxy !== null) {
      // node:http writes to a ForwardingSocket, which puts each head in absolute form with
      // Proxy-Authorization on its way to the proxy; the ClientRequest never holds either (forwarding.ts).
      return openProxySocket(this.pools.proxyConnection(proxy), signal).then((socket) => new ForwardingSocket(socket, proxy, this.#forwarded));
    }
    return connectDirect(this.directAddress(route, options), undefined, this.connectTimeout, signal);
  }
}

/** The agent for `https://` URLs: direct TLS, or TLS inside our own CONNECT tunnel. */
class EgressHttpsAgent extends RoutingAgent {
  /** Origin TLS sessions, for resumption on new connections (Node's https.Agent keeps them too; agent-base does not). */
  readonly #sessions = new TlsSessionCache();

  constructor(context: AgentContext) {
    super(context, 'https');
  }

  /** Tunnelled and direct requests go out exactly as the caller built them. */
  protected override prepareRequest(): void {
    // Nothing to rewrite: the origin sees origin-form requests, inside TLS.
  }

  protected override open(route: RequestRoute, options: AgentConnectOpts, signal: AbortSignal): Promise<Socket> {
    const { target, proxy } = route;
    const servername = serverNameOf(options, target);
    const originTls = route.originTls ?? this.tls.origin;
    if (proxy?.isSocks === true) return this.openSocks(route, proxy, true, servername, signal, this.#sessions);
    if (proxy !== null) {
      // Our CONNECT, not https-proxy-agent's: that one hands a non-200 proxy answer to the caller as the origin's.
      return openTunnel(
        this.pools.proxyConnection(proxy),
        { hostname: target.host, port: target.port, secure: true, servername },
        originTls,
        signal,
        this.#sessions,
      );
    }
    const sessionKey = servername ?? target.host;
    const session = this.#sessions.get(sessionKey);
    return connectDirect(
      this.directAddress(route, options),
      {
        ...(servername !== undefined && { servername }),
        ...(session !== undefined && { session }),
        onSession: (ticket: Buffer) => {
          this.#sessions.set(sessionKey, ticket);
        },
        // Built once from system CAs plus `ca` (tls.ts); undefined means Node's default store.
        ...(originTls.secureContext !== undefined && { secureContext: originTls.secureContext }),
        rejectUnauthorized: originTls.rejectUnauthorized,
      },
      this.connectTimeout,
      signal,
    );
  }
}

/**
 * The name TLS validates and SNI carries: the request's `servername` option, else (Node's rule,
 * applied before the agent sees the request) the host of a caller-set `Host` header, else the host
 * connected to; none for IP literals (RFC 6066 §3), whose certificates are checked against the address.
 */
function serverNameOf(options: AgentConnectOpts, target: Target): string | undefined {
  const given = (options as { servername?: unknown }).servername;
  if (typeof given === 'string' && given !== '') return serverNameFor(given.replace(/^\[(.*)\]$/, '$1'));
  return target.ip === undefined ? target.host : undefined;
}

/** Where a direct connection goes. */
interface DirectAddress {
  /** Also what TLS checks the certificate against when there is no servername. */
  readonly host: string;
  readonly port: number;
  readonly path?: string;
  /** The egress's resolver: the checked one for types with an IP blocklist. */
  readonly lookup?: LookupFunction;
  readonly localAddress?: string;
  readonly family?: number;
}


/**
 * Open a direct TCP or TLS connection and wait until it is usable, bounded by `timeout`. Errors are
 * Node's own: a direct connection has no proxy to blame.
 */
function connectDirect(
  address: DirectAddress,
  tls:
    | { servername?: string; secureContext?: SecureContext; rejectUnauthorized: boolean; session?: Buffer; onSession: (ticket: Buffer) => void }
    | undefined,
  timeout: number,
  signal: AbortSignal,
): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    // `host` is passed to TLS as well: without a servername (IP literals) Node checks the certificate against it.
    let socket: Socket;
    if (tls === undefined) {
      socket = netConnect(address);
    } else {
      const { onSession, ...options } = tls;
      socket = tlsConnect({ ...address, ...options, ALPNProtocols: ['http/1.1'] }).on('session', onSession);
    }
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.removeListener('error', fail);
      signal.removeEventListener('abort', onAbort);
    };
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = (): void => {
      fail(new EgressClosedError());
    };
    const timer = setTimeout(() => {
      fail(Object.assign(new Error(`Connection to ${authorityOf({ hostname: address.host, port: address.port })} timed out after ${String(timeout)} ms`), { code: 'ETIMEDOUT' }));
    }, timeout);
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      cleanup();
      resolve(socket);
    });
    socket.on('error', fail);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** True when a header list given as an array (flat or as pairs) names `proxy-authorization`. */
function arrayNamesProxyAuthorization(headers: readonly string[] | readonly (readonly string[])[]): boolean {
  const names = headers.length > 0 && Array.isArray(headers[0])
    ? (headers as readonly (readonly string[])[]).map((pair) => pair[0])
    : (headers as readonly string[]).filter((_, i) => i % 2 === 0);
  return names.some((name) => typeof name === 'string' && name.toLowerCase() === 'proxy-authorization');
}

function forbiddenProxyAuthorization(): ForbiddenHeaderError {
  return new ForbiddenHeaderError('Proxy-Authorization', 'proxy credentials come from the proxy URL, never from a request');
}

/**
 * Refuse a caller's `Proxy-Authorization` (as undici's ProxyAgent does): on a direct or tunnelled
 * route it would reach the origin, and on a forwarded one it would replace the configured credentials.
 */
function refuseProxyAuthorization(req: ClientRequest, options: RequestSocketOptions): void {
  const { headers } = options;
  if (req.hasHeader('proxy-authorization') || (Array.isArray(headers) && arrayNamesProxyAuthorization(headers))) {
    throw forbiddenProxyAuthorization();
  }
}

/** Refuse `Proxy-Authorization` set after the request was created, too: it would go out with the head. */
function guardHeaderSetters(req: ClientRequest): void {
  const setHeader = req.setHeader.bind(req);
  const appendHeader = req.appendHeader.bind(req);
  const refuse = (name: string): void => {
    if (typeof name === 'string' && name.toLowerCase() === 'proxy-authorization') throw forbiddenProxyAuthorization();
  };
  req.setHeader = (name: string, value: number | string | readonly string[]) => {
    refuse(name);
    return setHeader(name, value);
  };
  req.appendHeader = (name: string, value: string | readonly string[]) => {
    refuse(name);
    return appendHeader(name, value);
  };
}

/**
 * The `http.Agent`s of one egress: per connection type one agent for `http://` URLs and one for
 * `https://` URLs, created on first use, keep-alive, and routing each request by its own host and
 * port. One agent per type (not per routing profile) so that every request is counted under its
 * type (docs/guides/observability.md).
 *
 * - https: direct TLS to the origin, or TLS to the origin inside a CONNECT tunnel opened by our own
 *   connector (Proxy-Authorization on CONNECT only; 407 → `ProxyAuthenticationError`, other non-2xx
 *   → `ProxyConnectError`, TLS to the proxy → `ProxyTlsError`, unreachable → `ProxyUnreachableError`).
 *   Origin TLS is always verified (system CAs plus `ca`) against the request's `servername`, else the
 *   host of its `Host` header, else the host connected to.
 * - http: direct TCP, or absolute-form requests to the proxy with Proxy-Authorization, both put into
 *   the head on its way to the proxy and never held by the `ClientRequest` (so `util.inspect` of the
 *   request, `res.req` or an error carrying them shows none); a 407 from the proxy fails the request
 *   with `ProxyAuthenticationError` instead of emitting `'response'`.
 * - Types with an IP blocklist (SPEC §8): an IP-literal origin is checked on every route, a host
 *   name on the addresses it resolves to when connecting direct; refused with `BlockedDestinationError`.
 * - A request carrying `Proxy-Authorization` fails with `ForbiddenHeaderError` before anything is sent.
 * - Request paths are sent byte-exact. Per-request TLS options other than `servername`, and `lookup`,
 *   are ignored: verification and resolution are the egress's. A `socketPath` request connects to
 *   that Unix socket, never through the proxy.
 */
export class HttpAgents {
  readonly #config: EgressConfig;
  readonly #tls: TlsSettings;
  readonly #pools: ConnectionPools;
  readonly #lifetime = new AbortController();
  readonly #http = new Map<string, EgressHttpAgent>();
  readonly #https = new Map<string, EgressHttpsAgent>();
  #closing: Promise<void> | undefined;

  readonly #observer: EgressObserver | undefined;
  readonly #rulePools: ReadonlyMap<number, ConnectionPools> | undefined;

  /** @internal Built by `createEgress`. */
  constructor(config: EgressConfig, tls: TlsSettings, pools: ConnectionPools, observer?: EgressObserver, rulePools?: ReadonlyMap<number, ConnectionPools>) {
    this.#config = config;
    this.#tls = tls;
    this.#pools = pools;
    this.#observer = observer;
    this.#rulePools = rulePools;
    // Every in-flight connect listens on this one signal.
    setMaxListeners(0, this.#lifetime.signal);
  }

  /**
   * The keep-alive agent for `http://` URLs of a type with this policy.
   * @throws {@link EgressClosedError} after {@link HttpAgents.close}.
   */
  http(policy: ConnectionTypePolicy): HttpAgent {
    return this.#agent(this.#http, policy, (context) => new EgressHttpAgent(context));
  }

  /**
   * The keep-alive agent for `https://` URLs of a type with this policy.
   * @throws {@link EgressClosedError} after {@link HttpAgents.close}.
   */
  https(policy: ConnectionTypePolicy): HttpsAgent {
    // An agent-base Agent is an http.Agent with https.Agent's pool naming, not an https.Agent
    // instance: node:https and the clients we target (axios, got) only call addRequest on it.
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment
    return this.#agent(this.#https, policy, (context) => new EgressHttpsAgent(context));
  }

  #agent<A extends RoutingAgent>(cache: Map<string, A>, policy: ConnectionTypePolicy, create: (context: AgentContext) => A): A {
    if (this.#closing !== undefined) throw new EgressClosedError();
    // One agent per type, so requests are counted per type (one per routing profile before observability, #16).
    const key = policy.name;
    let agent = cache.get(key);
    if (agent === undefined) {
      agent = create({
        config: this.#config,
        policy,
        tls: this.#tls,
        pools: this.#pools,
        lifetime: this.#lifetime.signal,
        observer: this.#observer,
        rulePools: this.#rulePools,
      });
      cache.set(key, agent);
    }
    return agent;
  }

  /**
   * Destroy every agent and its sockets: running requests fail, connects in progress stop, later
   * requests through these agents fail with {@link EgressClosedError}. Resolves when every socket
   * has closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#lifetime.abort();
    const sockets: Duplex[] = [];
    for (const agent of [...this.#http.values(), ...this.#https.values()]) {
      for (const table of [agent.sockets, agent.freeSockets]) {
        for (const list of Object.values(table)) sockets.push(...(list ?? []));
      }
    }
    // A socket leaves the agent's tables on 'close', so every one listed has yet to emit it
    // (`socket.closed` turns true before the event, so it cannot tell).
    const closed = Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            socket.once('close', () => {
              resolve();
            });
          }),
      ),
    );
    for (const agent of [...this.#http.values(), ...this.#https.values()]) agent.destroy();
    await closed;
  }
}

/**
 * The `headersTimeout` of the egress, as the undici dispatchers apply it: from the moment the request
 * is fully sent until its response headers arrive. node:http has only a socket idle timeout, which a
 * proxy that keeps a connection open without answering never trips.
 */
function armHeadersTimeout(req: ClientRequest, target: string, timeout: number): void {
  let timer: NodeJS.Timeout | undefined;
  const disarm = (): void => {
    clearTimeout(timer);
  };
  req.once('finish', () => {
    timer = setTimeout(() => {
      req.destroy(new HeadersTimeoutError(target, timeout));
    }, timeout);
    timer.unref();
  });
  req.once('response', disarm);
  req.once('close', disarm);
}
