/**
 * Parse a `no_proxy` value into rules and compile them into a matcher whose cost does not grow with
 * the number of entries: a hash lookup per host label suffix, per exact address, and per distinct
 * CIDR prefix length.
 *
 * Where we differ from common clients (SPEC §3): undici's EnvHttpProxyAgent and proxy-from-env scan
 * every entry per request and compare IPs as strings (so `2001:0db8::1` misses `2001:db8::1` and
 * CIDR ranges are unsupported); Go's httpproxy ignores invalid entries silently. We compare addresses
 * as addresses, support CIDR, and refuse an invalid entry at start-up.
 * @module
 */
import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';
import { ProxyConfigError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { ipToString, parseIpLiteral, type IpAddress, type Target } from '../match/target.js';

/** One compiled `no_proxy` entry. `entry` is the text as written, for explanations. */
export type NoProxyRule =
  | { readonly kind: 'all'; readonly entry: string }
  | {
      readonly kind: 'domain';
      readonly entry: string;
      /** Lowercase ASCII domain without leading or trailing dot. */
      readonly suffix: string;
      /** False for `*.example.com` (subdomains only). */
      readonly includeApex: boolean;
      readonly port: number | undefined;
    }
  | { readonly kind: 'ip'; readonly entry: string; readonly address: string; readonly port: number | undefined }
  | { readonly kind: 'cidr'; readonly entry: string; readonly network: string; readonly prefixLength: number };

type DomainRule = Extract<NoProxyRule, { kind: 'domain' }>;
type IpRule = Extract<NoProxyRule, { kind: 'ip' }>;
type CidrRule = Extract<NoProxyRule, { kind: 'cidr' }>;

/** The compiled `no_proxy` list. Immutable; build with {@link compileNoProxy}. */
export class NoProxyMatcher {
  /** Every rule, in the order written. */
  readonly rules: readonly NoProxyRule[];
  readonly #all: NoProxyRule | undefined;
  readonly #domains = new Map<string, DomainRule[]>();
  readonly #ips = new Map<string, IpRule[]>();
  /** Per family: prefix length → masked network key → rule. Lengths kept longest first. */
  readonly #cidrs = { ipv4: new Map<number, Map<string, CidrRule>>(), ipv6: new Map<number, Map<string, CidrRule>>() };
  readonly #cidrLengths: { ipv4: number[]; ipv6: number[] };

  /** @internal Use {@link compileNoProxy}. */
  constructor(rules: readonly NoProxyRule[]) {
    this.rules = Object.freeze([...rules]);
    let all: NoProxyRule | undefined;
    for (const rule of this.rules) {
      switch (rule.kind) {
        case 'all':
          all ??= rule;
          break;
        case 'domain':
          appendTo(this.#domains, rule.suffix, rule);
          break;
        case 'ip':
          appendTo(this.#ips, rule.address, rule);
          break;
        case 'cidr': {
          const address = ipaddr.parse(rule.network);
          const family = this.#cidrs[address.kind()];
          let byKey = family.get(rule.prefixLength);
          if (byKey === undefined) family.set(rule.prefixLength, (byKey = new Map<string, CidrRule>()));
          const key = networkKey(address, rule.prefixLength);
          if (!byKey.has(key)) byKey.set(key, rule);
          break;
        }
      }
    }
    this.#all = all;
    const longestFirst = (m: Map<number, unknown>): number[] => [...m.keys()].sort((a, b) => b - a);
    this.#cidrLengths = { ipv4: longestFirst(this.#cidrs.ipv4), ipv6: longestFirst(this.#cidrs.ipv6) };
    Object.freeze(this);
  }

  /** True when the list is empty. */
  get isEmpty(): boolean {
    return this.rules.length === 0;
  }

  /** The first rule (most specific) that sends `target` direct, or `undefined` when it goes through the proxy. */
  match(target: Target): NoProxyRule | undefined {
    if (this.#all) return this.#all;
    return target.ip === undefined ? this.#matchName(target) : this.#matchIp(target.ip, target.port);
  }

  #matchName(target: Target): NoProxyRule | undefined {
    // Walk the label suffixes of the host: a.b.example.com, b.example.com, example.com, com.
    let suffix = target.host;
    let isApex = true;
    for (;;) {
      const candidates = this.#domains.get(suffix);
      if (candidates) {
        for (const rule of candidates) {
          if ((isApex ? rule.includeApex : true) && portMatches(rule.port, target.port)) return rule;
        }
      }
      const dot = suffix.indexOf('.');
      if (dot === -1) return undefined;
      suffix = suffix.slice(dot + 1);
      isApex = false;
    }
  }

  #matchIp(ip: IpAddress, port: number): NoProxyRule | undefined {
    const exact = this.#ips.get(ipToString(ip));
    if (exact) {
      for (const rule of exact) if (portMatches(rule.port, port)) return rule;
    }
    const kind = ip.kind();
    const family = this.#cidrs[kind];
    for (const length of this.#cidrLengths[kind]) {
      const hit = family.get(length)?.get(networkKey(ip, length));
      if (hit) return hit;
    }
    return undefined;
  }
}

function appendTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function portMatches(rulePort: number | undefined, port: number): boolean {
  return rulePort === undefined || rulePort === port;
}

/** The first `prefixLength` bits of the address, as a string key. */
function networkKey(address: IpAddress, prefixLength: number): string {
  const bytes = address.toByteArray();
  let key = '';
  let remaining = prefixLength;
  for (const byte of bytes) {
    if (remaining <= 0) break;
    const kept = remaining >= 8 ? byte : byte & (0xff << (8 - remaining)) & 0xff;
    key += kept.toString(16).padStart(2, '0');
    remaining -= 8;
  }
  return `${String(prefixLength)}/${key}`;
}

const PORT = /^[0-9]{1,5}$/;

/**
 * Parse and compile a `no_proxy` value. Entries are separated by commas and/or whitespace.
 * @param source The variable or option name, for error messages (e.g. `NO_PROXY`).
 * @throws {@link ProxyConfigError} naming the entry and its position when any entry is invalid.
 */
export function compileNoProxy(value: string, source = 'no_proxy'): NoProxyMatcher {
  const entries = value.split(/[\s,]+/).filter((entry) => entry.length > 0);
  const rules = entries.map((entry, index) => parseEntry(entry, index, source));
  return new NoProxyMatcher(rules);
}

function parseEntry(entry: string, index: number, source: string): NoProxyRule {
  const fail = (problem: string): never => {
    throw new ProxyConfigError(`${source} entry ${String(index + 1)}`, problem, redactUrl(entry));
  };
  // eslint-disable-next-line no-control-regex -- control characters are exactly what we refuse
  if (/[\u0000-\u001f\u007f]/.test(entry)) fail('control characters are not allowed');
  if (entry === '*') return { kind: 'all', entry };
  if (entry.includes('://') || /[/?#@]/.test(entry.replace(/\/[0-9]+$/, ''))) {
    fail('an entry is a host, domain, IP address or CIDR range, not a URL');
  }

  // CIDR: address/prefix, IPv4 or IPv6 (brackets optional around the address).
  const slash = entry.indexOf('/');
  if (slash !== -1) return parseCidr(entry, entry.slice(0, slash), entry.slice(slash + 1), fail);

  // [v6] or [v6]:port
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    if (close === -1) fail('the IPv6 address has no closing bracket');
    const after = entry.slice(close + 1);
    if (after.length > 0 && !after.startsWith(':')) fail('unexpected text after the bracketed IPv6 address');
    const ip = parseIpLiteral(entry.slice(1, close));
    if (ip === undefined || !entry.slice(1, close).includes(':')) fail('the bracketed text is not an IPv6 address');
    return ipRule(entry, ip as IpAddress, after.length > 0 ? parsePort(after.slice(1), fail) : undefined);
  }

  // A bare IPv6 address (two or more colons); an unbracketed IPv6 address cannot carry a port.
  if ((entry.match(/:/g)?.length ?? 0) >= 2) {
    const ip = parseIpLiteral(entry);
    if (ip === undefined) fail('not a valid IPv6 address (write [address]:port to add a port)');
    return ipRule(entry, ip as IpAddress, undefined);
  }

  const colon = entry.indexOf(':');
  const hostPart = colon === -1 ? entry : entry.slice(0, colon);
  const port = colon === -1 ? undefined : parsePort(entry.slice(colon + 1), fail);

  // One trailing dot is ignored (SPEC §3), for address entries too: `10.0.0.1.` is `10.0.0.1`.
  const ip = parseIpLiteral(hostPart.endsWith('.') ? hostPart.slice(0, -1) : hostPart);
  if (ip !== undefined) return ipRule(entry, ip, port);
  return domainRule(entry, hostPart, port, fail);
}

function ipRule(entry: string, ip: IpAddress, port: number | undefined): IpRule {
  return { kind: 'ip', entry, address: ipToString(ip), port };
}

function parsePort(raw: string, fail: (problem: string) => never): number {
  if (!PORT.test(raw)) fail('the port must be a number from 1 to 65535');
  const port = Number(raw);
  if (port < 1 || port > 65535) fail('the port must be a number from 1 to 65535');
  return port;
}

function parseCidr(entry: string, rawAddress: string, rawPrefix: string, fail: (problem: string) => never): CidrRule {
  const address = parseIpLiteral(rawAddress);
  if (address === undefined) fail('the CIDR range does not start with a valid IP address');
  if (!/^[0-9]{1,3}$/.test(rawPrefix)) fail('the CIDR prefix length must be a number');
  let prefixLength = Number(rawPrefix);
  let ip: IpAddress = address;
  const wasMappedV6 = ip.kind() === 'ipv4' && rawAddress.includes(':');
  if (wasMappedV6) {
    // ::ffff:10.0.0.0/104 is the IPv4 range 10.0.0.0/8 written in IPv6 form.
    if (prefixLength < 96 || prefixLength > 128) fail('an IPv4-mapped IPv6 range needs a prefix length from 96 to 128');
    prefixLength -= 96;
  }
  const max = ip.kind() === 'ipv4' ? 32 : 128;
  if (prefixLength > max) fail(`the CIDR prefix length must be from 0 to ${String(max)}`);
  // Host bits set (10.1.2.3/8) are accepted and mean the enclosing range.
  ip = ipaddr.fromByteArray(maskBytes(ip.toByteArray(), prefixLength));
  return { kind: 'cidr', entry, network: ipToString(ip), prefixLength };
}

function maskBytes(bytes: number[], prefixLength: number): number[] {
  return bytes.map((byte, i) => {
    const bitsHere = Math.max(0, Math.min(8, prefixLength - i * 8));
    return byte & (0xff << (8 - bitsHere)) & 0xff;
  });
}

function domainRule(entry: string, rawHost: string, port: number | undefined, fail: (problem: string) => never): DomainRule {
  let host = rawHost;
  let includeApex = true;
  if (host.startsWith('*.')) {
    includeApex = false;
    host = host.slice(2);
  } else if (host.startsWith('.')) {
    host = host.slice(1);
  }
  if (host.includes('*')) fail('"*" is allowed only as the whole entry or as a leading "*." label');
  host = host.replace(/\.$/, '');
  if (host.length === 0) fail('the entry has no host');
  const labels = host.split('.');
  const last = labels[labels.length - 1] ?? '';
  if (/^(?:[0-9]+|0x[0-9a-f]*)$/i.test(last)) {
    fail('a partial or non-decimal IPv4 address is not a host; write a full address or a CIDR range such as 10.0.0.0/8');
  }
  const ascii = domainToASCII(host);
  if (ascii.length === 0 || !/^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/.test(ascii)) fail('not a valid host or domain name');
  return { kind: 'domain', entry, suffix: ascii, includeApex, port };
}
