/**
 * Tunnels through a SOCKS5 proxy (RFC 1928, RFC 1929), shared by the undici dispatchers and the
 * `http.Agent`s, in the shape of our CONNECT tunnels (./tunnel.ts): TCP to the proxy with our own
 * typed errors, the SOCKS5 exchange, then TLS to the origin inside the tunnel with full validation.
 *
 * The wire protocol is the `socks` package's (the SOCKS client of socks-proxy-agent). What we do not
 * take from it, and why:
 * - its errors are free text and carry the whole option object, proxy password included, where
 *   `util.inspect` prints it: we turn each one into a typed, credential-free error and never chain it;
 * - it names a refused CONNECT only by an enum name (and a reply with a wrong version byte as a
 *   refusal): we map the name back to the RFC 1928 code, and anything else to `ProxyProtocolError`;
 * - it connects to the proxy itself and loses the system error code: we hand it our own socket.
 * Why not undici's Socks5ProxyAgent (undici 7.30): it is experimental (a process warning), always
 * sends the name (no `socks5://` local resolution, so no IP blocklist), only authenticates with both
 * a user name and a password, reports untyped errors, and keeps a pool per origin that never expires.
 *
 * `socks5://` resolves the origin name here, through the egress's resolver (the checking one for
 * types with an IP blocklist, SPEC §8), and asks the proxy for the address it checked; `socks5h://`
 * sends the name and never resolves it locally (Tor `.onion`, I2P).
 * @module
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction, type Socket } from 'node:net';
import { SocksClient } from 'socks';
import {
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyUnreachableError,
  type EgressError,
} from '../errors.js';
import type { TlsSessionCache } from './session-cache.js';
import type { HopTls } from './tls.js';
import { authorityOf, openProxySocket, startOriginTls, unreachable, type ProxyConnection, type TunnelTarget } from './tunnel.js';

/** The system resolver, as net calls it. */
const systemLookup = dnsLookup as unknown as LookupFunction;

/**
 * The reply names the `socks` package puts in its messages, mapped back to the RFC 1928 §6 codes.
 * 'Granted' appears there when the reply's version byte is wrong: not a refusal but garbage.
 */
const REPLY_CODE_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['Failure', 1],
  ['NotAllowed', 2],
  ['NetworkUnreachable', 3],
  ['HostUnreachable', 4],
  ['ConnectionRefused', 5],
  ['TTLExpired', 6],
  ['CommandNotSupported', 7],
  ['AddressNotSupported', 8],
]);

/** Where a SOCKS tunnel leads, and what the origin hop needs. */
export interface SocksTunnelTarget extends TunnelTarget {
  /** True for an `https://` origin: TLS to it inside the tunnel. */
  readonly secure: boolean;
  /** The name the origin certificate is checked against and SNI carries; `undefined` for IP literals. */
  readonly servername: string | undefined;
}

/**
 * Resolve `hostname` with `resolve` (net's `lookup` signature, called with `all: true`) and return the
 * first address it answers. A checking resolver (src/ssrf/connect.ts) refuses the whole name with
 * `BlockedDestinationError` when any answer is blocked, so the address returned is one it checked.
 */
