/**
 * Deliver an error to an undici handler of either API generation, as undici's own dispatchers do
 * when a request fails before it reaches a connection.
 * @module
 */
import type { Dispatcher } from 'undici';

/** A controller for a request that never started: already aborted with `reason`. */
function abortedController(reason: Error): Dispatcher.DispatchController {
  return {
    aborted: true,
    paused: false,
    reason,
    abort: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
  };
}

/** Report `error` to `handler`; rethrow when the handler has no error callback. Returns `false` like a busy dispatch. */
export function failDispatch(handler: Dispatcher.DispatchHandler, error: unknown): false {
  const reason = error instanceof Error ? error : new Error(String(error));
  if (typeof handler.onResponseError === 'function') {
    handler.onResponseError(abortedController(reason), reason);
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- fetch and older callers still pass legacy handlers
  } else if (typeof handler.onError === 'function') {
    // eslint-disable-next-line @typescript-eslint/no-deprecated -- see above
    handler.onError(reason);
  } else {
    throw reason;
  }
  return false;
}
