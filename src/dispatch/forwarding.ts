/**
 * Plain `http://` origins through the proxy as absolute-form requests (RFC 9112 §3.2.2), not tunnels:
 * a stock Squid allows CONNECT only to port 443, and forwarding lets the proxy cache and filter.
 * undici 7's ProxyAgent tunnels plain http by default, and its non-tunnel mode opens a single
 * connection per origin; here all http origins share one keep-alive pool to the proxy.
 * @module
 */
import { DecoratorHandler, type Dispatcher } from 'undici';
import { PromiseDispatcher } from './base-dispatcher.js';
import { LeanAgent } from './lean-pool.js';
import type { IncomingHttpHeaders } from 'node:http';
import { EgressError, InvalidUrlError, ProxyAuthenticationError, ProxyProtocolError, ProxyUnreachableError } from '../errors.js';
import { failDispatch } from './handler-errors.js';
import { flatHeaders, hasHeader, headerPairs } from '../internal/headers.js';
import { openProxySocket, type ProxyConnection } from './tunnel.js';

/**
 * undici's public DecoratorHandler adapts either handler generation to the new one, but its type
 * declaration lists no methods; this names the one we override.
 */
interface ResponseStartDecorator extends Dispatcher.DispatchHandler {
  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void;
  onResponseError(controller: Dispatcher.DispatchController, error: Error): void;
}
const NewStyleDecorator = DecoratorHandler as unknown as new (handler: Dispatcher.DispatchHandler) => ResponseStartDecorator;

/** Turns a 407 from the proxy into {@link ProxyAuthenticationError}: an origin never sends 407 (RFC 9110 §15.5.8). */
class ProxyAuthGuard extends NewStyleDecorator {
  readonly #proxy: ProxyConnection;
  readonly #target: string;

  constructor(handler: Dispatcher.DispatchHandler, proxy: ProxyConnection, target: string) {
    super(handler);
    this.#proxy = proxy;
    this.#target = target;
  }

  override onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, statusMessage?: string): void {
    if (statusCode === 407) {
      const challenge = headers['proxy-authenticate'];
      const text = Array.isArray(challenge) ? challenge.join(', ') : (challenge ?? '');
      const realm = /realm="([^"]*)"/i.exec(text)?.[1];
      const { endpoint } = this.#proxy;
      controller.abort(new ProxyAuthenticationError(endpoint.url, this.#target, realm, endpoint.hasCredentials, true));
      return;
    }
    super.onResponseStart(controller, statusCode, headers, statusMessage);
  }

  /**
   * Everything on this connection comes from the proxy: a response that does not parse, or a socket
   * that breaks, is the proxy's failure and gets the same types as on the CONNECT path.
   */
  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    super.onResponseError(controller, this.#typed(error));
  }

  #typed(error: Error): Error {
    if (error instanceof EgressError) return error;
    const code = (error as { code?: unknown }).code;
    const url = this.#proxy.endpoint.url;
    if (error.name === 'HTTPParserError' || (typeof code === 'string' && code.startsWith('HPE_'))) {
      return new ProxyProtocolError(url, 'the answer to a forwarded request is not HTTP', { cause: error });
    }
    if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET' || code === 'EPIPE') {
      return new ProxyUnreachableError(url, code === 'UND_ERR_SOCKET' ? 'ECONNRESET' : code, {
        cause: error,
        detail: 'the proxy closed the connection during a forwarded request',
      });
    }
    return error;
  }
}

/** Forwards plain-http requests to the proxy in absolute form, with `Proxy-Authorization` for the proxy. */
export class ForwardingDispatcher extends PromiseDispatcher {
  readonly #proxy: ProxyConnection;
  /** One pool of connections to the proxy, shared by every origin: no more than requests in flight. */
  readonly #pool: LeanAgent;

  constructor(proxy: ProxyConnection, headersTimeout: number) {
    super();
    this.#proxy = proxy;
    this.#pool = new LeanAgent({
      headersTimeout,
      connect: (_options, callback) => {
        openProxySocket(proxy).then(
          (socket) => {
            callback(null, socket);
          },
          (error: unknown) => {
            callback(error as Error, null);
          },
        );
      },
    });
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // The target is origin + path as one string: a path not starting with "/" ("@other:80/x",
    // ".evil.example/") would change the authority the proxy sees after routing and the SSRF check.
    if (!options.path.startsWith('/')) {
      return failDispatch(handler, new InvalidUrlError('A request forwarded by a proxy needs a path starting with "/"'));
    }
    const origin = new URL(String(options.origin));
    const pairs = headerPairs(options.headers);
    // The Host header names the origin, not the proxy (RFC 9112 §3.2.2); a caller's own Host wins (federation).
    if (!hasHeader(pairs, 'host')) pairs.unshift(['host', origin.host]);
    const authorization = this.#proxy.endpoint.proxyAuthorization();
    if (authorization !== undefined) pairs.push(['proxy-authorization', authorization]);
    // undici reads `servername` from dispatch options although its types omit it. It derives a TLS
    // server name from each Host header and reconnects when that changes; the connection is to the
    // proxy whatever the origin, so pin it (our connector does the proxy's TLS).
    const forwarded: Dispatcher.DispatchOptions & { servername: string } = {
      ...options,
      origin: this.#proxy.endpoint.url,
      servername: this.#proxy.endpoint.hostname,
      // Byte-exact: the caller's path is appended untouched, no decoding or dot-segment removal.
      path: `${origin.origin}${options.path}`,
      headers: flatHeaders(pairs),
    };
    return this.#pool.dispatch(forwarded, new ProxyAuthGuard(handler, this.#proxy, origin.host));
  }


  /** Connections to the proxy in the pool (for `egress.stats()`). */
  get connections(): number {
    return this.#pool.connections;
  }

  protected override closeNow(): Promise<void> {
    return this.#pool.close();
  }

  protected override destroyNow(error: Error | null): Promise<void> {
    return this.#pool.destroy(error);
  }
}
