/**
 * The network primitives of `matrix-egress check`: one TCP connection, one TLS handshake, one HTTP
 * exchange, each bounded by its own time limit and each reporting what it saw. The library does the
 * same steps in `openProxySocket`/`startOriginTls` but as one unit; here they are separate so that
 * each can be timed and blamed on its own.
 * @module
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect as netConnect, type LookupFunction, type Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import type { HopTls } from '../../dispatch/tls.js';
import { serverNameFor } from '../../dispatch/tls.js';

/** The system error code of a failure (`ECONNREFUSED`, `CERT_HAS_EXPIRED`, …), when it has one. */
export function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** An error with a `code`, as Node's own errors carry one. */
function codedError(code: string, message: string): Error & { readonly code: string } {
  return Object.assign(new Error(message), { code });
}

/** "10 s", "1.5 s", "250 ms": a time limit as people write it. */
export function formatTimeout(ms: number): string {
  return ms >= 1000 ? `${String(ms / 1000)} s` : `${String(ms)} ms`;
}

function timeoutError(what: string, ms: number): Error & { readonly code: string } {
  return codedError('ETIMEDOUT', `${what} within ${formatTimeout(ms)}`);
}

/** The fields of a certificate that a person needs to see why it was (not) trusted. */
export interface CertificateSummary {
  /** The subject's distinguished name, e.g. `CN=proxy.internal, O=Example`. */
  readonly subject: string;
  readonly issuer: string;
  /** ISO 8601, UTC, whole seconds. */
  readonly notBefore: string;
  readonly notAfter: string;
  /** The subjectAltName entries, e.g. `DNS:proxy.internal, IP Address:10.0.0.1`; empty when there are none. */
  readonly names: string;
  /** SHA-256 fingerprint, colon-separated hex. */
  readonly sha256: string;
}

function distinguishedName(name: PeerCertificate['subject'] | undefined): string {
  if (name === undefined) return '';
  return Object.entries(name)
    .map(([key, value]: [string, string | string[] | undefined]) => `${key}=${Array.isArray(value) ? value.join('+') : (value ?? '')}`)
    .join(', ');
}

function isoDate(text: string): string {
  const time = Date.parse(text);
  return Number.isNaN(time) ? text : new Date(time).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Summarise a peer certificate; `undefined` when the peer sent none. */
function summarizeCertificate(cert: PeerCertificate | undefined | null): CertificateSummary | undefined {
  // getPeerCertificate() answers {} when there is no certificate.
  if (cert === undefined || cert === null || (cert as Partial<PeerCertificate>).valid_to === undefined) return undefined;
  return {
    subject: distinguishedName(cert.subject),
    issuer: distinguishedName(cert.issuer),
    notBefore: isoDate(cert.valid_from),
    notAfter: isoDate(cert.valid_to),
    names: cert.subjectaltname ?? '',
    sha256: cert.fingerprint256,
  };
}

/** Every address `host` resolves to, in the resolver's order (as `net.connect` would try them). */
export function resolveAll(host: string, timeoutMs: number): Promise<LookupAddress[]> {
  return new Promise<LookupAddress[]>((resolve, reject) => {
    // dns.lookup cannot be cancelled; after the time limit its answer is ignored.
    const timer = setTimeout(() => {
      reject(timeoutError(`no answer from the resolver for ${host}`, timeoutMs));
    }, timeoutMs);
    dnsLookup(host, { all: true }, (error, addresses) => {
      clearTimeout(timer);
      if (error !== null) reject(error);
      else if (addresses.length === 0) reject(codedError('ENOTFOUND', `${host} has no address`));
      else resolve(addresses);
    });
  });
}

/** A `lookup` for `net.connect` that answers the addresses already resolved (and checked), never resolving again. */
export function fixedLookup(addresses: readonly LookupAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    process.nextTick(() => {
      const first = addresses[0];
      if (options.all === true || first === undefined) callback(null, [...addresses]);
      else callback(null, first.address, first.family);
    });
  };
}

