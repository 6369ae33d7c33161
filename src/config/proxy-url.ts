/**
 * Parse one proxy value, `[scheme://][user[:password]@]host[:port][/]`, into a {@link ProxyEndpoint}.
 *
 * Stricter than undici's EnvHttpProxyAgent and proxy-from-env, which hand the string to `new URL()`:
 * there `localhost:3128` parses as scheme `localhost:`, `127.1` silently becomes `127.0.0.1`, and a
 * `socks4://` value is accepted and then fails per request. We refuse all of these at start-up.
 * @module
 */
import { inspect } from 'node:util';
import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';
import { ProxyConfigError } from '../errors.js';
import { hasControlOrSpace, hasHeaderBreak, redactUrl } from '../redact.js';

/** Port used when a proxy value names none (Synapse's and curl's default). */
export const DEFAULT_PROXY_PORT = 1080;

/**
 * The proxy schemes we speak: `http:` (plain HTTP proxy), `https:` (TLS to the proxy), `socks5:`
 * (SOCKS5, the origin name resolved locally and the address asked for) and `socks5h:` (SOCKS5, the
 * name sent to the proxy, which resolves it: Tor, I2P).
 */
export type ProxyProtocol = 'http:' | 'https:' | 'socks5:' | 'socks5h:';

/** The schemes {@link parseProxyUrl} accepts, as written in an error message. */
const SUPPORTED_SCHEMES = 'http://, https://, socks5:// or socks5h://';

/** RFC 1929 §2: the user name and the password of SOCKS5 authentication are 1 to 255 bytes each. */
const MAX_SOCKS_CREDENTIAL_BYTES = 255;

/** A parsed, validated proxy. Its credentials never appear in `toString`, `toJSON` or `util.inspect`. */
export class ProxyEndpoint {
  /** `http:` for a plain proxy, `https:` for TLS to the proxy, `socks5:` / `socks5h:` for a SOCKS5 proxy (SPEC §9). */
  readonly protocol: ProxyProtocol;
  /** Lowercase host name or IP literal, IPv6 without brackets. */
  readonly hostname: string;
  /** TCP port of the proxy. */
  readonly port: number;
  /** The variable or option the value came from, e.g. `https_proxy`. */
  readonly source: string;
  readonly #username: string | undefined;
  readonly #password: string | undefined;

  /** @internal Use {@link parseProxyUrl}. */
  constructor(fields: {
    protocol: ProxyProtocol;
    hostname: string;
    port: number;
    source: string;
    username?: string | undefined;
    password?: string | undefined;
  }) {
    this.protocol = fields.protocol;
    this.hostname = fields.hostname;
    this.port = fields.port;
    this.source = fields.source;
    this.#username = fields.username;
    this.#password = fields.password;
    Object.freeze(this);
  }

  /** True when the proxy value carried a user name (and maybe a password). */
  get hasCredentials(): boolean {
    return this.#username !== undefined;
  }

  /** The host as it appears in a URL or an authority: IPv6 in brackets. */
  get host(): string {
    return this.hostname.includes(':') ? `[${this.hostname}]` : this.hostname;
  }

  /** `host:port`, IPv6 bracketed. */
  get authority(): string {
    return `${this.host}:${String(this.port)}`;
  }

  /** The proxy URL without credentials, e.g. `http://proxy.internal:3128`. Safe to log. */
  get url(): string {
    return `${this.protocol}//${this.authority}`;
  }

  /** True for a SOCKS5 proxy (`socks5:` or `socks5h:`): tunnels for every origin scheme, no forwarded requests. */
  get isSocks(): boolean {
    return this.protocol === 'socks5:' || this.protocol === 'socks5h:';
  }

  /** True when the host is an IP literal (no SNI is sent to such a proxy). */
  get isIpLiteral(): boolean {
    return ipaddr.isValid(this.hostname);
  }

