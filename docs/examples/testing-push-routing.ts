// Routing tests for notifier.ts with node:test and matrix-egress/testing. Runs on loopback only:
// a recording forward proxy that requires credentials, HTTPS origins with a throwaway CA, and one
// plain HTTP origin. Run it with `node --test` (after compiling).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createEgress, ProxyAuthenticationError, type Egress } from 'matrix-egress';
import {
  createRecordingProxy,
  createTestCertificateAuthority,
  createTestOrigin,
  expectDirect,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  expectNotProxied,
  expectTunnel,
  type RecordingProxy,
  type TestOrigin,
} from 'matrix-egress/testing';

import { previewUrl, sendPush, sendTransaction } from './notifier.js';

describe('notifier: every call leaves the way it should', () => {
  // One CA and one certificate for every HTTPS origin: generating keys is the slow part.
  const ca = createTestCertificateAuthority();
  const tls = { ...ca.issue({ hosts: ['127.0.0.1', 'localhost'] }), ca: ca.cert };

  let proxy: RecordingProxy;
  let gateway: TestOrigin; // a push gateway (HTTPS)
  let site: TestOrigin; // a web page a user posted (plain HTTP)
  let appservice: TestOrigin; // an application service (HTTPS)
  let egress: Egress;

  /** The egress under test, configured as an operator would, but pointed at the loopback servers. */
  function egressFor(target: RecordingProxy, noProxy = ''): Egress {
    const proxyUrl = target.urlWithCredentials('synapse', 'proxy-secret');
    return createEgress({
      env: { https_proxy: proxyUrl, http_proxy: proxyUrl, no_proxy: noProxy },
      ca: ca.cert, // trust the throwaway CA for the origins; verification stays on
      ipAllowlist: ['127.0.0.1/32'], // the SSRF guard blocks loopback, where the test origins live
    });
  }

  before(async () => {
    proxy = await createRecordingProxy({ auth: { username: 'synapse', password: 'proxy-secret' } });
    gateway = await createTestOrigin({
      tls,
      handler: (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ rejected: [] }));
      },
    });
    site = await createTestOrigin({
      handler: (req, res) => {
        req.resume();
        res.writeHead(200, { 'content-type': 'text/html' });
        res.end('<html><head><title>Hello, Matrix</title></head></html>');
      },
    });
    appservice = await createTestOrigin({ tls });
    egress = egressFor(proxy);
  });

  after(async () => {
    await egress.close();
    await Promise.all([proxy.close(), gateway.close(), site.close(), appservice.close()]);
  });

  it('push goes through the proxy in a CONNECT tunnel, with the proxy credentials', async () => {
    assert.deepEqual(await sendPush(egress, gateway.url, 'pushkey-1'), []);

    const connect = expectTunnel(proxy, `127.0.0.1:${String(gateway.port)}`);
    assert.equal(connect.authenticated, true);
    assert.equal(gateway.lastCall()?.url, '/_matrix/push/v1/notify');
    expectNoProxyAuthorizationAtOrigin(gateway);
  });

  it('a URL preview of an http:// page is forwarded by the proxy, target byte-exact', async () => {
    const url = `${site.url}/news/a%2Fb?utm=1`;
    assert.deepEqual(await previewUrl(egress, url), { title: 'Hello, Matrix' });

    const call = expectForwarded(proxy, url, { method: 'GET' });
    assert.equal(call.path, '/news/a%2Fb?utm=1');
    expectNoProxyAuthorizationAtOrigin(site);
  });

  it('application service transactions go direct, even with a proxy configured', async () => {
    await sendTransaction(egress, appservice.url, 'txn-1', [{ type: 'm.room.message' }]);

    const request = expectDirect(appservice, proxy, { method: 'PUT', path: '/_matrix/app/v1/transactions/txn-1' });
    assert.equal(request.headers['content-type'], 'application/json');
    expectNotProxied(proxy, appservice);
  });

  it('no_proxy sends push direct', async () => {
    const bypassing = egressFor(proxy, '127.0.0.1');
    try {
      proxy.clear();
      gateway.clear();
      await sendPush(bypassing, gateway.url, 'pushkey-2');
      expectDirect(gateway, proxy, { path: '/_matrix/push/v1/notify' });
    } finally {
      await bypassing.close();
    }
  });

  it('a proxy that refuses the credentials fails the push with ProxyAuthenticationError', async () => {
    const refusing = await createRecordingProxy({ fail: { connect: { status: 407 } } });
    const client = egressFor(refusing);
    try {
      await assert.rejects(sendPush(client, gateway.url, 'pushkey-3'), (error: Error) => {
        // egress.fetch is undici's fetch: the typed error is the cause of its TypeError('fetch failed').
        assert.ok(error.cause instanceof ProxyAuthenticationError);
        assert.equal(error.cause.code, 'ERR_EGRESS_PROXY_AUTH');
        return true;
      });
    } finally {
      await client.destroy();
      await refusing.close();
    }
  });
});
