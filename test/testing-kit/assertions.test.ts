// Tests of the routing assertions of matrix-egress/testing: each helper's pass path (what it
// returns) and fail path (an AssertionError whose message lists what was seen), through a real
// recording proxy, real test origins and our own egress. No message may carry a credential.
import assert from 'node:assert/strict';
import { AssertionError } from 'node:assert';
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { createEgress, type Egress } from '../../src/egress.js';
import {
  describeCall,
  expectDirect,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  expectNotProxied,
  expectProxied,
  expectTunnel,
} from '../../src/testing/assertions.js';
import * as kit from '../../src/testing/index.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';

const SUITE = { timeout: 30_000 };
const CANARY_USER = 'assert-user';
const CANARY_PASSWORD = 'canary-pw-5521';
const BASIC_TOKEN = Buffer.from(`${CANARY_USER}:${CANARY_PASSWORD}`).toString('base64');
const LOOPBACK_ALLOWED = ['127.0.0.0/8', '::1/128'];

/** Run `fn`, expect node:assert's AssertionError, check that no secret is in it, and return its message. */
function failureOf(fn: () => unknown): string {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof AssertionError, `expected an AssertionError, got ${String(caught)}`);
  assert.equal(caught.code, 'ERR_ASSERTION');
  // Runners print actual/expected as a diff: they must not carry calls (which hold the password).
  assert.equal(caught.actual, undefined);
  assert.equal(caught.expected, undefined);
  for (const secret of [CANARY_PASSWORD, BASIC_TOKEN]) {
    assert.ok(!caught.message.includes(secret), `a secret leaked into the message:\n${caught.message}`);
    assert.ok(!String(caught.stack).includes(secret), 'a secret leaked into the stack');
  }
  return caught.message;
}

/** Send raw bytes to the proxy and wait for it to close the connection (or 2 s). */
function rawRequest(port: number, payload: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => socket.destroy(), 2_000);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

