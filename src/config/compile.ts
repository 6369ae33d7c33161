/**
 * Merge options over the environment into one frozen, pre-parsed {@link EgressConfig}. The only place
 * where defaults live.
 * @module
 */
import type { LookupFunction } from 'node:net';
import { inspect } from 'node:util';
import { ProxyConfigError } from '../errors.js';
import { readProxyEnv, type EnvRecord, type RawEnvValue } from './env.js';
import { parseProxyUrl, type ProxyEndpoint } from './proxy-url.js';
import { compileNoProxy, type NoProxyMatcher } from './no-proxy.js';
import { mergeConfigFile } from './config-file.js';
import { builtInPolicies, type ConnectionTypePolicy, type Route } from '../policy/connection-types.js';
import { DEFAULT_IP_BLOCKLIST } from '../ssrf/default-blocklist.js';
import { IpFilter } from '../ssrf/ip-filter.js';
import { compileIpRanges } from '../ssrf/ip-set.js';

/** PEM text or DER/PEM bytes of one or more CA certificates. */
export type CaInput = string | Buffer | readonly (string | Buffer)[];

/** Where warnings go. `console` fits. */
export interface EgressLogger {
  warn(message: string): void;
}

/** Per-type settings of the `connectionTypes` option. */
export interface ConnectionTypeOptions {
  /** Route override. Required when registering a new type; not allowed to make an always-direct type proxied. */
  readonly route?: Route | undefined;
  /**
   * Check connections of this type against `ipBlocklist`: every address a direct connection resolves
   * to, and IP-literal URLs whatever the route. **Default:** per SPEC §4 (true for `push`,
   * `url_preview`, `federation`, `key_fetch`, `key_revocation`, `media` and new proxied types).
   */
  readonly ipBlocklist?: boolean | undefined;
}

/**
 * One entry of the `proxyRules` option: requests to `hosts` go through `proxy` (or direct, for
 * `null`), whatever `no_proxy` and the scheme's proxy say.
 */
export interface ProxyRuleOptions {
  /** Hosts this rule applies to, in the `no_proxy` grammar (`*.onion`, `example.org, 10.0.0.0/8`, `*`). */
  readonly hosts: string;
  /** A proxy URL of any supported scheme (`socks5h://127.0.0.1:9050`, `http://127.0.0.1:4444`), or `null` for a direct connection. */
  readonly proxy: string | null;
  /** Extra CA certificates trusted for origins reached through this rule (added to the system CAs and `ca`). */
  readonly ca?: CaInput | undefined;
}

/** A compiled `proxyRules` entry. Safe to print: its proxy redacts itself. */
export interface CompiledProxyRule {
  /** Position in `proxyRules`, from 0. */
  readonly index: number;
  /** The `hosts` value as written. */
  readonly hosts: string;
  readonly matcher: NoProxyMatcher;
  /** The proxy of the rule, or `null` for direct. */
  readonly proxy: ProxyEndpoint | null;
  /** The rule's own extra origin CAs, when it has some. */
  readonly ca: readonly (string | Buffer)[] | undefined;
}