function resolveFirstAddress(hostname: string, resolve: LookupFunction = systemLookup): Promise<string> {
  return new Promise<string>((fulfil, reject) => {
    const answer = (error: NodeJS.ErrnoException | null, answered: string | LookupAddress[]): void => {
      if (error !== null) {
        reject(error);
        return;
      }
      const first = typeof answered === 'string' ? answered : answered[0]?.address;
      if (first === undefined || first === '') {
        reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }));
        return;
      }
      fulfil(first);
    };
    try {
      resolve(hostname, { all: true }, answer);
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/**
 * The host asked of the proxy: for `socks5:` the address `resolve` answers for a name (IP literals
 * as they are), for `socks5h:` the name itself, never resolved here.
 */
export async function socksDestination(proxy: ProxyConnection, hostname: string, resolve?: LookupFunction): Promise<string> {
  if (proxy.endpoint.protocol === 'socks5h:' || isIP(hostname) !== 0) return hostname;
  return resolveFirstAddress(hostname, resolve);
}

/** Turn an error of the `socks` package into ours. Its message is matched; the error itself is dropped (it holds the password). */
export function socksErrorFrom(proxy: ProxyConnection, target: string, error: unknown, socketError: Error | undefined): EgressError {
  const { endpoint } = proxy;
  if (socketError !== undefined) return unreachable(endpoint, socketError);
  const message = error instanceof Error ? error.message : '';
  const rejected = /^Socks5 proxy rejected connection - (\w+)$/.exec(message);
  if (rejected !== null) {
    const reply = REPLY_CODE_BY_NAME.get(rejected[1] ?? '');
    if (reply === undefined) return new ProxyProtocolError(endpoint.url, 'the answer to the SOCKS5 CONNECT command is not a valid SOCKS5 reply');
    return new ProxyConnectError(endpoint.url, target, 0, { socksReply: reply });
  }
  if (message.startsWith('Socks5 Authentication failed') || message.includes('(no accepted authentication type)')) {
    return new ProxyAuthenticationError(endpoint.url, target, undefined, endpoint.hasCredentials, false, true);
  }
  if (message === 'Proxy connection timed out') {
    return new ProxyUnreachableError(endpoint.url, 'ETIMEDOUT', { detail: `no SOCKS5 answer within ${String(proxy.timeout)} ms` });
  }
  if (message === 'Socket closed') {
    return new ProxyUnreachableError(endpoint.url, 'ECONNRESET', { detail: 'the proxy closed the connection during the SOCKS5 exchange' });
  }
  if (message.includes('Socks5')) return new ProxyProtocolError(endpoint.url, 'the proxy did not answer with SOCKS5');
  return new ProxyProtocolError(endpoint.url, 'the SOCKS5 exchange failed');
}

/**
 * Run the SOCKS5 greeting, authentication and CONNECT command on an open socket to the proxy. One
 * attempt, bounded by `proxy.timeout`; every failure destroys the socket and becomes a typed error.
 */
export async function sendSocksConnect(socket: Socket, proxy: ProxyConnection, destination: TunnelTarget, signal?: AbortSignal): Promise<Socket> {
  const { endpoint } = proxy;
  const target = authorityOf(destination);
  const credentials = endpoint.credentials();
  let socketError: Error | undefined;
  const onSocketError = (error: Error): void => {
    socketError ??= error;
  };
  const onAbort = (): void => {
    socket.destroy();
  };
  socket.on('error', onSocketError);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    if (signal?.aborted === true) throw new Error('aborted');
    const { socket: tunnel } = await SocksClient.createConnection({
      proxy: {
        host: endpoint.hostname,
        port: endpoint.port,
        type: 5,
        ...(credentials !== undefined && { userId: credentials.username, password: credentials.password }),
      },
      command: 'connect',
      destination: { host: destination.hostname, port: destination.port },
      timeout: proxy.timeout,
      existing_socket: socket,
    });
    return tunnel;
  } catch (error) {
    socket.destroy();
    if (signal?.aborted === true) {
      throw new ProxyUnreachableError(endpoint.url, 'ABORT_ERR', { detail: 'the request was aborted during the SOCKS5 exchange' });
    }
    throw socksErrorFrom(proxy, target, error, socketError);
  } finally {
    socket.removeListener('error', onSocketError);
    signal?.removeEventListener('abort', onAbort);
  }
}

/**
 * Open a tunnel through a SOCKS5 proxy to `target` and, for https origins, TLS to the origin inside
 * it (SNI = `target.servername`, certificate checked against it, else against the host).
 * @param resolve The resolver of `socks5:` names (the egress's, checking for blocklisted types). Unused for `socks5h:`.
 */
export function openSocksTunnel(
  proxy: ProxyConnection,
  target: SocksTunnelTarget,
  originTls: HopTls,
  resolve?: LookupFunction,
  signal?: AbortSignal,
  originSessions?: TlsSessionCache,
): Promise<Socket> {
  // undici hands IPv6 hosts over in brackets, as a URL has them.
  const hostname = target.hostname.replace(/^\[(.*)\]$/, '$1');
  const open = async (): Promise<Socket> => {
    const host = await socksDestination(proxy, hostname, resolve);
    const socket = await openProxySocket(proxy, signal);
    const tunnel = await sendSocksConnect(socket, proxy, { hostname: host, port: target.port }, signal);
    if (!target.secure) return tunnel;
    return startOriginTls(tunnel, target.servername, originTls, proxy.timeout, hostname, originSessions);
  };
  // Counted and published as CONNECT tunnels are (src/observability): open, error and close events.
  return proxy.observer === undefined ? open() : proxy.observer.observeTunnel(proxy.endpoint.url, authorityOf({ hostname, port: target.port }), open);
}
