/**
 * The dispatcher handed out per connection type: for each request it picks the direct agent, the
 * tunnel agent or the forwarding pool of the right proxy, from the route policy and `no_proxy`.
 * @module
 */
import { Dispatcher } from 'undici';
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
export class RoutingDispatcher extends Dispatcher {
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

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | undefined {
    this.#closed = true;
    if (callback === undefined) return Promise.resolve();
    queueMicrotask(callback);
    return undefined;
  }

  override destroy(): Promise<void>;
  override destroy(error: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(error: Error | null, callback: () => void): void;
  override destroy(errorOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | undefined {
    this.#closed = true;
    const cb = typeof errorOrCallback === 'function' ? errorOrCallback : callback;
    if (cb === undefined) return Promise.resolve();
    queueMicrotask(cb);
    return undefined;
  }
}
