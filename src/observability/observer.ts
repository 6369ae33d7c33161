/**
 * The one place every connection path reports to: it counts for `egress.stats()` and publishes the
 * diagnostics_channel events (./channels.ts). One method per event, so a new path (a SOCKS tunnel,
 * federation discovery) is counted by calling it:
 * - {@link EgressObserver.routeDecided} when a request's route is known;
 * - {@link EgressObserver.observeHandler} (undici) or {@link EgressObserver.observeRequest}
 *   (node:http) to count the request when it ends, or {@link EgressObserver.requestFinished} directly;
 * - {@link EgressObserver.observeTunnel} around the opening of a tunnel through a proxy;
 * - {@link EgressObserver.trackConnection} for a pooled socket that no undici pool counts.
 * Nothing here is printed with a credential, a path or a query: proxies are named by their
 * credential-free origin, errors by their code.
 * @module
 */
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { DecoratorHandler, type Dispatcher } from 'undici';
import type { ConnectionType, Route } from '../policy/connection-types.js';
import type { RouteDecision } from '../policy/route.js';
import type { Target } from '../match/target.js';
import { BlockedDestinationError } from '../errors.js';
import { channels, type EgressApi, type RequestFinishEvent, type RequestOutcome } from './channels.js';
import { countCode, StatsRecorder, type EgressStats } from './stats.js';

/** Error codes are labels: only `[A-Z0-9_]` names up to 64 characters are kept as they are. */
const CODE_PATTERN = /^[A-Z][A-Z0-9_]{0,63}$/;

/** The stable code of an error, as a bounded label: its `code` when it looks like one, else a name-based fallback. */
function errorCodeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CODE_PATTERN.test(code)) return code;
  const name = (error as { name?: unknown } | null)?.name;
  // fetch and AbortSignal reject with a DOMException whose numeric `code` says nothing useful.
  if (name === 'AbortError') return 'ABORT_ERR';
  if (name === 'TimeoutError') return 'ETIMEDOUT';
  return 'UNKNOWN';
}

/** The outcome label of a response status. */
function outcomeOfStatus(statusCode: number): RequestOutcome {
  if (statusCode < 200) return '1xx';
  if (statusCode < 300) return '2xx';
  if (statusCode < 400) return '3xx';
  if (statusCode < 500) return '4xx';
  return '5xx';
}

/** What a finished request reports to listeners in-process (the Prometheus collectors). */
export type RequestFinishListener = (event: RequestFinishEvent) => void;

/** undici's DecoratorHandler adapts both handler generations; its type declaration lists no methods. */
interface ObservedHooks extends Dispatcher.DispatchHandler {
  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void;
  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void;
  onResponseError(controller: Dispatcher.DispatchController, error: Error): void;
  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void;
}
const Decorator = DecoratorHandler as unknown as new (handler: Dispatcher.DispatchHandler) => ObservedHooks;

/** Reports one undici request to the observer when it ends, fails or is upgraded. */
class ObservedHandler extends Decorator {
  readonly #observer: EgressObserver;
  readonly #type: ConnectionType;
  readonly #route: Route;
  readonly #method: string;
  readonly #started: number;
  #statusCode: number | null = null;
  #done = false;

  constructor(handler: Dispatcher.DispatchHandler, observer: EgressObserver, type: ConnectionType, route: Route, method: string, started: number) {
    super(handler);
    this.#observer = observer;
    this.#type = type;
    this.#route = route;
    this.#method = method;
    this.#started = started;
  }

  #finish(error: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#observer.requestFinished('dispatcher', this.#type, this.#route, this.#method, this.#statusCode, error, this.#started);
  }

  override onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    this.#statusCode = statusCode;
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  override onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#finish(undefined);
    super.onResponseEnd(controller, trailers);
  }

  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#finish(error);
    super.onResponseError(controller, error);
  }

  override onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.#statusCode = statusCode;
    this.#finish(undefined);
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }
}

/** A node:http request being watched; its route is set once decided. */
export interface ObservedRequest {
  route: Route | null;
}

/** The observer of one egress. Built by `createEgress`; reached by the collectors through {@link observerOf}. */
export class EgressObserver {
  readonly #stats: StatsRecorder;
  readonly #listeners = new Set<RequestFinishListener>();
  /** Sockets counted by {@link trackConnection}, open now, by route. */
  readonly #connections: Record<Route, number> = { proxy: 0, direct: 0 };

  constructor(types: Iterable<ConnectionType>) {
    this.#stats = new StatsRecorder(types);
  }

  /** Publish `matrix-egress:route` for a request whose route is `decision` (only when someone subscribes). */
  routeDecided(api: EgressApi, decision: RouteDecision, target: Target): void {
    if (!channels.route.hasSubscribers) return;
    channels.route.publish({
      api,
      type: decision.type,
      route: decision.route,
      reasonCode: decision.reasonCode,
      matched: decision.matched,
      proxy: decision.proxy?.url ?? null,
      scheme: target.scheme,
      host: target.host,
      port: target.port,
    });
  }

