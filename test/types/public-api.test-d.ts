// Type tests of the public entry: checked by `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import type { Dispatcher, Response } from 'undici';
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import {
  createEgress,
  compileEgressConfig,
  compileNoProxy,
  parseProxyUrl,
  readProxyEnv,
  route,
  isEgressError,
  hasEgressCode,
  EgressError,
  ProxyConfigError,
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyTlsError,
  PROXIED_CONNECTION_TYPES,
  DIRECT_CONNECTION_TYPES,
  DEFAULT_IP_BLOCKLIST,
  type Egress,
  type EgressConfig,
  type EgressOptions,
  type RouteDecision,
  type ConnectionType,
  type BuiltInConnectionType,
  type NoProxyRule,
  type ProxyEndpoint,
  type EgressErrorCode,
  type ProxyTlsReason,
} from '../../src/index.js';

// createEgress
expectTypeOf(createEgress).toBeFunction();
expectTypeOf(createEgress).returns.toEqualTypeOf<Egress>();
expectTypeOf(createEgress).parameter(0).toEqualTypeOf<EgressOptions | undefined>();
const egress = createEgress({ env: {}, httpsProxy: null, noProxy: 'a.example' });
expectTypeOf(egress.dispatcher('push')).toEqualTypeOf<Dispatcher>();
expectTypeOf(egress.fetch('federation', 'https://x.example/')).toEqualTypeOf<Promise<Response>>();
expectTypeOf(egress.httpAgent('push')).toEqualTypeOf<HttpAgent>();
// `agent` is the documented alias of `httpAgent`.
expectTypeOf(egress.agent('push')).toEqualTypeOf<HttpAgent>();
expectTypeOf<Egress['agent']>().toEqualTypeOf<Egress['httpAgent']>();
// @ts-expect-error -- an agent is per connection type
egress.httpAgent();
expectTypeOf(egress.httpsAgent('push')).toEqualTypeOf<HttpsAgent>();
expectTypeOf(egress.route('push', 'https://x.example/')).toEqualTypeOf<RouteDecision>();
expectTypeOf(egress.close()).toEqualTypeOf<Promise<void>>();
expectTypeOf(egress.config).toEqualTypeOf<EgressConfig>();
// Custom connection types are plain strings; built-in names stay completable.
egress.dispatcher('my_bridge_type');
expectTypeOf<'push'>().toExtend<BuiltInConnectionType>();
expectTypeOf<BuiltInConnectionType>().toExtend<ConnectionType>();
// fetch takes connectTo but never a dispatcher.
void egress.fetch('federation', 'https://example.org/', { connectTo: { host: '10.0.0.1', port: 8448 } });
// @ts-expect-error -- the connection type chooses the dispatcher
void egress.fetch('push', 'https://x.example/', { dispatcher: egress.dispatcher('push') });
// @ts-expect-error -- connectTo needs a port
void egress.fetch('federation', 'https://example.org/', { connectTo: { host: 'h' } });

// Options
// @ts-expect-error -- routes are 'proxy' or 'direct'
createEgress({ connectionTypes: { push: { route: 'sideways' } } });
// @ts-expect-error -- unknown option
createEgress({ proxy: 'http://p:3128' });
// @ts-expect-error -- proxies are strings or null
createEgress({ httpsProxy: 3128 });
createEgress({ httpProxy: undefined, httpsProxy: '', noProxy: null, ca: ['-----BEGIN CERTIFICATE-----'], connectTimeout: 5000 });

// Configuration helpers
expectTypeOf(compileEgressConfig).returns.toEqualTypeOf<EgressConfig>();
expectTypeOf(readProxyEnv({}).httpsProxy).toEqualTypeOf<{ readonly value: string; readonly source: string } | undefined>();
expectTypeOf(parseProxyUrl('p:1', 'x')).toEqualTypeOf<ProxyEndpoint>();
expectTypeOf(parseProxyUrl('p:1', 'x').protocol).toEqualTypeOf<'http:' | 'https:' | 'socks5:' | 'socks5h:'>();
expectTypeOf(compileNoProxy('a').rules).toEqualTypeOf<readonly NoProxyRule[]>();
expectTypeOf(route(compileEgressConfig(), 'push', 'https://x/').route).toEqualTypeOf<'proxy' | 'direct'>();
expectTypeOf<(typeof PROXIED_CONNECTION_TYPES)[number]>().toEqualTypeOf<'push' | 'url_preview' | 'phone_home' | 'recaptcha' | 'cas' | 'oidc' | 'federation' | 'key_fetch' | 'key_revocation' | 'media'>();
expectTypeOf(DIRECT_CONNECTION_TYPES).toEqualTypeOf<readonly ['appservice', 'identity_server', 'worker', 'redis']>();

// NoProxyRule is a discriminated union
declare const rule: NoProxyRule;
if (rule.kind === 'cidr') expectTypeOf(rule.prefixLength).toBeNumber();
if (rule.kind === 'domain') expectTypeOf(rule.includeApex).toBeBoolean();
// @ts-expect-error -- only cidr rules have a prefix length
expectTypeOf(rule.prefixLength).toBeNumber();

// Errors narrow by class and by code
declare const unknownError: unknown;
if (isEgressError(unknownError)) expectTypeOf(unknownError.code).toEqualTypeOf<EgressErrorCode>();
if (hasEgressCode(unknownError, 'ERR_EGRESS_PROXY_AUTH')) expectTypeOf(unknownError.code).toEqualTypeOf<'ERR_EGRESS_PROXY_AUTH'>();
if (hasEgressCode(unknownError, 'ERR_EGRESS_PROXY_TLS')) expectTypeOf(unknownError.reason).toEqualTypeOf<ProxyTlsReason>();
if (hasEgressCode(unknownError, 'ERR_EGRESS_PROXY_CONNECT')) expectTypeOf(unknownError.statusCode).toBeNumber();
expectTypeOf(new ProxyConfigError('x', 'y').code).toEqualTypeOf<'ERR_EGRESS_PROXY_CONFIG'>();
expectTypeOf(new ProxyAuthenticationError('p', 't', undefined, false)).toExtend<ProxyConnectError>();
expectTypeOf(new ProxyAuthenticationError('p', 't', undefined, false).realm).toEqualTypeOf<string | undefined>();
expectTypeOf(new ProxyTlsError('p', 'expired').reason).toEqualTypeOf<ProxyTlsReason>();
expectTypeOf<ProxyConfigError>().toExtend<EgressError>();

// SSRF guard options
expectTypeOf(DEFAULT_IP_BLOCKLIST).toEqualTypeOf<readonly string[]>();
createEgress({ ipBlocklist: [...DEFAULT_IP_BLOCKLIST, '203.0.113.0/24'], ipAllowlist: ['10.1.2.3'], headersTimeout: 30_000 });
// @ts-expect-error -- a blocklist is a list of strings
createEgress({ ipBlocklist: '10.0.0.0/8' });
