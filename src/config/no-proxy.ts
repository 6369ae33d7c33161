/**
 * Parse a `no_proxy` value into rules and compile them into a matcher whose cost does not grow with
 * the number of entries: a hash lookup per host label suffix, per exact address, and per distinct
 * CIDR prefix length. Globs, the one exception, are checked last.
 *
 * Where we differ from common clients (docs/routing-rules.md#no_proxy): undici's EnvHttpProxyAgent and
 * proxy-from-env scan every entry per request and compare IPs as strings (so `2001:0db8::1` misses
 * `2001:db8::1` and CIDR ranges are unsupported); Go's httpproxy ignores invalid entries silently. We
 * compare addresses as addresses, support CIDR, give the forms found in real deployments (`10.*`,
 * `169.254/16`, `<local>`, URLs, globs) their evident meaning, and skip anything else with one warning
 * that names the entry, so a no_proxy shared with other tools never stops a homeserver from starting
 * (issue #12: 15% of public deployment values were refused before).
 * @module
 */
import { domainToASCII } from 'node:url';
import ipaddr from 'ipaddr.js';
import { ProxyConfigError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { ipToString, parseIpLiteral, type IpAddress, type Target } from '../match/target.js';

/** One compiled `no_proxy` entry. `entry` is the text as written (credentials redacted), for explanations. */
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
  | { readonly kind: 'cidr'; readonly entry: string; readonly network: string; readonly prefixLength: number }
  | {
      readonly kind: 'glob';
      readonly entry: string;
      /** Lowercase pattern over the whole host; `*` stands for any run of characters, dots included. */
      readonly pattern: string;
      /** True for a leading-dot glob (`.mirrors.*`): subdomains of a match match too. */
      readonly includeSubdomains: boolean;
      readonly port: number | undefined;
    }
  /** Windows' `<local>`: every host name without a dot (never an IP literal). */
  | { readonly kind: 'local'; readonly entry: string };

/** A `no_proxy` entry that was not understood and is ignored (tolerant mode). */
export interface NoProxySkippedEntry {
  /** 1-based position of the entry in the list. */
  readonly position: number;
  /** The entry as written, credentials redacted. */
  readonly entry: string;
  /** What is wrong and what the entry would need to be. */
  readonly problem: string;
  /** The warning logged for it: source, position, entry and problem in one line. */
  readonly warning: string;
}

/** Options of {@link compileNoProxy}. */
export interface NoProxyCompileOptions {
  /**
   * Throw a {@link ProxyConfigError} for the first entry that is not understood instead of skipping it.
   * **Default:** `false` (skip it and record a warning in {@link NoProxyMatcher.skipped}).
   */
  readonly strict?: boolean | undefined;
}

type DomainRule = Extract<NoProxyRule, { kind: 'domain' }>;
type IpRule = Extract<NoProxyRule, { kind: 'ip' }>;
type CidrRule = Extract<NoProxyRule, { kind: 'cidr' }>;
type GlobRule = Extract<NoProxyRule, { kind: 'glob' }>;

/** The compiled `no_proxy` list. Immutable; build with {@link compileNoProxy}. */
export class NoProxyMatcher {
  /** Every rule, in the order written. */
  readonly rules: readonly NoProxyRule[];
  /** Entries that were not understood and are ignored, in the order written. Empty under `strict`. */
  readonly skipped: readonly NoProxySkippedEntry[];
  readonly #all: NoProxyRule | undefined;
  readonly #local: NoProxyRule | undefined;
  readonly #domains = new Map<string, DomainRule[]>();
  readonly #ips = new Map<string, IpRule[]>();
  /** IPv4 ranges: prefix length → network as an unsigned 32-bit number (host bits zero) → rule. */
  readonly #v4 = new Map<number, Map<number, CidrRule>>();
  /** IPv6 ranges: prefix length → masked network key → rule. */
  readonly #v6 = new Map<number, Map<string, CidrRule>>();
  readonly #v4Lengths: number[];
  readonly #v6Lengths: number[];
  readonly #globs: GlobRule[] = [];

  /** @internal Use {@link compileNoProxy}. */
  constructor(rules: readonly NoProxyRule[], skipped: readonly NoProxySkippedEntry[] = []) {
    this.rules = Object.freeze([...rules]);
    this.skipped = Object.freeze(skipped.map((s) => Object.freeze({ ...s })));
    let all: NoProxyRule | undefined;
    let local: NoProxyRule | undefined;
    for (const rule of this.rules) {
      switch (rule.kind) {
        case 'all':
          all ??= rule;
          break;
        case 'local':
          local ??= rule;
          break;
        case 'domain':
          appendTo(this.#domains, rule.suffix, rule);
          break;
        case 'ip':
          appendTo(this.#ips, rule.address, rule);
          break;
        case 'glob':
          this.#globs.push(rule);
          break;
        case 'cidr': {
          const address = ipaddr.parse(rule.network);
          if (address.kind() === 'ipv4') {
            firstWins(this.#v4, rule.prefixLength, v4Network(v4Number(address), rule.prefixLength), rule);
          } else {
            firstWins(this.#v6, rule.prefixLength, v6NetworkKey((address as ipaddr.IPv6).parts, rule.prefixLength), rule);
          }
          break;
        }
      }
    }
    this.#all = all;
    this.#local = local;
    this.#v4Lengths = [...this.#v4.keys()].sort((a, b) => b - a);
    this.#v6Lengths = [...this.#v6.keys()].sort((a, b) => b - a);
    Object.freeze(this);
  }

  /** True when the list has no rule (skipped entries do not count). */
  get isEmpty(): boolean {
    return this.rules.length === 0;
  }

  /** The warnings of the skipped entries, one per entry. */
  get warnings(): readonly string[] {
    return this.skipped.map((s) => s.warning);
  }

  /** The first rule (most specific) that sends `target` direct, or `undefined` when it goes through the proxy. */
  match(target: Target): NoProxyRule | undefined {
    if (this.#all) return this.#all;
    const found = target.ip === undefined ? this.#matchName(target) : this.#matchIp(target.ip, target.host, target.port);
    if (found !== undefined || this.#globs.length === 0) return found;
    return this.#matchGlob(target);
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
      if (dot === -1) return isApex ? this.#local : undefined;
      suffix = suffix.slice(dot + 1);
      isApex = false;
    }
  }

  /** `host` is the canonical text of `ip` (see {@link Target.host}), the key of exact-address rules. */
  #matchIp(ip: IpAddress, host: string, port: number): NoProxyRule | undefined {
    if (this.#ips.size > 0) {
      const exact = this.#ips.get(host);
      if (exact) {
        for (const rule of exact) if (portMatches(rule.port, port)) return rule;
      }
    }
    if (ip.kind() === 'ipv4') {
      if (this.#v4Lengths.length === 0) return undefined;
      const value = v4Number(ip);
      for (const length of this.#v4Lengths) {
        const hit = this.#v4.get(length)?.get(v4Network(value, length));
        if (hit) return hit;
      }
      return undefined;
    }
    const parts = (ip as ipaddr.IPv6).parts;
    for (const length of this.#v6Lengths) {
      const hit = this.#v6.get(length)?.get(v6NetworkKey(parts, length));
      if (hit) return hit;
    }
    return undefined;
  }

  #matchGlob(target: Target): NoProxyRule | undefined {
    for (const rule of this.#globs) {
      if (!portMatches(rule.port, target.port)) continue;
      if (globMatch(rule.pattern, target.host)) return rule;
      if (rule.includeSubdomains) {
        for (let dot = target.host.indexOf('.'); dot !== -1; dot = target.host.indexOf('.', dot + 1)) {
          if (globMatch(rule.pattern, target.host.slice(dot + 1))) return rule;
        }
      }
    }
    return undefined;
  }
}

function appendTo<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function firstWins<K>(byLength: Map<number, Map<K, CidrRule>>, length: number, key: K, rule: CidrRule): void {
  let byKey = byLength.get(length);
  if (byKey === undefined) byLength.set(length, (byKey = new Map<K, CidrRule>()));
  if (!byKey.has(key)) byKey.set(key, rule);
}

function portMatches(rulePort: number | undefined, port: number): boolean {
  return rulePort === undefined || rulePort === port;
}

/** The address as an unsigned 32-bit number. */
function v4Number(address: IpAddress): number {
  const [a = 0, b = 0, c = 0, d = 0] = (address as ipaddr.IPv4).octets;
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
}

/** The first `prefixLength` bits of an IPv4 number, host bits zeroed. */
function v4Network(value: number, prefixLength: number): number {
  return prefixLength === 0 ? 0 : (value & (0xffffffff << (32 - prefixLength))) >>> 0;
}

/**
 * The first `prefixLength` bits of an IPv6 address (its eight 16-bit groups) as a string key: one
 * UTF-16 code unit per group, host bits zeroed (the prefix length is the key of the outer map).
 */
function v6NetworkKey(parts: readonly number[], prefixLength: number): string {
  let key = '';
  let remaining = prefixLength;
  for (const part of parts) {
    if (remaining <= 0) break;
    key += String.fromCharCode(remaining >= 16 ? part : part & (0xffff << (16 - remaining)) & 0xffff);
    remaining -= 16;
  }
  return key;
}

/**
 * Wildcard match where `*` is any run of characters. Linear backtracking to the last star, so a
 * pattern of many stars costs O(pattern × host), never the exponential time of a naive regex.
 */
function globMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== '*' && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === '*') {
      star = p++;
      mark = t;
    } else if (star !== -1) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++;
  return p === pattern.length;
}

/** An entry that is not understood: skipped with a warning, or an error under `strict`. */
class EntryProblem extends Error {
  constructor(readonly problem: string) {
    super(problem);
  }
}

type Fail = (problem: string) => never;
const fail: Fail = (problem) => {
  throw new EntryProblem(problem);
};

// Commas, semicolons (Windows and some CI tools) and whitespace separate entries (SPEC §3 in
// docs/routing-rules.md); other control characters are not separators and stay an error.
const SEPARATORS = /([\s,;]+)/;

/**
 * Split a value into entries. A CIDR range broken by spaces (`192.168.0.0/ 16`, `10.0.0.0 /8`) is
 * kept as one entry so its warning names the real problem instead of two meaningless halves.
 */
function splitEntries(value: string): string[] {
  const parts = value.split(SEPARATORS);
  const entries: string[] = [];
  for (let i = 0; i < parts.length; i += 2) {
    let text = parts[i] ?? '';
    if (text.length === 0) continue;
    for (;;) {
      const separator = parts[i + 1];
      const next = parts[i + 2];
      if (separator === undefined || next === undefined || !/^[ \t]+$/.test(separator)) break;
      const joins =
        (text.endsWith('/') && /^[0-9]{1,3}$/.test(next)) || (/^\/[0-9]*$/.test(next) && /^[0-9a-fA-F.:[\]]+$/.test(text));
      if (!joins) break;
      text += separator + next;
      i += 2;
    }
    entries.push(text);
  }
  return entries;
}

/**
 * Parse and compile a `no_proxy` value. Entries are separated by commas, semicolons and/or whitespace.
 * An entry that is neither a host, domain, IP address, CIDR range nor one of the forms found in real
 * deployments is skipped and recorded in {@link NoProxyMatcher.skipped} (or refused under `strict`).
 * @param source The variable or option name, for messages (e.g. `NO_PROXY`).
 * @throws {@link ProxyConfigError} for control characters (NUL, ESC, DEL, …) in any mode, and under
 * `strict` for the first entry that is not understood, naming the entry and its position.
 */
export function compileNoProxy(value: string, source = 'no_proxy', options: NoProxyCompileOptions = {}): NoProxyMatcher {
  const rules: NoProxyRule[] = [];
  const skipped: NoProxySkippedEntry[] = [];
  splitEntries(value).forEach((text, index) => {
    const where = `${source} entry ${String(index + 1)}`;
    const shown = redactUrl(text);
    // SPEC §3: control characters mean corruption or an attack, not a habit: an error in every mode.
    // eslint-disable-next-line no-control-regex -- control characters are exactly what we refuse
    if (/[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/.test(text)) {
      throw new ProxyConfigError(where, 'control characters are not allowed', shown.replace(/\p{Cc}/gu, '?'));
    }
    try {
      rules.push(parseEntry(text, shown));
    } catch (error) {
      if (!(error instanceof EntryProblem)) throw error;
      if (options.strict === true) throw new ProxyConfigError(where, error.problem, shown);
      skipped.push({
        position: index + 1,
        entry: shown,
        problem: error.problem,
        warning: `${where} (${JSON.stringify(shown)}) skipped: ${error.problem}`,
      });
    }
  });
  return new NoProxyMatcher(rules, skipped);
}

const URL_SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

function parseEntry(text: string, shown: string): NoProxyRule {
  if (/\s/.test(text)) {
    fail(`a CIDR range is written without spaces (${JSON.stringify(text.replace(/\s+/g, ''))})`);
  }
  if (text === '*') return { kind: 'all', entry: text };
  if (/["'`]/.test(text)) fail('quotes are not part of an entry; remove them from the value (a quoted value in a compose or .env file keeps its quotes)');
  if (text.toLowerCase() === '<local>') return { kind: 'local', entry: text };

  const scheme = URL_SCHEME.exec(text)?.[0];
  if (scheme !== undefined) {
    // A URL written as an entry (`http://localhost:8080`, `https://registry.example:5000/`) means its host[:port].
    const afterScheme = text.slice(scheme.length);
    const authority = afterScheme.split(/[/?#]/, 1)[0] ?? '';
    const hostPort = authority.slice(authority.lastIndexOf('@') + 1);
    if (hostPort.length === 0) fail('the URL has no host; write the host name or address alone');
    try {
      return parseHostEntry(hostPort, shown, false);
    } catch (error) {
      if (error instanceof EntryProblem) fail(`the URL's host: ${error.problem}`);
      throw error;
    }
  }
  if (text.includes('@')) {
    fail('an entry names a host, not user credentials; write the host alone (or a URL with a scheme)');
  }
  // One trailing `/` is ignored (`127.0.0.1/`, `example.com/`).
  const body = text.length > 1 && text.endsWith('/') && !text.endsWith('//') ? text.slice(0, -1) : text;
  return parseHostEntry(body, shown, true);
}

/** Parse a host, domain, address, range or glob, with an optional port. */
function parseHostEntry(text: string, entry: string, allowCidr: boolean): NoProxyRule {
  if (/[?#]/.test(text)) fail('a query or fragment is not part of a host; write the host name or address alone');
  const slash = text.indexOf('/');
  if (slash !== -1) {
    if (!allowCidr) fail('a URL host cannot be a CIDR range');
    return parseCidr(entry, text.slice(0, slash), text.slice(slash + 1));
  }

  // [v6] or [v6]:port
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) fail('the IPv6 address has no closing bracket ("[address]" or "[address]:port")');
    const after = text.slice(close + 1);
    if (after.length > 0 && !after.startsWith(':')) fail('only ":port" may follow a bracketed IPv6 address');
    const inside = text.slice(1, close);
    const ip = parseIpLiteral(inside);
    if (ip === undefined || !inside.includes(':')) fail('the text in brackets must be an IPv6 address');
    return ipRule(entry, ip, after.length > 0 ? parsePort(after.slice(1)) : undefined);
  }

  // A bare IPv6 address (two or more colons); an unbracketed IPv6 address cannot carry a port.
  if ((text.match(/:/g)?.length ?? 0) >= 2) {
    if (text.includes('%')) fail('an IPv6 zone index ("%eth0") is not supported; write the address without it');
    const ip = parseIpLiteral(text);
    if (ip === undefined) fail('not a valid IPv6 address (write [address]:port to add a port)');
    return ipRule(entry, ip, undefined);
  }

  const colon = text.indexOf(':');
  const hostPart = colon === -1 ? text : text.slice(0, colon);
  const port = colon === -1 ? undefined : parsePort(text.slice(colon + 1));
  if (hostPart.length === 0) fail('the entry has no host before the port');

  // One trailing dot is ignored (SPEC §3), for address entries too: `10.0.0.1.` is `10.0.0.1`.
  const ip = parseIpLiteral(hostPart.endsWith('.') ? hostPart.slice(0, -1) : hostPart);
  if (ip !== undefined) return ipRule(entry, ip, port);
  const prefix = ipv4Prefix(hostPart);
  if (prefix !== undefined) {
    if (port !== undefined) fail(`an IPv4 prefix cannot carry a port; write ${prefix.network}/${String(prefix.prefixLength)} without ":port"`);
    return { kind: 'cidr', entry, network: prefix.network, prefixLength: prefix.prefixLength };
  }
  if (hostPart.includes('*') && !(hostPart.startsWith('*.') && !hostPart.slice(2).includes('*'))) {
    return globRule(entry, hostPart, port);
  }
  return domainRule(entry, hostPart, port);
}

const OCTET = /^(?:0|[1-9][0-9]{0,2})$/;

/**
 * The IPv4 prefix forms of real deployments: `10.*`, `192.168.*.*`, `192.168.` (one to three
 * decimal numbers, then `.` or `.*` groups up to four parts). `undefined` for anything else.
 */
function ipv4Prefix(host: string): { network: string; prefixLength: number } | undefined {
  const match = /^([0-9]{1,3}(?:\.[0-9]{1,3}){0,2})\.((?:\*(?:\.\*)*)?)$/.exec(host);
  if (match === null) return undefined;
  const octets = (match[1] ?? '').split('.');
  const stars = match[2] === '' ? 0 : (match[2] ?? '').split('.').length;
  if (octets.length + stars > 4) fail('an IPv4 address has four numbers; this prefix has more');
  if (!octets.every((o) => OCTET.test(o) && Number(o) <= 255)) {
    fail('each number of an IPv4 prefix must be a decimal from 0 to 255 (e.g. 10.* or 192.168.*)');
  }
  const network = [...octets, '0', '0', '0'].slice(0, 4).join('.');
  return { network, prefixLength: octets.length * 8 };
}

function ipRule(entry: string, ip: IpAddress, port: number | undefined): IpRule {
  return { kind: 'ip', entry, address: ipToString(ip), port };
}

function parsePort(raw: string): number {
  if (!/^[0-9]{1,5}$/.test(raw) || Number(raw) < 1 || Number(raw) > 65535) {
    fail(`the port must be a number from 1 to 65535 (got ${JSON.stringify(raw)})`);
  }
  return Number(raw);
}

function parseCidr(entry: string, rawAddress: string, rawPrefix: string): CidrRule {
  if (rawPrefix.includes('/')) fail('an entry is a host or a CIDR range; a path is not part of it');
  const portColon = rawPrefix.indexOf(':');
  if (portColon !== -1) {
    fail(`a CIDR range cannot carry a port; write ${rawAddress}/${rawPrefix.slice(0, portColon)} without ":port"`);
  }
  let address = parseIpLiteral(rawAddress);
  // Shorthand CIDR (`169.254/16`, Docker for Mac): missing trailing numbers are zeros.
  if (address === undefined && /^[0-9]{1,3}(?:\.[0-9]{1,3}){0,2}$/.test(rawAddress)) {
    const octets = rawAddress.split('.');
    if (octets.every((o) => OCTET.test(o) && Number(o) <= 255)) address = parseIpLiteral([...octets, '0', '0', '0'].slice(0, 4).join('.'));
  }
  if (address === undefined) {
    if (/[g-z_]/i.test(rawAddress) && !rawAddress.includes(':')) {
      fail('a host followed by a path; write the host alone, or a URL with a scheme (http://host/)');
    }
    fail('a CIDR range starts with an IP address (10.0.0.0/8, fd00::/8)');
  }
  if (!/^[0-9]{1,3}$/.test(rawPrefix)) {
    fail(`the CIDR prefix length must be a number (got ${JSON.stringify(rawPrefix)}), e.g. 10.0.0.0/8`);
  }
  let prefixLength = Number(rawPrefix);
  let ip: IpAddress = address;
  const wasMappedV6 = ip.kind() === 'ipv4' && rawAddress.includes(':');
  if (wasMappedV6) {
    // ::ffff:10.0.0.0/104 is the IPv4 range 10.0.0.0/8 written in IPv6 form.
    if (prefixLength < 96 || prefixLength > 128) fail('an IPv4-mapped IPv6 range needs a prefix length from 96 to 128');
    prefixLength -= 96;
  }
  const max = ip.kind() === 'ipv4' ? 32 : 128;
  if (prefixLength > max) fail(`the CIDR prefix length must be from 0 to ${String(max)} (got ${rawPrefix})`);
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

const HOST_TEXT = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

function globRule(entry: string, rawHost: string, port: number | undefined): GlobRule {
  let pattern = rawHost.toLowerCase().replace(/\*+/g, '*').replace(/\.$/, '');
  const includeSubdomains = pattern.startsWith('.');
  if (includeSubdomains) pattern = pattern.slice(1);
  const ascii = pattern
    .split('*')
    .map((part) => (/^[\x20-\x7e]*$/.test(part) ? part : domainToASCII(`x${part}x`).slice(1, -1)))
    .join('*');
  if (!/^[a-z0-9_.*-]+$/.test(ascii) || ascii.includes('..')) {
    fail('a glob uses letters, digits, "-", "_", "." and "*" only (e.g. *.internal or mirrors.*)');
  }
  return { kind: 'glob', entry, pattern: ascii, includeSubdomains, port };
}

function domainRule(entry: string, rawHost: string, port: number | undefined): DomainRule {
  let host = rawHost;
  let includeApex = true;
  if (host.startsWith('*.')) {
    includeApex = false;
    host = host.slice(2);
  } else if (host.startsWith('.')) {
    host = host.slice(1);
  }
  host = host.replace(/\.$/, '');
  if (host.length === 0) fail('the entry has no host');
  const labels = host.split('.');
  const last = labels[labels.length - 1] ?? '';
  if (labels.every((label) => /^[0-9]+$/.test(label))) {
    if (labels.length === 1) {
      fail('a bare number is neither a host nor an IP address; write a full address (10.0.0.1), a range (10.0.0.0/8) or a prefix (10.*)');
    }
    if (labels.length < 4) {
      fail(`an incomplete IPv4 address is ambiguous; write a full address, a range (${[...labels, '0', '0'].slice(0, 4).join('.')}/${String(labels.length * 8)}) or a prefix (${labels.join('.')}.*)`);
    }
    fail('not a valid IPv4 address: four decimal numbers from 0 to 255 (e.g. 10.0.0.1)');
  }
  if (/^(?:[0-9]+|0x[0-9a-f]*)$/i.test(last)) {
    fail('the last label of a host name cannot be a number, and IPv4 addresses are four decimal numbers (e.g. 127.0.0.1)');
  }
  const ascii = domainToASCII(host);
  if (ascii.length === 0 || !HOST_TEXT.test(ascii)) {
    fail('not a host, domain, IP address, CIDR range or URL: a host name is letters, digits, "-" and "_" in dot-separated labels');
  }
  return { kind: 'domain', entry, suffix: ascii, includeApex, port };
}
