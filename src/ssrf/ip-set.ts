/**
 * A compiled set of IP ranges (the `ipBlocklist` and `ipAllowlist` options). A test costs one shift
 * and one hash lookup per distinct prefix length in the set, whatever the number of entries, as the
 * CIDR part of the `no_proxy` matcher does.
 * @module
 */
import ipaddr from 'ipaddr.js';
import { ProxyConfigError } from '../errors.js';
import { formatAddress, parseAddress, type PackedAddress } from './address.js';

/** One range of an {@link IpRangeSet}. */
export interface IpRange {
  /** The entry as written. */
  readonly entry: string;
  /** `4` for IPv4 ranges, including ones written in IPv4-mapped form (`::ffff:10.0.0.0/104`). */
  readonly family: 4 | 6;
  /** The network address in canonical text (dotted quad, RFC 5952). */
  readonly network: string;
  /** The prefix length within the family: 0–32 for IPv4, 0–128 for IPv6. */
  readonly prefixLength: number;
}

type Words = readonly [number, number, number, number];

/** The first `length` bits of an IPv4 address. */
function v4Key(value: number, length: number): number {
  return length === 0 ? 0 : value >>> (32 - length);
}

/** The first `length` bits of an IPv6 address: a number while they fit in one exactly (53 bits), else a string. */
function v6Key(words: Words, length: number): number | string {
  if (length <= 32) return length === 0 ? 0 : words[0] >>> (32 - length);
  if (length <= 53) return words[0] * 2 ** (length - 32) + (words[1] >>> (64 - length));
  let key = `${String(words[0])}:${String(words[1])}`;
  let rest = length - 64;
  for (let i = 2; rest > 0; i++, rest -= 32) {
    const word = words[i] ?? 0;
    key += `:${String(rest >= 32 ? word : word >>> (32 - rest))}`;
  }
  return key;
}

/** Per prefix length, longest first: the table of network keys of that length. */
interface Tables<K> {
  readonly lengths: number[];
  readonly tables: Map<K, IpRange>[];
}

function addTo<K>(tables: Tables<K>, length: number, key: K, range: IpRange): void {
  let index = tables.lengths.indexOf(length);
  if (index === -1) {
    index = tables.lengths.findIndex((other) => other < length);
    if (index === -1) index = tables.lengths.length;
    tables.lengths.splice(index, 0, length);
    tables.tables.splice(index, 0, new Map<K, IpRange>());
  }
  const table = tables.tables[index];
  // The first entry written wins: it is the one explanations name.
  if (table !== undefined && !table.has(key)) table.set(key, range);
}

/** The set of ranges, immutable. Build it with {@link compileIpRanges}. */
export class IpRangeSet {
  /** Every range, in the order written. */
  readonly ranges: readonly IpRange[];
  readonly #v4: Tables<number> = { lengths: [], tables: [] };
  readonly #v6: Tables<number | string> = { lengths: [], tables: [] };

