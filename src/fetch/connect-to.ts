/**
 * Connect to a resolved target while speaking to the server name: Matrix federation resolves a
 * server name through `.well-known` and SRV to a host and port, but TLS, SNI and `Host` must still
 * name the server (Matrix server-server API, "Resolving server names").
 * @module
 */
import type { Dispatcher } from 'undici';
import { PromiseDispatcher } from '../dispatch/base-dispatcher.js';
import { InvalidUrlError } from '../errors.js';
import { hasControlOrSpace } from '../redact.js';
import { hasHeader, headerPairs, flatHeaders } from '../internal/headers.js';
import { failDispatch } from '../dispatch/handler-errors.js';

/** Where to connect instead of the URL's host and port. */
export interface ConnectTarget {
  /** Host name or IP literal (IPv6 with or without brackets). */
  readonly host: string;
  /** TCP port. */
  readonly port: number;
}

/**
 * Wraps a routing dispatcher for one `fetch` call: requests to the URL's origin go to the target
 * instead, with `Host` (and so SNI and certificate validation, which undici derives from it) kept
 * as the URL's host. Requests to any other origin (a redirect elsewhere) pass through unchanged.
 */
export class ConnectToDispatcher extends PromiseDispatcher {
  readonly #inner: Dispatcher;
  readonly #origin: string;
  readonly #host: string;
  readonly #targetOrigin: string;

  /**
   * @param hostHeader The `Host` to send instead of the URL's host (federation keeps a port the URL
   * standard drops, such as `example.org:443`). **Default:** the URL's host.
   */
  constructor(inner: Dispatcher, url: string, target: ConnectTarget, hostHeader?: string) {
    super();
    const parsed = new URL(url);
    if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
      throw new InvalidUrlError('connectTo.port must be a whole number from 1 to 65535');
    }
    if (typeof target.host !== 'string' || target.host === '' || hasControlOrSpace(target.host) || /[/?#@]/.test(target.host)) {
      throw new InvalidUrlError('connectTo.host must be a host name or IP address');
    }
    const bare = target.host.replace(/^\[(.*)\]$/, '$1');
    const hostForUrl = bare.includes(':') ? `[${bare}]` : bare;
    let targetUrl: URL;
    try {
      targetUrl = new URL(`${parsed.protocol}//${hostForUrl}:${String(target.port)}`);
    } catch (error) {
      throw new InvalidUrlError('connectTo.host is not a valid host', { cause: error });
    }
    this.#inner = inner;
    this.#origin = parsed.origin;
    this.#host = hostHeader ?? parsed.host;
    this.#targetOrigin = `${targetUrl.protocol}//${targetUrl.hostname}:${String(target.port)}`;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    try {
      if (new URL(String(options.origin)).origin !== this.#origin) return this.#inner.dispatch(options, handler);
      const pairs = headerPairs(options.headers);
      if (!hasHeader(pairs, 'host')) pairs.unshift(['host', this.#host]);
      return this.#inner.dispatch({ ...options, origin: this.#targetOrigin, headers: flatHeaders(pairs) }, handler);
    } catch (error) {
      return failDispatch(handler, error);
    }
  }

  /** Nothing to release: the pools belong to the egress. */
  protected override closeNow(): Promise<void> {
    return Promise.resolve();
  }

  protected override destroyNow(): Promise<void> {
    return Promise.resolve();
  }
}
