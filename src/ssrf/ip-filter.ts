/**
 * The SSRF decision for one address: the allowlist, then the blocklist, including the IPv4 address
 * embedded in an IPv6 transition address.
 * @module
 */
import { formatAddress, formatDottedQuad, parseAddress, type PackedAddress } from './address.js';
import type { IpRange, IpRangeSet } from './ip-set.js';

/** Why an address is refused. */
export interface BlockedAddress {
  /** The address checked, canonical (an IPv4-mapped address as its IPv4 address). */
  readonly address: string;
  /** The blocklist range that matched; `undefined` when the text is not an IP address at all. */
  readonly range: IpRange | undefined;
  /** The IPv4 address embedded in `address` (IPv4-compatible, 6to4 or NAT64) that `range` matched, if that is what matched. */
  readonly embedded: string | undefined;
}

/**
 * The IPv4 address an IPv6 transition address leads to, if any: IPv4-compatible `::a.b.c.d`
 * (RFC 4291 §2.5.5.1), 6to4 `2002:AABB:CCDD::/48` (RFC 3056 §2) and the NAT64 well-known prefix
 * `64:ff9b::a.b.c.d` (RFC 6052 §2.1). (IPv4-mapped addresses are already IPv4 once packed.)
 */
function embeddedIPv4(words: readonly [number, number, number, number]): number | undefined {
  const [w0, w1, w2, w3] = words;
  if (w0 === 0 && w1 === 0 && w2 === 0) return w3;
  if (w0 >>> 16 === 0x2002) return (((w0 & 0xffff) << 16) | (w1 >>> 16)) >>> 0;
  if (w0 === 0x0064ff9b && w1 === 0 && w2 === 0) return w3;
  return undefined;
}

/**
 * The compiled `ipBlocklist` and `ipAllowlist`. Immutable; built once by `compileEgressConfig`.
 *
 * An address is allowed when the allowlist contains it. Otherwise it is refused when the blocklist
 * contains it or the IPv4 address embedded in it (see `DEFAULT_IP_BLOCKLIST`). An allowlisted
 * IPv4 address does not open its 6to4 or NAT64 forms: those reach it through a relay, not directly.
 */
export class IpFilter {
  readonly blocklist: IpRangeSet;
  readonly allowlist: IpRangeSet;

  constructor(blocklist: IpRangeSet, allowlist: IpRangeSet) {
    this.blocklist = blocklist;
    this.allowlist = allowlist;
    Object.freeze(this);
  }

  /** True when the blocklist is empty: nothing can be refused. */
  get isOff(): boolean {
    return this.blocklist.isEmpty;
  }

  /**
   * Why `address` must not be connected to, or `undefined` when it may be. Text that is not an IP
   * address is refused (fail closed): a resolver that answers something else is not trusted.
   */
  check(address: PackedAddress | string): BlockedAddress | undefined {
    if (this.blocklist.isEmpty) return undefined;
    const packed = typeof address === 'string' ? parseAddress(address) : address;
    if (packed === undefined) return { address: address as string, range: undefined, embedded: undefined };
    if (this.allowlist.match(packed) !== undefined) return undefined;
    const range = this.blocklist.match(packed);
    if (range !== undefined) return { address: formatAddress(packed), range, embedded: undefined };
    if (packed.family === 6) {
      const v4 = embeddedIPv4(packed.words);
      if (v4 !== undefined) {
        const inner = this.blocklist.match({ family: 4, value: v4 });
        if (inner !== undefined) return { address: formatAddress(packed), range: inner, embedded: formatDottedQuad(v4) };
      }
    }
    return undefined;
  }

  /** True when `address` must not be connected to. */
  isBlocked(address: PackedAddress | string): boolean {
    return this.check(address) !== undefined;
  }
}