/** Options of {@link compileEgressConfig} and `createEgress`. Every key is optional; `undefined` means "not given". */
export interface EgressOptions {
  /**
   * A JSON configuration file (docs/configuration.md#the-configuration-file) read once, synchronously.
   * Options given in code win per key over the file; the file wins over the environment variables.
   */
  readonly configFile?: string | undefined;
  /** The environment to read proxy variables from. **Default:** `process.env`, read once. */
  readonly env?: EnvRecord | undefined;
  /** Proxy for `http://` URLs. Wins over `http_proxy`; `null` or `""` disables it. */
  readonly httpProxy?: string | null | undefined;
  /** Proxy for `https://` URLs. Wins over `https_proxy`; `null` or `""` disables it. */
  readonly httpsProxy?: string | null | undefined;
  /** Hosts that go direct. Wins over `no_proxy`; `null` or `""` means none. */
  readonly noProxy?: string | null | undefined;
  /**
   * Refuse a `no_proxy` entry that is not understood with a {@link ProxyConfigError} instead of
   * skipping it with a warning. **Default:** `false` (tolerant: other tools share the variable).
   */
  readonly strictNoProxy?: boolean | undefined;
  /** Route overrides for built-in types and registration of new types. */
  readonly connectionTypes?: Readonly<Record<string, ConnectionTypeOptions>> | undefined;
  /** Extra CA certificates trusted for origins (added to the system CAs). */
  readonly ca?: CaInput | undefined;
  /** Extra CA certificates trusted for an `https://` proxy (added to the system CAs). */
  readonly proxyCa?: CaInput | undefined;
  /**
   * IP addresses and CIDR ranges (`10.0.0.0/8`, `fc00::/7`, `192.0.2.1`) that connections of checked
   * types (see `connectionTypes.<type>.ipBlocklist`) may not reach: checked on every address a direct
   * connection resolves to, and on IP-literal URLs whatever the route. `[]` turns the check off.
   * **Default:** {@link DEFAULT_IP_BLOCKLIST}.
   */
  readonly ipBlocklist?: readonly string[] | undefined;
  /** Addresses and CIDR ranges exempt from `ipBlocklist` (it wins over the blocklist). **Default:** `[]`. */
  readonly ipAllowlist?: readonly string[] | undefined;
  /**
   * The resolver for direct connections, with the signature of `net.connect()`'s `lookup` option
   * (it is called with `all: true`). For tests and custom DNS; the SSRF check applies to what it
   * answers. Names sent to a proxy are never resolved locally. **Default:** `dns.lookup`.
   */
  readonly lookup?: LookupFunction | undefined;
  /** Connect timeout in milliseconds, to the proxy and to direct origins. **Default:** `10000`. */
  readonly connectTimeout?: number | undefined;
  /**
   * Milliseconds to wait for a response's headers once a request is sent, on every route. For a
   * forwarded plain-http request this also covers the proxy's own connection to the origin.
   * **Default:** `60000` (undici's own default is 300 s, long enough for a silent proxy to pile
   * requests up).
   */
  readonly headersTimeout?: number | undefined;
  /** Receives warnings. **Default:** `console`. */
  readonly logger?: EgressLogger | undefined;
  /**
   * Per-destination proxies, tried in order; the first rule whose `hosts` match the request's host
   * decides its route, before `no_proxy` and the scheme's proxy. Applies to every connection type
   * whose route is `proxy`, never to the always-direct types nor to types configured `direct`.
   * Typical: `[{ hosts: '*.onion', proxy: 'socks5h://127.0.0.1:9050' }]`. **Default:** `[]`.
   */
  readonly proxyRules?: readonly ProxyRuleOptions[] | undefined;
  /**
   * Turns off certificate verification of both the proxy and the origin. For tests against servers
   * with throwaway certificates only; logs a warning once per egress. **Default:** `false`.
   */
  readonly useInsecureSslClientJustForTestingDoNotUse?: boolean | undefined;
}

/** Where each effective value came from: a variable name, `option <name>`, or `undefined` when unset. */
export interface ConfigSources {
  readonly httpProxy: string | undefined;
  readonly httpsProxy: string | undefined;
  readonly noProxy: string | undefined;
}

/** The compiled, frozen configuration. Safe to print: credentials are redacted everywhere. */
export interface EgressConfig {
  readonly httpProxy: ProxyEndpoint | undefined;
  readonly httpsProxy: ProxyEndpoint | undefined;
  readonly noProxy: NoProxyMatcher;
  readonly sources: ConfigSources;
  readonly connectionTypes: ReadonlyMap<string, ConnectionTypePolicy>;
  readonly ca: readonly (string | Buffer)[] | undefined;
  readonly proxyCa: readonly (string | Buffer)[] | undefined;
  readonly connectTimeout: number;
  readonly headersTimeout: number;
  readonly logger: EgressLogger;
  readonly insecureSkipVerify: boolean;
  /** The compiled `ipBlocklist` and `ipAllowlist`. */
  readonly ipFilter: IpFilter;
  /** The `lookup` option, when given; direct connections use `dns.lookup` otherwise. */
  readonly lookup: LookupFunction | undefined;
  /** The compiled `proxyRules`, in order. */
  readonly proxyRules: readonly CompiledProxyRule[];
}

/** Every key of {@link EgressOptions}; the configuration file accepts the data-valued ones. */
export const OPTION_KEYS: ReadonlySet<string> = new Set([
  'configFile',
  'env',
  'httpProxy',
  'httpsProxy',
  'noProxy',
  'strictNoProxy',
  'connectionTypes',
  'ca',
  'proxyCa',
  'connectTimeout',
  'headersTimeout',
  'logger',
  'useInsecureSslClientJustForTestingDoNotUse',
  'ipBlocklist',
  'ipAllowlist',
  'lookup',
  'proxyRules',
]);
const RULE_KEYS: ReadonlySet<string> = new Set(['hosts', 'proxy', 'ca']);
const TYPE_OPTION_KEYS: ReadonlySet<string> = new Set(['route', 'ipBlocklist']);
const TYPE_NAME = /^[a-z][a-z0-9_]{0,63}$/;

