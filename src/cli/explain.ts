/**
 * `matrix-egress explain <type> <url> [--json]`: the route of one connection and why.
 * @module
 */
import { compileEgressConfig, type EgressConfig } from '../config/compile.js';
import type { NoProxySkippedEntry } from '../config/no-proxy.js';
import { targetFromUrl, type Target } from '../match/target.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../policy/connection-types.js';
import { decideRoute, policyOf, type RouteDecision } from '../policy/route.js';
import { redactUrl } from '../redact.js';
import { parseCommandArgs } from './args.js';
import { CONFIG_FLAGS, CONFIG_USAGE, configOptions } from './config-options.js';
import { EXIT, formatRows, type CliIo } from './output.js';

/** A comma-separated list, wrapped to 80 columns with `indent` before every line. */
function wrap(words: readonly string[], indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const [i, word] of words.entries()) {
    const piece = i === words.length - 1 ? word : `${word},`;
    if (line !== '' && indent.length + line.length + 1 + piece.length > 80) {
      lines.push(indent + line);
      line = piece;
    } else {
      line = line === '' ? piece : `${line} ${piece}`;
    }
  }
  lines.push(indent + line);
  return lines.join('\n');
}

/** Help text of the command. */
export const usage = `Usage: matrix-egress explain <type> <url> [--json] [--config <file>]
                             [--strict-no-proxy]

Show whether a connection of <type> to <url> goes through the forward proxy or
direct, which proxy it uses, and why; for an IP-literal URL of a type checked
against the IP blocklist, whether the request would be refused. The proxy
settings are read from the environment (http_proxy, https_proxy and no_proxy,
in any letter case) and from --config. no_proxy entries that are not understood
are listed with the reason they are skipped.

Arguments:
  <type>   a connection type. Proxied by default:
${wrap(PROXIED_CONNECTION_TYPES, '             ')}
           Always direct:
${wrap(DIRECT_CONNECTION_TYPES, '             ')}
  <url>    an http:// or https:// URL (credentials in it are never printed);
           always-direct types accept any target (redis://host:6379/0,
           host:port)

Options:
  --json              print one JSON object: {"type", "url", "route", "proxy",
                      "reason", "matched", "ipBlocklist", "noProxySkipped",
                      "reasonCode", "rule"}
${CONFIG_USAGE}
  -h, --help          show this help

Exit status: 0 when a decision was made (proxy, direct or refused by the IP
blocklist); 2 for a bad argument, an unknown type, a bad URL or an invalid
configuration (proxy variable, --config file, or no_proxy under
--strict-no-proxy).
`;

/** What the IP blocklist says about the URL (docs/routing-rules.md#ip-blocklist). */
export interface ExplainBlocklistJson {
  /**
   * `blocked`: an IP-literal URL in a blocklisted range; the request is refused before it is sent.
   * `allowed`: an IP-literal URL the blocklist lets through. `after-dns`: a host name on a direct
   * route or through a `socks5://` proxy (resolved locally), checked on the addresses it resolves
   * to. `not-checked`: the type is not checked, or a host name goes to an http(s) or `socks5h://`
   * proxy (which resolves it).
   */
  readonly verdict: 'blocked' | 'allowed' | 'after-dns' | 'not-checked';
  /** The blocklist range that refuses the address, when `blocked`. */
  readonly range: string | null;
}

/** The `--json` document. Exactly these keys, in this order. */
export interface ExplainJson {
  readonly type: string;
  /** The URL as parsed, with any user name and password replaced by `***`. */
  readonly url: string;
  readonly route: 'proxy' | 'direct';
  /** `scheme://host:port` of the proxy, never with credentials; `null` when direct. */
  readonly proxy: string | null;
  readonly reason: string;
  /** The `no_proxy` entry, as written, that sent the connection direct; otherwise `null`. */
  readonly matched: string | null;
  readonly ipBlocklist: ExplainBlocklistJson;
  /** no_proxy entries that are not understood and are ignored, with the warning logged for each. */
  readonly noProxySkipped: readonly NoProxySkippedEntry[];
  /** Why, as a stable code (`proxy`, `no-proxy-match`, `proxy-rule`, …). */
  readonly reasonCode: RouteDecision['reasonCode'];
  /** The `proxyRules` entry that decided the route (`index`, `hosts`, the `entry` that matched); otherwise `null`. */
  readonly rule: RouteDecision['rule'];
}