/** Open a TCP connection. Rejects with Node's error (its `code` kept), or `ETIMEDOUT` after `timeoutMs`. */
export function connectTcp(host: string, port: number, timeoutMs: number, lookup?: LookupFunction): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = netConnect({ host, port, ...(lookup !== undefined && { lookup }) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(timeoutError('no TCP connection', timeoutMs));
    }, timeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** A finished handshake. */
export interface TlsResult {
  readonly socket: TLSSocket;
  readonly certificate: CertificateSummary | undefined;
  /** `TLSv1.3` and the like. */
  readonly protocol: string | null;
}

/** A failed handshake, with the certificate the peer presented when it got that far. */
export class HandshakeError extends Error {
  override readonly name = 'HandshakeError';
  /** Node's code: `DEPTH_ZERO_SELF_SIGNED_CERT`, `ERR_TLS_CERT_ALTNAME_INVALID`, `ETIMEDOUT`, … */
  readonly code: string | undefined;
  readonly certificate: CertificateSummary | undefined;

  constructor(cause: unknown, certificate: CertificateSummary | undefined) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.code = codeOf(cause);
    this.certificate = certificate;
  }
}

/**
 * TLS over an open socket, with the options the library uses for that hop: SNI for host names only
 * (RFC 6066 §3), the hop's trust store, verification on. The certificate is checked against `host`.
 */
export function handshake(socket: Socket, host: string, hop: HopTls, timeoutMs: number): Promise<TlsResult> {
  const servername = serverNameFor(host);
  return new Promise<TlsResult>((resolve, reject) => {
    let certificate: CertificateSummary | undefined;
    const secure = tlsConnect({
      socket,
      host,
      ...(servername !== undefined && { servername }),
      ...(hop.secureContext !== undefined && { secureContext: hop.secureContext }),
      rejectUnauthorized: hop.rejectUnauthorized,
      ALPNProtocols: ['http/1.1'],
    });
    // A rejected certificate is gone once Node destroys the socket. 'secure' is emitted when the
    // handshake is done and before Node verifies chain and name, so a listener put in front of
    // tls.connect()'s own reads it while it still exists: we can show what was rejected and why,
    // without ever turning verification off.
    secure.prependListener('secure', () => {
      certificate = summarizeCertificate(secure.getPeerCertificate());
    });
    const timer = setTimeout(() => {
      secure.destroy();
      socket.destroy();
      reject(new HandshakeError(timeoutError('no TLS handshake', timeoutMs), certificate));
    }, timeoutMs);
    const onError = (error: Error): void => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      reject(new HandshakeError(error, certificate));
    };
    secure.once('error', onError);
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.removeListener('error', onError);
      secure.setNoDelay(true);
      resolve({ socket: secure, certificate: certificate ?? summarizeCertificate(secure.getPeerCertificate()), protocol: secure.getProtocol() });
    });
  });
}

/** The head of an HTTP response. */
export interface HttpAnswer {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly headers: IncomingHttpHeaders;
}

/**
 * Send one `GET` on an open connection and wait for the response head; the body is not read and the
 * connection is closed afterwards. `path` is origin-form, or absolute-form for a proxy.
 */
export function getHead(socket: Socket, path: string, headers: Readonly<Record<string, string>>, timeoutMs: number): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const request = httpRequest({
      method: 'GET',
      path,
      headers: { ...headers },
      setHost: false,
      createConnection: () => socket,
    });
    const timer = setTimeout(() => {
      request.destroy(timeoutError('no response', timeoutMs));
    }, timeoutMs);
    request.once('error', (error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    });
    request.once('response', (response) => {
      clearTimeout(timer);
      resolve({ statusCode: response.statusCode ?? 0, statusMessage: response.statusMessage ?? '', headers: response.headers });
      response.destroy();
      socket.destroy();
    });
    request.end();
  });
}

/** The status line and headers of the proxy's answer to CONNECT, as seen by {@link tapAnswerHead}. */
export interface AnswerHead {
  readonly statusCode: number;
  readonly statusMessage: string;
  /** Lowercase names; repeated fields joined with `, `. */
  readonly headers: ReadonlyMap<string, string>;
}

/**
 * Watch the bytes the proxy sends until the end of the response head, without consuming them: the
 * library's `sendConnect` reads the same bytes and decides, this only keeps the status line and
 * headers for the report. Call the returned function once `sendConnect` has settled.
 */
export function tapAnswerHead(socket: Socket): () => AnswerHead | undefined {
  let received: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer): void => {
    if (received.includes('\r\n\r\n') || received.length > 16 * 1024) return;
    received = Buffer.concat([received, chunk]);
  };
  socket.on('data', onData);
  return () => {
    socket.removeListener('data', onData);
    const end = received.indexOf('\r\n\r\n');
    const lines = received.subarray(0, end === -1 ? received.length : end).toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] ([1-5][0-9]{2})(?: (.*))?$/.exec(lines[0] ?? '');
    if (status === null) return undefined;
    const headers = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    return { statusCode: Number(status[1]), statusMessage: status[2] ?? '', headers };
  };
}
