// Type tests of the SOCKS and proxyRules surface (#14): checked by `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import {
  createEgress,
  compileEgressConfig,
  route,
  parseProxyUrl,
  ProxyConnectError,
  SOCKS5_REPLY_NAMES,
  type CompiledProxyRule,
  type MatchedProxyRule,
  type ProxyProtocol,
  type ProxyRuleOptions,
  type RouteDecision,
  type RouteReasonCode,
} from '../../src/index.js';

expectTypeOf<ProxyProtocol>().toEqualTypeOf<'http:' | 'https:' | 'socks5:' | 'socks5h:'>();
expectTypeOf(parseProxyUrl('socks5h://127.0.0.1:9050', 'x').isSocks).toBeBoolean();

// proxyRules: ordered { hosts, proxy, ca? }
createEgress({ proxyRules: [{ hosts: '*.onion', proxy: 'socks5h://127.0.0.1:9050' }] });
createEgress({ proxyRules: [{ hosts: '*.i2p', proxy: 'http://127.0.0.1:4444', ca: ['-----BEGIN CERTIFICATE-----'] }, { hosts: 'partner.example', proxy: null }] });
// @ts-expect-error -- a rule needs hosts
createEgress({ proxyRules: [{ proxy: null }] });
// @ts-expect-error -- proxy is a string or null, never absent
createEgress({ proxyRules: [{ hosts: '*.onion' }] });
// @ts-expect-error -- unknown key in a rule
createEgress({ proxyRules: [{ hosts: '*.onion', proxy: null, via: 'tor' }] });
expectTypeOf<ProxyRuleOptions['proxy']>().toEqualTypeOf<string | null>();
expectTypeOf(compileEgressConfig().proxyRules).toEqualTypeOf<readonly CompiledProxyRule[]>();

// RouteDecision names the rule that decided it
declare const decision: RouteDecision;
expectTypeOf(decision.rule).toEqualTypeOf<MatchedProxyRule | null>();
expectTypeOf<MatchedProxyRule>().toEqualTypeOf<{ readonly index: number; readonly hosts: string; readonly entry: string }>();
expectTypeOf<'proxy-rule' | 'proxy-rule-direct'>().toExtend<RouteReasonCode>();
expectTypeOf(route(compileEgressConfig(), 'federation', 'https://x.onion/').reasonCode).toEqualTypeOf<RouteReasonCode>();

// SOCKS reply codes on ProxyConnectError
declare const refused: ProxyConnectError;
expectTypeOf(refused.socksReply).toEqualTypeOf<number | undefined>();
expectTypeOf(SOCKS5_REPLY_NAMES).toEqualTypeOf<Readonly<Record<number, string>>>();