/** The default connect timeout, in milliseconds. */
export const DEFAULT_CONNECT_TIMEOUT = 10_000;

/** The default time to wait for response headers, in milliseconds. */
const DEFAULT_HEADERS_TIMEOUT = 60_000;

/**
 * Read the environment once, merge the options over it per key, parse and validate everything, and
 * return a frozen configuration. Mutating `options` or the env record afterwards changes nothing.
 * @throws {@link ProxyConfigError} for any invalid value, naming the variable or option path.
 */
export function compileEgressConfig(givenOptions: EgressOptions = {}): EgressConfig {
  validateOptionShape(givenOptions);
  const merged = givenOptions.configFile === undefined ? undefined : mergeConfigFile({ ...givenOptions, configFile: givenOptions.configFile });
  const options = merged?.options ?? givenOptions;
  const sourceOf = merged?.sourceOf ?? ((key: string) => `option ${key}`);
  const raw = readProxyEnv(options.env ?? process.env);

  const httpProxy = resolveProxy(options.httpProxy, sourceOf('httpProxy'), raw.httpProxy);
  const httpsProxy = resolveProxy(options.httpsProxy, sourceOf('httpsProxy'), raw.httpsProxy);
  const noProxyValue = resolveValue(options.noProxy, sourceOf('noProxy'), raw.noProxy);
  const noProxy = compileNoProxy(noProxyValue?.value ?? '', noProxyValue?.source ?? 'no_proxy', {
    strict: options.strictNoProxy ?? false,
  });
  const logger = options.logger ?? console;
  // One warning per skipped entry, once per egress (docs/configuration.md#tolerant-no_proxy).
  for (const warning of noProxy.warnings) logger.warn(`matrix-egress: ${warning}`);

  const config: EgressConfig = {
    httpProxy: httpProxy?.endpoint,
    httpsProxy: httpsProxy?.endpoint,
    noProxy,
    sources: Object.freeze({
      httpProxy: httpProxy?.source,
      httpsProxy: httpsProxy?.source,
      noProxy: noProxyValue !== undefined && !(noProxy.isEmpty && noProxy.skipped.length === 0) ? noProxyValue.source : undefined,
    }),
    connectionTypes: compileConnectionTypes(options.connectionTypes),
    ca: normaliseCa(options.ca, 'ca'),
    proxyCa: normaliseCa(options.proxyCa, 'proxyCa'),
    connectTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
    headersTimeout: options.headersTimeout ?? DEFAULT_HEADERS_TIMEOUT,
    logger,
    insecureSkipVerify: options.useInsecureSslClientJustForTestingDoNotUse ?? false,
    ipFilter: new IpFilter(
      // `null` is refused, not read as "default": for a blocklist the two readings are opposites.
      compileIpRanges(options.ipBlocklist === undefined ? DEFAULT_IP_BLOCKLIST : options.ipBlocklist, 'ipBlocklist'),
      compileIpRanges(options.ipAllowlist === undefined ? [] : options.ipAllowlist, 'ipAllowlist'),
    ),
    lookup: options.lookup,
    proxyRules: compileProxyRules(options.proxyRules),
  };
  Object.defineProperty(config, inspect.custom, { value: () => describeConfig(config), enumerable: false });
  Object.defineProperty(config, 'toJSON', { value: () => configToJSON(config), enumerable: false });
  return Object.freeze(config);
}

/** @param source Where the option came from: `option <name>`, or the configuration file and key. */
function resolveValue(option: string | null | undefined, source: string, fromEnv: RawEnvValue | undefined): RawEnvValue | undefined {
  if (option === undefined) return fromEnv;
  return { value: option ?? '', source };
}

function resolveProxy(
  option: string | null | undefined,
  source: string,
  fromEnv: RawEnvValue | undefined,
): { endpoint: ProxyEndpoint; source: string } | undefined {
  const chosen = resolveValue(option, source, fromEnv);
  if (chosen === undefined || chosen.value === '') return undefined;
  return { endpoint: parseProxyUrl(chosen.value, chosen.source), source: chosen.source };
}

function optionError(path: string, problem: string): ProxyConfigError {
  return new ProxyConfigError(`option ${path}`, problem);
}

