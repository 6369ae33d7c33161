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
  return targetFromWhatwgHost(scheme, parsed.hostname, parsed.port === '' ? defaultPort(scheme) : Number(parsed.port));
}

/**
 * {@link targetFromHostPort} for a host the WHATWG URL parser produced, where an IP literal is
 * already canonical: IPv4 as four decimal numbers, IPv6 in brackets in the compressed lowercase form
 * of RFC 5952 (URL standard, "host serializing"). Reading those directly instead of through
 * ipaddr.js's general parser keeps a decision on an IP-literal URL within about 1 µs of URL
 * parsing (issue #12; bench/route-cost.ts).
 */
function targetFromWhatwgHost(scheme: 'http' | 'https', hostname: string, port: number): Target {
  if (hostname.startsWith('[')) {
    const text = hostname.slice(1, -1);
    const parts = canonicalIpv6Parts(text);
    if (parts === undefined) return targetFromHostPort(scheme, hostname, port);
    // ::ffff:a.b.c.d compares as IPv4 (the URL standard writes it as ::ffff:XXXX:XXXX).
    if (parts[0] === 0 && parts[1] === 0 && parts[2] === 0 && parts[3] === 0 && parts[4] === 0 && parts[5] === 0xffff) {
      const ip = new ipaddr.IPv4([(parts[6] ?? 0) >> 8, (parts[6] ?? 0) & 0xff, (parts[7] ?? 0) >> 8, (parts[7] ?? 0) & 0xff]);
      return { scheme, host: ip.toString(), port, ip };
    }
    return { scheme, host: text, port, ip: new ipaddr.IPv6(parts) };
  }
  const last = hostname.charCodeAt(hostname.length - 1);
  // A WHATWG host whose last label is a number is an IPv4 address (the parser refuses anything else).
  if (last >= 48 && last <= 57) {
    const octets = dottedQuad(hostname);
    if (octets !== undefined) return { scheme, host: hostname, port, ip: new ipaddr.IPv4(octets) };
    return targetFromHostPort(scheme, hostname, port);
  }
  // Already lowercase and in punycode; only the trailing dot is ours to strip.
  const host = last === 46 ? hostname.slice(0, -1) : hostname;
  if (host.length === 0 || host.endsWith('.')) return targetFromHostPort(scheme, hostname, port);
  return { scheme, host, port, ip: undefined };
}

/** The four numbers of `a.b.c.d` (decimal, each 0–255), or `undefined`. */
function dottedQuad(text: string): number[] | undefined {
  const octets = [0, 0, 0, 0];
  let value = 0;
  let digits = 0;
  let index = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 46) {
      if (digits === 0 || index === 3) return undefined;
      octets[index++] = value;
      value = 0;
      digits = 0;
    } else if (code >= 48 && code <= 57 && digits < 3) {
      value = value * 10 + (code - 48);
      digits++;
    } else {
      return undefined;
    }
  }
  if (index !== 3 || digits === 0 || value > 255 || octets.some((o) => o > 255)) return undefined;
  octets[3] = value;
  return octets;
}

/**
 * The eight 16-bit groups of a compressed IPv6 address (hex groups, at most one `::`, no zone and no
 * dotted quad, as the URL standard writes them); `undefined` for anything else. One pass, no
 * intermediate strings.
 */
function canonicalIpv6Parts(text: string): number[] | undefined {
  const before: number[] = [];
  const after: number[] = [];
  let groups = before;
  let value = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    const hex = code >= 48 && code <= 57 ? code - 48 : code >= 97 && code <= 102 ? code - 87 : -1;
    if (hex !== -1) {
      if (++digits > 4) return undefined;
      value = value * 16 + hex;
    } else if (code === 58) {
      if (text.charCodeAt(i + 1) === 58) {
        if (groups === after) return undefined;
        if (digits > 0) before.push(value);
        groups = after;
        i++;
      } else {
        if (digits === 0) return undefined;
        groups.push(value);
      }
      value = 0;
      digits = 0;
    } else {
      return undefined;
    }
  }
  if (digits > 0) groups.push(value);
  else if (!text.endsWith('::')) return undefined;
  const missing = 8 - before.length - after.length;
  if (groups === before ? missing !== 0 : missing < 1) return undefined;
  for (let i = 0; i < missing; i++) before.push(0);
  for (const part of after) before.push(part);
  return before;
}

/** Build a target from an already-split host (WHATWG-normalised, brackets allowed) and port. */
export function targetFromHostPort(scheme: 'http' | 'https', rawHost: string, port: number): Target {
  const ip = parseIpLiteral(rawHost);
  if (ip !== undefined) return { scheme, host: ipToString(ip), port, ip };
  const host = rawHost.toLowerCase().replace(/\.$/, '');
  if (host.length === 0) throw new InvalidUrlError('The URL has no host');
  return { scheme, host, port, ip: undefined };
}
