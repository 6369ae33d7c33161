/**
 * `matrix-egress/prometheus`: Prometheus metrics of an egress through `prom-client` (an optional
 * peer dependency: only this subpath imports it, never the main entry).
 *
 * ```ts
 * import { registerEgressMetrics } from 'matrix-egress/prometheus';
 * registerEgressMetrics(egress, register);
 * ```
 *
 * Counters and gauges are read from `egress.stats()` when the registry is scraped, so they count from
 * the egress's creation whenever they are registered; the duration histogram observes requests
 * from registration on. Labels are bounded: connection type, route, outcome, error code. No host,
 * path, query or credential is ever a label.
 * @module
 */
import { Counter, Gauge, Histogram, register as globalRegistry, type Registry } from 'prom-client';
import type { Egress } from '../egress.js';
import { observerOf } from '../observability/observer.js';
import type { EgressStats, RouteStats } from '../observability/stats.js';

/** Options of {@link registerEgressMetrics}. */
export interface EgressMetricsOptions {
  /**
   * Upper bounds, in seconds, of the buckets of `matrix_egress_request_duration_seconds`.
   * **Default:** {@link DEFAULT_DURATION_BUCKETS}.
   */
  readonly buckets?: readonly number[] | undefined;
}

/** What {@link registerEgressMetrics} registered. */
export interface EgressMetrics {
  /** The metric names registered, in registration order. */
  readonly names: readonly string[];
  /** Remove every metric from the registry and stop observing the egress. Idempotent. */
  unregister(): void;
}

/**
 * Request duration buckets, seconds: loopback-fast pushes up to federation requests that wait on a
 * slow remote (Synapse's own outbound timeout is 60 s).
 */
export const DEFAULT_DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);

/** Every metric this module registers, with its help text. */
export const EGRESS_METRIC_NAMES = {
  requests: 'matrix_egress_requests_total',
  requestErrors: 'matrix_egress_request_errors_total',
  requestDuration: 'matrix_egress_request_duration_seconds',
  blocked: 'matrix_egress_blocked_total',
  proxyErrors: 'matrix_egress_proxy_errors_total',
  tunnelsOpen: 'matrix_egress_tunnels_open',
  tunnelsOpened: 'matrix_egress_tunnels_opened_total',
  tunnelFailures: 'matrix_egress_tunnel_failures_total',
  pooledConnections: 'matrix_egress_pooled_connections',
} as const;

/** Codes of failures that the proxy caused or reported (SPEC §7). */
const PROXY_ERROR_PREFIX = 'ERR_EGRESS_PROXY_';
/** The route labels: `none` holds requests that failed before a route was chosen. */
const ROUTES = ['proxy', 'direct', 'none'] as const;

/** Each (type, route) pair's counters from a snapshot. */
function* routeStats(stats: EgressStats): Generator<[type: string, route: (typeof ROUTES)[number], counters: RouteStats]> {
  for (const [type, byRoute] of Object.entries(stats.types)) {
    for (const route of ROUTES) yield [type, route, byRoute[route]];
  }
}

/**
 * Register the collectors of `egress` on `registry` (prom-client's default registry when omitted):
 * - `matrix_egress_requests_total{type,route,outcome}` — finished requests; outcome is the status
 *   class (`2xx`…`5xx`), `error` or `blocked`.
 * - `matrix_egress_request_errors_total{type,route,code}` — failed requests by error code.
 * - `matrix_egress_request_duration_seconds{type,route}` — histogram, dispatch to end of response.
 * - `matrix_egress_blocked_total{type}` — requests refused by the SSRF guard.
 * - `matrix_egress_proxy_errors_total{code}` — requests failed by the proxy (`ERR_EGRESS_PROXY_*`).
 * - `matrix_egress_tunnels_open`, `matrix_egress_tunnels_opened_total`,
 *   `matrix_egress_tunnel_failures_total{code}` — tunnels through proxies.
 * - `matrix_egress_pooled_connections{route}` — connections held by the pools now.
 * @throws {TypeError} when `egress` was not built by `createEgress`.
 * @throws {Error} from prom-client when the registry already holds one of these names (one egress per registry).
 */
