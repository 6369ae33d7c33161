/**
 * Typed errors of matrix-egress. Match on `code`: it is stable across releases, unlike messages.
 *
 * Every message is built from redacted values; no error ever carries a proxy password in its
 * message, stack, `toString()` or `util.inspect()` output.
 * @module
 */

const BRAND = Symbol.for('matrix-egress.error');

/** Every stable error code this library throws. */
export type EgressErrorCode =
  | 'ERR_EGRESS_PROXY_CONFIG'
  | 'ERR_EGRESS_INVALID_URL'
  | 'ERR_EGRESS_UNKNOWN_CONNECTION_TYPE'
  | 'ERR_EGRESS_PROXY_CONNECT'
  | 'ERR_EGRESS_PROXY_AUTH'
  | 'ERR_EGRESS_PROXY_TLS'
  | 'ERR_EGRESS_PROXY_UNREACHABLE'
  | 'ERR_EGRESS_PROXY_PROTOCOL'
  | 'ERR_EGRESS_HEADERS_TIMEOUT'
  | 'ERR_EGRESS_BLOCKED_DESTINATION'
  | 'ERR_EGRESS_HEADER_INJECTION'
  | 'ERR_EGRESS_FORBIDDEN_HEADER'
  | 'ERR_EGRESS_CLOSED';

/** Base class of every error matrix-egress throws. */
export class EgressError extends Error {
  /** Stable machine-readable code (`ERR_EGRESS_*`). */
  readonly code: EgressErrorCode;
  override readonly name: string = 'EgressError';

  constructor(code: EgressErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** Cross-realm and cross-copy `instanceof`: two installed copies of the package still agree. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null || !(BRAND in value)) return false;
    // Subclasses keep their own prototype chain check so that `ProxyTlsError` does not match a
    // `ProxyConnectError`; the brand only widens the base class across package copies.
    if (this === EgressError) return true;
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** A proxy variable, proxy option or `no_proxy` entry is invalid. Thrown at construction, never later. */
export class ProxyConfigError extends EgressError {
  override readonly name = 'ProxyConfigError';
  declare readonly code: 'ERR_EGRESS_PROXY_CONFIG';
  /** The variable or option path, e.g. `https_proxy` or `option connectionTypes.push.route`. */
  readonly source: string;
  /** The offending part, already redacted (never contains a password). */
  readonly value: string | undefined;

  constructor(source: string, problem: string, redactedValue?: string, options?: { cause?: unknown }) {
    const quoted = redactedValue === undefined ? '' : ` (${JSON.stringify(redactedValue)})`;
    super('ERR_EGRESS_PROXY_CONFIG', `${source}${quoted}: ${problem}`, options);
    this.source = source;
    this.value = redactedValue;
  }
}

/** A request URL could not be parsed or uses a scheme other than http/https. */
export class InvalidUrlError extends EgressError {
  override readonly name = 'InvalidUrlError';
  declare readonly code: 'ERR_EGRESS_INVALID_URL';
  constructor(problem: string, options?: { cause?: unknown }) {
    super('ERR_EGRESS_INVALID_URL', problem, options);
  }
}

/** A connection type was asked for that is neither built in nor registered. */
export class UnknownConnectionTypeError extends EgressError {
  override readonly name = 'UnknownConnectionTypeError';
  declare readonly code: 'ERR_EGRESS_UNKNOWN_CONNECTION_TYPE';
  readonly connectionType: string;
  constructor(connectionType: string, known: readonly string[]) {
    super(
      'ERR_EGRESS_UNKNOWN_CONNECTION_TYPE',
      `Unknown connection type ${JSON.stringify(connectionType)}; known types: ${known.join(', ')}`,
    );
    this.connectionType = connectionType;
  }
}

/**
 * The names of the SOCKS5 reply codes (RFC 1928 §6), as our messages print them. X'09' to X'FF' are
 * unassigned.
 */
export const SOCKS5_REPLY_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: 'general SOCKS server failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
});

/** `SOCKS reply 0x04 host unreachable`. */
function describeSocksReply(reply: number): string {
  return `SOCKS reply 0x${reply.toString(16).padStart(2, '0')} ${SOCKS5_REPLY_NAMES[reply] ?? 'unassigned'}`;
}

/**
 * The proxy answered CONNECT (or a forwarded request) with a non-2xx status, or a SOCKS5 proxy
 * answered its CONNECT command with a non-zero reply code (`socksReply`).
 */
export class ProxyConnectError extends EgressError {
  override readonly name: string = 'ProxyConnectError';
  declare readonly code: 'ERR_EGRESS_PROXY_CONNECT' | 'ERR_EGRESS_PROXY_AUTH';
  /**
   * HTTP status the proxy answered with. For a SOCKS5 proxy, which has no HTTP status: `0` when the
   * CONNECT command was refused (see `socksReply`), `407` when authentication was refused.
   */
  readonly statusCode: number;
  /** The proxy, redacted (`http://host:port`). */
  readonly proxy: string;
  /** The target `host:port` of the tunnel or forwarded request. */
  readonly target: string;
  /** The non-zero SOCKS5 reply code (RFC 1928 §6, 1 to 8) when a SOCKS5 proxy refused the CONNECT command; otherwise `undefined`. */
  readonly socksReply: number | undefined;