  /**
   * Count a finished request and publish `matrix-egress:request:finish` (and `matrix-egress:blocked`
   * when the SSRF guard refused it). `error` is `undefined` for a request that got its response.
   * @param started `performance.now()` when the request was dispatched.
   */
  requestFinished(
    api: EgressApi,
    type: ConnectionType,
    route: Route | null,
    method: string,
    statusCode: number | null,
    error: unknown,
    started: number,
  ): void {
    const failed = error !== undefined;
    const blocked = failed && error instanceof BlockedDestinationError;
    const errorCode = failed ? errorCodeOf(error) : null;
    const outcome: RequestOutcome = blocked ? 'blocked' : failed || statusCode === null ? 'error' : outcomeOfStatus(statusCode);
    this.#stats.finished(type, route ?? 'none', outcome, errorCode ?? (outcome === 'error' ? 'UNKNOWN' : null));
    if (blocked && channels.blocked.hasSubscribers) {
      channels.blocked.publish({ api, type, host: error.host, address: error.address, rule: error.rule });
    }
    if (this.#listeners.size === 0 && !channels.requestFinish.hasSubscribers) return;
    const event: RequestFinishEvent = {
      api,
      type,
      route,
      method,
      outcome,
      statusCode,
      errorCode: errorCode ?? (outcome === 'error' ? 'UNKNOWN' : null),
      durationMs: performance.now() - started,
    };
    for (const listener of this.#listeners) listener(event);
    if (channels.requestFinish.hasSubscribers) channels.requestFinish.publish(event);
  }

  /** Wrap an undici handler so the request is counted when it ends. `started` is `performance.now()` at dispatch. */
  observeHandler(handler: Dispatcher.DispatchHandler, type: ConnectionType, route: Route, method: string, started: number): Dispatcher.DispatchHandler {
    return new ObservedHandler(handler, this, type, route, method, started);
  }

  /**
   * Count a node:http request when it closes: with its response status, or the error it emitted.
   * It watches `emit` rather than adding listeners, so an `'error'` nobody handles still throws as
   * it would without us.
   */
  observeRequest(req: ClientRequest, type: ConnectionType): ObservedRequest {
    const started = performance.now();
    const observed: ObservedRequest = { route: null };
    let statusCode: number | null = null;
    let failure: unknown;
    let done = false;
    const emit = req.emit.bind(req);
    req.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'response') statusCode = (args[0] as IncomingMessage).statusCode ?? null;
      else if (event === 'error') failure ??= args[0] ?? new Error('request error');
      else if (event === 'close' && !done) {
        done = true;
        // A request closed with neither a response nor an error was aborted by its caller.
        const error = failure ?? (statusCode === null ? Object.assign(new Error('aborted'), { code: 'ABORT_ERR' }) : undefined);
        this.requestFinished('agent', type, observed.route, req.method, statusCode, error, started);
      }
      return emit(event, ...args);
    }) as ClientRequest['emit'];
    return observed;
  }

  /**
   * Count and publish the opening of a tunnel through `proxy` (a credential-free origin) to
   * `target` (`host:port`): `matrix-egress:tunnel:open` or `:error`, then `:close` when the socket
   * closes. Returns what `open` returns.
   */
  async observeTunnel<S extends Duplex>(proxy: string, target: string, open: () => Promise<S>): Promise<S> {
    const started = performance.now();
    let socket: S;
    try {
      socket = await open();
    } catch (error) {
      const stats = this.#stats;
      stats.tunnelsFailed++;
      const errorCode = errorCodeOf(error);
      countCode(stats.tunnelErrors, errorCode);
      if (channels.tunnelError.hasSubscribers) {
        channels.tunnelError.publish({ proxy, target, durationMs: performance.now() - started, errorCode });
      }
      throw error;
    }
    const opened = performance.now();
    this.#stats.tunnelsOpened++;
    this.#stats.tunnelsOpen++;
    if (channels.tunnelOpen.hasSubscribers) channels.tunnelOpen.publish({ proxy, target, durationMs: opened - started });
    socket.once('close', () => {
      this.#stats.tunnelsOpen--;
      this.#stats.tunnelsClosed++;
      if (channels.tunnelClose.hasSubscribers) channels.tunnelClose.publish({ proxy, target, durationMs: performance.now() - opened });
    });
    return socket;
  }

  /** Count `socket` as a pooled connection of `route` until it closes (for pools that undici does not hold: the http.Agents). */
  trackConnection(route: Route, socket: Duplex): void {
    this.#connections[route]++;
    socket.once('close', () => {
      this.#connections[route]--;
    });
  }

  /** In-process listener for finished requests (the Prometheus collectors); returns its removal. */
  onRequestFinish(listener: RequestFinishListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The snapshot behind `egress.stats()`; `pooled` are the undici pools' connection counts. */
  stats(pooled: Readonly<Record<Route, number>>): EgressStats {
    return this.#stats.snapshot({ proxy: pooled.proxy + this.#connections.proxy, direct: pooled.direct + this.#connections.direct });
  }
}

const observers = new WeakMap<object, EgressObserver>();

/** @internal Attach the observer of an egress, for {@link observerOf}. */
export function attachObserver(egress: object, observer: EgressObserver): void {
  observers.set(egress, observer);
}

/** @internal The observer of an egress built by `createEgress`, or `undefined` for any other object. */
export function observerOf(egress: object): EgressObserver | undefined {
  return observers.get(egress);
}
