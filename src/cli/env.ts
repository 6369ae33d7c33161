/**
 * `matrix-egress env [--json]`: the effective (redacted) configuration, where each value came from,
 * which variables were ignored and why, and the route of every connection type.
 * @module
 */
import { compileEgressConfig, configToJSON, type EgressConfig } from '../config/compile.js';
import { readProxyEnv, type EnvRecord, type RawEnvValue, type RawProxyEnv } from '../config/env.js';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import type { ConnectionTypePolicy, ProxySelection, Route } from '../policy/connection-types.js';
import { parseCommandArgs } from './args.js';
import { CONFIG_FLAGS, CONFIG_USAGE, configOptions } from './config-options.js';
import { EXIT, formatRows, formatTable, type CliIo } from './output.js';

/** Help text of the command. */
export const usage = `Usage: matrix-egress env [--json] [--config <file>] [--strict-no-proxy]

Show the proxy configuration this environment (and --config) produces: the
proxy for http:// and https:// URLs and where each came from (credentials
redacted), the no_proxy entries and those skipped with their warnings, the
variables that were ignored and why, and the route every connection type takes
for http:// and https:// URLs.

Options:
  --json              print one JSON object
${CONFIG_USAGE}
  -h, --help          show this help

Exit status: 0, or 2 when the configuration is invalid (the message names the
variable, option or file path).
`;

/** A proxy-like variable that is set but has no effect. */
export interface IgnoredVariable {
  /** The variable name, in its own letter case. */
  readonly variable: string;
  readonly reason: string;
}

/** One row of the connection type table in the `--json` document. */
export interface ConnectionTypeJson {
  readonly route: Route;
  readonly ipBlocklist: boolean;
  /** `by-scheme`: http_proxy for http URLs, https_proxy for https ones. `https-only`: https_proxy for every URL. */
  readonly proxySelection: ProxySelection;
  /** True for types that never use a proxy, whatever the configuration. */
  readonly alwaysDirect: boolean;
  /** The route URLs of each scheme actually take: `proxy` only when a proxy is configured for them (no_proxy aside). */
  readonly effective: { readonly http: Route; readonly https: Route };
}

/** The `--json` document: `configToJSON` plus the variables that were disabled or ignored. */
export type EnvJson = ReturnType<typeof configToJSON> & {
  readonly connectionTypes: Readonly<Record<string, ConnectionTypeJson>>;
  /** Variables set to the empty string, which disables that setting (and masks other casings). */
  readonly disabled: readonly string[];
  readonly ignored: readonly IgnoredVariable[];
};

const SETTINGS = [
  { key: 'httpProxy', variable: 'http_proxy', scheme: 'http' },
  { key: 'httpsProxy', variable: 'https_proxy', scheme: 'https' },
  { key: 'noProxy', variable: 'no_proxy', scheme: undefined },
] as const;

/** Run the command. An invalid proxy variable propagates as a `ProxyConfigError`. */
export function run(argv: readonly string[], io: CliIo): number {
  const args = parseCommandArgs(argv, { command: 'env', flags: { json: { type: 'boolean' }, ...CONFIG_FLAGS }, required: [] });
  if (args.help) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  const config = compileEgressConfig(configOptions(args.flags, io));
  // Only variable names and emptiness are read from the raw values below, never their text.
  const raw = readProxyEnv(io.env);
  const disabled = SETTINGS.flatMap(({ key }) => {
    const chosen = raw[key];
    return chosen !== undefined && chosen.value === '' ? [chosen.source] : [];
  });
  const ignored = ignoredVariables(io.env, raw);

  if (args.flags.json === true) {
    const json: EnvJson = { ...configToJSON(config), connectionTypes: connectionTypesJson(config), disabled, ignored };
    io.stdout.write(`${JSON.stringify(json)}\n`);
    return EXIT.ok;
  }
  io.stdout.write(describe(config, raw, ignored));
  return EXIT.ok;
}

function connectionTypesJson(config: EgressConfig): Record<string, ConnectionTypeJson> {
  return Object.fromEntries(
    [...config.connectionTypes].map(([name, p]) => [
      name,
      { route: p.route, ipBlocklist: p.ipBlocklist, proxySelection: p.proxySelection, alwaysDirect: p.alwaysDirect, effective: effectiveRoutes(config, p) },
    ]),
  );
}

/**
 * Every proxy-like variable in `env` that has no effect, with the reason. Mirrors the precedence of
 * `readProxyEnv` (SPEC §1) by asking it which variable won, rather than re-implementing the rules.
 */