function validateOptionShape(options: EgressOptions): void {
  if (typeof options !== 'object') throw optionError('(options)', 'options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw optionError(key, 'unknown option');
  }
  for (const key of ['httpProxy', 'httpsProxy', 'noProxy'] as const) {
    const value: unknown = options[key];
    if (value !== undefined && value !== null && typeof value !== 'string') throw optionError(key, 'must be a string or null');
  }
  const env: unknown = options.env;
  if (env !== undefined && (typeof env !== 'object' || env === null)) {
    throw optionError('env', 'must be an object of environment variables');
  }
  for (const key of ['connectTimeout', 'headersTimeout'] as const) {
    const timeout: unknown = options[key];
    if (timeout !== undefined && (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout <= 0)) {
      throw optionError(key, 'must be a positive whole number of milliseconds');
    }
  }
  for (const key of ['useInsecureSslClientJustForTestingDoNotUse', 'strictNoProxy'] as const) {
    const flag: unknown = options[key];
    if (flag !== undefined && typeof flag !== 'boolean') throw optionError(key, 'must be a boolean');
  }
  const lookup: unknown = options.lookup;
  if (lookup !== undefined && typeof lookup !== 'function') {
    throw optionError('lookup', "must be a function with the signature of net.connect()'s lookup option");
  }
  const logger: unknown = options.logger;
  if (logger !== undefined && (typeof logger !== 'object' || logger === null || typeof (logger as { warn?: unknown }).warn !== 'function')) {
    throw optionError('logger', 'must be an object with a warn(message) method');
  }
}

function compileProxyRules(rules: EgressOptions['proxyRules']): readonly CompiledProxyRule[] {
  if (rules === undefined) return Object.freeze([]);
  const list: unknown = rules;
  if (!Array.isArray(list)) throw optionError('proxyRules', 'must be an array of { hosts, proxy, ca? } rules');
  return Object.freeze(
    rules.map((rule, index): CompiledProxyRule => {
      const path = `proxyRules[${String(index)}]`;
      const entry: unknown = rule;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw optionError(path, 'must be an object { hosts, proxy, ca? }');
      for (const key of Object.keys(rule)) {
        if (!RULE_KEYS.has(key)) throw optionError(`${path}.${key}`, 'unknown option');
      }
      const hosts: unknown = rule.hosts;
      if (typeof hosts !== 'string' || hosts.trim() === '') throw optionError(`${path}.hosts`, 'must be a non-empty string in the no_proxy grammar');
      const proxy: unknown = rule.proxy;
      if (proxy !== null && typeof proxy !== 'string') throw optionError(`${path}.proxy`, 'must be a proxy URL or null (direct)');
      return Object.freeze({
        index,
        hosts,
        // Strict, unlike no_proxy: a skipped entry would silently send its hosts elsewhere (fail closed, SPEC §1).
        matcher: compileNoProxy(hosts, `option ${path}.hosts`, { strict: true }),
        proxy: proxy === null ? null : parseProxyUrl(proxy, `option ${path}.proxy`),
        ca: normaliseCa(rule.ca, `${path}.ca`),
      });
    }),
  );
}

function normaliseCa(value: CaInput | undefined, name: string): readonly (string | Buffer)[] | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' || Buffer.isBuffer(value) ? [value] : [...(value as readonly (string | Buffer)[])];
  list.forEach((item: unknown, i) => {
    if (typeof item !== 'string' && !Buffer.isBuffer(item)) throw optionError(`${name}[${String(i)}]`, 'must be PEM text or a Buffer');
    if (typeof item === 'string' && !item.includes('-----BEGIN CERTIFICATE-----')) {
      throw optionError(`${name}[${String(i)}]`, 'is not a PEM certificate (no "-----BEGIN CERTIFICATE-----" line)');
    }
  });
  return Object.freeze(list);
}

