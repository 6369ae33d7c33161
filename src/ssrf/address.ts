/**
 * IP addresses as the SSRF guard compares them: validated strictly, then packed into 32-bit words so
 * that a range test is a shift and a hash lookup.
 * @module
 */
/**
 * An address packed for comparison. IPv4 is one unsigned 32-bit number; IPv6 is four, most
 * significant first. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is packed as its IPv4 address:
 * a socket connected to it reaches that IPv4 host.
 */
export type PackedAddress =
  | { readonly family: 4; readonly value: number }
  | { readonly family: 6; readonly words: readonly [number, number, number, number] };

/**
 * Parse an IP address as a socket would connect to it: a strict dotted quad (no octal, hex or
 * shortened forms: the WHATWG URL parser has already expanded those in URLs), or IPv6 without
 * brackets. An IPv6 zone (`fe80::1%eth0`) is ignored: ranges do not depend on the interface.
 * Accepts exactly what `net.isIP` accepts (a property test holds it to that). Returns `undefined`
 * for anything else.
 *
 * Not ipaddr.js: it reads `::1.2.3.4` (IPv4-compatible, RFC 4291 §2.5.5.1) as `::ffff:1.2.3.4`
 * (IPv4-mapped), and Node prints IPv4-compatible answers of `dns.lookup` in exactly that form.
 */
export function parseAddress(text: string): PackedAddress | undefined {
  const percent = text.indexOf('%');
  if (percent === -1) {
    const v4 = parseDottedQuad(text, 0);
    return v4 === undefined ? packIPv6(text, text.length) : { family: 4, value: v4 };
  }
  // A zone is an interface name or number; it only qualifies IPv6 addresses.
  if (percent === text.length - 1 || !/^[0-9A-Za-z.:-]+$/.test(text.slice(percent + 1))) return undefined;
  return packIPv6(text, percent);
}

/** `text` from `start` to its end as a strict dotted quad (`0`–`255`, no leading zeros), or `undefined`. */
function parseDottedQuad(text: string, start: number): number | undefined {
  let value = 0;
  let part = 0;
  let digits = 0;
  let parts = 0;
  for (let i = start; i <= text.length; i++) {
    const c = i === text.length ? 46 : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || part > 255 || ++parts > 4) return undefined;
      value = value * 256 + part;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && part === 0) return undefined;
      part = part * 10 + (c - 48);
      if (++digits > 3) return undefined;
    } else {
      return undefined;
    }
  }
  return parts === 4 ? value : undefined;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/**
 * `text[0, end)` as IPv6 (RFC 4291 §2.2: up to eight groups of 1–4 hex digits, one `::` for one or
 * more zero groups, optionally a dotted quad as the last 32 bits), packed; IPv4-mapped as IPv4.
 */
function packIPv6(text: string, end: number): PackedAddress | undefined {
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (end >= 2 && text.charCodeAt(0) === 58 && text.charCodeAt(1) === 58) {
    gap = 0;
    i = 2;
  }
  while (i < end) {
    const start = i;
    let value = 0;
    while (i < end && i - start < 5) {
      const digit = hexValue(text.charCodeAt(i));
      if (digit === -1) break;
      value = value * 16 + digit;
      i++;
    }
    if (i < end && text.charCodeAt(i) === 46) {
      const v4 = parseDottedQuad(text.slice(start, end), 0);
      if (v4 === undefined) return undefined;
      groups.push(v4 >>> 16, v4 & 0xffff);
      break;
    }
    if (i === start || i - start > 4) return undefined;
    groups.push(value);
    if (i === end) break;
    if (text.charCodeAt(i) !== 58 || i + 1 === end) return undefined;
    i++;
    if (text.charCodeAt(i) === 58) {
      if (gap !== -1) return undefined;
      gap = groups.length;
      i++;
    }
  }
  if (gap === -1 ? groups.length !== 8 : groups.length > 7) return undefined;
  if (gap !== -1) groups.splice(gap, 0, ...new Array<number>(8 - groups.length).fill(0));
  const word = (k: number): number => (((groups[2 * k] ?? 0) << 16) | (groups[2 * k + 1] ?? 0)) >>> 0;
  const words = [word(0), word(1), word(2), word(3)] as const;
  if (words[0] === 0 && words[1] === 0 && words[2] === 0xffff) return { family: 4, value: words[3] };
  return { family: 6, words };
}

/** Canonical text of a packed address: dotted quad, or RFC 5952 IPv6. */
export function formatAddress(address: PackedAddress): string {
  if (address.family === 4) return formatDottedQuad(address.value);
  const groups: number[] = [];
  for (const word of address.words) groups.push(word >>> 16, word & 0xffff);
  // RFC 5952 §4.2.3: the longest run of two or more zero groups, the first one on a tie, becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((group) => group.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** An unsigned 32-bit number as `a.b.c.d`. */
export function formatDottedQuad(value: number): string {
  return `${String(value >>> 24)}.${String((value >>> 16) & 0xff)}.${String((value >>> 8) & 0xff)}.${String(value & 0xff)}`;
}
