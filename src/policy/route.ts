/**
 * The route decision: for one connection type and URL, proxy or direct, and why.
 * @module
 */
import { UnknownConnectionTypeError } from '../errors.js';
import type { EgressConfig } from '../config/compile.js';
import type { ProxyEndpoint } from '../config/proxy-url.js';
import { targetFromUrl, type Target } from '../match/target.js';
import type { ConnectionType, ConnectionTypePolicy, Route } from './connection-types.js';

/** Why a route was chosen. */
export type RouteReasonCode =
  | 'always-direct'
  | 'type-override-direct'
  | 'no-proxy-match'
  | 'no-proxy-configured'
  | 'proxy'
  | 'proxy-rule'
  | 'proxy-rule-direct';

/** The `proxyRules` entry that decided a route. */
export interface MatchedProxyRule {
  /** Position in `proxyRules`, from 0. */
  readonly index: number;
  /** The rule's `hosts`, as written. */
  readonly hosts: string;
  /** The entry of `hosts` that matched the request's host. */
  readonly entry: string;
}

/** The decision for one request. Contains no credentials; safe to log or print as JSON. */
export interface RouteDecision {
  readonly type: ConnectionType;
  readonly route: Route;
  /** The proxy to use when `route` is `proxy`, otherwise `null`. */
  readonly proxy: ProxyEndpoint | null;
  readonly reasonCode: RouteReasonCode;
  /** A one-sentence explanation. */
  readonly reason: string;
  /** The `no_proxy` entry, as written, that sent the request direct; otherwise `null`. */
  readonly matched: string | null;
  /**
   * The `proxyRules` entry that decided the route (reason codes `proxy-rule` and
   * `proxy-rule-direct`); `null` when no rule matched or rules do not apply to the type.
   */
  readonly rule: MatchedProxyRule | null;
}

/** Look up a type's policy or throw {@link UnknownConnectionTypeError}. */
export function policyOf(config: EgressConfig, type: ConnectionType): ConnectionTypePolicy {
  const policy = config.connectionTypes.get(type);
  if (policy === undefined) throw new UnknownConnectionTypeError(type, [...config.connectionTypes.keys()]);
  return policy;
}

/** Decide how a request of `type` to `target` leaves: through which proxy, or direct. */
export function decideRoute(config: EgressConfig, type: ConnectionType, target: Target): RouteDecision {
  const policy = policyOf(config, type);
  const direct = (reasonCode: RouteReasonCode, reason: string, matched: string | null = null): RouteDecision => ({
    type,
    route: 'direct',
    proxy: null,
    reasonCode,
    reason,
    matched,
    rule: null,
  });
  if (policy.alwaysDirect) return direct('always-direct', `${type} connections never use a proxy`);
  if (policy.route === 'direct') return direct('type-override-direct', `the ${type} type is configured to go direct`);

  // SPEC §9: the first matching rule wins over no_proxy and the scheme's proxy, for proxied types only.
  for (const rule of config.proxyRules) {
    const hit = rule.matcher.match(target);
    if (hit === undefined) continue;
    const matchedRule: MatchedProxyRule = { index: rule.index, hosts: rule.hosts, entry: hit.entry };
    const which = `proxyRules[${String(rule.index)}] (hosts ${JSON.stringify(rule.hosts)})`;
    if (rule.proxy === null) {
      return { ...direct('proxy-rule-direct', `${which} matches ${target.host} and sends it direct`), rule: matchedRule };
    }
    return {
      type,
      route: 'proxy',
      proxy: rule.proxy,
      reasonCode: 'proxy-rule',
      reason: `${which} matches ${target.host} and sends it through ${rule.proxy.url}`,
      matched: null,
      rule: matchedRule,
    };
  }

  const useHttps = policy.proxySelection === 'https-only' || target.scheme === 'https';
  const proxy = useHttps ? config.httpsProxy : config.httpProxy;
  const variable = useHttps ? 'https_proxy' : 'http_proxy';
  if (proxy === undefined) return direct('no-proxy-configured', `no ${variable} is configured`);

  const rule = config.noProxy.match(target);
  if (rule !== undefined) {
    // Entries never hold quotes, backslashes or control characters (no-proxy.ts skips or refuses
    // them), so plain quotes are what JSON.stringify would write, at a fraction of its cost.
    return direct('no-proxy-match', `no_proxy entry "${rule.entry}" matches ${target.host}`, rule.entry);
  }
  return {
    type,
    route: 'proxy',
    proxy,
    reasonCode: 'proxy',
    reason: `${type} traffic to ${target.scheme} URLs goes through ${proxy.source}`,
    matched: null,
    rule: null,
  };
}

/**
 * Decide the route of a request of `type` to `url` under `config`.
 * @throws {@link UnknownConnectionTypeError} for a type that is neither built in nor registered.
 * @throws {@link InvalidUrlError} for a URL that does not parse or is not http/https.
 */
export function route(config: EgressConfig, type: ConnectionType, url: string | URL): RouteDecision {
  policyOf(config, type);
  return decideRoute(config, type, targetFromUrl(url));
}