  constructor(
    proxy: string,
    target: string,
    statusCode: number,
    options?: { cause?: unknown; code?: 'ERR_EGRESS_PROXY_AUTH'; detail?: string; forwarded?: boolean; socksReply?: number; socks?: boolean },
  ) {
    const detail = options?.detail === undefined ? '' : `; ${options.detail}`;
    const what = options?.forwarded === true ? `a forwarded request to ${target}` : `CONNECT to ${target}`;
    const how =
      options?.socksReply !== undefined ? ` with ${describeSocksReply(options.socksReply)}` : options?.socks === true ? '' : ` with status ${String(statusCode)}`;
    super(options?.code ?? 'ERR_EGRESS_PROXY_CONNECT', `Proxy ${proxy} refused ${what}${how}${detail}`, options);
    this.statusCode = statusCode;
    this.proxy = proxy;
    this.target = target;
    this.socksReply = options?.socksReply;
  }
}

/** The proxy answered 407: credentials are missing or wrong. */
export class ProxyAuthenticationError extends ProxyConnectError {
  override readonly name = 'ProxyAuthenticationError';
  declare readonly code: 'ERR_EGRESS_PROXY_AUTH';
  /** The realm from `Proxy-Authenticate`, when the proxy sent one. */
  readonly realm: string | undefined;

  /**
   * @param forwarded True when the 407 answered a forwarded plain-http request rather than CONNECT.
   * @param socks True when a SOCKS5 proxy refused the authentication methods offered or the RFC 1929
   * user name and password (there is no HTTP status then; `statusCode` is still 407).
   */
  constructor(proxy: string, target: string, realm: string | undefined, hadCredentials: boolean, forwarded = false, socks = false) {
    const refusal = socks ? 'SOCKS5 authentication failed' : undefined;
    const reason = hadCredentials
      ? 'the proxy rejected the configured credentials'
      : 'the proxy requires credentials and none are configured';
    const detail = refusal === undefined ? reason : `${refusal}: ${reason}`;
    super(proxy, target, 407, {
      code: 'ERR_EGRESS_PROXY_AUTH',
      detail: realm === undefined ? detail : `${detail} (realm ${JSON.stringify(realm)})`,
      forwarded,
      socks,
    });
    this.realm = realm;
  }
}

/** Why TLS to the proxy failed, classified from Node's TLS error codes. */
export type ProxyTlsReason = 'self-signed' | 'unknown-ca' | 'hostname-mismatch' | 'expired' | 'other';

/** TLS to an `https://` proxy failed. */
export class ProxyTlsError extends EgressError {
  override readonly name = 'ProxyTlsError';
  declare readonly code: 'ERR_EGRESS_PROXY_TLS';
  readonly reason: ProxyTlsReason;
  readonly proxy: string;

  constructor(proxy: string, reason: ProxyTlsReason, options?: { cause?: unknown }) {
    super('ERR_EGRESS_PROXY_TLS', `TLS to proxy ${proxy} failed: ${describeTlsReason(reason)}`, options);
    this.reason = reason;
    this.proxy = proxy;
  }
}

function describeTlsReason(reason: ProxyTlsReason): string {
  switch (reason) {
    case 'self-signed':
      return 'the proxy certificate is self-signed; trust it with the proxyCa option or NODE_EXTRA_CA_CERTS';
    case 'unknown-ca':
      return 'the proxy certificate is signed by an unknown CA; add that CA with the proxyCa option or NODE_EXTRA_CA_CERTS';
    case 'hostname-mismatch':
      return 'the proxy certificate does not name the proxy host; use the host name the certificate was issued for';
    case 'expired':
      return 'the proxy certificate has expired or is not yet valid';
    case 'other':
      return 'the TLS handshake failed';
  }
}

/** The proxy could not be reached: refused, reset, DNS failure or timeout. */
export class ProxyUnreachableError extends EgressError {
  override readonly name = 'ProxyUnreachableError';
  declare readonly code: 'ERR_EGRESS_PROXY_UNREACHABLE';
  readonly proxy: string;
  /** The underlying system error code, such as `ECONNREFUSED`, when there is one. */
  readonly syscallCode: string | undefined;

  constructor(proxy: string, syscallCode: string | undefined, options?: { cause?: unknown; detail?: string }) {
    const what = options?.detail ?? (syscallCode === undefined ? 'connection failed' : syscallCode);
    super('ERR_EGRESS_PROXY_UNREACHABLE', `Proxy ${proxy} is unreachable: ${what}`, options);
    this.proxy = proxy;
    this.syscallCode = syscallCode;
  }
}

