/**
 * The connection pools of one egress: one direct agent, and per proxy one tunnel agent (https
 * origins) and one forwarding pool (http origins). Created on first use, shared by every connection
 * type, released together.
 * @module
 */
import type { LookupFunction, Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import { LeanAgent } from './lean-pool.js';
import type { EgressConfig } from '../config/compile.js';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import { ForwardingDispatcher } from './forwarding.js';
import { serverNameFor, type HopTls, type TlsSettings } from './tls.js';
import { openTunnel, type ProxyConnection } from './tunnel.js';
import { TlsSessionCache } from './session-cache.js';
import { createCheckedConnector } from '../ssrf/connect.js';
import { directLookup } from './direct-lookup.js';
import { openSocksTunnel, type SocksTunnelTarget } from './socks.js';
import type { EgressObserver } from '../observability/observer.js';

/** The children a routing dispatcher chooses between. */
export class ConnectionPools {
  readonly #config: EgressConfig;
  readonly #tls: TlsSettings;
  #direct: LeanAgent | undefined;
  #checkedDirect: LeanAgent | undefined;
  readonly #tunnels = new Map<ProxyEndpoint, LeanAgent>();
  readonly #forwarders = new Map<ProxyEndpoint, ForwardingDispatcher>();
  /** SOCKS5 tunnel agents per proxy; for `socks5:` a second set whose names are checked against the IP blocklist. */
  readonly #socks = new Map<ProxyEndpoint, LeanAgent>();
  readonly #checkedSocks = new Map<ProxyEndpoint, LeanAgent>();
  readonly #proxySessions = new Map<ProxyEndpoint, TlsSessionCache>();
  readonly #observer: EgressObserver | undefined;

  constructor(config: EgressConfig, tls: TlsSettings, observer?: EgressObserver) {
    this.#config = config;
    this.#tls = tls;
    this.#observer = observer;
  }

  /** The origin TLS of these pools (a `proxyRules` entry with its own `ca` has pools of its own). */
  get originTls(): HopTls {
    return this.#tls.origin;
  }

  /** How the proxy is reached: its endpoint, TLS settings and time limit. */
  proxyConnection(endpoint: ProxyEndpoint): ProxyConnection {
    const key = this.#canonical(endpoint);
    let sessions = this.#proxySessions.get(key);
    if (sessions === undefined) this.#proxySessions.set(key, (sessions = new TlsSessionCache()));
    return { endpoint: key, tls: this.#tls.proxy, timeout: this.#config.connectTimeout, sessions, observer: this.#observer };
  }

  /**
   * undici connect options of direct connections: origin TLS verified against system CAs plus `ca`,
   * and names resolved by the `lookup` option whatever the type (issue #17; direct-lookup.ts).
   */
  #directConnectOptions(): { timeout: number; rejectUnauthorized: boolean; secureContext?: SecureContext; lookup?: LookupFunction } {
    const lookup = directLookup(this.#config, false);
    return {
      ...(lookup !== undefined && { lookup }),
      timeout: this.#config.connectTimeout,
      rejectUnauthorized: this.#tls.origin.rejectUnauthorized,
      ...(this.#tls.origin.secureContext !== undefined && { secureContext: this.#tls.origin.secureContext }),
    };
  }

  /** The agent for direct connections of types that are not checked against the IP blocklist. */
  direct(): Dispatcher {
    this.#direct ??= new LeanAgent({ connect: this.#directConnectOptions(), headersTimeout: this.#config.headersTimeout });
    return this.#direct;
  }

  /**
   * The agent for direct connections of checked types: every address an origin resolves to is
   * checked against `ipBlocklist` and `ipAllowlist`, and only checked addresses are connected to.
   * TLS as {@link direct}. The unchecked agent itself when the blocklist is empty.
   */
  checkedDirect(): Dispatcher {
    const { ipFilter, lookup } = this.#config;
    if (ipFilter.isOff) return this.direct();
    this.#checkedDirect ??= new LeanAgent({ connect: createCheckedConnector(ipFilter, this.#directConnectOptions(), lookup), headersTimeout: this.#config.headersTimeout });
    return this.#checkedDirect;
  }

  /** The agent whose every connection is a CONNECT tunnel through `endpoint`, pooled per origin. */
  tunnel(endpoint: ProxyEndpoint): Dispatcher {
    const key = this.#canonical(endpoint);
    let agent = this.#tunnels.get(key);
    if (agent === undefined) {
      const proxy = this.proxyConnection(key);
      const originTls = this.#tls.origin;
      agent = this.#tunnelAgent((target, sessions) => openTunnel(proxy, target, originTls, undefined, sessions));
      this.#tunnels.set(key, agent);
    }
    return agent;
  }

  /**
   * The resolver of `socks5://` names for a type: the checking one when the type is checked against
   * a non-empty IP blocklist (SPEC §9: the blocklist applies to the address asked for, as on a direct
   * route), else the `lookup` option (system resolver when absent).
   */
  socksResolver(checked: boolean): LookupFunction | undefined {
    // The same resolver as a direct connection of the type (issue #17): one rule for every path.
    return directLookup(this.#config, checked);
  }

  /**
   * The agent whose every connection is a SOCKS5 tunnel through `endpoint`, for http and https
   * origins alike, pooled per origin (one tunnel per request in flight, as for CONNECT).
   * @param checked True for connection types checked against the IP blocklist (matters for `socks5:` only).
   */
  socks(endpoint: ProxyEndpoint, checked: boolean): Dispatcher {
    const key = this.#canonical(endpoint);
    // socks5h never resolves here, so the blocklist kind does not matter for it.
    const pools = checked && key.protocol === 'socks5:' ? this.#checkedSocks : this.#socks;
    let agent = pools.get(key);
    if (agent === undefined) {
      const proxy = this.proxyConnection(key);
      const originTls = this.#tls.origin;
      const resolve = key.protocol === 'socks5:' ? this.socksResolver(checked) : undefined;
      agent = this.#tunnelAgent((target, sessions) => openSocksTunnel(proxy, target, originTls, resolve, undefined, sessions));
      pools.set(key, agent);
    }
    return agent;
  }

  /** A per-origin pool whose connections `open` makes: a tunnel to the origin, TLS inside it for https. */
  #tunnelAgent(open: (target: SocksTunnelTarget, sessions: TlsSessionCache) => Promise<Socket>): LeanAgent {
    const originSessions = new TlsSessionCache();
    return new LeanAgent({
      headersTimeout: this.#config.headersTimeout,
      connect: (options, callback) => {
        const secure = options.protocol === 'https:';
        const port = options.port === '' ? (secure ? 443 : 80) : Number(options.port);
        const servername = options.servername ?? serverNameFor(options.hostname);
        open({ hostname: options.hostname, port, secure, servername }, originSessions).then(
          (socket) => {
            callback(null, socket);
          },
          (error: unknown) => {
            callback(error as Error, null);
          },
        );
      },
    });
  }

  /** The pool that forwards plain-http requests to `endpoint` in absolute form. */
  forwarder(endpoint: ProxyEndpoint): Dispatcher {
    const key = this.#canonical(endpoint);
    let forwarder = this.#forwarders.get(key);
    if (forwarder === undefined) {
      forwarder = new ForwardingDispatcher(this.proxyConnection(key), this.#config.headersTimeout);
      this.#forwarders.set(key, forwarder);
    }
    return forwarder;
  }

  /** `http_proxy` and `https_proxy` naming the same proxy share one set of pools. */
  #canonical(endpoint: ProxyEndpoint): ProxyEndpoint {
    const { httpProxy, httpsProxy } = this.#config;
    if (httpProxy !== undefined && httpsProxy !== undefined && endpoint.equals(httpProxy) && endpoint.equals(httpsProxy)) {
      return httpsProxy;
    }
    return endpoint;
  }

  /** Connections the pools hold now, by route (for `egress.stats()`). */
  connectionCounts(): { proxy: number; direct: number } {
    let proxy = 0;
    for (const pool of [...this.#tunnels.values(), ...this.#forwarders.values(), ...this.#socks.values(), ...this.#checkedSocks.values()]) proxy += pool.connections;
    return { proxy, direct: (this.#direct?.connections ?? 0) + (this.#checkedDirect?.connections ?? 0) };
  }

  /** Every pool created so far. */
  #all(): Dispatcher[] {
    const direct = [this.#direct, this.#checkedDirect].filter((agent): agent is LeanAgent => agent !== undefined);
    return [...direct, ...this.#tunnels.values(), ...this.#forwarders.values(), ...this.#socks.values(), ...this.#checkedSocks.values()];
  }

  /** Close every pool gracefully: running requests finish, idle connections close. */
  async close(): Promise<void> {
    await Promise.all(this.#all().map((pool) => pool.close()));
  }

  /** Destroy every pool: running requests fail, sockets close now. */
  async destroy(error: Error | null): Promise<void> {
    await Promise.all(this.#all().map((pool) => pool.destroy(error)));
  }
}
