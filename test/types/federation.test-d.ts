// Type tests of `egress.federation` and its types: checked by `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import type { Response } from 'undici';
import {
  createEgress,
  hasEgressCode,
  parseServerName,
  FederationUnavailableError,
  InvalidServerNameError,
  type EgressFederation,
  type FederationOptions,
  type FederationRequestInit,
  type FederationResolution,
  type FederationSource,
  type FederationTarget,
  type ParsedServerName,
  type ResolveSrv,
  type SrvRecord,
} from '../../src/index.js';
import { createHostsLookup, createSrvResolver, type HostMap, type TestSrvResolver } from '../../src/testing/index.js';

const egress = createEgress({ federation: { cacheSize: 100, wellKnownTimeout: 5_000 } });
expectTypeOf(egress.federation).toEqualTypeOf<EgressFederation>();
expectTypeOf(egress.federation.resolve('example.org')).toEqualTypeOf<Promise<FederationResolution>>();
expectTypeOf(egress.federation.fetch('example.org', '/_matrix/key/v2/server')).toEqualTypeOf<Promise<Response>>();
void egress.federation.fetch('example.org', '/x', { method: 'PUT', body: '{}', headers: { authorization: 'X-Matrix …' } });
expectTypeOf<EgressFederation['clearCache']>().returns.toBeVoid();

declare const resolution: FederationResolution;
expectTypeOf(resolution.targets).toEqualTypeOf<readonly FederationTarget[]>();
expectTypeOf(resolution.hostHeader).toEqualTypeOf<string>();
expectTypeOf(resolution.tlsServerName).toEqualTypeOf<string>();
expectTypeOf(resolution.source).toEqualTypeOf<FederationSource>();
expectTypeOf<'well-known-srv-matrix-fed'>().toExtend<FederationSource>();
// @ts-expect-error -- not a source
expectTypeOf<'srv'>().toExtend<FederationSource>();

// resolveSrv has the shape of dns.promises.resolveSrv.
const resolveSrv: ResolveSrv = async (hostname) => Promise.resolve<SrvRecord[]>([{ name: hostname, port: 8448, priority: 0, weight: 0 }]);
const options: FederationOptions = { resolveSrv };
createEgress({ federation: options });
import('node:dns').then(({ promises }) => createEgress({ federation: { resolveSrv: promises.resolveSrv } }), () => undefined);
// @ts-expect-error -- cacheSize is a number
createEgress({ federation: { cacheSize: '10' } });
// @ts-expect-error -- the federation route is chosen for you: no dispatcher
const withDispatcher: FederationRequestInit = { dispatcher: undefined };
expectTypeOf(withDispatcher).toBeObject();

expectTypeOf(parseServerName('example.org')).toEqualTypeOf<ParsedServerName>();
declare const error: unknown;
if (hasEgressCode(error, 'ERR_EGRESS_INVALID_SERVER_NAME')) expectTypeOf(error).toEqualTypeOf<InvalidServerNameError>();
if (hasEgressCode(error, 'ERR_EGRESS_FEDERATION_UNAVAILABLE')) expectTypeOf(error.srvName).toEqualTypeOf<string>();
expectTypeOf(new FederationUnavailableError('a', 'b').code).toEqualTypeOf<'ERR_EGRESS_FEDERATION_UNAVAILABLE'>();

// Test kit.
const srv: TestSrvResolver = createSrvResolver({ '_matrix-fed._tcp.example.test': [{ name: 'matrix.example.test', port: 8448, priority: 0, weight: 1 }] });
srv.set('_matrix._tcp.example.test', { error: 'ESERVFAIL' });
// @ts-expect-error -- not a DNS error code
srv.set('_matrix._tcp.example.test', { error: 'EWHATEVER' });
const hosts: HostMap = { 'matrix.example.test': '127.0.0.1' };
createEgress({ lookup: createHostsLookup(hosts).lookup, federation: { resolveSrv: srv.resolveSrv } });
