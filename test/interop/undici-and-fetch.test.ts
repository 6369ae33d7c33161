// The test kit used by homeserver code on undici and on Node's built-in fetch, without
// matrix-egress: undici's ProxyAgent and EnvHttpProxyAgent, the global fetch with a dispatcher,
// and the global fetch configured by NODE_USE_ENV_PROXY (Node >= 22.21 and 24). Checked with the
// recording proxy and the kit's assertions. See docs/guides/testing-proxy-routing.md. Loopback only.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';

import { EnvHttpProxyAgent, ProxyAgent, request, type Dispatcher } from 'undici';

import {
  createRecordingProxy,
  createTestOrigin,
  expectDirect,
  expectNoProxyAuthorizationAtOrigin,
  expectNotProxied,
  expectTunnel,
  type RecordingProxy,
  type TestOrigin,
} from '../../src/testing/index.js';
import { withDispatcher } from '../support/builtin-fetch.js';

const TIMEOUT = { timeout: 30_000 };
const CREDENTIALS = { username: 'dendrite', password: 'interop-undici-secret' };

/** Homeserver code on undici: fetch a remote server's keys (`/_matrix/key/v2/server`) and return the status. */
async function fetchServerKeys(baseUrl: string, dispatcher: Dispatcher): Promise<number> {
  const { statusCode, body } = await request(new URL('/_matrix/key/v2/server', baseUrl), { dispatcher, signal: AbortSignal.timeout(5_000) });
  await body.dump();
  return statusCode;
}

/** NODE_USE_ENV_PROXY makes Node's own fetch and http use the proxy variables (Node 22.21+, 24+). */
function nodeHasEnvProxy(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  return major >= 24 || (major === 22 && minor >= 21);
}

describe('test kit interop: homeserver code on undici and on the built-in fetch', TIMEOUT, () => {
  let proxy: RecordingProxy;
  let keyServer: TestOrigin;
  let appservice: TestOrigin;
  let proxyWithCredentials: string;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'matrix-egress-interop-'));
    proxy = await createRecordingProxy({ auth: CREDENTIALS });
    keyServer = await createTestOrigin({ tls: true });
    appservice = await createTestOrigin();
    const url = new URL(proxy.url);
    url.username = CREDENTIALS.username;
    url.password = CREDENTIALS.password;
    proxyWithCredentials = url.href;
  });

  after(async () => {
    await Promise.all([proxy.close(), keyServer.close(), appservice.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('undici ProxyAgent: the key request is tunnelled with the credentials, which stay at the proxy', async () => {
    proxy.history.clear();
    const dispatcher = new ProxyAgent({ uri: proxyWithCredentials, requestTls: { ca: keyServer.ca ?? '' } });
    try {
      assert.equal(await fetchServerKeys(keyServer.url, dispatcher), 200);
    } finally {
      await dispatcher.close();
    }
    const tunnel = expectTunnel(proxy, `127.0.0.1:${String(keyServer.port)}`);
    assert.deepEqual(tunnel.authorization, CREDENTIALS);
    expectNoProxyAuthorizationAtOrigin(keyServer);
  });

  it('undici EnvHttpProxyAgent: proxied by default, direct for a no_proxy host', async () => {
    proxy.history.clear();
    const dispatcher = new EnvHttpProxyAgent({
      httpsProxy: proxyWithCredentials,
      httpProxy: proxyWithCredentials,
      noProxy: `127.0.0.1:${String(appservice.port)}`,
      requestTls: { ca: keyServer.ca ?? '' },
    });
    try {
      assert.equal(await fetchServerKeys(keyServer.url, dispatcher), 200);
      assert.equal(await fetchServerKeys(appservice.url, dispatcher), 200);
    } finally {
      await dispatcher.close();
    }
    expectTunnel(proxy, `127.0.0.1:${String(keyServer.port)}`);
    expectDirect(appservice, proxy, { path: '/_matrix/key/v2/server' });
    expectNotProxied(proxy, appservice);
  });

  it("Node's built-in fetch with an undici ProxyAgent as dispatcher", async () => {
    proxy.history.clear();
    const dispatcher = new ProxyAgent({ uri: proxyWithCredentials, requestTls: { ca: keyServer.ca ?? '' } });
    try {
      const init = withDispatcher({ signal: AbortSignal.timeout(5_000) }, dispatcher);
      const response = await globalThis.fetch(`${keyServer.url}/_matrix/key/v2/server`, init);
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    } finally {
      await dispatcher.close();
    }
    expectTunnel(proxy, `127.0.0.1:${String(keyServer.port)}`);
    expectNoProxyAuthorizationAtOrigin(keyServer);
  });

  it("Node's built-in fetch configured by NODE_USE_ENV_PROXY, in a child process", { skip: nodeHasEnvProxy() ? false : `Node ${process.version} has no NODE_USE_ENV_PROXY` }, async () => {
    proxy.history.clear();
    const caFile = join(dir, 'test-ca.pem');
    writeFileSync(caFile, keyServer.ca ?? '');
    const program = `
      const get = async (url) => { const r = await fetch(url, { method: 'PUT', body: '{}', signal: AbortSignal.timeout(5000) }); await r.arrayBuffer(); return r.status; };
      console.log(JSON.stringify([await get(process.env.KEYS_URL), await get(process.env.APPSERVICE_URL)]));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', program], {
      timeout: 15_000,
      env: {
        ...process.env,
        NODE_USE_ENV_PROXY: '1',
        // The child trusts the test CA through the environment, as a deployment would.
        NODE_EXTRA_CA_CERTS: caFile,
        HTTPS_PROXY: proxyWithCredentials,
        HTTP_PROXY: proxyWithCredentials,
        NO_PROXY: `127.0.0.1:${String(appservice.port)}`,
        KEYS_URL: `${keyServer.url}/_matrix/key/v2/server`,
        APPSERVICE_URL: `${appservice.url}/_matrix/app/v1/transactions/1`,
      },
    }).catch((error: unknown) => {
      throw new Error(`child failed: ${String(error)}`);
    });
    assert.deepEqual(JSON.parse(stdout), [200, 200]);
    expectTunnel(proxy, `127.0.0.1:${String(keyServer.port)}`);
    expectDirect(appservice, proxy, { method: 'PUT', path: '/_matrix/app/v1/transactions/1' });
    expectNoProxyAuthorizationAtOrigin(keyServer);
  });
});
