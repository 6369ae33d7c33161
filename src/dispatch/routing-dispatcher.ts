/**
 * The dispatcher handed out per connection type: for each request it picks the direct agent, the
 * tunnel agent or the forwarding pool of the right proxy, from the route policy and `no_proxy`.
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { PromiseDispatcher } from './base-dispatcher.js';
import { EgressClosedError } from '../errors.js';
import { refuseProxyAuthorization } from '../internal/headers.js';
import type { ConnectionTypePolicy } from '../policy/connection-types.js';
import type { Target } from '../match/target.js';
import type { RouteDecision } from '../policy/route.js';
import type { EgressObserver } from '../observability/observer.js';
import { failDispatch } from './handler-errors.js';

/** The child dispatcher chosen for an origin, and the decision behind it. */
export interface RoutedChild {
  readonly dispatcher: Dispatcher;
  readonly decision: RouteDecision;
  readonly target: Target;
}

/** Chooses the child dispatcher for one request; implemented by the egress. */
export interface ChildSelector {
  /** The child for requests of `policy` to `origin`. Throws a typed error for a bad origin. */
  childFor(policy: ConnectionTypePolicy, origin: string | URL | undefined): RoutedChild;
  /** True once the egress has been closed or destroyed. */
  readonly closed: boolean;
}

/**
 * An undici Dispatcher for one routing policy. Only `dispatch`, `close` and `destroy` are
 * implemented; the rest (`request`, `stream`, `pipeline`, …) comes from undici's base class.
 * Closing it stops it taking requests; the shared pools are released by the egress's `close()`.
 */
export class RoutingDispatcher extends PromiseDispatcher {
  readonly #policy: ConnectionTypePolicy;
  readonly #selector: ChildSelector;
  /** Counts and publishes every request (src/observability); absent only in the benchmark's baseline. */
  readonly #observer: EgressObserver | undefined;
  #closed = false;

  /** @internal Built by `createEgress`. */
  constructor(policy: ConnectionTypePolicy, selector: ChildSelector, observer?: EgressObserver) {
    super();
    this.#policy = policy;
    this.#selector = selector;
    this.#observer = observer;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const observer = this.#observer;
    const started = performance.now();
    try {
      if (this.#closed || this.#selector.closed) throw new EgressClosedError();
      refuseProxyAuthorization(options.headers);
      const { dispatcher, decision, target } = this.#selector.childFor(this.#policy, options.origin);
      if (observer === undefined) return dispatcher.dispatch(options, handler);
      observer.routeDecided('dispatcher', decision, target);
      return dispatcher.dispatch(options, observer.observeHandler(handler, this.#policy.name, decision.route, options.method, started));
    } catch (error) {
      observer?.requestFinished('dispatcher', this.#policy.name, null, options.method, null, error, started);
      return failDispatch(handler, error);
    }
  }

  protected override closeNow(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  protected override destroyNow(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
