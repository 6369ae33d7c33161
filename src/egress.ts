/**
 * `createEgress`: the factory a homeserver builds once at start-up. It hands each connection type a
 * dispatcher, a `fetch` and `http.Agent`s that route per request as the policy and `no_proxy` say.
 * @module
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { fetch as undiciFetch, type Dispatcher, type RequestInfo, type RequestInit, type Response } from 'undici';
import { compileEgressConfig, type EgressConfig, type EgressOptions } from './config/compile.js';
import { EgressClosedError } from './errors.js';
import { targetFromUrl } from './match/target.js';
import type { ConnectionType, ConnectionTypePolicy } from './policy/connection-types.js';
import { decideRoute, policyOf, route, type RouteDecision } from './policy/route.js';
import { ConnectionPools } from './dispatch/pools.js';
import { RoutingDispatcher, type ChildSelector, type RoutedChild } from './dispatch/routing-dispatcher.js';
import { ruleOriginTls, tlsSettingsFor, type TlsSettings } from './dispatch/tls.js';
import { ConnectToDispatcher, type ConnectTarget } from './fetch/connect-to.js';
import { HttpAgents } from './agents/http-agents.js';
import { assertHostAllowed } from './ssrf/connect.js';
import { attachObserver, EgressObserver } from './observability/observer.js';
import type { EgressStats } from './observability/stats.js';

/** `fetch` options: undici's, less `dispatcher` (the connection type chooses it), plus `connectTo`. */
export interface EgressRequestInit extends Omit<RequestInit, 'dispatcher'> {
  /**
   * Connect to this host and port instead of the URL's, while TLS, SNI and `Host` still use the URL's
   * host: Matrix federation after an SRV lookup, where the server is reached at the SRV target but
   * presents a certificate for the server name. Only requests to the URL's own origin are
   * redirected; `no_proxy` is matched against this target host.
   */
  readonly connectTo?: ConnectTarget | undefined;
}

/** The routing layer of one homeserver process. Build it once with {@link createEgress}. */
export interface Egress {
  /** The compiled configuration (credentials redacted when printed). */
  readonly config: EgressConfig;
  /** An undici Dispatcher for `type`: pass it to undici's `request`, `stream` or `fetch`. Shared, never built per request. */
  dispatcher(type: ConnectionType): Dispatcher;
  /** undici's `fetch` (never Node's global one) with the dispatcher of `type`. Redirect hops are routed one by one. */
  fetch(type: ConnectionType, input: RequestInfo, init?: EgressRequestInit): Promise<Response>;
  /**
   * A keep-alive `http.Agent` for `http://` URLs of `type` (node:http, axios' `httpAgent`, got's
   * `agent.http`). The same agent object on every call for a type; each type has its own.
   */
  httpAgent(type: ConnectionType): HttpAgent;
  /**
   * The same as {@link Egress.httpAgent}: its first name, kept as an alias (it returns the very same
   * agent). Prefer `httpAgent`, which pairs with `httpsAgent`.
   */
  agent(type: ConnectionType): HttpAgent;
  /** A keep-alive `https.Agent` for `https://` URLs of `type`. */
  httpsAgent(type: ConnectionType): HttpsAgent;
  /** The route a request of `type` to `url` would take, and why. */
  route(type: ConnectionType, url: string | URL): RouteDecision;
  /** A snapshot of the counters per connection type and route, tunnels and pooled connections (docs/guides/observability.md). */
  stats(): EgressStats;
  /** Stop taking requests, let running ones finish, and close every pooled connection. Idempotent. */
  close(): Promise<void>;
  /** Abort running requests and close every connection now. Idempotent. */
  destroy(error?: Error): Promise<void>;
}

/** Most origins a routing policy remembers decisions for before it starts over. */
const MAX_CACHED_ORIGINS = 4096;

class EgressImpl implements Egress, ChildSelector {
  readonly config: EgressConfig;
  readonly #tls: TlsSettings;
  readonly #pools: ConnectionPools;
  /** Pools of the `proxyRules` entries that carry their own origin `ca`, by rule index. */
  readonly #rulePools = new Map<number, ConnectionPools>();
  readonly #agents: HttpAgents;
  readonly #dispatchers = new Map<string, RoutingDispatcher>();
  readonly #decisions = new WeakMap<ConnectionTypePolicy, Map<string, RoutedChild>>();
  readonly #observer: EgressObserver | undefined;
  #ending: Promise<void> | undefined;

  constructor(config: EgressConfig, observer?: EgressObserver) {
    this.config = config;
    this.#observer = observer;
    if (observer !== undefined) attachObserver(this, observer);
    this.#tls = tlsSettingsFor(config);
    this.#pools = new ConnectionPools(config, this.#tls, observer);
    for (const rule of config.proxyRules) {
      if (rule.ca !== undefined) {
        this.#rulePools.set(rule.index, new ConnectionPools(config, { proxy: this.#tls.proxy, origin: ruleOriginTls(config, rule.ca) }, observer));
      }
    }
    this.#agents = new HttpAgents(config, this.#tls, this.#pools, observer, this.#rulePools);
  }

