/**
 * `egress.federation`: resolve a Matrix server name and send a request to it on the `federation`
 * route, connecting to the resolved targets while `Host`, SNI and certificate validation name the
 * server (SPEC §5, §10).
 * @module
 */
import { DecoratorHandler, fetch as undiciFetch, type Dispatcher, type RequestInit, type Response } from 'undici';
import { PromiseDispatcher } from '../dispatch/base-dispatcher.js';
import { InvalidUrlError, isEgressError } from '../errors.js';
import { ConnectToDispatcher } from '../fetch/connect-to.js';
import { hasControlOrSpace } from '../redact.js';
import type { FederationResolution, FederationResolver } from './resolver.js';

/** `fetch` options of `egress.federation.fetch`: undici's, less `dispatcher`. */
export type FederationRequestInit = Omit<RequestInit, 'dispatcher'>;

/** Matrix federation: server discovery and requests to a server name. */
export interface EgressFederation {
  /**
   * Where and how to connect to `serverName`, per the server-server API's "Resolving server
   * names": `.well-known` on the `federation` route, SRV resolved locally, answers cached.
   * @throws {@link InvalidServerNameError} when `serverName` is not a valid server name (nothing is sent).
   * @throws {@link FederationUnavailableError} when DNS says the server offers no federation service.
   */
  resolve(serverName: string): Promise<FederationResolution>;
  /**
   * Resolve `serverName`, then send the request on the `federation` route to the first target,
   * with `Host` = `resolution.hostHeader` and TLS validated for `resolution.tlsServerName`. The
   * next target is tried only when a connection could not be made (refused, timed out, TLS
   * failure, proxy CONNECT refused, blocklisted address), never once the server answered or
   * the request was sent, and only when the body can be sent again (not a stream).
   * @param pathAndQuery The request target, starting with `/` (e.g. `/_matrix/key/v2/server`).
   */
  fetch(serverName: string, pathAndQuery: string, init?: FederationRequestInit): Promise<Response>;
  /** Forget cached `.well-known` and SRV answers (for tests, or after a DNS change). */
  clearCache(): void;
}

interface StartHooks extends Dispatcher.DispatchHandler {
  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void;
}
// undici's DecoratorHandler adapts both handler generations; its type declaration lists no methods.
const Decorator = DecoratorHandler as unknown as new (handler: Dispatcher.DispatchHandler) => StartHooks;

/** Calls `onStart` when the request is handed to a connected socket. */
class StartWatcher extends Decorator {
  readonly #onStart: () => void;
  constructor(handler: Dispatcher.DispatchHandler, onStart: () => void) {
    super(handler);
    this.#onStart = onStart;
  }
  override onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.#onStart();
    super.onRequestStart(controller, context);
  }
}

/** One attempt at one target: knows whether a connection was made. */
class AttemptDispatcher extends PromiseDispatcher {
  readonly #inner: Dispatcher;
  connected = false;
  constructor(inner: Dispatcher) {
    super();
    this.#inner = inner;
  }
  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#inner.dispatch(
      options,
      new StartWatcher(handler, () => {
        this.connected = true;
      }),
    );
  }
  protected override closeNow(): Promise<void> {
    return Promise.resolve();
  }
  protected override destroyNow(): Promise<void> {
    return Promise.resolve();
  }
}

/** True when `error` (a rejected fetch) says no connection to the target could be made. */
function isConnectionFailure(error: unknown): boolean {
  if (!(error instanceof TypeError)) return false;
  const cause: unknown = error.cause;
  if (isEgressError(cause)) {
    // A proxy refusing one CONNECT target (502/503) says nothing of the next; a proxy that is down,
    // refuses our credentials or speaks no HTTP fails every target the same way: stop at once.
    return cause.code === 'ERR_EGRESS_PROXY_CONNECT' || cause.code === 'ERR_EGRESS_BLOCKED_DESTINATION';
  }
  return cause instanceof Error;
}

function canResend(body: RequestInit['body']): boolean {
  if (body === undefined || body === null) return true;
  if (typeof body !== 'object') return true;
  return !(Symbol.asyncIterator in body) && typeof (body as { getReader?: unknown }).getReader !== 'function';
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (signal === undefined || signal === null) return promise;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** The `egress.federation` object. */
export class FederationClient implements EgressFederation {
  readonly #resolver: FederationResolver;
  readonly #dispatcher: () => Dispatcher;

  /**
   * @param dispatcher The `federation` routing dispatcher (throws once the egress is closed).
   */
  constructor(resolver: FederationResolver, dispatcher: () => Dispatcher) {
    this.#resolver = resolver;
    this.#dispatcher = dispatcher;
  }

  async resolve(serverName: string): Promise<FederationResolution> {
    // A closed egress would make the .well-known fetch fail, and that failure would be cached.
    this.#dispatcher();
    return this.#resolver.resolve(serverName);
  }

  clearCache(): void {
    this.#resolver.clearCache();
  }

  async fetch(serverName: string, pathAndQuery: string, init: FederationRequestInit = {}): Promise<Response> {
    if ('dispatcher' in init) throw new TypeError('egress.federation.fetch uses the federation route; init.dispatcher is not allowed');
    if (typeof pathAndQuery !== 'string' || !pathAndQuery.startsWith('/') || pathAndQuery.startsWith('//') || hasControlOrSpace(pathAndQuery) || pathAndQuery.includes('#')) {
      throw new InvalidUrlError('pathAndQuery must start with a single "/" and contain no spaces, control characters or "#"');
    }
    const base = this.#dispatcher();
    const resolution = await untilAborted(this.#resolver.resolve(serverName), init.signal);
    const url = `https://${resolution.hostHeader}${pathAndQuery}`;
    const resend = canResend(init.body);
    let lastError: unknown = new Error('no target');
    for (const [index, target] of resolution.targets.entries()) {
      const attempt = new AttemptDispatcher(new ConnectToDispatcher(base, url, target, resolution.hostHeader));
      try {
        return await undiciFetch(url, { ...init, dispatcher: attempt });
      } catch (error) {
        lastError = error;
        const last = index === resolution.targets.length - 1;
        if (last || attempt.connected || !resend || init.signal?.aborted === true || !isConnectionFailure(error)) throw error;
      }
    }
    throw lastError;
  }
}
