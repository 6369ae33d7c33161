/**
 * Federation discovery through a forward proxy (SPEC §5, §10), the way a homeserver with no other
 * way out federates: the `.well-known` request is a CONNECT to the server name on 443, SRV is
 * resolved locally, the request is a CONNECT to the SRV target, and inside the tunnel TLS, SNI
 * and Host name the (delegated) server name. Checked with the recording proxy (what it was asked)
 * and with a real Squid (its access log), plus the origins (SNI, Host).
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { createEgress, type Egress } from '../../../src/egress.js';
import { createRecordingProxy, type RecordingProxy } from '../../../src/testing/recording-proxy.js';
import { createSrvResolver } from '../../../src/testing/srv-resolver.js';
import { createHostsLookup } from '../../../src/testing/hosts.js';
import type { TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { FederationNet, json, privilegedPortsUsable } from '../../support/federation-net.js';
import { startSquid, type SquidInstance } from '../../support/squid.js';

const usable = await privilegedPortsUsable();
const skip = usable ? false : 'needs to listen on port 443/8448 of a loopback address (root or CAP_NET_BIND_SERVICE)';

describe('federation discovery through a proxy', { skip }, () => {
  let restoreEnv: () => void;
  const net = new FederationNet();
  const srv = createSrvResolver();
  let wk: TestOrigin;
  let target: TestOrigin;
  let deleg8448: TestOrigin;
  let proxy: RecordingProxy;
  let squid: SquidInstance | undefined;
  const egresses: Egress[] = [];

  before(async () => {
    restoreEnv = isolateProxyEnv();
    wk = await net.serve('example.test', 443);
    target = await net.serve('fed-target.example.test', 8450, { certNames: ['delegated.example.test', 'example.test', 'fed-target.example.test'] });
    deleg8448 = await net.serve('delegated.example.test', 8448);
    proxy = await createRecordingProxy({ hosts: net.hosts });
    squid = await startSquid({ hosts: net.hosts });
  });

  after(async () => {
    await Promise.all(egresses.map((egress) => egress.close()));
    await proxy.close();
    await squid?.stop({ force: true });
    await net.close();
    restoreEnv();
  });

  beforeEach(() => {
    net.wellKnown.clear();
    srv.delete('_matrix-fed._tcp.delegated.example.test');
    srv.delete('_matrix-fed._tcp.example.test');
    srv.clear();
    proxy.clear();
    for (const origin of [wk, target, deleg8448]) origin.clear();
  });

  function egressVia(proxyUrl: string, extra: { noProxy?: string } = {}): Egress {
    const egress = createEgress({
      env: { https_proxy: proxyUrl, ...(extra.noProxy !== undefined && { no_proxy: extra.noProxy }) },
      ca: net.ca.cert,
      // Only for routes that go direct (no_proxy); proxied names are resolved by the proxy.
      lookup: createHostsLookup(net.hosts).lookup,
      ipAllowlist: ['127.0.0.0/8'],
      federation: { resolveSrv: srv.resolveSrv },
    });
    egresses.push(egress);
    return egress;
  }

  it('recording proxy: CONNECT to the server name on 443 for .well-known, then to the SRV target; TLS and Host for the delegated name', async () => {
    net.wellKnown.set('example.test', (_req, res) => {
      json(res, 200, { 'm.server': 'delegated.example.test' });
    });
    srv.set('_matrix-fed._tcp.delegated.example.test', [{ name: 'fed-target.example.test', port: 8450, priority: 0, weight: 0 }]);
    const egress = egressVia(proxy.url);
    const response = await egress.federation.fetch('example.test', '/_matrix/key/v2/server');
    assert.deepEqual(await response.json(), { served: 'fed-target.example.test', port: 8450 });
    assert.deepEqual(
      proxy.calls().map((call) => `${call.method} ${call.target}`),
      ['CONNECT example.test:443', 'CONNECT fed-target.example.test:8450'],
    );
    assert.equal(wk.lastCall()?.servername, 'example.test');
    assert.equal(wk.lastCall()?.headers.host, 'example.test');
    assert.equal(target.lastCall()?.servername, 'delegated.example.test');
    assert.equal(target.lastCall()?.headers.host, 'delegated.example.test');
    assert.equal(target.lastCall()?.url, '/_matrix/key/v2/server');
    assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.delegated.example.test'], 'SRV is resolved locally');

    // Cached: the next request is one CONNECT, to the target only.
    proxy.clear();
    const again = await egress.federation.fetch('example.test', '/_matrix/federation/v1/version');
    await again.text();
    assert.deepEqual(proxy.calls().map((call) => call.target).filter((t) => t === 'example.test:443'), []);
  });

  it('recording proxy: explicit port goes straight to a CONNECT of that host:port, Host with the port', async () => {
    const egress = egressVia(proxy.url);
    const response = await egress.federation.fetch('fed-target.example.test:8450', '/x');
    await response.text();
    assert.deepEqual(proxy.calls().map((call) => call.target), ['fed-target.example.test:8450']);
    assert.equal(target.lastCall()?.headers.host, 'fed-target.example.test:8450');
    assert.equal(target.lastCall()?.servername, 'fed-target.example.test');
  });

  it('recording proxy: a target the proxy cannot reach (502) moves on to the next SRV target', async () => {
    srv.set('_matrix-fed._tcp.example.test', [
      { name: 'fed-target.example.test', port: 1, priority: 0, weight: 0 },
      { name: 'fed-target.example.test', port: 8450, priority: 5, weight: 0 },
    ]);
    const egress = egressVia(proxy.url);
    const response = await egress.federation.fetch('example.test', '/x');
    assert.equal(response.status, 200);
    await response.text();
    assert.deepEqual(
      proxy.calls().map((call) => `${call.target} ${String(call.statusCode)}`),
      ['example.test:443 200', 'fed-target.example.test:1 502', 'fed-target.example.test:8450 200'],
    );
    assert.equal(target.lastCall()?.headers.host, 'example.test');
  });

  it('no_proxy is matched against the target host: the .well-known goes through the proxy, the request direct', async () => {
    net.wellKnown.set('example.test', (_req, res) => {
      json(res, 200, { 'm.server': 'delegated.example.test' });
    });
    srv.set('_matrix-fed._tcp.delegated.example.test', [{ name: 'fed-target.example.test', port: 8450, priority: 0, weight: 0 }]);
    const egress = egressVia(proxy.url, { noProxy: 'fed-target.example.test' });
    const response = await egress.federation.fetch('example.test', '/x');
    await response.text();
    assert.deepEqual(proxy.calls().map((call) => call.target), ['example.test:443']);
    assert.equal(target.lastCall()?.servername, 'delegated.example.test');
    assert.equal(target.lastCall()?.headers.host, 'delegated.example.test');
  });

  it('no_proxy matching the server name sends the .well-known direct too', async () => {
    const egress = egressVia(proxy.url, { noProxy: 'example.test' });
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.wellKnown?.status, 404);
    assert.equal(proxy.calls().length, 0);
    assert.equal(wk.calls().length, 1);
  });

  it('Squid: .well-known and the request both CONNECT through Squid; Squid resolves the names', async () => {
    assert.ok(squid !== undefined);
    net.wellKnown.set('example.test', (_req, res) => {
      json(res, 200, { 'm.server': 'delegated.example.test' });
    });
    srv.set('_matrix-fed._tcp.delegated.example.test', [{ name: 'fed-target.example.test', port: 8450, priority: 0, weight: 0 }]);
    const egress = createEgress({
      env: { https_proxy: squid.url },
      ca: net.ca.cert,
      ipAllowlist: ['127.0.0.0/8'],
      federation: { resolveSrv: srv.resolveSrv },
    });
    try {
      const response = await egress.federation.fetch('example.test', '/_matrix/key/v2/server');
      assert.deepEqual(await response.json(), { served: 'fed-target.example.test', port: 8450 });
      assert.equal(target.lastCall()?.servername, 'delegated.example.test');
      assert.equal(target.lastCall()?.headers.host, 'delegated.example.test');
    } finally {
      await egress.close();
    }
    const log = await squid.waitForAccessLog((entry) => entry.target === 'fed-target.example.test:8450');
    assert.equal(log.method, 'CONNECT');
    const entries = await squid.accessLog();
    assert.ok(entries.some((entry) => entry.method === 'CONNECT' && entry.target === 'example.test:443'), 'the .well-known went through Squid');
  });
});
