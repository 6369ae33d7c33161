/**
 * The dispatcher handed out per connection type: for each request it picks the direct agent, the
 * tunnel agent or the forwarding pool of the right proxy, from the route policy and `no_proxy`.
 * @module
 */
import type { Dispatcher } from 'undici';
import { PromiseDispatcher } from './base-dispatcher.js';
import { EgressClosedError } from '../errors.js';
import { refuseProxyAuthorization } from '../internal/headers.js';
import type { ConnectionTypePolicy } from '../policy/connection-types.js';
import { failDispatch } from './handler-errors.js';

/** Chooses the child dispatcher for one request; implemented by the egress. */
export interface ChildSelector {
  /** The child for requests of `policy` to `origin`. Throws a typed error for a bad origin. */
  childFor(policy: ConnectionTypePolicy, origin: string | URL | undefined): Dispatcher;
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
  #closed = false;

  /** @internal Built by `createEgress`. */
  constructor(policy: ConnectionTypePolicy, selector: ChildSelector) {
    super();
    this.#policy = policy;
    this.#selector = selector;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    try {
      if (this.#closed || this.#selector.closed) throw new EgressClosedError();
      refuseProxyAuthorization(options.headers);
      return this.#selector.childFor(this.#policy, options.origin).dispatch(options, handler);
    } catch (error) {
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