  /** The `Proxy-Authorization` header value, or `undefined` when no credentials are configured. */
  proxyAuthorization(): string | undefined {
    if (this.#username === undefined) return undefined;
    const pair = `${this.#username}:${this.#password ?? ''}`;
    return `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
  }

  /** @internal The credentials, for building agents of other libraries. */
  credentials(): { username: string; password: string } | undefined {
    if (this.#username === undefined) return undefined;
    return { username: this.#username, password: this.#password ?? '' };
  }

  /** True when both endpoints are the same proxy with the same credentials. */
  equals(other: ProxyEndpoint): boolean {
    return (
      this.protocol === other.protocol &&
      this.hostname === other.hostname &&
      this.port === other.port &&
      this.#username === other.#username &&
      this.#password === other.#password
    );
  }

  /** The redacted URL. */
  toString(): string {
    return this.url;
  }

  /** A redacted description for JSON output. */
  toJSON(): { url: string; credentials: boolean; source: string } {
    return { url: this.url, credentials: this.hasCredentials, source: this.source };
  }

  /** @internal */
  [inspect.custom](): string {
    const creds = this.hasCredentials ? ', credentials: [redacted]' : '';
    return `ProxyEndpoint { url: '${this.url}'${creds}, source: '${this.source}' }`;
  }
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
const PORT = /^[0-9]{1,5}$/;

/**
 * Parse one proxy value. `source` names the variable or option, for the error message.
 * @throws {@link ProxyConfigError} on any invalid value; the message quotes the value with credentials redacted.
 */
export function parseProxyUrl(value: string, source: string): ProxyEndpoint {
  const fail = (problem: string): never => {
    throw new ProxyConfigError(source, problem, redactUrl(value));
  };
  if (value.length === 0) fail('the proxy URL is empty');
  if (hasControlOrSpace(value)) fail('the proxy URL contains a space or a control character');

  let rest = value;
  let protocol: ProxyProtocol = 'http:';
  const scheme = SCHEME.exec(value);
  if (scheme) {
    const name = `${(scheme[1] ?? '').toLowerCase()}:`;
    if (!isProxyProtocol(name)) return fail(`unsupported proxy scheme "${name}"; supported schemes are ${SUPPORTED_SCHEMES}`);
    protocol = name;
    rest = value.slice(scheme[0].length);
  }
  const socks = protocol === 'socks5:' || protocol === 'socks5h:';

  let username: string | undefined;
  let password: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at !== -1) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const rawUser = colon === -1 ? userinfo : userinfo.slice(0, colon);
    const rawPassword = colon === -1 ? undefined : userinfo.slice(colon + 1);
    username = decodeCredential(rawUser, 'user name', fail);
    password = rawPassword === undefined ? undefined : decodeCredential(rawPassword, 'password', fail);
    if (username.length === 0) fail('the proxy user name is empty');
    if (socks) {
      for (const [what, text] of [['user name', username], ['password', password ?? '']] as const) {
        if (Buffer.byteLength(text, 'utf8') > MAX_SOCKS_CREDENTIAL_BYTES) fail(`the SOCKS5 ${what} is longer than 255 bytes (RFC 1929)`);
      }
    } else if (username.includes(':')) {
      // RFC 7617 §2: the user-id of Basic credentials cannot contain a colon.
      fail('the proxy user name contains a colon, which Basic authentication cannot carry');
    }
  }

  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (/[/?#]/.test(rest)) fail('a proxy URL has no path, query or fragment; give only [scheme://][user:password@]host[:port]');

  const { hostname, port } = splitHostPort(rest, fail);
  return new ProxyEndpoint({ protocol, hostname, port, source, username, password });
}

function isProxyProtocol(name: string): name is ProxyProtocol {
  return name === 'http:' || name === 'https:' || name === 'socks5:' || name === 'socks5h:';
}

function decodeCredential(raw: string, what: string, fail: (problem: string) => never): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return fail(`the proxy ${what} has an invalid percent-encoding`);
  }
  if (hasHeaderBreak(decoded)) fail(`the proxy ${what} contains CR, LF or NUL`);
  return decoded;
}

function splitHostPort(authority: string, fail: (problem: string) => never): { hostname: string; port: number } {
  let hostPart: string;
  let portPart: string | undefined;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) fail('the IPv6 proxy host has no closing bracket');
    hostPart = authority.slice(1, close);
    const after = authority.slice(close + 1);
    if (after.length > 0) {
      if (!after.startsWith(':')) fail('unexpected text after the bracketed IPv6 host');
      portPart = after.slice(1);
    }
    if (!ipaddr.IPv6.isValid(hostPart) || hostPart.includes('%')) fail('the bracketed proxy host is not a valid IPv6 address');
    return { hostname: ipaddr.IPv6.parse(hostPart).toString(), port: parsePort(portPart, fail) };
  }
  const colons = authority.split(':').length - 1;
  if (colons > 1) fail('an IPv6 proxy host must be written in brackets, e.g. http://[::1]:3128');
  if (colons === 1) {
    const colon = authority.indexOf(':');
    hostPart = authority.slice(0, colon);
    portPart = authority.slice(colon + 1);
  } else {
    hostPart = authority;
  }
  return { hostname: parseHostName(hostPart, fail), port: parsePort(portPart, fail) };
}

function parsePort(raw: string | undefined, fail: (problem: string) => never): number {
  if (raw === undefined) return DEFAULT_PROXY_PORT;
  if (!PORT.test(raw)) fail('the proxy port must be a number from 1 to 65535');
  const port = Number(raw);
  if (port < 1 || port > 65535) fail('the proxy port must be a number from 1 to 65535');
  return port;
}

/**
 * Validate a host name or IPv4 literal and return it lowercase, in ASCII (punycode) form.
 * A name whose last label is numeric must be a four-part decimal IPv4 address: `127.1` and `0x7f.0.0.1`
 * are refused rather than reinterpreted, as the WHATWG URL parser would.
 */
function parseHostName(raw: string, fail: (problem: string) => never): string {
  if (raw.length === 0) fail('the proxy host is missing');
  const lastLabel = raw.replace(/\.$/, '').split('.').pop() ?? '';
  if (/^(?:[0-9]+|0x[0-9a-f]*)$/i.test(lastLabel)) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(raw)) fail('the proxy host looks like an IPv4 address but is not four decimal parts');
    return ipaddr.IPv4.parse(raw).toString();
  }
  const ascii = domainToASCII(raw);
  if (ascii.length === 0 || !/^[a-z0-9._-]+$/.test(ascii)) fail('the proxy host is not a valid host name');
  if (ascii.split('.').some((label, i, all) => label.length === 0 && i !== all.length - 1)) fail('the proxy host has an empty label');
  return ascii.replace(/\.$/, '');
}