/** Run the command. Library errors (bad type, URL or proxy variable) propagate to the dispatcher. */
export function run(argv: readonly string[], io: CliIo): number {
  const args = parseCommandArgs(argv, { command: 'explain', flags: { json: { type: 'boolean' }, ...CONFIG_FLAGS }, required: ['type', 'url'] });
  if (args.help) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  const { type, url } = args.positionals;
  const config = compileEgressConfig(configOptions(args.flags, io));
  const policy = policyOf(config, type);
  // Always-direct types never parse their target as an http(s) URL: worker and Redis targets are
  // redis:// URLs or host:port, and whatever they are, the route is the same.
  const target = policy.alwaysDirect ? undefined : targetFromUrl(url);
  const decision: RouteDecision =
    target === undefined
      ? { type, route: 'direct', proxy: null, reasonCode: 'always-direct', reason: `${type} connections never use a proxy (direct, always)`, matched: null, rule: null }
      : decideRoute(config, type, target);
  const json = toJson(decision, displayUrl(url), blocklistVerdict(config, policy.ipBlocklist, target, decision), config.noProxy.skipped);

  if (args.flags.json === true) {
    io.stdout.write(`${JSON.stringify(json)}\n`);
    return EXIT.ok;
  }

  const proxy = decision.proxy;
  const via =
    proxy === null
      ? 'none (direct)'
      : `${proxy.url} (from ${proxy.source}${proxy.hasCredentials ? ', with credentials' : ''})`;
  const matched = decision.matched === null ? 'none' : `${decision.matched} (from ${config.sources.noProxy ?? 'no_proxy'})`;
  const rows: [string, string][] = [
    ['type', json.type],
    ['url', json.url],
    ['route', json.ipBlocklist.verdict === 'blocked' ? `${json.route}, but refused: the IP blocklist blocks this address` : json.route],
    ['proxy', via],
    ['reason', json.reason],
    ['matched', matched],
    ['ip blocklist', describeVerdict(json.ipBlocklist, policy.ipBlocklist, target)],
  ];
  const { rule } = decision;
  if (rule !== null) rows.push(['rule', `proxyRules[${String(rule.index)}] hosts "${rule.hosts}" (entry "${rule.entry}" matched)`]);
  if (json.noProxySkipped.length > 0) rows.push(['skipped', json.noProxySkipped.map((s) => s.warning).join('\n')]);
  io.stdout.write(formatRows(rows));
  return EXIT.ok;
}

/** The verdict of the IP blocklist for this request, as the egress would apply it. */
function blocklistVerdict(config: EgressConfig, checked: boolean, target: Target | undefined, decision: RouteDecision): ExplainBlocklistJson {
  if (!checked || target === undefined) return { verdict: 'not-checked', range: null };
  // IP-literal URLs are checked whatever the route; names after DNS on a direct route and through a
  // socks5:// proxy, which we resolve for (only http(s) proxies and socks5h:// resolve names themselves).
  const resolvedHere = decision.route === 'direct' || decision.proxy?.protocol === 'socks5:';
  if (target.ip === undefined) return { verdict: resolvedHere ? 'after-dns' : 'not-checked', range: null };
  const blocked = config.ipFilter.check(target.host);
  return blocked === undefined ? { verdict: 'allowed', range: null } : { verdict: 'blocked', range: blocked.range?.entry ?? null };
}

function describeVerdict(verdict: ExplainBlocklistJson, checked: boolean, target: Target | undefined): string {
  switch (verdict.verdict) {
    case 'blocked':
      return `blocked${verdict.range === null ? '' : ` (${verdict.range})`}: the request is refused before it is sent`;
    case 'allowed':
      return `${target?.host ?? 'the address'} is not blocklisted`;
    case 'after-dns':
      return 'checked on the addresses the host resolves to, when it connects';
    case 'not-checked':
      return checked ? 'not checked here (the proxy resolves the host name)' : 'not checked for this type';
  }
}

function toJson(decision: RouteDecision, url: string, ipBlocklist: ExplainBlocklistJson, skipped: readonly NoProxySkippedEntry[]): ExplainJson {
  return {
    type: decision.type,
    url,
    route: decision.route,
    proxy: decision.proxy?.url ?? null,
    reason: decision.reason,
    matched: decision.matched,
    ipBlocklist,
    noProxySkipped: skipped.map(({ position, entry, problem, warning }) => ({ position, entry, problem, warning })),
    reasonCode: decision.reasonCode,
    rule: decision.rule,
  };
}

/**
 * The URL as routed (WHATWG-parsed, so IDN hosts show in punycode) with its userinfo replaced by
 * `***`. We cut the userinfo out of the parsed URL rather than run `redactUrl` on the text: that
 * treats everything before the last `@` as userinfo, which turns a Matrix user ID in a query
 * (`?user_id=@alice:example.org`) into a misleading `https://***@alice:example.org`.
 */
function displayUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return redactUrl(input);
  }
  if (url.username === '' && url.password === '') return url.href;
  url.username = '';
  url.password = '';
  return url.href.replace('//', '//***@');
}
