/**
 * Our own connector to the proxy and our own CONNECT handshake, shared by the undici dispatchers and
 * the `http.Agent`s.
 *
 * Why not undici's ProxyAgent: on a proxy that drops connections it reports socket errors with
 * `UND_ERR_SOCKET`, which undici's client treats as recoverable and retries without bound (undici
 * #3897); it answers a refused CONNECT with an untyped `RequestAbortedError`; and it keeps the
 * `Proxy-Authorization` value where `util.inspect` shows it. Why not https-proxy-agent: on a non-200
 * CONNECT it hands the proxy's answer to the caller as if the origin had sent it.
 * Here every failure becomes a typed, credential-free error after one attempt.
 * @module
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import {
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyUnreachableError,
  HeaderInjectionError,
  type EgressError,
} from '../errors.js';
import { hasHeaderBreak } from '../redact.js';
import { proxyTlsErrorFrom, serverNameFor, type HopTls } from './tls.js';
import type { TlsSessionCache } from './session-cache.js';
import type { EgressObserver } from '../observability/observer.js';

/** Longest CONNECT response head we read before calling the answer invalid. */
const MAX_CONNECT_RESPONSE_HEAD = 16 * 1024;

/** What a connection to the proxy needs. */
export interface ProxyConnection {
  readonly endpoint: ProxyEndpoint;
  readonly tls: HopTls;
  /** Milliseconds for the whole exchange with the proxy: TCP, TLS and the CONNECT answer. */
  readonly timeout: number;
  /** TLS sessions of an `https://` proxy, for resumption. */
  readonly sessions?: TlsSessionCache | undefined;
  /** Counts and publishes tunnels (src/observability) for the egress's stats and diagnostics channels. */
  readonly observer?: EgressObserver | undefined;
}

/** The host and port a tunnel leads to. */
export interface TunnelTarget {
  /** Host name or IP literal, IPv6 without brackets. */
  readonly hostname: string;
  readonly port: number;
}

/** `host:port` with IPv6 in brackets, as CONNECT and Host need it (RFC 9110 §9.3.6). */
export function authorityOf(target: TunnelTarget): string {
  const host = target.hostname.includes(':') ? `[${target.hostname}]` : target.hostname;
  return `${host}:${String(target.port)}`;
}

/** Turn a socket-level failure to reach the proxy into a typed error. */
export function unreachable(endpoint: ProxyEndpoint, error: unknown, detail?: string): EgressError {
  const tlsError = proxyTlsErrorFrom(endpoint.url, error);
  if (tlsError !== undefined) return tlsError;
  const code = (error as { code?: unknown } | null)?.code;
  return new ProxyUnreachableError(endpoint.url, typeof code === 'string' ? code : undefined, {
    cause: error,
    ...(detail !== undefined && { detail }),
  });
}

/**
 * Open a TCP (or, for an `https://` proxy, TLS) connection to the proxy. TLS to the proxy is verified
 * against the system CAs plus `proxyCa`, with SNI set to the proxy host name (none for IP literals).
 */
export function openProxySocket(proxy: ProxyConnection, signal?: AbortSignal): Promise<Socket> {
  const { endpoint } = proxy;
  return new Promise<Socket>((resolve, reject) => {
    let socket: Socket;
    const fail = (error: EgressError): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (error: Error): void => {
      fail(unreachable(endpoint, error));
    };
    const onTimeout = (): void => {
      fail(new ProxyUnreachableError(endpoint.url, 'ETIMEDOUT', { detail: `no connection within ${String(proxy.timeout)} ms` }));
    };
    const onAbort = (): void => {
      fail(new ProxyUnreachableError(endpoint.url, 'ABORT_ERR', { detail: 'the request was aborted while connecting' }));
    };
    const timer = setTimeout(onTimeout, proxy.timeout);
    const cleanup = (): void => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    const onReady = (): void => {
      cleanup();
      socket.setNoDelay(true);
      resolve(socket);
    };
    if (endpoint.protocol === 'https:') {
      const servername = serverNameFor(endpoint.hostname);
      const sessionKey = endpoint.authority;
      const session = proxy.sessions?.get(sessionKey);
      const secure = tlsConnect({
        host: endpoint.hostname,
        port: endpoint.port,
        ...(servername !== undefined && { servername }),
        ...(proxy.tls.secureContext !== undefined && { secureContext: proxy.tls.secureContext }),
        rejectUnauthorized: proxy.tls.rejectUnauthorized,
        ALPNProtocols: ['http/1.1'],
        ...(session !== undefined && { session }),
      });
      secure.on('session', (ticket: Buffer) => {
        proxy.sessions?.set(sessionKey, ticket);
      });
      secure.once('secureConnect', onReady);
      socket = secure;
    } else {
      socket = netConnect({ host: endpoint.hostname, port: endpoint.port });
      socket.once('connect', onReady);
    }
    socket.on('error', onError);
    if (signal?.aborted === true) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Parsed head of the proxy's answer to CONNECT. */
interface ConnectAnswer {
  readonly statusCode: number;
  readonly headers: ReadonlyMap<string, string>;
  /** Bytes that arrived after the head: they belong to the tunnel. */
  readonly rest: Buffer;
}

/**
 * Send `CONNECT target` on an open proxy socket and wait for a 2xx answer (RFC 9110 §9.3.6: any 2xx
 * opens the tunnel). `Proxy-Authorization` goes on this request only, never to the origin.
 */
export function sendConnect(socket: Socket, proxy: ProxyConnection, target: TunnelTarget, signal?: AbortSignal): Promise<Socket> {
  const { endpoint } = proxy;
  const authority = authorityOf(target);
  if (hasHeaderBreak(authority)) return Promise.reject(new HeaderInjectionError('The CONNECT target'));
  const authorization = endpoint.proxyAuthorization();
  const head =
    `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n` +
    (authorization === undefined ? '' : `Proxy-Authorization: ${authorization}\r\n`) +
    '\r\n';

  return new Promise<Socket>((resolve, reject) => {
    let received: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => {
      finish(new ProxyUnreachableError(endpoint.url, 'ETIMEDOUT', { detail: `no answer to CONNECT within ${String(proxy.timeout)} ms` }));
    }, proxy.timeout);
    const onAbort = (): void => {
      finish(new ProxyUnreachableError(endpoint.url, 'ABORT_ERR', { detail: 'the request was aborted during CONNECT' }));
    };
    const onError = (error: Error): void => {
      finish(unreachable(endpoint, error));
    };
    const onClose = (): void => {
      finish(new ProxyUnreachableError(endpoint.url, 'ECONNRESET', { detail: 'the proxy closed the connection before answering CONNECT' }));
    };
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) {
        if (received.length > MAX_CONNECT_RESPONSE_HEAD) finish(new ProxyProtocolError(endpoint.url, 'the CONNECT response head is too large'));
        return;
      }
      const answer = parseConnectAnswer(received.subarray(0, end).toString('latin1'), received.subarray(end + 4));
      if (typeof answer === 'string') {
        finish(new ProxyProtocolError(endpoint.url, answer));
        return;
      }
      if (answer.statusCode >= 200 && answer.statusCode < 300) {
        finish(undefined, answer.rest);
        return;
      }
      if (answer.statusCode === 407) {
        const realm = /realm="([^"]*)"/i.exec(answer.headers.get('proxy-authenticate') ?? '')?.[1];
        finish(new ProxyAuthenticationError(endpoint.url, authority, realm, endpoint.hasCredentials));
        return;
      }
      finish(new ProxyConnectError(endpoint.url, authority, answer.statusCode));
    };
    const finish = (error: EgressError | undefined, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (error !== undefined) {
        socket.destroy();
        reject(error);
        return;
      }
      socket.pause();
      if (rest !== undefined && rest.length > 0) socket.unshift(rest);
      resolve(socket);
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    if (signal?.aborted === true) {
      onAbort();
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.write(head);
  });
}

