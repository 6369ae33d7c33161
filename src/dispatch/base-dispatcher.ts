/**
 * undici's Dispatcher declares `close` and `destroy` with callback and promise overloads; every
 * dispatcher of ours implements them once here, over two promise-returning hooks.
 * @module
 */
import { Dispatcher } from 'undici';

/** A Dispatcher whose subclasses implement `dispatch`, `closeNow` and `destroyNow` only. */
export abstract class PromiseDispatcher extends Dispatcher {
  /** Stop taking requests and release resources gracefully. */
  protected abstract closeNow(): Promise<void>;
  /** Abort running requests and release resources now. */
  protected abstract destroyNow(error: Error | null): Promise<void>;

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | undefined {
    const done = this.closeNow();
    if (callback === undefined) return done;
    void done.then(callback, callback);
    return undefined;
  }

  override destroy(): Promise<void>;
  override destroy(error: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(error: Error | null, callback: () => void): void;
  override destroy(errorOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | undefined {
    const error = typeof errorOrCallback === 'function' ? null : (errorOrCallback ?? null);
    const cb = typeof errorOrCallback === 'function' ? errorOrCallback : callback;
    const done = this.destroyNow(error);
    if (cb === undefined) return done;
    void done.then(cb, cb);
    return undefined;
  }
}