function compileConnectionTypes(overrides: EgressOptions['connectionTypes']): ReadonlyMap<string, ConnectionTypePolicy> {
  const policies = builtInPolicies();
  if (overrides !== undefined) {
    const table: unknown = overrides;
    if (typeof table !== 'object' || table === null) throw optionError('connectionTypes', 'must be an object');
    for (const [name, settings] of Object.entries(overrides)) {
      const path = `connectionTypes.${name}`;
      if (!TYPE_NAME.test(name)) throw optionError(path, 'a type name is lowercase letters, digits and "_", starting with a letter');
      const entry: unknown = settings;
      if (typeof entry !== 'object' || entry === null) throw optionError(path, 'must be an object');
      for (const key of Object.keys(settings)) {
        if (!TYPE_OPTION_KEYS.has(key)) throw optionError(`${path}.${key}`, 'unknown option');
      }
      const route: unknown = settings.route;
      if (route !== undefined && route !== 'proxy' && route !== 'direct') throw optionError(`${path}.route`, 'must be "proxy" or "direct"');
      const blocklist: unknown = settings.ipBlocklist;
      if (blocklist !== undefined && typeof blocklist !== 'boolean') throw optionError(`${path}.ipBlocklist`, 'must be a boolean');

      const existing = policies.get(name);
      if (existing === undefined) {
        if (route === undefined) throw optionError(`${path}.route`, 'a new connection type needs a route ("proxy" or "direct")');
        policies.set(name, {
          name,
          route,
          proxySelection: 'by-scheme',
          ipBlocklist: settings.ipBlocklist ?? route === 'proxy',
          builtIn: false,
          alwaysDirect: false,
        });
        continue;
      }
      if (existing.alwaysDirect && route === 'proxy') {
        throw optionError(`${path}.route`, `the ${name} type always goes direct and cannot be proxied`);
      }
      // SPEC §4: worker and Redis traffic is internal by definition, so a blocklist could only break it.
      if ((name === 'worker' || name === 'redis') && settings.ipBlocklist === true) {
        throw optionError(`${path}.ipBlocklist`, `the ${name} type is internal traffic and is never checked against the IP blocklist`);
      }
      policies.set(name, {
        ...existing,
        route: route ?? existing.route,
        ipBlocklist: settings.ipBlocklist ?? existing.ipBlocklist,
      });
    }
  }
  for (const [name, policy] of policies) policies.set(name, Object.freeze(policy));
  return new ReadonlyPolicyMap(policies);
}

/** A read-only view of a Map: the frozen config exposes no mutators, not even through a cast. */
class ReadonlyPolicyMap implements ReadonlyMap<string, ConnectionTypePolicy> {
  readonly #map: Map<string, ConnectionTypePolicy>;
  constructor(entries: Iterable<readonly [string, ConnectionTypePolicy]>) {
    this.#map = new Map(entries);
    Object.freeze(this);
  }
  get size(): number {
    return this.#map.size;
  }
  get(key: string): ConnectionTypePolicy | undefined {
    return this.#map.get(key);
  }
  has(key: string): boolean {
    return this.#map.has(key);
  }
  keys(): MapIterator<string> {
    return this.#map.keys();
  }
  values(): MapIterator<ConnectionTypePolicy> {
    return this.#map.values();
  }
  entries(): MapIterator<[string, ConnectionTypePolicy]> {
    return this.#map.entries();
  }
  forEach(callback: (value: ConnectionTypePolicy, key: string, map: ReadonlyMap<string, ConnectionTypePolicy>) => void): void {
    for (const [key, value] of this.#map) callback(value, key, this);
  }
  [Symbol.iterator](): MapIterator<[string, ConnectionTypePolicy]> {
    return this.#map.entries();
  }
}

/** A JSON-safe, redacted summary of a configuration. */
export function configToJSON(config: EgressConfig): Record<string, unknown> {
  return {
    httpProxy: config.httpProxy?.toJSON() ?? null,
    httpsProxy: config.httpsProxy?.toJSON() ?? null,
    noProxy: {
      source: config.sources.noProxy ?? null,
      entries: config.noProxy.rules.map((rule) => rule.entry),
      skipped: config.noProxy.skipped.map(({ position, entry, problem, warning }) => ({ position, entry, problem, warning })),
    },
    connectionTypes: Object.fromEntries([...config.connectionTypes].map(([name, p]) => [name, { route: p.route, ipBlocklist: p.ipBlocklist }])),
    ca: config.ca === undefined ? 0 : config.ca.length,
    proxyCa: config.proxyCa === undefined ? 0 : config.proxyCa.length,
    connectTimeout: config.connectTimeout,
    headersTimeout: config.headersTimeout,
    insecureSkipVerify: config.insecureSkipVerify,
    ipBlocklist: config.ipFilter.blocklist.ranges.map((range) => range.entry),
    ipAllowlist: config.ipFilter.allowlist.ranges.map((range) => range.entry),
    proxyRules: config.proxyRules.map((rule) => ({ hosts: rule.hosts, proxy: rule.proxy?.toJSON() ?? null, ca: rule.ca?.length ?? 0 })),
  };
}

function describeConfig(config: EgressConfig): string {
  return `EgressConfig ${inspect(configToJSON(config), { depth: 4 })}`;
}
