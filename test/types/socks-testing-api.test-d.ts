// Type tests of the SOCKS part of `matrix-egress/testing`: checked by `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import {
  createRecordingSocksProxy,
  describeSocksCall,
  expectNoSocksCall,
  expectSocksAddress,
  expectSocksAuth,
  expectSocksName,
  socksReplyName,
  type CallHistory,
  type RecordingSocksProxy,
  type SocksAddressType,
  type SocksCall,
  type SocksCallOutcome,
} from '../../src/testing/index.js';

expectTypeOf(createRecordingSocksProxy).returns.toEqualTypeOf<Promise<RecordingSocksProxy>>();
void createRecordingSocksProxy({ auth: { username: 'u', password: 'p' }, authRequired: false, hosts: { 'a.onion': '127.0.0.1' } });
void createRecordingSocksProxy({ auth: ({ username }) => username === 'u' });
// @ts-expect-error -- unknown option
void createRecordingSocksProxy({ tls: true });

declare const socks: RecordingSocksProxy;
expectTypeOf(socks.history).toEqualTypeOf<CallHistory<SocksCall>>();
expectTypeOf(socks.lastCall()).toEqualTypeOf<SocksCall | undefined>();
expectTypeOf(socks.filterCalls({ addressType: 'domain', name: /\.onion$/, port: 443 })).toEqualTypeOf<readonly SocksCall[]>();
// @ts-expect-error -- a number field takes a number
socks.filterCalls({ port: '443' });
// @ts-expect-error -- array-valued fields cannot be criteria; use a predicate
socks.filterCalls({ methodsOffered: [2] });
expectTypeOf<SocksCall['addressType']>().toEqualTypeOf<SocksAddressType | undefined>();
expectTypeOf<SocksCall['outcome']>().toEqualTypeOf<SocksCallOutcome>();
void socks.setFailure({ connect: { reply: 5, times: 1 }, delayMs: 10 });
void socks.setFailure({ connect: 'hang', stage: 'request', auth: 'reject' });
// @ts-expect-error -- the SOCKS kit injects reply codes, not HTTP statuses
void socks.setFailure({ connect: { status: 407 } });
expectTypeOf(socks.urlWithCredentials('u', 'p', 'socks5:')).toBeString();
// @ts-expect-error -- only the SOCKS5 schemes
socks.urlWithCredentials('u', 'p', 'http:');

expectTypeOf(expectSocksName(socks, 'a.onion', { port: 443 })).toEqualTypeOf<SocksCall>();
expectTypeOf(expectSocksAddress(socks, '::1')).toEqualTypeOf<SocksCall>();
expectTypeOf(expectSocksAuth(socks, { username: 'u' })).toEqualTypeOf<readonly SocksCall[]>();
expectTypeOf(expectNoSocksCall).returns.toBeVoid();
expectTypeOf(describeSocksCall).returns.toBeString();
expectTypeOf(socksReplyName(4)).toBeString();
// @ts-expect-error -- outcome is one of the SOCKS outcomes
expectSocksName(socks, 'a.onion', { outcome: 'tunnelled' });
