/**
 * The `node:diagnostics_channel` channels matrix-egress publishes on, their payload types, and one
 * publish function per channel. Names follow undici's convention (`undici:request:create`,
 * `undici:client:connectError`): the package name, then the object, then the event.
 *
 * The publishers (src/observability/observer.ts) check `hasSubscribers` before they build a
 * payload, so an event nobody listens to costs one property read. Payloads are plain frozen-shape objects with no credential, no
 * path and no query string: a proxy is named by its origin (`http://proxy.internal:3128`), a
 * destination by host and port.
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import type { ConnectionType, Route } from '../policy/connection-types.js';
import type { RouteReasonCode } from '../policy/route.js';

/** The names of the channels matrix-egress publishes on. Subscribe with `diagnostics_channel.subscribe(name, fn)`. */
export const EGRESS_CHANNELS = {
  /** A route was decided for a request: {@link RouteEvent}. */
  route: 'matrix-egress:route',
  /** A tunnel through a proxy is open and ready for the origin's bytes: {@link TunnelOpenEvent}. */
  tunnelOpen: 'matrix-egress:tunnel:open',
  /** A tunnel could not be opened: {@link TunnelErrorEvent}. */
  tunnelError: 'matrix-egress:tunnel:error',
  /** An open tunnel closed: {@link TunnelCloseEvent}. */
  tunnelClose: 'matrix-egress:tunnel:close',
  /** The SSRF guard refused a destination: {@link BlockedEvent}. */
  blocked: 'matrix-egress:blocked',
  /** A request ended with a response or an error: {@link RequestFinishEvent}. */
  requestFinish: 'matrix-egress:request:finish',
} as const;

/** Which client interface carried a request: an undici dispatcher (`dispatcher()`, `fetch()`) or an `http.Agent`. */
export type EgressApi = 'dispatcher' | 'agent';

/** Payload of `matrix-egress:route`. */
export interface RouteEvent {
  readonly api: EgressApi;
  readonly type: ConnectionType;
  readonly route: Route;
  readonly reasonCode: RouteReasonCode;
  /** The `no_proxy` entry (or proxy rule hosts) that decided the route, as written; `null` when none did. */
  readonly matched: string | null;
  /** The proxy's origin without credentials (`http://proxy.internal:3128`), or `null` on a direct route. */
  readonly proxy: string | null;
  readonly scheme: 'http' | 'https';
  /** The destination host (IPv6 without brackets). Never a path or query. */
  readonly host: string;
  readonly port: number;
}

/** Payload of `matrix-egress:tunnel:open`. */
export interface TunnelOpenEvent {
  /** The proxy's origin without credentials. */
  readonly proxy: string;
  /** `host:port` the tunnel leads to (IPv6 bracketed). */
  readonly target: string;
  /** Milliseconds from the start of the connection to the proxy until the tunnel (and origin TLS) was ready. */
  readonly durationMs: number;
}

/** Payload of `matrix-egress:tunnel:error`. */
export interface TunnelErrorEvent {
  readonly proxy: string;
  readonly target: string;
  /** Milliseconds until the attempt failed. */
  readonly durationMs: number;
  /** The error's stable code (`ERR_EGRESS_PROXY_AUTH`, `ERR_EGRESS_PROXY_UNREACHABLE`, a TLS code, …). */
  readonly errorCode: string;
}

/** Payload of `matrix-egress:tunnel:close`. */
export interface TunnelCloseEvent {
  readonly proxy: string;
  readonly target: string;
  /** Milliseconds the tunnel stayed open. */
  readonly durationMs: number;
}

/** Payload of `matrix-egress:blocked`. */
export interface BlockedEvent {
  readonly api: EgressApi;
  readonly type: ConnectionType;
  /** The host asked for: a name or an IP literal. */
  readonly host: string;
  /** The address refused (a name's resolved address, or the literal). */
  readonly address: string;
  /** The `ipBlocklist` entry that matched, as written; `null` when the answer was not an IP address at all. */
  readonly rule: string | null;
}

/** How a request ended, as a bounded label: the status class of its response, `error`, or `blocked` by the SSRF guard. */
export type RequestOutcome = '1xx' | '2xx' | '3xx' | '4xx' | '5xx' | 'error' | 'blocked';

/** Payload of `matrix-egress:request:finish`. */
export interface RequestFinishEvent {
  readonly api: EgressApi;
  readonly type: ConnectionType;
  /** The route taken; `null` when the request failed before one was decided (an invalid URL, a closed egress). */
  readonly route: Route | null;
  readonly method: string;
  readonly outcome: RequestOutcome;
  /** The response status, or `null` when none arrived. */
  readonly statusCode: number | null;
  /** The error's stable code when the request failed (also after a status arrived, e.g. a broken body), else `null`. */
  readonly errorCode: string | null;
  /** Milliseconds from dispatch to the end of the response or the error. */
  readonly durationMs: number;
}

/**
 * @internal The channel objects, held at module level: Node 20 keeps channels in a weak map, and
 * one that nothing references can be collected with its subscribers. Publishers check
 * `hasSubscribers` before building a payload.
 */
export const channels = {
  route: diagnosticsChannel.channel(EGRESS_CHANNELS.route),
  tunnelOpen: diagnosticsChannel.channel(EGRESS_CHANNELS.tunnelOpen),
  tunnelError: diagnosticsChannel.channel(EGRESS_CHANNELS.tunnelError),
  tunnelClose: diagnosticsChannel.channel(EGRESS_CHANNELS.tunnelClose),
  blocked: diagnosticsChannel.channel(EGRESS_CHANNELS.blocked),
  requestFinish: diagnosticsChannel.channel(EGRESS_CHANNELS.requestFinish),
} as const;
