// Node's built-in fetch (globalThis.fetch) with our dispatchers. Node bundles its own undici, of
// another major than ours on most lines (Node 20 and 22: undici 6; 24: 7; 26: 8), and it calls
// `dispatcher.dispatch()` with the handler shape of its own major. Applications that pass
// `egress.dispatcher(type)` to the global fetch depend on that working, so this file runs on every
// Node of the CI matrix (docs/platforms.md). Loopback only.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createEgress, type Egress } from '../../src/index.js';
import {
  createRecordingProxy,
  createTestOrigin,
  expectDirect,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  expectTunnel,
  type RecordingProxy,
  type TestOrigin,
} from '../../src/testing/index.js';
import { withDispatcher } from '../support/builtin-fetch.js';

const TIMEOUT = { timeout: 20_000 };

describe(`Node ${process.version}'s built-in fetch with matrix-egress dispatchers`, TIMEOUT, () => {
  let proxy: RecordingProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;
  let directOrigin: TestOrigin;
  let egress: Egress;

  before(async () => {
    proxy = await createRecordingProxy({ auth: { username: 'hs', password: 'builtin-fetch-secret' } });
    httpsOrigin = await createTestOrigin({ tls: true });
    httpOrigin = await createTestOrigin();
    directOrigin = await createTestOrigin();
    const withAuth = new URL(proxy.url);
    withAuth.username = 'hs';
    withAuth.password = 'builtin-fetch-secret';
    egress = createEgress({
      env: { https_proxy: withAuth.href, http_proxy: withAuth.href },
      ca: httpsOrigin.ca ?? '',
      ipAllowlist: ['127.0.0.0/8'],
    });
  });

  after(async () => {
    await egress.close();
    await Promise.all([proxy.close(), httpsOrigin.close(), httpOrigin.close(), directOrigin.close()]);
  });

  it('tunnels an https:// request of a proxied type through the proxy', async () => {
    const response = await globalThis.fetch(`${httpsOrigin.url}/tunnel`, withDispatcher({}, egress.dispatcher('push')));
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { ok: true, method: 'GET', url: '/tunnel' });
    const call = expectTunnel(proxy, `127.0.0.1:${String(httpsOrigin.port)}`);
    assert.equal(call.authenticated, true);
    expectNoProxyAuthorizationAtOrigin(httpsOrigin);
  });

  it('forwards an http:// request of a proxied type, with a POST body', async () => {
    const response = await globalThis.fetch(
      `${httpOrigin.url}/forward`,
      withDispatcher({ method: 'POST', body: 'hello' }, egress.dispatcher('url_preview')),
    );
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    const call = expectForwarded(proxy, `${httpOrigin.url}/forward`, { method: 'POST' });
    assert.equal(call.authenticated, true);
    expectNoProxyAuthorizationAtOrigin(httpOrigin);
  });

  it('goes straight to the origin for a direct type', async () => {
    const response = await globalThis.fetch(`${directOrigin.url}/direct`, withDispatcher({}, egress.dispatcher('appservice')));
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    expectDirect(directOrigin, proxy, { path: '/direct' });
  });
});
