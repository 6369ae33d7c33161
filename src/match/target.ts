/**
 * Canonicalise a request URL once into the form every routing decision compares against.
 * @module
 */
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { InvalidUrlError } from '../errors.js';
import { redactUrl } from '../redact.js';

/** A parsed IP address. */
export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/** The canonical destination of a request. */
export interface Target {
  /** `http` or `https`. */
  readonly scheme: 'http' | 'https';
  /** Lowercase ASCII host without brackets or trailing dot; an IP literal in canonical form (IPv4-mapped IPv6 as IPv4). */
  readonly host: string;
  /** The effective port: the URL's, else 80 or 443. */
  readonly port: number;
  /** The parsed address when the host is an IP literal. */
  readonly ip: IpAddress | undefined;
}

/** Effective port of a scheme when the URL gives none. */
function defaultPort(scheme: 'http' | 'https'): number {
  return scheme === 'https' ? 443 : 80;
}

/**
 * Parse an IP literal, unwrapping IPv4-mapped IPv6 (`::ffff:10.0.0.1` → `10.0.0.1`) so it compares
 * equal to IPv4 entries. Returns `undefined` for anything that is not a literal address.
 */
export function parseIpLiteral(host: string): IpAddress | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  // net.isIPv4 first: for a host name ipaddr.js throws and catches internally, about 15 µs a call.
  if (isIPv4(bare) && ipaddr.IPv4.isValidFourPartDecimal(bare)) return ipaddr.IPv4.parse(bare);
  if (!bare.includes(':') || bare.includes('%') || !isIPv6(bare)) return undefined;
  // ipaddr.js 2.5 reads any embedded dotted quad as IPv4-mapped (`::10.0.0.1` becomes
  // `::ffff:10.0.0.1`); spell the quad as two hex groups so only a real ::ffff: prefix maps.
  const v6 = ipaddr.IPv6.parse(bare.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_, a: string, b: string, c: string, d: string) =>
    `${((Number(a) << 8) | Number(b)).toString(16)}:${((Number(c) << 8) | Number(d)).toString(16)}`,
  ));
  return v6.isIPv4MappedAddress() ? v6.toIPv4Address() : v6;
}

/** Canonical text of an address: dotted quad, or RFC 5952 for IPv6. */
export function ipToString(ip: IpAddress): string {
  return ip.kind() === 'ipv6' ? (ip as ipaddr.IPv6).toRFC5952String() : ip.toString();
}

/**
 * Canonicalise `url` (WHATWG parsing: lowercase, IDNA to punycode, IPv4 shorthand such as
 * `0x7f.1` expanded, brackets kept for IPv6) and strip what comparisons must ignore.
 * @throws {@link InvalidUrlError} when the URL does not parse or its scheme is not http/https.
 */
export function targetFromUrl(url: string | URL): Target {
  let parsed: URL;
  try {
    parsed = typeof url === 'string' ? new URL(url) : url;
  } catch {
    // The WHATWG TypeError keeps the raw input (credentials included) in `input`: give a clean cause.
    const cause = Object.assign(new TypeError('Invalid URL'), { code: 'ERR_INVALID_URL' });
    throw new InvalidUrlError(`Invalid URL ${JSON.stringify(redactUrl(String(url)))}`, { cause });
  }
  const scheme = parsed.protocol === 'https:' ? 'https' : parsed.protocol === 'http:' ? 'http' : undefined;
  if (scheme === undefined) {
    throw new InvalidUrlError(`Unsupported URL scheme ${JSON.stringify(parsed.protocol)}: only http: and https: can be routed`);
  }
  return targetFromHostPort(scheme, parsed.hostname, parsed.port === '' ? defaultPort(scheme) : Number(parsed.port));
}

/** Build a target from an already-split host (WHATWG-normalised, brackets allowed) and port. */
export function targetFromHostPort(scheme: 'http' | 'https', rawHost: string, port: number): Target {
  const ip = parseIpLiteral(rawHost);
  if (ip !== undefined) return { scheme, host: ipToString(ip), port, ip };
  const host = rawHost.toLowerCase().replace(/\.$/, '');
  if (host.length === 0) throw new InvalidUrlError('The URL has no host');
  return { scheme, host, port, ip: undefined };
}
