/**
 * Matrix server discovery (server-server API, "Resolving server names"; SPEC §10): from a server
 * name to the targets to connect to, the `Host` to send and the name TLS must validate, with the
 * `.well-known` and SRV answers cached as Synapse refines the specification's advice.
 * @module
 */
import { FederationUnavailableError } from '../errors.js';
import { BoundedMap } from './bounded-map.js';
import { parseServerName, type ParsedServerName } from './server-name.js';
import { lookupSrv, orderSrvRecords, type ResolveSrv, type SrvAnswer, type SrvRecord } from './srv.js';
import { fetchWellKnown, type WellKnownFetcher } from './well-known.js';

/** Which step of the algorithm decided where to connect. */
export type FederationSource =
  | 'ip-literal'
  | 'explicit-port'
  | 'well-known-ip-literal'
  | 'well-known-explicit-port'
  | 'well-known-srv-matrix-fed'
  | 'well-known-srv-matrix'
  | 'well-known-default-8448'
  | 'srv-matrix-fed'
  | 'srv-matrix'
  | 'default-8448';

/** One place to connect to. */
export interface FederationTarget {
  /** Host name or IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
}

/** The `.well-known/matrix/server` step, when it ran. */
export interface FederationWellKnown {
  /** The validated `m.server` value, or `null` when the answer was not a valid delegation. */
  readonly server: string | null;
  /** Why the answer was not used (status, bad JSON, too large, connection failure…); `undefined` when it was. */
  readonly error: string | undefined;
  /** True when the failure may pass (connection, 5xx, oversized body) rather than being the server's answer. */
  readonly temporary: boolean;
  /** The URLs requested, redirects included. */
  readonly urls: readonly string[];
  /** The final HTTP status, when a response arrived. */
  readonly status: number | undefined;
  /** True when this result came from the cache (no request was made now). */
  readonly fromCache: boolean;
  /** When (ms since the epoch) the cached result stops being used. */
  readonly expiresAt: number;
}

/** One SRV look-up that the resolution made. */
export interface FederationSrvLookup {
  /** The name queried, e.g. `_matrix-fed._tcp.example.org`. */
  readonly name: string;
  /** `found`, `none` (no record), `no-service` (the only target is "."), or `failed` (counted as none). */
  readonly outcome: SrvAnswer['kind'];
  /** The usable records, in answer order. */
  readonly records: readonly SrvRecord[];
  /** The resolver's error code when the look-up failed. */
  readonly error: string | undefined;
  readonly fromCache: boolean;
}

/** Where and how to connect to a Matrix server. */
export interface FederationResolution {
  /** The server name resolved, canonical (lowercase, punycode, IPv6 in brackets). */
  readonly serverName: string;
  /**
   * The `Host` header to send: the delegated name or the server name, with the port when one was
   * given explicitly. It is also the `destination` of the request's `X-Matrix` authorization.
   * (The signature's `destination` is the server name the request is for: {@link serverName}.)
   */
  readonly hostHeader: string;
  /** The name the server certificate must be valid for, and the SNI (none for an IP address). */
  readonly tlsServerName: string;
  /** Where to connect, in the order to try them (RFC 2782 order for SRV answers). */
  readonly targets: readonly FederationTarget[];
  /** Which step decided. */
  readonly source: FederationSource;
  /** The `.well-known` step, when it ran (not for IP literals and names with a port). */
  readonly wellKnown?: FederationWellKnown;
  /** The SRV look-ups made, in order. */
  readonly srv: readonly FederationSrvLookup[];
}

/** What the resolver needs; the egress provides it. */
export interface FederationResolverOptions {
  readonly fetchWellKnown: WellKnownFetcher;
  readonly resolveSrv: ResolveSrv;
  /** Most server names (and SRV names) remembered. */
  readonly cacheSize: number;
  /** Milliseconds for one `.well-known` exchange. */
  readonly wellKnownTimeout: number;
  /** Clock in ms since the epoch. **Default:** `Date.now`. */
  readonly now?: () => number;
  /** Uniform in [0, 1). **Default:** `Math.random`. */
  readonly random?: () => number;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
/** Cache period of a `.well-known` answer whose headers say nothing (the specification's advice). */
export const WELL_KNOWN_DEFAULT_CACHE = 24 * HOUR;
/** Longest a `.well-known` answer is cached, whatever its headers say (the specification's advice). */
export const WELL_KNOWN_MAX_CACHE = 48 * HOUR;
/** Shortest: a `no-store` or `max-age=0` would otherwise mean one request per federation request (Synapse). */
export const WELL_KNOWN_MIN_CACHE = 5 * MINUTE;
/** First failure is cached this long; each consecutive failure doubles it, up to the maximum (SPEC §10). */
export const WELL_KNOWN_FAILURE_CACHE = HOUR;
/** A failure soon after a valid answer is cached only this long, and a still-valid answer is kept through a temporary failure (Synapse). */
export const WELL_KNOWN_DOWN_CACHE = 2 * MINUTE;
/** How long after its expiry a valid answer still counts as "recently valid" (Synapse). */
const REMEMBER_VALID = 2 * HOUR;
/** A valid answer is refreshed in the last fifth of its life, so a failing refresh can fall back to it (Synapse). */
const REFRESH_FRACTION = 0.8;
/** ±10 % on computed periods, so a restart does not make every entry expire at once (Synapse). */
const JITTER = 0.1;
/**
 * SRV answers are kept this long: `dns.resolveSrv` does not report record TTLs, and querying DNS for
 * every federation request would be wasteful.
 */
export const SRV_CACHE = HOUR;
/** A failed SRV look-up (counted as "no record") is retried after this long. */
export const SRV_FAILURE_CACHE = MINUTE;

interface WellKnownEntry {
  readonly server: string | null;
  readonly error: string | undefined;
  readonly temporary: boolean;
  readonly urls: readonly string[];
  readonly status: number | undefined;
  readonly expiresAt: number;
  /** From this time on, a look-up asks again (before expiry for valid answers). */
  readonly refreshAt: number;
  /** Consecutive failures, for the back-off. */
  readonly failures: number;
  /** Until when the name counts as having had a valid answer recently. */
  readonly hadValidUntil: number;
}

interface SrvEntry {
  readonly answer: SrvAnswer;
  readonly expiresAt: number;
}

/** Resolves server names; one per egress. */
export class FederationResolver {
  readonly #options: FederationResolverOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #wellKnown: BoundedMap<string, WellKnownEntry>;
  readonly #srv: BoundedMap<string, SrvEntry>;
  readonly #running = new Map<string, Promise<unknown>>();

