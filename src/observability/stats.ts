/**
 * `egress.stats()`: the counters an egress keeps for its whole life, as a plain snapshot. Counting
 * is a few integer increments per request; nothing is kept per host, so memory stays bounded.
 * @module
 */
import type { ConnectionType, Route } from '../policy/connection-types.js';
import type { RequestOutcome } from './channels.js';

/** Counters of one route of one connection type. */
export interface RouteStats {
  /** Requests that finished: a response ended, or the request failed. */
  readonly requests: number;
  /** Finished requests by outcome: the response's status class, `error` or `blocked`. */
  readonly outcomes: Readonly<Partial<Record<RequestOutcome, number>>>;
  /** Failed requests by error code (`ERR_EGRESS_PROXY_AUTH`, `ECONNREFUSED`, …); blocked ones included. */
  readonly errors: Readonly<Record<string, number>>;
  /** Requests the SSRF guard refused (SPEC §8). */
  readonly blocked: number;
}

/** Counters of one connection type, per route. `none` holds requests that failed before a route was decided. */
export interface ConnectionTypeStats {
  readonly proxy: RouteStats;
  readonly direct: RouteStats;
  readonly none: RouteStats;
}

/** CONNECT tunnels (and other tunnels through a proxy) opened by the egress. */
export interface TunnelStats {
  /** Tunnels open now. */
  readonly open: number;
  /** Tunnels opened since the egress was created. */
  readonly opened: number;
  /** Tunnels closed since the egress was created. */
  readonly closed: number;
  /** Attempts that failed. */
  readonly failed: number;
  /** Failed attempts by error code. */
  readonly errors: Readonly<Record<string, number>>;
}

/** A snapshot of an egress's counters: plain data, safe to log or serialise (no credential, host, path or query). */
export interface EgressStats {
  /** Per connection type: every type of the configuration, built in or registered. */
  readonly types: Readonly<Record<string, ConnectionTypeStats>>;
  readonly tunnels: TunnelStats;
  /** Connections held by the egress's pools now (undici pools and http.Agent sockets), by route. */
  readonly pooledConnections: Readonly<Record<Route, number>>;
}

/** The route a request is counted under: the route taken, or `none` before one was decided. */
export type StatsRoute = Route | 'none';

/** Most distinct error codes counted by name per table; later new codes count as `OTHER` (bounded labels). */
const MAX_ERROR_CODES = 64;

class RouteCounters {
  requests = 0;
  blocked = 0;
  readonly outcomes = new Map<RequestOutcome, number>();
  readonly errors = new Map<string, number>();

  snapshot(): RouteStats {
    return {
      requests: this.requests,
      outcomes: Object.fromEntries(this.outcomes),
      errors: Object.fromEntries(this.errors),
      blocked: this.blocked,
    };
  }
}

/** Add one to `code` in `table`, keeping at most {@link MAX_ERROR_CODES} names. */
export function countCode(table: Map<string, number>, code: string): void {
  const key = table.has(code) || table.size < MAX_ERROR_CODES ? code : 'OTHER';
  table.set(key, (table.get(key) ?? 0) + 1);
}

type TypeCounters = Record<StatsRoute, RouteCounters>;

/** The mutable counters behind {@link EgressStats}. */
export class StatsRecorder {
  readonly #types = new Map<ConnectionType, TypeCounters>();
  tunnelsOpen = 0;
  tunnelsOpened = 0;
  tunnelsClosed = 0;
  tunnelsFailed = 0;
  readonly tunnelErrors = new Map<string, number>();

  constructor(types: Iterable<ConnectionType>) {
    for (const type of types) this.#countersOf(type);
  }

  #countersOf(type: ConnectionType): TypeCounters {
    let counters = this.#types.get(type);
    if (counters === undefined) {
      counters = { proxy: new RouteCounters(), direct: new RouteCounters(), none: new RouteCounters() };
      this.#types.set(type, counters);
    }
    return counters;
  }

  /** Count one finished request. `errorCode` is set for failures, `blocked` for refusals by the SSRF guard. */
  finished(type: ConnectionType, route: StatsRoute, outcome: RequestOutcome, errorCode: string | null): void {
    const counters = this.#countersOf(type)[route];
    counters.requests++;
    counters.outcomes.set(outcome, (counters.outcomes.get(outcome) ?? 0) + 1);
    if (errorCode !== null) countCode(counters.errors, errorCode);
    if (outcome === 'blocked') counters.blocked++;
  }

  snapshot(pooled: Readonly<Record<Route, number>>): EgressStats {
    // fromEntries defines own properties: a type named `__proto__` stays a plain key.
    const types = Object.fromEntries(
      [...this.#types].map(([type, counters]) => [
        type,
        { proxy: counters.proxy.snapshot(), direct: counters.direct.snapshot(), none: counters.none.snapshot() } satisfies ConnectionTypeStats,
      ]),
    );
    return {
      types,
      tunnels: {
        open: this.tunnelsOpen,
        opened: this.tunnelsOpened,
        closed: this.tunnelsClosed,
        failed: this.tunnelsFailed,
        errors: Object.fromEntries(this.tunnelErrors),
      },
      pooledConnections: { proxy: pooled.proxy, direct: pooled.direct },
    };
  }
}