/** The parsed answer, or what is wrong with it. */
function parseConnectAnswer(head: string, rest: Buffer): ConnectAnswer | string {
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.[01] ([1-5][0-9]{2})(?: .*)?$/.exec(lines[0] ?? '');
  if (status === null) return 'the CONNECT response is not an HTTP/1.x status line';
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return 'a header line of the CONNECT response has no name or colon';
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { statusCode: Number(status[1]), headers, rest };
}

/**
 * Start TLS to the origin inside an established tunnel, verifying the origin certificate against
 * `servername` (the origin host, or the Matrix server name for federation), else against `host`.
 */
export function startOriginTls(
  tunnel: Socket,
  servername: string | undefined,
  tls: HopTls,
  timeout: number,
  host?: string,
  sessions?: TlsSessionCache,
): Promise<TLSSocket> {
  const sessionKey = servername ?? host ?? '';
  const session = sessions?.get(sessionKey);
  return new Promise<TLSSocket>((resolve, reject) => {
    const secure = tlsConnect({
      socket: tunnel,
      // Without a servername (IP-literal origins) Node checks the certificate against `host`, else
      // against the tunnel socket's own host: the proxy's name, or "localhost" for an IP-literal proxy.
      ...(host !== undefined && { host }),
      ...(servername !== undefined && { servername }),
      ...(tls.secureContext !== undefined && { secureContext: tls.secureContext }),
      rejectUnauthorized: tls.rejectUnauthorized,
      ALPNProtocols: ['http/1.1'],
      ...(session !== undefined && { session }),
    });
    secure.on('session', (ticket: Buffer) => {
      sessions?.set(sessionKey, ticket);
    });
    const timer = setTimeout(() => {
      secure.destroy();
      reject(Object.assign(new Error(`TLS handshake with the origin timed out after ${String(timeout)} ms`), { code: 'ETIMEDOUT' }));
    }, timeout);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeListener('error', onError);
      secure.setNoDelay(true);
      resolve(secure);
    });
    const onError = (error: Error): void => {
      clearTimeout(timer);
      sessions?.delete(sessionKey);
      secure.destroy();
      tunnel.destroy();
      reject(error);
    };
    secure.once('error', onError);
  });
}

/**
 * Open a tunnel through the proxy to `target` and, for https origins, TLS to the origin inside it.
 * Counted by the proxy connection's observer (tunnel open, error and close events).
 */
export function openTunnel(
  proxy: ProxyConnection,
  target: TunnelTarget & { readonly secure: boolean; readonly servername: string | undefined },
  originTls: HopTls,
  signal?: AbortSignal,
  originSessions?: TlsSessionCache,
): Promise<Socket> {
  const open = async (): Promise<Socket> => {
    const socket = await openProxySocket(proxy, signal);
    const tunnel = await sendConnect(socket, proxy, target, signal);
    if (!target.secure) return tunnel;
    return startOriginTls(tunnel, target.servername, originTls, proxy.timeout, target.hostname, originSessions);
  };
  return proxy.observer === undefined ? open() : proxy.observer.observeTunnel(proxy.endpoint.url, authorityOf(target), open);
}