function ignoredVariables(env: EnvRecord, raw: RawProxyEnv): IgnoredVariable[] {
  const cgi = env.REQUEST_METHOD !== undefined;
  const ignored: IgnoredVariable[] = [];
  for (const name of Object.keys(env).sort()) {
    if (env[name] === undefined) continue;
    const lower = name.toLowerCase();
    if (lower === 'all_proxy') {
      ignored.push({ variable: name, reason: 'not read; set http_proxy and https_proxy instead' });
      continue;
    }
    const setting = SETTINGS.find((s) => s.variable === lower);
    if (setting === undefined) continue;
    const chosen: RawEnvValue | undefined = raw[setting.key];
    if (chosen?.source === name) continue;
    if (cgi && name === 'HTTP_PROXY') {
      ignored.push({ variable: name, reason: 'REQUEST_METHOD is set (CGI), where a client can inject HTTP_PROXY (httpoxy)' });
    } else if (chosen !== undefined) {
      const how = chosen.value === '' ? `${chosen.source} is set and empty, which disables it` : `${chosen.source} takes precedence`;
      ignored.push({ variable: name, reason: how });
    }
  }
  return ignored;
}

function describeProxy(endpoint: ProxyEndpoint | undefined, chosen: RawEnvValue | undefined, scheme: 'http' | 'https'): string {
  if (endpoint !== undefined) {
    return `${endpoint.url} (from ${endpoint.source}${endpoint.hasCredentials ? ', with credentials' : ''})`;
  }
  const what = chosen === undefined ? 'not set' : `disabled (${chosen.source} is empty)`;
  return `${what}: ${scheme}:// URLs go direct`;
}

function describeNoProxy(config: EgressConfig, chosen: RawEnvValue | undefined): string {
  const entries = config.noProxy.rules.map((rule, i) => `${String(i + 1).padStart(2)}  ${rule.entry}`);
  if (entries.length === 0) {
    return chosen === undefined || chosen.value !== '' ? 'none' : `none (${chosen.source} is empty)`;
  }
  const count = entries.length === 1 ? '1 entry' : `${String(entries.length)} entries`;
  return [`${count} (from ${config.sources.noProxy ?? 'no_proxy'})`, ...entries].join('\n');
}

/** One line per `proxyRules` entry, in order: hosts → proxy (redacted) or direct. */
function describeProxyRules(config: EgressConfig): string {
  return config.proxyRules
    .map((rule) => {
      const via = rule.proxy === null ? 'direct' : `${rule.proxy.url}${rule.proxy.hasCredentials ? ' (with credentials)' : ''}`;
      const ca = rule.ca === undefined ? '' : `, ${String(rule.ca.length)} extra CA${rule.ca.length === 1 ? '' : 's'}`;
      return `${String(rule.index).padStart(2)}  ${rule.hosts} → ${via}${ca}`;
    })
    .join('\n');
}

function describeSkipped(config: EgressConfig): string {
  return config.noProxy.skipped.map((s) => s.warning).join('\n');
}

/** The route http:// and https:// URLs of a type take with this configuration, no_proxy aside. */
function effectiveRoutes(config: EgressConfig, policy: ConnectionTypePolicy): { http: Route; https: Route } {
  if (policy.alwaysDirect || policy.route === 'direct') return { http: 'direct', https: 'direct' };
  const https: Route = config.httpsProxy === undefined ? 'direct' : 'proxy';
  if (policy.proxySelection === 'https-only') return { http: https, https };
  return { http: config.httpProxy === undefined ? 'direct' : 'proxy', https };
}

/** The route column: what the type does, not only what it is configured to do. */
function describeRoute(config: EgressConfig, policy: ConnectionTypePolicy): string {
  if (policy.alwaysDirect) return 'direct, always';
  if (policy.route === 'direct') return 'direct';
  const { http, https } = effectiveRoutes(config, policy);
  if (http === 'proxy' && https === 'proxy') return 'proxy';
  if (http === 'direct' && https === 'direct') return 'direct (no proxy set)';
  return `${https === 'proxy' ? 'proxy' : 'direct'} for https, ${http === 'proxy' ? 'proxy' : 'direct'} for http`;
}

function describeSelection(policy: ConnectionTypePolicy): string {
  if (policy.alwaysDirect) return 'none, always direct';
  if (policy.route === 'direct') return 'none, route set to direct';
  return policy.proxySelection === 'https-only' ? 'https_proxy for every URL' : 'http_proxy or https_proxy by URL scheme';
}

function describe(config: EgressConfig, raw: RawProxyEnv, ignored: readonly IgnoredVariable[]): string {
  const rows: [string, string][] = [
    ['http_proxy', describeProxy(config.httpProxy, raw.httpProxy, 'http')],
    ['https_proxy', describeProxy(config.httpsProxy, raw.httpsProxy, 'https')],
    ['no_proxy', describeNoProxy(config, raw.noProxy)],
  ];
  if (config.proxyRules.length > 0) rows.push(['proxy rules', describeProxyRules(config)]);
  if (config.noProxy.skipped.length > 0) rows.push(['skipped', describeSkipped(config)]);
  if (ignored.length > 0) rows.push(['ignored', ignored.map((i) => `${i.variable}: ${i.reason}`).join('\n')]);
  const types = [...config.connectionTypes.values()].map((p) => [p.name, describeRoute(config, p), p.ipBlocklist ? 'yes' : 'no', describeSelection(p)]);
  return `${formatRows(rows)}\n${formatTable(['type', 'route', 'ip blocklist', 'proxy'], types)}`;
}