  /** @internal Use {@link compileIpRanges}. */
  constructor(ranges: readonly { readonly range: IpRange; readonly address: PackedAddress }[]) {
    this.ranges = Object.freeze(ranges.map(({ range }) => Object.freeze(range)));
    for (const { range, address } of ranges) {
      if (address.family === 4) addTo(this.#v4, range.prefixLength, v4Key(address.value, range.prefixLength), range);
      else addTo(this.#v6, range.prefixLength, v6Key(address.words, range.prefixLength), range);
    }
    Object.freeze(this);
  }

  /** True when the set has no ranges. */
  get isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  /** The most specific range containing `address`, or `undefined`. */
  match(address: PackedAddress): IpRange | undefined {
    if (address.family === 4) {
      const { lengths, tables } = this.#v4;
      for (let i = 0; i < lengths.length; i++) {
        const hit = tables[i]?.get(v4Key(address.value, lengths[i] ?? 0));
        if (hit !== undefined) return hit;
      }
      return undefined;
    }
    const { lengths, tables } = this.#v6;
    for (let i = 0; i < lengths.length; i++) {
      const hit = tables[i]?.get(v6Key(address.words, lengths[i] ?? 0));
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** True when a range contains `address` (text is parsed; anything that is not an address is in no range). */
  has(address: PackedAddress | string): boolean {
    const packed = typeof address === 'string' ? parseAddress(address) : address;
    return packed !== undefined && this.match(packed) !== undefined;
  }
}

/** `address` with every bit after the first `length` cleared. */
function networkOf(address: PackedAddress, length: number): PackedAddress {
  const maskWord = (word: number, bits: number): number => (bits <= 0 ? 0 : bits >= 32 ? word : (word & (-1 << (32 - bits))) >>> 0);
  if (address.family === 4) return { family: 4, value: maskWord(address.value, length) };
  const [a, b, c, d] = address.words;
  return {
    family: 6,
    words: [maskWord(a, length), maskWord(b, length - 32), maskWord(c, length - 64), maskWord(d, length - 96)],
  };
}

function sameAddress(x: PackedAddress, y: PackedAddress): boolean {
  if (x.family === 4) return y.family === 4 && x.value === y.value;
  return y.family === 6 && x.words.every((word, i) => word === y.words[i]);
}

const PREFIX_LENGTH = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * Parse one entry: an IP address (a single-address range) or a CIDR range. IPv4 must be a strict
 * dotted quad (`010.0.0.1` is refused: octal or decimal is ambiguous); IPv6 is written without
 * brackets; an IPv4-mapped range (`::ffff:10.0.0.0/104`) is the IPv4 range it maps.
 */
function parseRange(entry: unknown, path: string): { range: IpRange; address: PackedAddress } {
  const fail = (problem: string): never => {
    throw new ProxyConfigError(`option ${path}`, problem, typeof entry === 'string' ? entry : undefined);
  };
  if (typeof entry !== 'string') return fail('must be a string: an IP address or a CIDR range such as 10.0.0.0/8');
  const slash = entry.indexOf('/');
  const text = slash === -1 ? entry : entry.slice(0, slash);
  // ipaddr.js decides what is valid; packing is ours (see address.ts for the one form it misreads).
  const valid = ipaddr.IPv4.isValidFourPartDecimal(text) || (text.includes(':') && !text.includes('%') && ipaddr.IPv6.isValid(text));
  const address = valid ? parseAddress(text) : undefined;
  if (address === undefined) {
    return fail(
      text.startsWith('[')
        ? 'write IPv6 addresses without brackets'
        : 'not an IP address or CIDR range (IPv4 as four decimal numbers, such as 10.0.0.0/8; IPv6 such as fc00::/7)',
    );
  }
  const max = address.family === 4 ? 32 : 128;
  let prefixLength = max;
  if (slash !== -1) {
    const rawLength = entry.slice(slash + 1);
    if (!PREFIX_LENGTH.test(rawLength)) return fail('the prefix length after "/" must be a whole number');
    prefixLength = Number(rawLength);
    if (address.family === 4 && text.includes(':')) {
      if (prefixLength < 96 || prefixLength > 128) return fail('an IPv4-mapped range (::ffff:a.b.c.d/n) needs a prefix length from 96 to 128');
      prefixLength -= 96;
    } else if (prefixLength > max) {
      return fail(`the prefix length must be from 0 to ${String(max)}`);
    }
  }
  const network = networkOf(address, prefixLength);
  if (!sameAddress(network, address)) {
    // Refused rather than widened (no_proxy widens): in an allowlist, 192.168.1.10/16 for /32 would open a whole network.
    return fail(`bits after the prefix are set; the range is ${formatAddress(network)}/${String(prefixLength)}`);
  }
  return { range: { entry, family: address.family, network: formatAddress(network), prefixLength }, address: network };
}

/**
 * Validate and compile a list of IP addresses and CIDR ranges. The list is copied: changing it
 * afterwards changes nothing.
 * @param option The option name for error messages, such as `ipBlocklist`.
 * @throws {@link ProxyConfigError} naming the option and the entry's index (`option ipBlocklist[3]`).
 */
export function compileIpRanges(entries: readonly string[], option: string): IpRangeSet {
  const list: unknown = entries;
  if (!Array.isArray(list)) {
    throw new ProxyConfigError(`option ${option}`, 'must be an array of IP addresses and CIDR ranges');
  }
  return new IpRangeSet(Array.from(list as unknown[], (entry, index) => parseRange(entry, `${option}[${String(index)}]`)));
}