  constructor(options: FederationResolverOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#wellKnown = new BoundedMap(options.cacheSize);
    this.#srv = new BoundedMap(options.cacheSize);
  }

  /**
   * Resolve `serverName`. Concurrent calls for one name share one look-up.
   * @throws {@link InvalidServerNameError} before anything is sent when the name is not valid.
   * @throws {@link FederationUnavailableError} when an SRV answer says there is no service.
   */
  async resolve(serverName: string): Promise<FederationResolution> {
    const name = parseServerName(serverName);
    return this.#shared(`resolve ${name.text}`, () => this.#resolve(name));
  }

  /** Forget every cached `.well-known` and SRV answer. Look-ups in progress finish normally. */
  clearCache(): void {
    this.#wellKnown.clear();
    this.#srv.clear();
  }

  async #resolve(name: ParsedServerName): Promise<FederationResolution> {
    const base = { serverName: name.text, hostHeader: name.text, tlsServerName: name.host };
    if (name.ip) return { ...base, targets: [{ host: name.host, port: name.port ?? 8448 }], source: 'ip-literal', srv: [] };
    if (name.port !== undefined) return { ...base, targets: [{ host: name.host, port: name.port }], source: 'explicit-port', srv: [] };

    const wellKnown = await this.#lookupWellKnown(name.host);
    const srv: FederationSrvLookup[] = [];
    if (wellKnown.server !== null) {
      const delegated = parseServerName(wellKnown.server, 'm.server');
      const via = { serverName: name.text, hostHeader: delegated.text, tlsServerName: delegated.host, wellKnown };
      if (delegated.ip) {
        return { ...via, targets: [{ host: delegated.host, port: delegated.port ?? 8448 }], source: 'well-known-ip-literal', srv };
      }
      if (delegated.port !== undefined) {
        return { ...via, targets: [{ host: delegated.host, port: delegated.port }], source: 'well-known-explicit-port', srv };
      }
      const found = await this.#srvSteps(name.text, delegated.host, srv);
      return { ...via, targets: found.targets, source: `well-known-${found.source}`, srv };
    }
    const found = await this.#srvSteps(name.text, name.host, srv);
    return { ...base, targets: found.targets, source: found.source, wellKnown, srv };
  }

