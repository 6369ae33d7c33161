/**
 * Federation discovery end to end on a direct route (SPEC §10; Matrix server-server API "Resolving
 * server names"): every row of the algorithm, checked at the origins that were really reached —
 * which address and port, which SNI, which Host — with names from a host map and SRV answers
 * from a table. The IP blocklist stays on (loopback allowlisted) so the SSRF path is the real one.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { createEgress, type Egress } from '../../../src/egress.js';
import { BlockedDestinationError, FederationUnavailableError, InvalidServerNameError } from '../../../src/errors.js';
import { createHostsLookup } from '../../../src/testing/hosts.js';
import { createSrvResolver, type TestSrvResolver } from '../../../src/testing/srv-resolver.js';
import type { TestOrigin } from '../../../src/testing/test-origin.js';
import { WELL_KNOWN_MAX_BODY } from '../../../src/federation/well-known.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';
import { FederationNet, json, privilegedPortsUsable } from '../../support/federation-net.js';

const usable = await privilegedPortsUsable();
const skip = usable ? false : 'needs to listen on port 443/8448 of a loopback address (root or CAP_NET_BIND_SERVICE)';

describe('federation discovery, direct route', { skip }, () => {
  let restoreEnv: () => void;
  const net = new FederationNet();
  const srv: TestSrvResolver = createSrvResolver();
  let lookupCalls: string[];
  let egress: Egress;
  // example.test: the server name. Its .well-known is on :443; it also runs a server on :8448.
  let wk: TestOrigin;
  let name8448: TestOrigin;
  // delegated.example.test: where example.test delegates; servers on :8448 and :8443.
  let deleg8448: TestOrigin;
  let deleg8443: TestOrigin;
  // SRV targets; their certificates name the delegated name only (TLS is never checked against an SRV target).
  let srvA: TestOrigin;
  let srvB: TestOrigin;
  let ipLiteral: TestOrigin;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    wk = await net.serve('example.test', 443);
    name8448 = await net.serve('example.test', 8448);
    deleg8448 = await net.serve('delegated.example.test', 8448, { certNames: ['delegated.example.test'] });
    deleg8443 = await net.serve('delegated.example.test', 8443, { certNames: ['delegated.example.test'] });
    srvA = await net.serve('srv-a.example.test', 8450, { certNames: ['delegated.example.test', 'example.test'] });
    srvB = await net.serve('srv-b.example.test', 8451, { certNames: ['delegated.example.test', 'example.test'] });
    ipLiteral = await net.serve('ip.example.test', 8448, { certNames: [net.address('ip.example.test')] });
    net.address('dead.example.test');
    net.address('srv-c.example.test');
    const hosts = createHostsLookup(net.hosts);
    lookupCalls = hosts.calls;
    egress = createEgress({
      env: {},
      ca: net.ca.cert,
      lookup: hosts.lookup,
      ipAllowlist: ['127.0.0.0/8'],
      connectTimeout: 2_000,
      federation: { resolveSrv: srv.resolveSrv },
    });
  });

  after(async () => {
    await egress.close();
    await net.close();
    restoreEnv();
  });

  beforeEach(() => {
    egress.federation.clearCache();
    net.wellKnown.clear();
    for (const name of ['_matrix-fed._tcp.example.test', '_matrix._tcp.example.test', '_matrix-fed._tcp.delegated.example.test', '_matrix._tcp.delegated.example.test']) srv.delete(name);
    srv.clear();
    for (const origin of [wk, name8448, deleg8448, deleg8443, srvA, srvB, ipLiteral]) origin.clear();
  });

  const delegate = (server: string, headers: Record<string, string> = {}): void => {
    net.wellKnown.set('example.test', (_req, res) => {
      json(res, 200, { 'm.server': server }, headers);
    });
  };

  async function served(serverName: string, path = '/_matrix/key/v2/server'): Promise<{ body: { served: string; port: number } }> {
    const response = await egress.federation.fetch(serverName, path);
    assert.equal(response.status, 200);
    return { body: (await response.json()) as { served: string; port: number } };
  }

  it('IP literal: that address, port 8448, Host = the server name, TLS for the address (no SNI), no .well-known', async () => {
    const ip = net.address('ip.example.test');
    const resolution = await egress.federation.resolve(ip);
    assert.deepEqual(
      { source: resolution.source, targets: resolution.targets, hostHeader: resolution.hostHeader, tls: resolution.tlsServerName },
      { source: 'ip-literal', targets: [{ host: ip, port: 8448 }], hostHeader: ip, tls: ip },
    );
    assert.equal(resolution.wellKnown, undefined);
    const { body } = await served(ip);
    assert.equal(body.port, 8448);
    assert.equal(ipLiteral.lastCall()?.headers.host, ip);
    assert.equal(ipLiteral.lastCall()?.servername, undefined);
    assert.equal(wk.calls().length, 0);
    assert.deepEqual(srv.calls(), []);
  });

  it('IP literal with a port: Host keeps the port', async () => {
    const ip = net.address('ip.example.test');
    const resolution = await egress.federation.resolve(`${ip}:8448`);
    assert.equal(resolution.source, 'ip-literal');
    assert.equal(resolution.hostHeader, `${ip}:8448`);
    await served(`${ip}:8448`);
    assert.equal(ipLiteral.lastCall()?.headers.host, `${ip}:8448`);
  });

  it('explicit port: that host and port, Host with the port, SNI the name, no .well-known, no SRV', async () => {
    const resolution = await egress.federation.resolve('delegated.example.test:8443');
    assert.equal(resolution.source, 'explicit-port');
    assert.deepEqual(resolution.targets, [{ host: 'delegated.example.test', port: 8443 }]);
    const { body } = await served('delegated.example.test:8443');
    assert.deepEqual(body, { served: 'delegated.example.test', port: 8443 });
    assert.equal(deleg8443.lastCall()?.headers.host, 'delegated.example.test:8443');
    assert.equal(deleg8443.lastCall()?.servername, 'delegated.example.test');
    assert.deepEqual(srv.calls(), []);
    assert.equal(wk.calls().length, 0);
  });

  it('.well-known with a port: the delegated host and port; Host has the port; TLS for the delegated name; no SRV', async () => {
    delegate('delegated.example.test:8443');
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'well-known-explicit-port');
    assert.equal(resolution.hostHeader, 'delegated.example.test:8443');
    assert.equal(resolution.tlsServerName, 'delegated.example.test');
    assert.equal(resolution.wellKnown?.server, 'delegated.example.test:8443');
    await served('example.test');
    const call = deleg8443.lastCall();
    assert.equal(call?.headers.host, 'delegated.example.test:8443');
    assert.equal(call.servername, 'delegated.example.test');
    assert.equal(wk.lastCall()?.servername, 'example.test');
    assert.equal(wk.lastCall()?.url, '/.well-known/matrix/server');
    assert.deepEqual(srv.calls(), []);
  });

  it('.well-known with an IP literal: that address (port 8448), Host = the address', async () => {
    const ip = net.address('ip.example.test');
    delegate(ip);
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'well-known-ip-literal');
    assert.deepEqual(resolution.targets, [{ host: ip, port: 8448 }]);
    await served('example.test');
    assert.equal(ipLiteral.lastCall()?.headers.host, ip);
    assert.deepEqual(srv.calls(), []);
  });

  it('.well-known without a port, _matrix-fed SRV: the SRV target; Host and TLS name the delegated name, never the target', async () => {
    delegate('delegated.example.test');
    srv.set('_matrix-fed._tcp.delegated.example.test', [{ name: 'srv-a.example.test', port: 8450, priority: 0, weight: 0 }]);
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'well-known-srv-matrix-fed');
    assert.deepEqual(resolution.targets, [{ host: 'srv-a.example.test', port: 8450 }]);
    assert.equal(resolution.hostHeader, 'delegated.example.test');
    await served('example.test');
    assert.equal(srvA.lastCall()?.headers.host, 'delegated.example.test');
    assert.equal(srvA.lastCall()?.servername, 'delegated.example.test');
    assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.delegated.example.test']);
    assert.ok(lookupCalls.includes('srv-a.example.test'), 'the SRV target is resolved to an address');
  });

  it('.well-known without a port, only the deprecated _matrix SRV: asked after _matrix-fed', async () => {
    delegate('delegated.example.test');
    srv.set('_matrix._tcp.delegated.example.test', [{ name: 'srv-b.example.test', port: 8451, priority: 0, weight: 0 }]);
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'well-known-srv-matrix');
    await served('example.test');
    assert.equal(srvB.lastCall()?.headers.host, 'delegated.example.test');
    assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.delegated.example.test', '_matrix._tcp.delegated.example.test']);
  });

  it('.well-known without a port and no SRV: the delegated name on 8448', async () => {
    delegate('delegated.example.test');
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'well-known-default-8448');
    assert.deepEqual(resolution.targets, [{ host: 'delegated.example.test', port: 8448 }]);
    const { body } = await served('example.test');
    assert.deepEqual(body, { served: 'delegated.example.test', port: 8448 });
    assert.equal(deleg8448.lastCall()?.headers.host, 'delegated.example.test');
    assert.equal(deleg8448.lastCall()?.servername, 'delegated.example.test');
  });

  it('no .well-known (404), _matrix-fed SRV on the server name: Host and TLS the server name', async () => {
    srv.set('_matrix-fed._tcp.example.test', [{ name: 'srv-a.example.test', port: 8450, priority: 0, weight: 0 }]);
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'srv-matrix-fed');
    assert.equal(resolution.wellKnown?.server, null);
    assert.equal(resolution.wellKnown.status, 404);
    await served('example.test');
    assert.equal(srvA.lastCall()?.headers.host, 'example.test');
    assert.equal(srvA.lastCall()?.servername, 'example.test');
  });

  it('no .well-known, only _matrix SRV on the server name', async () => {
    srv.set('_matrix._tcp.example.test', [{ name: 'srv-b.example.test', port: 8451, priority: 0, weight: 0 }]);
    assert.equal((await egress.federation.resolve('example.test')).source, 'srv-matrix');
    await served('example.test');
    assert.equal(srvB.lastCall()?.headers.host, 'example.test');
  });

  it('no .well-known and no SRV: the server name on 8448', async () => {
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'default-8448');
    const { body } = await served('example.test');
    assert.deepEqual(body, { served: 'example.test', port: 8448 });
    assert.equal(name8448.lastCall()?.headers.host, 'example.test');
    assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.example.test', '_matrix._tcp.example.test']);
  });

  for (const [label, respond] of [
    ['invalid JSON', (res: import('node:http').ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end('NOT JSON')],
    ['a JSON array', (res: import('node:http').ServerResponse) => { json(res, 200, ['delegated.example.test']); }],
    ['no m.server', (res: import('node:http').ServerResponse) => { json(res, 200, { 'm.homeserver': 'x' }); }],
    ['an invalid m.server', (res: import('node:http').ServerResponse) => { json(res, 200, { 'm.server': 'bad name!' }); }],
    ['m.server with a bare IPv6', (res: import('node:http').ServerResponse) => { json(res, 200, { 'm.server': '::1' }); }],
    ['status 500', (res: import('node:http').ServerResponse) => { json(res, 500, { 'm.server': 'delegated.example.test' }); }],
    ['status 201', (res: import('node:http').ServerResponse) => { json(res, 201, { 'm.server': 'delegated.example.test' }); }],
    ['a body over 50 KiB', (res: import('node:http').ServerResponse) => { json(res, 200, { 'm.server': 'delegated.example.test', pad: 'a'.repeat(WELL_KNOWN_MAX_BODY) }); }],
  ] as const) {
    it(`.well-known with ${label} is no delegation: SRV and 8448 on the server name`, async () => {
      net.wellKnown.set('example.test', (_req, res) => respond(res));
      const resolution = await egress.federation.resolve('example.test');
      assert.equal(resolution.source, 'default-8448');
      assert.equal(resolution.wellKnown?.server, null);
      assert.ok(resolution.wellKnown.error !== undefined);
      assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.example.test', '_matrix._tcp.example.test']);
    });
  }

  it('a chunked body over 50 KiB (no Content-Length) is cut off, not read whole', async () => {
    net.wellKnown.set('example.test', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"m.server":"delegated.example.test","pad":"`);
      for (let i = 0; i < 64; i++) res.write('a'.repeat(1024));
      res.end('"}');
    });
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.wellKnown?.server, null);
    assert.match(resolution.wellKnown.error ?? '', /larger than 51200 bytes/);
    assert.equal(resolution.wellKnown.temporary, true);
  });

  it('redirects are followed (same and other host), with the redirect target validated as TLS', async () => {
    net.wellKnown.set('example.test', (req, res) => {
      if (req.url === '/.well-known/matrix/server') res.writeHead(302, { location: '/wk-moved' }).end();
      else if (req.url === '/wk-moved') res.writeHead(301, { location: 'https://example.test/wk-final' }).end();
      else json(res, 200, { 'm.server': 'delegated.example.test:8443' });
    });
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'well-known-explicit-port');
    assert.deepEqual(resolution.wellKnown?.urls, [
      'https://example.test/.well-known/matrix/server',
      'https://example.test/wk-moved',
      'https://example.test/wk-final',
    ]);
    assert.deepEqual(
      wk.calls().map((call) => call.url),
      ['/.well-known/matrix/server', '/wk-moved', '/wk-final'],
    );
  });

  it('a redirect loop ends at the first repeated URL (no delegation); a redirect to http is refused', async () => {
    net.wellKnown.set('example.test', (req, res) => {
      res.writeHead(302, { location: req.url === '/.well-known/matrix/server' ? '/wk-a' : '/.well-known/matrix/server' }).end();
    });
    const looped = await egress.federation.resolve('example.test');
    assert.equal(looped.wellKnown?.server, null);
    assert.match(looped.wellKnown.error ?? '', /redirect loop/);
    assert.equal(wk.calls().length, 2);
    egress.federation.clearCache();
    net.wellKnown.set('example.test', (_req, res) => res.writeHead(302, { location: 'http://example.test/x' }).end());
    assert.match((await egress.federation.resolve('example.test')).wellKnown?.error ?? '', /not https/);
  });

  it('caches the .well-known answer: one request for many look-ups; clearCache() forgets it', async () => {
    delegate('delegated.example.test:8443', { 'cache-control': 'max-age=3600' });
    await egress.federation.resolve('example.test');
    const second = await egress.federation.resolve('example.test');
    assert.equal(second.wellKnown?.fromCache, true);
    await served('example.test');
    assert.equal(wk.calls().length, 1);
    egress.federation.clearCache();
    delegate('delegated.example.test');
    assert.equal((await egress.federation.resolve('example.test')).source, 'well-known-default-8448');
    assert.equal(wk.calls().length, 2);
  });

  it('concurrent look-ups of one name share one .well-known request and one SRV query', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    net.wellKnown.set('example.test', (_req, res) => {
      void gate.then(() => { json(res, 200, { 'm.server': 'delegated.example.test' }); });
    });
    const pending = Array.from({ length: 8 }, () => egress.federation.resolve('example.test'));
    setTimeout(release, 50);
    const results = await Promise.all(pending);
    assert.ok(results.every((result) => result.source === 'well-known-default-8448'));
    assert.equal(wk.calls().length, 1);
    assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.delegated.example.test', '_matrix._tcp.delegated.example.test']);
  });

  it('failures are cached too: a missing .well-known is asked once', async () => {
    await egress.federation.resolve('example.test');
    await egress.federation.resolve('example.test');
    assert.equal(wk.calls().length, 1);
  });

  it('SRV priorities: lower first; a connection failure moves on to the next target, in order', async () => {
    delegate('delegated.example.test');
    srv.set('_matrix-fed._tcp.delegated.example.test', [
      { name: 'srv-b.example.test', port: 8451, priority: 20, weight: 0 },
      { name: 'dead.example.test', port: 8452, priority: 10, weight: 0 },
    ]);
    const resolution = await egress.federation.resolve('example.test');
    assert.deepEqual(resolution.targets, [
      { host: 'dead.example.test', port: 8452 },
      { host: 'srv-b.example.test', port: 8451 },
    ]);
    const { body } = await served('example.test');
    assert.equal(body.served, 'srv-b.example.test');
    assert.ok(lookupCalls.includes('dead.example.test'), 'the first target was tried');
  });

  it('no fallback to _matrix records when _matrix-fed targets all fail', async () => {
    srv.set('_matrix-fed._tcp.example.test', [{ name: 'dead.example.test', port: 8452, priority: 0, weight: 0 }]);
    srv.set('_matrix._tcp.example.test', [{ name: 'srv-a.example.test', port: 8450, priority: 0, weight: 0 }]);
    const error = await fetchError(egress.federation.fetch('example.test', '/x'));
    assert.equal((error as NodeJS.ErrnoException).code, 'ECONNREFUSED');
    assert.equal(srvA.calls().length, 0);
  });

  it('the next target is not tried once the server answered (even with a 500)', async () => {
    const failing = await net.serve('srv-c.example.test', 8453, {
      certNames: ['example.test'],
      handler: (_req, res) => { json(res, 500, { errcode: 'M_UNKNOWN' }); },
    });
    srv.set('_matrix-fed._tcp.example.test', [
      { name: 'srv-c.example.test', port: 8453, priority: 0, weight: 0 },
      { name: 'srv-a.example.test', port: 8450, priority: 1, weight: 0 },
    ]);
    const response = await egress.federation.fetch('example.test', '/x', { method: 'PUT', body: '{}' });
    assert.equal(response.status, 500);
    await response.text();
    assert.equal(failing.calls().length, 1);
    assert.equal(srvA.calls().length, 0);
  });

  it('a target whose certificate does not name the server fails TLS and the next target is tried', async () => {
    srv.set('_matrix-fed._tcp.delegated.example.test', [
      { name: 'example.test', port: 8448, priority: 0, weight: 0 },
      { name: 'srv-a.example.test', port: 8450, priority: 1, weight: 0 },
    ]);
    delegate('delegated.example.test');
    const { body } = await served('example.test');
    assert.equal(body.served, 'srv-a.example.test');
    assert.equal(name8448.calls().length, 0, 'no request reached the server with the wrong certificate');
  });

  it('an SRV answer whose only target is "." means no service: FederationUnavailableError, nothing sent', async () => {
    srv.set('_matrix-fed._tcp.example.test', [{ name: '.', port: 0, priority: 0, weight: 0 }]);
    await assert.rejects(egress.federation.resolve('example.test'), (error: unknown) => {
      assert.ok(error instanceof FederationUnavailableError);
      assert.equal(error.code, 'ERR_EGRESS_FEDERATION_UNAVAILABLE');
      assert.equal(error.srvName, '_matrix-fed._tcp.example.test');
      return true;
    });
    await assert.rejects(egress.federation.fetch('example.test', '/x'), FederationUnavailableError);
    assert.equal(name8448.calls().length, 0);
  });

  it('a failed SRV look-up (SERVFAIL) counts as no record', async () => {
    srv.set('_matrix-fed._tcp.example.test', { error: 'ESERVFAIL' });
    const resolution = await egress.federation.resolve('example.test');
    assert.equal(resolution.source, 'default-8448');
    assert.equal(resolution.srv[0]?.outcome, 'failed');
  });

  it('IDN server names are resolved in punycode', async () => {
    const resolution = await egress.federation.resolve('bücher.example.test:8448');
    assert.equal(resolution.serverName, 'xn--bcher-kva.example.test:8448');
    assert.equal(resolution.hostHeader, 'xn--bcher-kva.example.test:8448');
  });

  for (const bad of ['', 'example.test:', 'example.test:0', 'example.test:65536', '::1', '[::1', '[zz::1]', 'exa mple.test', 'a/b', '1.2.3', '256.1.1.1', 'x:y:z', 'host\r\nInjected: 1']) {
    it(`invalid server name ${JSON.stringify(bad)}: InvalidServerNameError, no request and no look-up`, async () => {
      const before = lookupCalls.length;
      await assert.rejects(egress.federation.fetch(bad, '/x'), InvalidServerNameError);
      await assert.rejects(egress.federation.resolve(bad), (error: unknown) => error instanceof InvalidServerNameError);
      assert.equal(lookupCalls.length, before);
      assert.deepEqual(srv.calls(), []);
      assert.equal(wk.calls().length, 0);
    });
  }

  it('the IP blocklist applies to every target: a blocked one is skipped, all blocked is BlockedDestinationError', async () => {
    const strict = createEgress({
      env: {},
      ca: net.ca.cert,
      lookup: createHostsLookup(net.hosts).lookup,
      ipAllowlist: [net.address('example.test'), net.address('srv-a.example.test')],
      federation: { resolveSrv: srv.resolveSrv },
    });
    try {
      srv.set('_matrix-fed._tcp.example.test', [
        { name: 'srv-b.example.test', port: 8451, priority: 0, weight: 0 },
        { name: 'srv-a.example.test', port: 8450, priority: 1, weight: 0 },
      ]);
      const response = await strict.federation.fetch('example.test', '/x');
      assert.equal(((await response.json()) as { served: string }).served, 'srv-a.example.test');
      assert.equal(srvB.calls().length, 0);
      srv.set('_matrix-fed._tcp.example.test', [{ name: 'srv-b.example.test', port: 8451, priority: 0, weight: 0 }]);
      strict.federation.clearCache();
      const error = await fetchError(strict.federation.fetch('example.test', '/x'));
      assert.ok(error instanceof BlockedDestinationError, String(error));
      assert.equal(error.address, net.address('srv-b.example.test'));
    } finally {
      await strict.close();
    }
  });

  it('init.signal aborts the request; init.dispatcher is refused; a bad path is refused', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(egress.federation.fetch('delegated.example.test:8443', '/x', { signal: controller.signal }), { name: 'AbortError' });
    await assert.rejects(egress.federation.fetch('delegated.example.test:8443', '/x', { dispatcher: undefined } as never), TypeError);
    await assert.rejects(egress.federation.fetch('delegated.example.test:8443', 'x'), { code: 'ERR_EGRESS_INVALID_URL' });
    await assert.rejects(egress.federation.fetch('delegated.example.test:8443', '//evil.test/x'), { code: 'ERR_EGRESS_INVALID_URL' });
  });
});