export function registerEgressMetrics(egress: Egress, registry: Registry = globalRegistry, options: EgressMetricsOptions = {}): EgressMetrics {
  const observer = observerOf(egress);
  if (observer === undefined) throw new TypeError('registerEgressMetrics needs an egress built by createEgress');
  const registers = [registry];
  // Read at each collect: a snapshot costs a few map copies, and counters never go down between them.
  const current = (): EgressStats => egress.stats();

  new Counter({
    name: EGRESS_METRIC_NAMES.requests,
    help: 'Outbound requests finished, by connection type, route (proxy, direct, none) and outcome (status class, error, blocked).',
    labelNames: ['type', 'route', 'outcome'] as const,
    registers,
    collect() {
      this.reset();
      for (const [type, route, counters] of routeStats(current())) {
        for (const [outcome, count] of Object.entries(counters.outcomes)) if (count > 0) this.inc({ type, route, outcome }, count);
      }
    },
  });
  new Counter({
    name: EGRESS_METRIC_NAMES.requestErrors,
    help: 'Outbound requests failed, by connection type, route and error code.',
    labelNames: ['type', 'route', 'code'] as const,
    registers,
    collect() {
      this.reset();
      for (const [type, route, counters] of routeStats(current())) {
        for (const [code, count] of Object.entries(counters.errors)) this.inc({ type, route, code }, count);
      }
    },
  });
  const duration = new Histogram({
    name: EGRESS_METRIC_NAMES.requestDuration,
    help: 'Outbound request duration in seconds, from dispatch to the end of the response or the error.',
    labelNames: ['type', 'route'] as const,
    buckets: [...(options.buckets ?? DEFAULT_DURATION_BUCKETS)],
    registers,
  });
  new Counter({
    name: EGRESS_METRIC_NAMES.blocked,
    help: 'Outbound requests refused by the IP blocklist (SSRF guard), by connection type.',
    labelNames: ['type'] as const,
    registers,
    collect() {
      this.reset();
      for (const [type, byRoute] of Object.entries(current().types)) {
        const count = ROUTES.reduce((sum, route) => sum + byRoute[route].blocked, 0);
        if (count > 0) this.inc({ type }, count);
      }
    },
  });
  new Counter({
    name: EGRESS_METRIC_NAMES.proxyErrors,
    help: 'Outbound requests failed by the proxy (refused CONNECT, 407, TLS to the proxy, unreachable, invalid answer), by error code.',
    labelNames: ['code'] as const,
    registers,
    collect() {
      this.reset();
      for (const [, , counters] of routeStats(current())) {
        for (const [code, count] of Object.entries(counters.errors)) if (code.startsWith(PROXY_ERROR_PREFIX)) this.inc({ code }, count);
      }
    },
  });
  new Gauge({
    name: EGRESS_METRIC_NAMES.tunnelsOpen,
    help: 'Tunnels through a proxy open now.',
    registers,
    collect() {
      this.set(current().tunnels.open);
    },
  });
  new Counter({
    name: EGRESS_METRIC_NAMES.tunnelsOpened,
    help: 'Tunnels through a proxy opened.',
    registers,
    collect() {
      this.reset();
      this.inc(current().tunnels.opened);
    },
  });
  new Counter({
    name: EGRESS_METRIC_NAMES.tunnelFailures,
    help: 'Tunnels through a proxy that could not be opened, by error code.',
    labelNames: ['code'] as const,
    registers,
    collect() {
      this.reset();
      for (const [code, count] of Object.entries(current().tunnels.errors)) this.inc({ code }, count);
    },
  });
  new Gauge({
    name: EGRESS_METRIC_NAMES.pooledConnections,
    help: 'Connections held by the egress pools now, by route.',
    labelNames: ['route'] as const,
    registers,
    collect() {
      const { pooledConnections } = current();
      this.set({ route: 'proxy' }, pooledConnections.proxy);
      this.set({ route: 'direct' }, pooledConnections.direct);
    },
  });

  const stopObserving = observer.onRequestFinish((event) => {
    duration.observe({ type: event.type, route: event.route ?? 'none' }, event.durationMs / 1000);
  });
  const names: readonly string[] = Object.values(EGRESS_METRIC_NAMES);
  let registered = true;
  return {
    names,
    unregister() {
      if (!registered) return;
      registered = false;
      stopObserving();
      for (const name of names) registry.removeSingleMetric(name);
    },
  };
}
