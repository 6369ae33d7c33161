// Type tests of the `matrix-egress/testing` entry: checked by `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import {
  createRecordingProxy,
  createTestOrigin,
  createTestCertificateAuthority,
  createSelfSignedCertificate,
  expectProxied,
  expectNotProxied,
  expectDirect,
  expectTunnel,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  type RecordingProxy,
  type ProxyCall,
  type TestOrigin,
  type OriginRequest,
  type CertificateAndKey,
  type TestCertificateAuthority,
  type CallHistory,
} from '../../src/testing/index.js';

expectTypeOf(createRecordingProxy).returns.toEqualTypeOf<Promise<RecordingProxy>>();
expectTypeOf(createTestOrigin).returns.toEqualTypeOf<Promise<TestOrigin>>();
expectTypeOf(createTestCertificateAuthority()).toEqualTypeOf<TestCertificateAuthority>();
expectTypeOf(createSelfSignedCertificate({ hosts: ['localhost'] })).toEqualTypeOf<CertificateAndKey>();

declare const proxy: RecordingProxy;
declare const origin: TestOrigin;
expectTypeOf(proxy.history).toEqualTypeOf<CallHistory<ProxyCall>>();
expectTypeOf(proxy.lastCall()).toEqualTypeOf<ProxyCall | undefined>();
expectTypeOf(proxy.filterCalls({ method: 'CONNECT', host: /127\./ })).toEqualTypeOf<readonly ProxyCall[]>();
expectTypeOf(proxy.filterCalls((call) => call.port === 443)).toEqualTypeOf<readonly ProxyCall[]>();
// @ts-expect-error -- object-valued fields cannot be criteria; use a predicate
proxy.filterCalls({ headers: {} });
// @ts-expect-error -- a number field takes a number
proxy.filterCalls({ port: '443' });
expectTypeOf(origin.lastCall()).toEqualTypeOf<OriginRequest | undefined>();
void proxy.setFailure({ connect: { status: 407 } });
void proxy.setFailure({ connect: 'reset', delayMs: 10 });
// @ts-expect-error -- not a failure kind
void proxy.setFailure({ connect: 'explode' });
void createRecordingProxy({ auth: { username: 'u', password: 'p' }, realm: null, tls: true });
// @ts-expect-error -- unknown option
void createRecordingProxy({ listen: '0.0.0.0' });

expectTypeOf(expectProxied(proxy, { host: '127.0.0.1' })).toEqualTypeOf<readonly ProxyCall[]>();
expectTypeOf(expectNotProxied).returns.toBeVoid();
expectTypeOf(expectDirect(origin, proxy)).toEqualTypeOf<OriginRequest>();
expectTypeOf(expectTunnel(proxy, '127.0.0.1:443')).toEqualTypeOf<ProxyCall>();
expectTypeOf(expectForwarded(proxy, new URL('http://127.0.0.1/'))).toEqualTypeOf<ProxyCall>();
expectTypeOf(expectNoProxyAuthorizationAtOrigin).parameter(0).toEqualTypeOf<TestOrigin>();
expectTypeOf(expectNoProxyAuthorizationAtOrigin).returns.toBeVoid();
// @ts-expect-error -- a host is required
expectProxied(proxy, {});