describe('routing assertions', SUITE, () => {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let origin: TestOrigin;
  let httpOrigin: TestOrigin;
  let egress: Egress;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    [proxy, origin, httpOrigin] = await Promise.all([
      createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } }),
      createTestOrigin({ tls: true }),
      createTestOrigin(),
    ]);
    const withCredentials = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
    egress = createEgress({
      env: { https_proxy: withCredentials, http_proxy: withCredentials, no_proxy: '' },
      ca: origin.ca,
      ipAllowlist: LOOPBACK_ALLOWED,
      connectTimeout: 2_000,
    });
  });

  after(async () => {
    await egress.close();
    await Promise.all([proxy.close(), origin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  /** A fresh egress per test where pooling would hide a CONNECT; closed at the end of `fn`. */
  async function withFreshEgress(fn: (fresh: Egress) => Promise<void>): Promise<void> {
    const withCredentials = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
    const fresh = createEgress({
      env: { https_proxy: withCredentials, http_proxy: withCredentials, no_proxy: '' },
      ca: origin.ca,
      ipAllowlist: LOOPBACK_ALLOWED,
    });
    try {
      await fn(fresh);
    } finally {
      await fresh.close();
    }
  }

  async function get(client: Egress, type: string, url: string, init: Parameters<Egress['fetch']>[2] = {}): Promise<number> {
    const response = await client.fetch(type, url, init);
    await response.arrayBuffer();
    return response.status;
  }

  describe('expectProxied / expectNotProxied', () => {
    it('pass: returns every matching call; host, port, method and outcome narrow it; a TestOrigin works as the match', async () => {
      proxy.clear();
      await withFreshEgress(async (fresh) => {
        assert.equal(await get(fresh, 'push', `${origin.url}/_matrix/push/v1/notify`, { method: 'POST', body: '{}' }), 200);
      });
      assert.equal(await get(egress, 'url_preview', `${httpOrigin.url}/a`), 200);
      assert.equal(await get(egress, 'url_preview', `${httpOrigin.url}/b`), 200);

      const connects = expectProxied(proxy, { host: '127.0.0.1', port: origin.port, method: 'CONNECT', outcome: 'tunnelled' });
      assert.equal(connects.length, 1);
      assert.equal(connects[0]?.authenticated, true);
      assert.equal(expectProxied(proxy, httpOrigin).length, 2);
      assert.equal(expectProxied(proxy, { host: '127.0.0.1' }).length, 3);
      assert.equal(expectProxied(proxy, { host: '127.0.0.1', port: httpOrigin.port, method: 'GET', outcome: 'forwarded' }).length, 2);
      // Host names compare case-insensitively, with `undefined` meaning "any".
      assert.equal(expectProxied(proxy, { host: '127.0.0.1', port: undefined, method: undefined }).length, 3);
      expectNotProxied(proxy, { host: 'remote.example' });
      expectNotProxied(proxy, { host: '127.0.0.1', port: 1 });
      expectNotProxied(proxy, { host: '127.0.0.1', port: origin.port, method: 'GET' });
    });

    it('IPv6 hosts match in any spelling, with or without brackets', async () => {
      proxy.clear();
      await rawRequest(proxy.port, `CONNECT [::1]:1 HTTP/1.1\r\nHost: [::1]:1\r\n\r\n`);
      for (const host of ['::1', '[::1]', '0:0:0:0:0:0:0:1', '[0::1]']) {
        assert.equal(expectProxied(proxy, { host, port: 1 }).length, 1, host);
      }
    });

    it('fail: lists every call the proxy saw, with authorization present/absent and never the password', async () => {
      proxy.clear();
      await withFreshEgress(async (fresh) => {
        await get(fresh, 'federation', `${origin.url}/_matrix/federation/v1/version`);
      });
      const message = failureOf(() => expectProxied(proxy, { host: 'push.example.org', port: 443, method: 'CONNECT' }));
      assert.match(message, /^expectProxied: expected the recording proxy http:\/\/127\.0\.0\.1:\d+ to see a call to push\.example\.org:443 \(method CONNECT\), but none matched\./);
      assert.match(message, /The proxy saw 1 call:/);
      assert.match(message, new RegExp(`\\n  #\\d+ CONNECT 127\\.0\\.0\\.1:${String(origin.port)} → tunnelled 200, authorization: present \\(accepted\\)`));
      assert.ok(!message.includes(CANARY_USER), 'the user name is not shown either');
    });

    it('fail on an empty history says so; with a pooled tunnel still open it explains why no CONNECT appeared', async () => {
      proxy.clear();
      assert.match(failureOf(() => expectProxied(proxy, { host: '127.0.0.1' })), /The proxy saw no calls\./);

      await get(egress, 'media', `${origin.url}/first`); // opens (or reuses) a pooled tunnel
      proxy.clear();
      await get(egress, 'media', `${origin.url}/second`); // rides the pooled tunnel: no new CONNECT
      assert.ok(proxy.openTunnels > 0);
      const message = failureOf(() => expectProxied(proxy, origin));
      assert.match(message, /Tunnels are pooled per origin/);
    });

    it('expectNotProxied fails with the matching calls only', async () => {
      proxy.clear();
      await get(egress, 'url_preview', `${httpOrigin.url}/leak?access_token=syt_secret_token`);
      await get(egress, 'url_preview', `${origin.url.replace('https:', 'http:')}/other`).catch(() => 0);
      const message = failureOf(() => { expectNotProxied(proxy, httpOrigin); });
      assert.match(message, /^expectNotProxied: expected the recording proxy \S+ to see no call to 127\.0\.0\.1:\d+, but it saw 1\./);
      assert.ok(message.includes(`GET ${httpOrigin.url}/leak?access_token=*** → forwarded 200`), message);
      assert.ok(!message.includes('syt_secret_token'), 'secret query values are hidden');
      assert.ok(!message.includes('/other'), 'calls that do not match are not listed');
    });

    it('argument errors are TypeErrors, not assertion failures', () => {
      assert.throws(() => expectProxied({} as RecordingProxy, { host: 'x' }), TypeError);
      assert.throws(() => expectProxied(proxy, {} as { host: string }), TypeError);
      assert.throws(() => expectProxied(proxy, { host: 'x', port: 0 }), TypeError);
      assert.throws(() => { expectNotProxied(proxy, null as unknown as { host: string }); }, TypeError);
    });
  });

  describe('expectDirect', () => {
    it('pass: a direct type reaches the origin and the proxy sees nothing for it; returns the newest matching request', async () => {
      proxy.clear();
      origin.clear();
      assert.equal(await get(egress, 'appservice', `${origin.url}/_matrix/app/v1/transactions/1`, { method: 'PUT', body: '{}' }), 200);
      assert.equal(await get(egress, 'appservice', `${origin.url}/_matrix/app/v1/transactions/2`, { method: 'PUT', body: '{}' }), 200);
      const request = expectDirect(origin, proxy, { method: 'PUT', path: /^\/_matrix\/app\/v1\/transactions\// });
      assert.equal(request.url, '/_matrix/app/v1/transactions/2');
      assert.equal(expectDirect(origin, proxy, { path: '/_matrix/app/v1/transactions/1' }).method, 'PUT');
      assert.equal(expectDirect(origin, proxy).id, request.id);
      assert.equal(proxy.calls().length, 0);
    });

    it('fail: the origin saw no matching request; the message lists what it did see', async () => {
      origin.clear();
      proxy.clear();
      await get(egress, 'worker', `${origin.url}/_synapse/replication/x`);
      const message = failureOf(() => expectDirect(origin, proxy, { method: 'POST', path: '/_matrix/app/v1/ping' }));
      assert.match(message, /^expectDirect: expected the origin https:\/\/127\.0\.0\.1:\d+ to receive a request POST \/_matrix\/app\/v1\/ping, but none matched\./);
      assert.match(message, /The origin saw 1 call:\n {2}#\d+ GET \/_synapse\/replication\/x from 127\.0\.0\.1:\d+$/);

      origin.clear();
      assert.match(failureOf(() => expectDirect(origin, proxy)), /a request, but none matched\.\nThe origin saw no calls\./);
    });

    it('fail: a proxied https request (the proxy saw a CONNECT for the origin)', async () => {
      proxy.clear();
      origin.clear();
      await withFreshEgress(async (fresh) => {
        await get(fresh, 'push', `${origin.url}/_matrix/push/v1/notify`, { method: 'POST', body: '{}' });
      });
      const message = failureOf(() => expectDirect(origin, proxy, { path: '/_matrix/push/v1/notify' }));
      assert.match(message, /expected no call to 127\.0\.0\.1:\d+ at the recording proxy \S+, but it saw 1: the request may have gone through it\./);
      assert.match(message, /CONNECT 127\.0\.0\.1:\d+ → tunnelled 200, authorization: present \(accepted\)/);
    });

    it('fail: a forwarded http request (it carries the recording proxy\'s Via)', async () => {
      proxy.clear();
      httpOrigin.clear();
      await get(egress, 'url_preview', `${httpOrigin.url}/page`);
      const message = failureOf(() => expectDirect(httpOrigin, proxy, { path: '/page' }));
      assert.match(message, /received the request through a recording proxy \(it carries the proxy's Via header\)/);
      assert.match(message, /#\d+ GET \/page from 127\.0\.0\.1:\d+, via a proxy$/);
    });

    it('argument errors are TypeErrors', () => {
      assert.throws(() => expectDirect({} as TestOrigin, proxy), TypeError);
      assert.throws(() => expectDirect(origin, {} as RecordingProxy), TypeError);
      assert.throws(() => expectDirect(origin, proxy, { path: 42 as unknown as string }), TypeError);
    });
  });

  describe('expectTunnel', () => {
    it('pass: returns the newest tunnelled CONNECT whose target is byte-exact', async () => {
      proxy.clear();
      await withFreshEgress(async (fresh) => {
        await get(fresh, 'key_fetch', `${origin.url}/_matrix/key/v2/server`);
      });
      const authority = `127.0.0.1:${String(origin.port)}`;
      const call = expectTunnel(proxy, authority);
      assert.equal(call.target, authority);
      assert.equal(call.headers.host, authority);
      assert.deepEqual(call.authorization, { username: CANARY_USER, password: CANARY_PASSWORD });
    });

    it('fail: a refused CONNECT is not a tunnel; the message shows it was rejected and that credentials were absent', async () => {
      proxy.clear();
      const anonymous = createEgress({ env: { https_proxy: proxy.url }, ca: origin.ca, ipAllowlist: LOOPBACK_ALLOWED });
      try {
        await assert.rejects(anonymous.fetch('push', `${origin.url}/`));
      } finally {
        await anonymous.destroy();
      }
      const authority = `127.0.0.1:${String(origin.port)}`;
      const message = failureOf(() => expectTunnel(proxy, authority));
      assert.ok(message.startsWith(`expectTunnel: expected the recording proxy ${proxy.url} to open a tunnel for CONNECT ${authority}, but it did not.`), message);
      assert.ok(message.includes(`CONNECT ${authority} → rejected 407, authorization: absent (required)`), message);
      // The refused CONNECT is still visible to expectProxied, with its outcome.
      assert.equal(expectProxied(proxy, { host: '127.0.0.1', port: origin.port, method: 'CONNECT', outcome: 'rejected' }).length, 1);
    });

    it('fail: a wrong spelling of the authority does not match (byte-exact)', async () => {
      proxy.clear();
      await withFreshEgress(async (fresh) => {
        await get(fresh, 'key_fetch', `${origin.url}/`);
      });
      const message = failureOf(() => expectTunnel(proxy, `localhost:${String(origin.port)}`));
      assert.ok(message.includes(`CONNECT 127.0.0.1:${String(origin.port)} → tunnelled 200`), message);
      assert.throws(() => expectTunnel(proxy, ''), TypeError);
    });
  });

  describe('expectForwarded', () => {
    it('pass: returns the newest forwarded call for the exact URL; a URL object compares by href', async () => {
      proxy.clear();
      await get(egress, 'url_preview', `${httpOrigin.url}/article?id=7`);
      await get(egress, 'push', `${httpOrigin.url}/_matrix/push/v1/notify`, { method: 'POST', body: '{"n":1}' });
      const call = expectForwarded(proxy, `${httpOrigin.url}/article?id=7`, { method: 'GET' });
      assert.equal(call.path, '/article?id=7');
      assert.equal(expectForwarded(proxy, new URL(`${httpOrigin.url}/_matrix/push/v1/notify`)).method, 'POST');
    });

    it('fail: a different method, or a target that is not byte-exact; the message lists the calls', async () => {
      proxy.clear();
      const { body } = await egress.dispatcher('media').request({ origin: httpOrigin.url, path: '/a/../b', method: 'GET' });
      await body.text();
      const message = failureOf(() => expectForwarded(proxy, `${httpOrigin.url}/b`));
      assert.ok(message.startsWith(`expectForwarded: expected the recording proxy ${proxy.url} to forward a request ${httpOrigin.url}/b, but it did not.`), message);
      assert.ok(message.includes(` GET ${httpOrigin.url}/a/../b → forwarded 200, authorization: present (accepted)`), message);
      const wrongMethod = failureOf(() => expectForwarded(proxy, `${httpOrigin.url}/a/../b`, { method: 'POST' }));
      assert.match(wrongMethod, /to forward POST /);
    });
  });

  describe('expectNoProxyAuthorizationAtOrigin', () => {
    it('pass: tunnelled, forwarded and direct requests never carry it', async () => {
      origin.clear();
      httpOrigin.clear();
      await get(egress, 'push', `${origin.url}/p`);
      await get(egress, 'url_preview', `${httpOrigin.url}/q`);
      await get(egress, 'appservice', `${httpOrigin.url}/r`);
      assert.equal(origin.calls().length + httpOrigin.calls().length, 3);
      expectNoProxyAuthorizationAtOrigin(origin);
      expectNoProxyAuthorizationAtOrigin(httpOrigin);
    });

    it('fail: names each offending request and never shows the header value', async () => {
      httpOrigin.clear();
      await new Promise<void>((resolve, reject) => {
        const req = http.get(
          `${httpOrigin.url}/leaky`,
          { headers: { 'Proxy-Authorization': `Basic ${BASIC_TOKEN}` }, agent: false },
          (res) => {
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', reject);
      });
      const message = failureOf(() => { expectNoProxyAuthorizationAtOrigin(httpOrigin); });
      assert.match(message, /^expectNoProxyAuthorizationAtOrigin: 1 request\(s\) to the origin http:\/\/127\.0\.0\.1:\d+ carried Proxy-Authorization \(value not shown\)\./);
      assert.match(message, /#\d+ GET \/leaky from 127\.0\.0\.1:\d+, proxy-authorization: present$/);
      assert.throws(() => { expectNoProxyAuthorizationAtOrigin({} as TestOrigin); }, TypeError);
    });
  });

  describe('describeCall', () => {
    it('hides userinfo and secret query values in a received target', async () => {
      proxy.clear();
      await rawRequest(
        proxy.port,
        `GET http://someone:hunter2@127.0.0.1:${String(httpOrigin.port)}/x?access_token=syt_abc&password=pw1&keep=yes HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic ${BASIC_TOKEN}\r\nConnection: close\r\n\r\n`,
      );
      await rawRequest(proxy.port, `CONNECT someone:hunter2@127.0.0.1:443 HTTP/1.1\r\nConnection: close\r\n\r\n`);
      const [forward, connect] = proxy.calls();
      assert.ok(forward !== undefined && connect !== undefined);
      const forwardText = describeCall(forward);
      assert.equal(
        forwardText,
        `#${String(forward.id)} GET http://***@127.0.0.1:${String(httpOrigin.port)}/x?access_token=***&password=***&keep=yes → rejected 400, authorization: present (accepted)`,
      );
      assert.match(describeCall(connect), /^#\d+ CONNECT \*\*\*@127\.0\.0\.1:443 → rejected 400, authorization: absent \(required\)$/);
      for (const text of [forwardText, describeCall(connect)]) {
        for (const secret of ['hunter2', 'someone', 'syt_abc', 'pw1', CANARY_PASSWORD, BASIC_TOKEN]) {
          assert.ok(!text.includes(secret), `${secret} in ${text}`);
        }
      }
    });

    it('caps very long targets', async () => {
      proxy.clear();
      await rawRequest(proxy.port, `GET http://127.0.0.1:1/${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      const call = proxy.lastCall();
      assert.ok(call !== undefined);
      const text = describeCall(call);
      assert.ok(text.length < 400, `${String(text.length)} characters`);
      assert.match(text, /a…/);
    });
  });

  describe('runner independence', () => {
    it('the compiled module imports nothing but node:assert and node:net', () => {
      const source = readFileSync(fileURLToPath(new URL('../../src/testing/assertions.js', import.meta.url)), 'utf8');
      const imports = [...source.matchAll(/^import\s[^;]*?from\s+'([^']+)'/gm)].map((match) => match[1]);
      assert.deepEqual(imports.sort(), ['node:assert', 'node:net']);
    });

    it('the stack of a failure starts at the caller, not inside the helper', () => {
      let stack = '';
      try {
        expectProxied(proxy, { host: 'nowhere.example' });
      } catch (error) {
        stack = String((error as Error).stack);
      }
      const firstFrame = stack.split('\n').find((line) => line.trimStart().startsWith('at '));
      assert.ok(firstFrame?.includes('assertions.test.js'), firstFrame);
    });

    it('every helper is exported from the matrix-egress/testing entry', () => {
      for (const name of ['describeCall', 'expectDirect', 'expectForwarded', 'expectNoProxyAuthorizationAtOrigin', 'expectNotProxied', 'expectProxied', 'expectTunnel']) {
        assert.equal(typeof (kit as Record<string, unknown>)[name], 'function', name);
      }
    });
  });
});