  get closed(): boolean {
    return this.#ending !== undefined;
  }

  childFor(policy: ConnectionTypePolicy, origin: string | URL | undefined): RoutedChild {
    const key = String(origin);
    let byOrigin = this.#decisions.get(policy);
    const cached = byOrigin?.get(key);
    if (cached !== undefined) return cached;
    const target = targetFromUrl(key);
    // SPEC §8: an IP-literal origin is checked whatever the route, before a byte goes anywhere (a
    // host name is checked on the addresses it resolves to, by the checked direct agent).
    if (policy.ipBlocklist && target.ip !== undefined) assertHostAllowed(this.config.ipFilter, target.host);
    const decision = decideRoute(this.config, policy.name, target);
    const pools = (decision.rule === null ? undefined : this.#rulePools.get(decision.rule.index)) ?? this.#pools;
    const child =
      decision.proxy === null
        ? policy.ipBlocklist
          ? pools.checkedDirect()
          : pools.direct()
        : decision.proxy.isSocks
          ? pools.socks(decision.proxy, policy.ipBlocklist)
          : target.scheme === 'https'
            ? pools.tunnel(decision.proxy)
            : pools.forwarder(decision.proxy);
    if (byOrigin === undefined) this.#decisions.set(policy, (byOrigin = new Map<string, RoutedChild>()));
    if (byOrigin.size >= MAX_CACHED_ORIGINS) byOrigin.clear();
    const routed: RoutedChild = { dispatcher: child, decision, target };
    byOrigin.set(key, routed);
    return routed;
  }

  dispatcher(type: ConnectionType): Dispatcher {
    if (this.closed) throw new EgressClosedError();
    const policy = policyOf(this.config, type);
    // One dispatcher per type, so requests are counted per type; the pools behind them are shared.
    let dispatcher = this.#dispatchers.get(policy.name);
    if (dispatcher === undefined) {
      dispatcher = new RoutingDispatcher(policy, this, this.#observer);
      this.#dispatchers.set(policy.name, dispatcher);
    }
    return dispatcher;
  }

  fetch(type: ConnectionType, input: RequestInfo, init?: EgressRequestInit): Promise<Response> {
    try {
      const base = this.dispatcher(type);
      if (init !== undefined && 'dispatcher' in init) {
        throw new TypeError('egress.fetch chooses the dispatcher from the connection type; init.dispatcher is not allowed');
      }
      const { connectTo, ...rest } = init ?? {};
      const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
      const dispatcher = connectTo === undefined ? base : new ConnectToDispatcher(base, url, connectTo);
      return undiciFetch(input, { ...rest, dispatcher });
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  httpAgent(type: ConnectionType): HttpAgent {
    if (this.closed) throw new EgressClosedError();
    return this.#agents.http(policyOf(this.config, type));
  }

  agent(type: ConnectionType): HttpAgent {
    return this.httpAgent(type);
  }

  httpsAgent(type: ConnectionType): HttpsAgent {
    if (this.closed) throw new EgressClosedError();
    return this.#agents.https(policyOf(this.config, type));
  }

  route(type: ConnectionType, url: string | URL): RouteDecision {
    return route(this.config, type, url);
  }

  stats(): EgressStats {
    const counts = [this.#pools, ...this.#rulePools.values()].map((pools) => pools.connectionCounts());
    const total = counts.reduce((sum, c) => ({ proxy: sum.proxy + c.proxy, direct: sum.direct + c.direct }), { proxy: 0, direct: 0 });
    return this.#observer?.stats(total) ?? new EgressObserver([]).stats({ proxy: 0, direct: 0 });
  }

  close(): Promise<void> {
    this.#ending ??= Promise.all([this.#pools.close(), ...[...this.#rulePools.values()].map((pools) => pools.close()), this.#agents.close()]).then(() => undefined);
    return this.#ending;
  }

  destroy(error?: Error): Promise<void> {
    const destroying = Promise.all([
      this.#pools.destroy(error ?? null),
      ...[...this.#rulePools.values()].map((pools) => pools.destroy(error ?? null)),
      this.#agents.close(),
    ]).then(() => undefined);
    this.#ending ??= destroying;
    return destroying;
  }
}

/**
 * Build the egress of a process from the environment and options: read `http_proxy`, `https_proxy`
 * and `no_proxy` once, validate everything, and prepare shared pools (opened lazily).
 * @throws {@link ProxyConfigError} for any invalid variable or option: misconfiguration fails closed.
 */
export function createEgress(options: EgressOptions = {}): Egress {
  const config = compileEgressConfig(options);
  return new EgressImpl(config, new EgressObserver(config.connectionTypes.keys()));
}

/**
 * @internal An egress that counts and publishes nothing: the baseline of bench/observability.ts,
 * which measures what observation costs. Not exported from the package entry.
 */
export function createUnobservedEgress(options: EgressOptions = {}): Egress {
  return new EgressImpl(compileEgressConfig(options));
}
