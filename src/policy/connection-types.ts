/**
 * The connection types a homeserver makes and how each is routed by default (SPEC §4).
 * @module
 */

/** Built-in connection types whose traffic goes through the proxy unless `no_proxy` matches. */
export const PROXIED_CONNECTION_TYPES = [
  'push',
  'url_preview',
  'phone_home',
  'recaptcha',
  'cas',
  'oidc',
  'federation',
  'key_fetch',
  'key_revocation',
  'media',
] as const;

/** Built-in connection types that never use a proxy, whatever the configuration says. */
export const DIRECT_CONNECTION_TYPES = ['appservice', 'identity_server', 'worker', 'redis'] as const;

/** A built-in connection type. */
export type BuiltInConnectionType = (typeof PROXIED_CONNECTION_TYPES)[number] | (typeof DIRECT_CONNECTION_TYPES)[number];

/**
 * A connection type name: a built-in one, or one registered with the `connectionTypes` option.
 * (`string & {}` keeps editor completion for the built-in names.)
 */
export type ConnectionType = BuiltInConnectionType | (string & {});

/** A route: through the proxy configured for the URL (unless `no_proxy` matches), or direct. */
export type Route = 'proxy' | 'direct';

/** Which proxy variable a proxied type uses. */
export type ProxySelection = 'by-scheme' | 'https-only';

/** The resolved policy of one connection type. */
export interface ConnectionTypePolicy {
  readonly name: string;
  /** The route after operator overrides. */
  readonly route: Route;
  /** `by-scheme`: `http_proxy` for http URLs, `https_proxy` for https. `https-only`: `https_proxy` whatever the scheme (federation). */
  readonly proxySelection: ProxySelection;
  /** Whether direct connections of this type are checked against the IP blocklist (SPEC §8). */
  readonly ipBlocklist: boolean;
  /** True for built-in types. */
  readonly builtIn: boolean;
  /** True for types that can never be proxied (`appservice`, `identity_server`, `worker`, `redis`). */
  readonly alwaysDirect: boolean;
}

/** Whether direct connections of a built-in type are checked against the IP blocklist by default. */
const BLOCKLIST_BY_DEFAULT: Readonly<Record<BuiltInConnectionType, boolean>> = {
  push: true,
  url_preview: true,
  phone_home: false,
  recaptcha: false,
  cas: false,
  oidc: false,
  federation: true,
  key_fetch: true,
  key_revocation: true,
  media: true,
  // Configurable for these two (SPEC §4); off by default because they usually live on a private network.
  appservice: false,
  identity_server: false,
  worker: false,
  redis: false,
};

/** The default policy of every built-in type, before overrides. */
export function builtInPolicies(): Map<string, ConnectionTypePolicy> {
  const policies = new Map<string, ConnectionTypePolicy>();
  for (const name of PROXIED_CONNECTION_TYPES) {
    policies.set(name, {
      name,
      route: 'proxy',
      proxySelection: name === 'federation' ? 'https-only' : 'by-scheme',
      ipBlocklist: BLOCKLIST_BY_DEFAULT[name],
      builtIn: true,
      alwaysDirect: false,
    });
  }
  for (const name of DIRECT_CONNECTION_TYPES) {
    policies.set(name, {
      name,
      route: 'direct',
      proxySelection: 'by-scheme',
      ipBlocklist: BLOCKLIST_BY_DEFAULT[name],
      builtIn: true,
      alwaysDirect: true,
    });
  }
  return policies;
}