/** The proxy answered CONNECT, or a forwarded request, with something that is not an HTTP/1.x response. */
export class ProxyProtocolError extends EgressError {
  override readonly name = 'ProxyProtocolError';
  declare readonly code: 'ERR_EGRESS_PROXY_PROTOCOL';
  readonly proxy: string;
  constructor(proxy: string, problem: string, options?: { cause?: unknown }) {
    super('ERR_EGRESS_PROXY_PROTOCOL', `Proxy ${proxy} sent an invalid answer: ${problem}`, options);
    this.proxy = proxy;
  }
}

/**
 * No response headers arrived within `headersTimeout` of the request being sent (the `http.Agent`s;
 * the undici dispatchers report undici's own `HeadersTimeoutError`, `UND_ERR_HEADERS_TIMEOUT`).
 */
export class HeadersTimeoutError extends EgressError {
  override readonly name = 'HeadersTimeoutError';
  declare readonly code: 'ERR_EGRESS_HEADERS_TIMEOUT';
  readonly timeout: number;
  constructor(target: string, timeout: number) {
    super('ERR_EGRESS_HEADERS_TIMEOUT', `No response headers from ${target} within ${String(timeout)} ms (headersTimeout)`);
    this.timeout = timeout;
  }
}

/** A direct connection would reach a blocklisted address (SSRF guard). */
export class BlockedDestinationError extends EgressError {
  override readonly name = 'BlockedDestinationError';
  declare readonly code: 'ERR_EGRESS_BLOCKED_DESTINATION';
  readonly host: string;
  readonly address: string;
  /** The `ipBlocklist` entry that matched, as written; `null` when unknown or the answer was not an IP address. */
  readonly rule: string | null;
  constructor(host: string, address: string, rule: string | null = null) {
    super('ERR_EGRESS_BLOCKED_DESTINATION', `Refusing to connect to ${host} (${address}): the address is blocklisted`);
    this.host = host;
    this.address = address;
    this.rule = rule;
  }
}

/** A header name or value carries CR, LF or NUL: refused to prevent header injection. */
export class HeaderInjectionError extends EgressError {
  override readonly name = 'HeaderInjectionError';
  declare readonly code: 'ERR_EGRESS_HEADER_INJECTION';
  constructor(what: string) {
    super('ERR_EGRESS_HEADER_INJECTION', `${what} contains CR, LF or NUL; refused to prevent header injection`);
  }
}

/** A caller tried to set a header that only the library may set (such as `Proxy-Authorization`). */
export class ForbiddenHeaderError extends EgressError {
  override readonly name = 'ForbiddenHeaderError';
  declare readonly code: 'ERR_EGRESS_FORBIDDEN_HEADER';
  constructor(header: string, why: string) {
    super('ERR_EGRESS_FORBIDDEN_HEADER', `Header ${header} is not allowed on a request: ${why}`);
  }
}

/** The egress (or one of its dispatchers) was used after `close()` or `destroy()`. */
export class EgressClosedError extends EgressError {
  override readonly name = 'EgressClosedError';
  declare readonly code: 'ERR_EGRESS_CLOSED';
  constructor() {
    super('ERR_EGRESS_CLOSED', 'The egress has been closed');
  }
}

/** Type guard: any matrix-egress error, from any copy of the package. */
export function isEgressError(value: unknown): value is EgressError {
  return value instanceof EgressError;
}

/** The error class behind each code, for {@link hasEgressCode}. */
export interface EgressErrorByCode {
  ERR_EGRESS_PROXY_CONFIG: ProxyConfigError;
  ERR_EGRESS_INVALID_URL: InvalidUrlError;
  ERR_EGRESS_UNKNOWN_CONNECTION_TYPE: UnknownConnectionTypeError;
  ERR_EGRESS_PROXY_CONNECT: ProxyConnectError & { code: 'ERR_EGRESS_PROXY_CONNECT' };
  ERR_EGRESS_PROXY_AUTH: ProxyAuthenticationError;
  ERR_EGRESS_PROXY_TLS: ProxyTlsError;
  ERR_EGRESS_PROXY_UNREACHABLE: ProxyUnreachableError;
  ERR_EGRESS_PROXY_PROTOCOL: ProxyProtocolError;
  ERR_EGRESS_HEADERS_TIMEOUT: HeadersTimeoutError;
  ERR_EGRESS_BLOCKED_DESTINATION: BlockedDestinationError;
  ERR_EGRESS_HEADER_INJECTION: HeaderInjectionError;
  ERR_EGRESS_FORBIDDEN_HEADER: ForbiddenHeaderError;
  ERR_EGRESS_CLOSED: EgressClosedError;
}

/** Type guard for one error code, narrowing to its class (e.g. `reason` on `ERR_EGRESS_PROXY_TLS`). */
export function hasEgressCode<C extends EgressErrorCode>(value: unknown, code: C): value is EgressErrorByCode[C] {
  return isEgressError(value) && value.code === code;
}
