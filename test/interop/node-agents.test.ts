// The test kit used by homeserver code that does not route through matrix-egress: the same kind of
// outbound calls (a push notification through the proxy, an application-service transaction
// direct), written with the http.Agent proxy clients people use today (https-proxy-agent,
// http-proxy-agent, proxy-agent), checked with the recording proxy and the kit's assertions.
// See docs/guides/testing-proxy-routing.md. Loopback only.
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as https from 'node:https';
import { after, before, describe, it } from 'node:test';

import { HttpProxyAgent } from 'http-proxy-agent';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { ProxyAgent } from 'proxy-agent';

import {
  createRecordingProxy,
  createTestOrigin,
  expectDirect,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  expectNotProxied,
  expectProxied,
  expectTunnel,
  type RecordingProxy,
  type TestOrigin,
} from '../../src/testing/index.js';

const TIMEOUT = { timeout: 20_000 };
const CREDENTIALS = { username: 'synapse', password: 'interop-agents-secret' };

/**
 * Homeserver code: POST a notification to a push gateway (`/_matrix/push/v1/notify`) with the
 * given agent and TLS options, and return the gateway's status. This is the code under test.
 */
function notifyPush(gatewayUrl: string, agent: http.Agent, tls: https.RequestOptions = {}): Promise<number> {
  const url = new URL('/_matrix/push/v1/notify', gatewayUrl);
  const send = url.protocol === 'https:' ? https.request : http.request;
  const body = JSON.stringify({ notification: { devices: [{ app_id: 'org.example', pushkey: 'k' }] } });
  return new Promise((resolve, reject) => {
    const req = send(url, { ...tls, agent, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 5_000 }, (res) => {
      res.resume();
      res.on('end', () => {
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('timeout', () => req.destroy(new Error('push timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

function proxyUrlWithCredentials(proxy: RecordingProxy): string {
  const url = new URL(proxy.url);
  url.username = CREDENTIALS.username;
  url.password = CREDENTIALS.password;
  return url.href;
}

describe('test kit interop: homeserver code on http.Agent proxy clients', TIMEOUT, () => {
  let proxy: RecordingProxy;
  let pushGateway: TestOrigin;
  let plainGateway: TestOrigin;
  let appservice: TestOrigin;

  before(async () => {
    proxy = await createRecordingProxy({ auth: CREDENTIALS });
    pushGateway = await createTestOrigin({ tls: true });
    plainGateway = await createTestOrigin();
    appservice = await createTestOrigin();
  });

  after(async () => {
    await Promise.all([proxy.close(), pushGateway.close(), plainGateway.close(), appservice.close()]);
  });

  it('https-proxy-agent: the push is tunnelled, with the proxy credentials, which never reach the gateway', async () => {
    proxy.history.clear();
    const agent = new HttpsProxyAgent(proxyUrlWithCredentials(proxy), { keepAlive: true });
    try {
      // https-proxy-agent takes origin TLS options per request (docs/why-not-peers.md).
      assert.equal(await notifyPush(pushGateway.url, agent, { ca: pushGateway.ca ?? '' }), 200);
    } finally {
      agent.destroy();
    }
    const tunnel = expectTunnel(proxy, `127.0.0.1:${String(pushGateway.port)}`);
    assert.deepEqual(tunnel.authorization, CREDENTIALS);
    assert.equal(tunnel.authenticated, true);
    expectNoProxyAuthorizationAtOrigin(pushGateway);
  });

  it('http-proxy-agent: a plain-http push is forwarded in absolute form', async () => {
    proxy.history.clear();
    const agent = new HttpProxyAgent(proxyUrlWithCredentials(proxy));
    try {
      assert.equal(await notifyPush(plainGateway.url, agent), 200);
    } finally {
      agent.destroy();
    }
    const call = expectForwarded(proxy, `${plainGateway.url}/_matrix/push/v1/notify`, { method: 'POST' });
    assert.equal(call.authenticated, true);
    expectNoProxyAuthorizationAtOrigin(plainGateway);
  });

  it('a wrong proxy password shows up as a rejected call, and the homeserver sees 407', async () => {
    proxy.history.clear();
    const wrong = new URL(proxy.url);
    wrong.username = CREDENTIALS.username;
    wrong.password = 'not-the-password';
    const agent = new HttpProxyAgent(wrong.href);
    try {
      assert.equal(await notifyPush(plainGateway.url, agent), 407);
    } finally {
      agent.destroy();
    }
    const [call] = expectProxied(proxy, { host: '127.0.0.1', port: plainGateway.port, method: 'POST' });
    assert.ok(call !== undefined);
    assert.equal(call.authenticated, false);
    assert.equal(call.statusCode, 407);
    assert.equal(plainGateway.calls().length, 1, 'only the earlier, authenticated push reached the gateway');
  });

  describe('proxy-agent, configured from the environment as a homeserver would be', () => {
    const saved = new Map<string, string | undefined>();
    const env = {
      HTTPS_PROXY: '',
      HTTP_PROXY: '',
      NO_PROXY: '',
    };

    before(() => {
      env.HTTPS_PROXY = proxyUrlWithCredentials(proxy);
      env.HTTP_PROXY = proxyUrlWithCredentials(proxy);
      // The application service is on the homeserver's own network: never through the proxy.
      env.NO_PROXY = `127.0.0.1:${String(appservice.port)}`;
      // This file runs in its own process (node:test), so changing process.env here is contained.
      for (const [name, value] of Object.entries(env)) {
        for (const key of [name, name.toLowerCase()]) {
          saved.set(key, process.env[key]);
          Reflect.deleteProperty(process.env, key);
        }
        process.env[name] = value;
      }
    });

    after(() => {
      for (const [key, value] of saved) {
        if (value === undefined) Reflect.deleteProperty(process.env, key);
        else process.env[key] = value;
      }
    });

    it('the push goes through the proxy and the appservice transaction goes direct', async () => {
      proxy.history.clear();
      const agent = new ProxyAgent({ ca: pushGateway.ca ?? '' });
      try {
        assert.equal(await notifyPush(pushGateway.url, agent, { ca: pushGateway.ca ?? '' }), 200);
        assert.equal(await notifyPush(appservice.url, agent), 200);
      } finally {
        agent.destroy();
      }
      expectTunnel(proxy, `127.0.0.1:${String(pushGateway.port)}`);
      expectDirect(appservice, proxy, { method: 'POST', path: '/_matrix/push/v1/notify' });
      expectNotProxied(proxy, appservice);
      expectNoProxyAuthorizationAtOrigin(appservice);
    });
  });
});