  /** `_matrix-fed._tcp`, then the deprecated `_matrix._tcp`, then port 8448. */
  async #srvSteps(
    serverName: string,
    host: string,
    lookups: FederationSrvLookup[],
  ): Promise<{ targets: FederationTarget[]; source: 'srv-matrix-fed' | 'srv-matrix' | 'default-8448' }> {
    const steps = [
      ['_matrix-fed._tcp.', 'srv-matrix-fed'],
      ['_matrix._tcp.', 'srv-matrix'],
    ] as const;
    for (const [prefix, source] of steps) {
      const name = `${prefix}${host}`;
      const lookup = await this.#lookupSrv(name);
      lookups.push(lookup);
      if (lookup.outcome === 'no-service') throw new FederationUnavailableError(serverName, name);
      if (lookup.outcome === 'found') {
        return { targets: orderSrvRecords(lookup.records, this.#random).map((record) => ({ host: record.name, port: record.port })), source };
      }
    }
    return { targets: [{ host, port: 8448 }], source: 'default-8448' };
  }

  #jitter(period: number): number {
    return period * (1 - JITTER + 2 * JITTER * this.#random());
  }

  async #lookupWellKnown(host: string): Promise<FederationWellKnown> {
    const cached = this.#wellKnown.get(host);
    if (cached !== undefined && this.#now() < cached.refreshAt) return view(cached, true);
    return this.#shared(`well-known ${host}`, async () => {
      const previous = this.#wellKnown.get(host);
      const fetched = await fetchWellKnown(this.#options.fetchWellKnown, host, this.#options.wellKnownTimeout, this.#now());
      const now = this.#now();
      let entry: WellKnownEntry;
      if (fetched.ok) {
        const ttl =
          fetched.maxAge === undefined
            ? this.#jitter(WELL_KNOWN_DEFAULT_CACHE)
            : Math.min(WELL_KNOWN_MAX_CACHE, Math.max(WELL_KNOWN_MIN_CACHE, fetched.maxAge * SECOND));
        entry = {
          server: fetched.server,
          error: undefined,
          temporary: false,
          urls: fetched.urls,
          status: fetched.status,
          expiresAt: now + ttl,
          refreshAt: now + ttl * REFRESH_FRACTION,
          failures: 0,
          hadValidUntil: now + ttl + REMEMBER_VALID,
        };
      } else if (fetched.temporary && previous?.server != null && now < previous.expiresAt) {
        // A temporary failure does not throw away a still-valid answer; ask again in a while.
        entry = { ...previous, refreshAt: Math.min(previous.expiresAt, now + WELL_KNOWN_DOWN_CACHE) };
        this.#wellKnown.set(host, entry);
        return view(entry, true);
      } else {
        const failures = (previous?.server === null ? previous.failures : 0) + 1;
        const hadValid = previous !== undefined && now < previous.hadValidUntil;
        const period = hadValid ? WELL_KNOWN_DOWN_CACHE : Math.min(WELL_KNOWN_MAX_CACHE, WELL_KNOWN_FAILURE_CACHE * 2 ** Math.min(failures - 1, 16));
        const ttl = this.#jitter(period);
        entry = {
          server: null,
          error: fetched.error,
          temporary: fetched.temporary,
          urls: fetched.urls,
          status: fetched.status,
          expiresAt: now + ttl,
          refreshAt: now + ttl,
          failures,
          hadValidUntil: previous?.hadValidUntil ?? 0,
        };
      }
      this.#wellKnown.set(host, entry);
      return view(entry, false);
    });
  }

  async #lookupSrv(name: string): Promise<FederationSrvLookup> {
    const cached = this.#srv.get(name);
    if (cached !== undefined && this.#now() < cached.expiresAt) return srvView(name, cached.answer, true);
    return this.#shared(`srv ${name}`, async () => {
      const previous = this.#srv.get(name);
      const answer = await lookupSrv(this.#options.resolveSrv, name);
      const now = this.#now();
      if (answer.kind === 'failed' && previous?.answer.kind === 'found') {
        // As Synapse does: a failing DNS server does not make a known server unreachable.
        this.#srv.set(name, { answer: previous.answer, expiresAt: now + SRV_FAILURE_CACHE });
        return { ...srvView(name, previous.answer, true), error: answer.code };
      }
      this.#srv.set(name, { answer, expiresAt: now + this.#jitter(answer.kind === 'failed' ? SRV_FAILURE_CACHE : SRV_CACHE) });
      return srvView(name, answer, false);
    });
  }

  #shared<T>(key: string, run: () => Promise<T>): Promise<T> {
    const running = this.#running.get(key) as Promise<T> | undefined;
    if (running !== undefined) return running;
    const started = run().finally(() => {
      this.#running.delete(key);
    });
    this.#running.set(key, started);
    return started;
  }
}

function view(entry: WellKnownEntry, fromCache: boolean): FederationWellKnown {
  return {
    server: entry.server,
    error: entry.error,
    temporary: entry.temporary,
    urls: entry.urls,
    status: entry.status,
    fromCache,
    expiresAt: entry.expiresAt,
  };
}

function srvView(name: string, answer: SrvAnswer, fromCache: boolean): FederationSrvLookup {
  return {
    name,
    outcome: answer.kind,
    records: answer.kind === 'found' ? answer.records : [],
    error: answer.kind === 'failed' ? answer.code : undefined,
    fromCache,
  };
}
