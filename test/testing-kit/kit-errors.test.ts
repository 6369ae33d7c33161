// The test kit seen from OUR client: every failure the recording proxy can inject becomes the typed
// error SPEC §7 documents when the request is made with createEgress, and every kind of request the
// egress makes (CONNECT, absolute-form GET and POST, IPv6 targets, http.Agent, dispatcher API, refused
// credentials, an unreachable target) leaves a complete record. Loopback only; every test is bounded.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import * as https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';

import { createEgress, type Egress } from '../../src/egress.js';
import type { EgressOptions } from '../../src/config/compile.js';
import {
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyUnreachableError,
} from '../../src/errors.js';
import { expectForwarded, expectNoProxyAuthorizationAtOrigin, expectTunnel } from '../../src/testing/assertions.js';
import { createRecordingProxy, type RecordingProxy, type RecordingProxyOptions } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import { fetchError } from '../support/failures.js';
import { closedPort, ipv6Available, waitFor } from '../support/net.js';

const SUITE = { timeout: 30_000 };
const CANARY_USER = 'kit-user';
const CANARY_PASSWORD = 'canary-pw-4417';
/** The origins live on loopback, which the SSRF guard blocks for IP-literal URLs by default (SPEC §8). */
const LOOPBACK_ALLOWED = ['127.0.0.0/8', '::1/128'];

function assertNoCanary(error: Error): void {
  const text = `${error.message}\n${String(error.stack)}\n${inspect(error, { depth: 5, showHidden: true })}`;
  assert.ok(!text.includes(CANARY_PASSWORD), `the password leaked:\n${text}`);
}

/** An origin whose answer is the request body it received, so a test can see the body arrived intact. */
function echoOrigin(tls: boolean): Promise<TestOrigin> {
  return createTestOrigin({
    ...(tls ? { tls: true as const } : {}),
    handler: (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': body.length });
        res.end(body);
      });
    },
  });
}

describe('failure injection becomes the documented error on the client (createEgress + fetch)', SUITE, () => {
  let restoreEnv: () => void;
  let origin: TestOrigin;
  let httpOrigin: TestOrigin;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    [origin, httpOrigin] = await Promise.all([createTestOrigin({ tls: true }), createTestOrigin()]);
  });

  after(async () => {
    await Promise.all([origin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  /** An egress through `proxy`, with credentials, trusting the origin's throwaway CA. */
  function egressThrough(proxy: RecordingProxy, options: EgressOptions = {}): Egress {
    const withCredentials = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
    return createEgress({
      env: { https_proxy: withCredentials, http_proxy: withCredentials, no_proxy: '' },
      ca: origin.ca,
      ipAllowlist: LOOPBACK_ALLOWED,
      connectTimeout: 2_000,
      ...options,
    });
  }

  /** Start a proxy with `options`, make one `push` request to `url` through it, return the error. */
  async function injected(options: RecordingProxyOptions, url = `${origin.url}/_matrix/push/v1/notify`, egressOptions: EgressOptions = {}): Promise<{ error: Error; proxy: RecordingProxy; elapsed: number }> {
    const proxy = await createRecordingProxy(options);
    const egress = egressThrough(proxy, egressOptions);
    const started = Date.now();
    try {
      const error = await fetchError(egress.fetch('push', url, { method: 'POST', body: '{}' }));
      assertNoCanary(error);
      return { error, proxy, elapsed: Date.now() - started };
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  }

  it('an injected 407 on CONNECT → ProxyAuthenticationError (ERR_EGRESS_PROXY_AUTH) with the realm', async () => {
    const { error, proxy } = await injected({ fail: { connect: { status: 407 } } });
    assert.ok(error instanceof ProxyAuthenticationError, String(error));
    assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
    assert.equal(error.statusCode, 407);
    assert.equal(error.realm, 'matrix-egress-test');
    assert.equal(error.target, `127.0.0.1:${String(origin.port)}`);
    assert.equal(error.proxy, proxy.url);
    assert.match(error.message, /rejected the configured credentials/);
    const call = proxy.lastCall();
    assert.equal(call?.method, 'CONNECT');
    assert.equal(call.outcome, 'injected');
    assert.equal(call.statusCode, 407);
  });

  it('an injected 407 with no realm → ProxyAuthenticationError whose realm is undefined', async () => {
    const { error } = await injected({ fail: { connect: { status: 407 } }, realm: null });
    assert.ok(error instanceof ProxyAuthenticationError, String(error));
    assert.equal(error.realm, undefined);
  });

  it('an injected 407 on a forwarded http request → ProxyAuthenticationError, not a response', async () => {
    const { error, proxy } = await injected({ fail: { connect: { status: 407 } } }, `${httpOrigin.url}/push`);
    assert.ok(error instanceof ProxyAuthenticationError, String(error));
    assert.equal(proxy.lastCall()?.method, 'POST');
    assert.equal(proxy.lastCall()?.outcome, 'injected');
  });

  for (const status of [403, 502]) {
    it(`an injected ${String(status)} on CONNECT → ProxyConnectError with statusCode ${String(status)}`, async () => {
      const { error, proxy } = await injected({ fail: { connect: { status } } });
      assert.ok(error instanceof ProxyConnectError, String(error));
      assert.ok(!(error instanceof ProxyAuthenticationError));
      assert.equal(error.code, 'ERR_EGRESS_PROXY_CONNECT');
      assert.equal(error.statusCode, status);
      assert.equal(error.target, `127.0.0.1:${String(origin.port)}`);
      assert.deepEqual(
        proxy.calls().map((call) => [call.method, call.outcome, call.statusCode]),
        [['CONNECT', 'injected', status]],
      );
    });
  }

  it('{ status, times: 1 } fails the first request only; the next one is tunnelled', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: { status: 502, times: 1 } } });
    const egress = egressThrough(proxy);
    try {
      const error = await fetchError(egress.fetch('push', `${origin.url}/first`));
      assert.ok(error instanceof ProxyConnectError && error.statusCode === 502, String(error));
      const response = await egress.fetch('push', `${origin.url}/second`);
      assert.equal(response.status, 200);
      await response.text();
      expectTunnel(proxy, `127.0.0.1:${String(origin.port)}`);
      assert.deepEqual(
        proxy.calls().map((call) => call.outcome),
        ['injected', 'tunnelled'],
      );
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it("'refuse' → ProxyUnreachableError (ECONNREFUSED) for https and http, promptly; clearing it serves again on the same port", async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'refuse' } });
    const egress = egressThrough(proxy);
    try {
      for (const url of [`${origin.url}/`, `${httpOrigin.url}/`]) {
        const started = Date.now();
        const error = await fetchError(egress.fetch('push', url));
        assert.ok(error instanceof ProxyUnreachableError, `${url}: ${String(error)}`);
        assert.equal(error.code, 'ERR_EGRESS_PROXY_UNREACHABLE');
        assert.equal(error.syscallCode, 'ECONNREFUSED');
        assert.ok(Date.now() - started < 1_500, `took ${String(Date.now() - started)} ms`);
        assertNoCanary(error);
      }
      assert.equal(proxy.calls().length, 0);

      const port = proxy.port;
      await proxy.setFailure(undefined);
      assert.equal(proxy.port, port);
      const response = await egress.fetch('push', `${origin.url}/`);
      assert.equal(response.status, 200);
      await response.text();
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it("'reset' → ProxyUnreachableError (ECONNRESET) for https and http, with no call recorded", async () => {
    for (const url of [`${origin.url}/`, `${httpOrigin.url}/`]) {
      const { error, proxy } = await injected({ fail: { connect: 'reset' } }, url);
      assert.ok(error instanceof ProxyUnreachableError, `${url}: ${String(error)}`);
      assert.equal(error.syscallCode, 'ECONNRESET');
      assert.equal(proxy.calls().length, 0);
      assert.ok(proxy.connections >= 1);
    }
  });

  it("'hang' with connectTimeout 300 → ProxyUnreachableError (ETIMEDOUT) well before 2 s", async () => {
    const { error, proxy, elapsed } = await injected({ fail: { connect: 'hang' } }, undefined, { connectTimeout: 300 });
    assert.ok(error instanceof ProxyUnreachableError, String(error));
    assert.equal(error.syscallCode, 'ETIMEDOUT');
    assert.ok(elapsed >= 250 && elapsed < 2_000, `took ${String(elapsed)} ms`);
    assert.equal(proxy.lastCall()?.method, 'CONNECT');
    assert.equal(proxy.lastCall()?.outcome, 'injected');
  });

  it('delayMs longer than connectTimeout → ProxyUnreachableError (ETIMEDOUT); a shorter one only slows the request', async () => {
    const slow = await injected({ fail: { delayMs: 1_000 } }, undefined, { connectTimeout: 300 });
    assert.ok(slow.error instanceof ProxyUnreachableError, String(slow.error));
    assert.equal(slow.error.syscallCode, 'ETIMEDOUT');

    const proxy = await createRecordingProxy({ fail: { delayMs: 150 } });
    const egress = egressThrough(proxy, { connectTimeout: 1_000 });
    try {
      const started = Date.now();
      const response = await egress.fetch('push', `${origin.url}/`);
      assert.equal(response.status, 200);
      await response.text();
      assert.ok(Date.now() - started >= 140, `took ${String(Date.now() - started)} ms`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it("'garbage' in answer to CONNECT → ProxyProtocolError (ERR_EGRESS_PROXY_PROTOCOL)", async () => {
    const { error, proxy } = await injected({ fail: { connect: 'garbage' } });
    assert.ok(error instanceof ProxyProtocolError, String(error));
    assert.equal(error.code, 'ERR_EGRESS_PROXY_PROTOCOL');
    assert.equal(error.proxy, proxy.url);
    assert.equal(proxy.lastCall()?.outcome, 'injected');
  });

  it("'garbage' in answer to a forwarded http request → ProxyProtocolError", async () => {
    const { error } = await injected({ fail: { connect: 'garbage' } }, `${httpOrigin.url}/`);
    assert.ok(error instanceof ProxyProtocolError, String(error));
  });

  it('an injected 502 on a forwarded http request reaches the caller as a 502 response (it could be the origin\'s)', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: { status: 502 } } });
    const egress = egressThrough(proxy);
    try {
      const response = await egress.fetch('url_preview', `${httpOrigin.url}/page`);
      assert.equal(response.status, 502);
      await response.text();
      assert.equal(proxy.lastCall()?.outcome, 'injected');
      assert.equal(httpOrigin.filterCalls({ url: '/page' }).length, 0);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });
});

describe('a recorded call for every kind of request the egress makes', SUITE, () => {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let origin: TestOrigin;
  let httpOrigin: TestOrigin;
  let egress: Egress;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    [proxy, origin, httpOrigin] = await Promise.all([
      createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } }),
      echoOrigin(true),
      echoOrigin(false),
    ]);
    egress = createEgress({
      env: {
        https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD),
        http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD),
        no_proxy: '',
      },
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

  it('https through fetch: one CONNECT, every field recorded; byte counts filled when the tunnel closes', async () => {
    proxy.clear();
    const local = createEgress({
      env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) },
      ca: origin.ca,
      ipAllowlist: LOOPBACK_ALLOWED,
    });
    const body = 'x'.repeat(1000);
    try {
      const response = await local.fetch('federation', `${origin.url}/_matrix/federation/v1/send/1`, { method: 'PUT', body });
      assert.equal(response.status, 200);
      assert.equal(await response.text(), body);
    } finally {
      await local.close();
    }
    const authority = `127.0.0.1:${String(origin.port)}`;
    const call = expectTunnel(proxy, authority);
    assert.equal(proxy.calls().length, 1);
    assert.equal(call.id, 1);
    assert.ok(call.connectionId >= 1);
    assert.equal(call.method, 'CONNECT');
    assert.equal(call.target, authority);
    assert.equal(call.host, '127.0.0.1');
    assert.equal(call.port, origin.port);
    assert.equal(call.path, undefined);
    assert.equal(call.httpVersion, '1.1');
    assert.equal(call.servername, undefined);
    assert.equal(call.headers.host, authority);
    assert.ok(call.rawHeaders.some((name) => name.toLowerCase() === 'proxy-authorization'));
    assert.deepEqual(call.authorization, { username: CANARY_USER, password: CANARY_PASSWORD });
    assert.equal(call.authenticated, true);
    assert.equal(call.outcome, 'tunnelled');
    assert.equal(call.statusCode, 200);
    assert.equal(call.errorCode, undefined);
    assert.ok(call.openedAt instanceof Date);
    await waitFor(() => call.closedAt !== undefined, 'the tunnel to close');
    assert.ok(call.bytesUp > body.length, `bytesUp ${String(call.bytesUp)}: TLS records carry the body`);
    assert.ok(call.bytesDown > body.length, `bytesDown ${String(call.bytesDown)}`);
    expectNoProxyAuthorizationAtOrigin(origin);
  });

  it('http GET through fetch: an absolute-form call with the target byte-exact and the path split off', async () => {
    proxy.clear();
    const url = `${httpOrigin.url}/preview/page?q=1&r=%2F`;
    const response = await egress.fetch('url_preview', url);
    assert.equal(response.status, 200);
    await response.text();
    const call = expectForwarded(proxy, url, { method: 'GET' });
    assert.equal(proxy.calls().length, 1);
    assert.equal(call.host, '127.0.0.1');
    assert.equal(call.port, httpOrigin.port);
    assert.equal(call.path, '/preview/page?q=1&r=%2F');
    assert.equal(call.headers.host, `127.0.0.1:${String(httpOrigin.port)}`);
    assert.deepEqual(call.authorization, { username: CANARY_USER, password: CANARY_PASSWORD });
    assert.equal(call.authenticated, true);
    assert.equal(call.outcome, 'forwarded');
    assert.equal(call.statusCode, 200);
    assert.equal(call.bytesUp, 0);
    const seen = httpOrigin.lastCall();
    assert.equal(seen?.url, '/preview/page?q=1&r=%2F');
    assert.match(String(seen.headers.via), /matrix-egress-recording-proxy/);
    expectNoProxyAuthorizationAtOrigin(httpOrigin);
  });

  it('http POST with a body: the body is forwarded intact and counted both ways', async () => {
    proxy.clear();
    const body = JSON.stringify({ notification: { devices: [{ pushkey: 'abc', app_id: 'm.test' }] }, pad: 'é'.repeat(300) });
    const url = `${httpOrigin.url}/_matrix/push/v1/notify`;
    const response = await egress.fetch('push', url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    assert.equal(response.status, 200);
    assert.equal(await response.text(), body);
    const call = expectForwarded(proxy, url, { method: 'POST' });
    assert.equal(call.bytesUp, Buffer.byteLength(body));
    assert.equal(call.bytesDown, Buffer.byteLength(body));
    assert.equal(call.headers['content-type'], 'application/json');
    assert.equal(httpOrigin.lastCall()?.method, 'POST');
  });

  it('dispatcher API: the request target goes out byte-exact (%2F and dot segments kept)', async () => {
    proxy.clear();
    const { statusCode, body } = await egress.dispatcher('media').request({
      origin: httpOrigin.url,
      path: '/a%2Fb/../c/./%25zz',
      method: 'GET',
    });
    await body.text();
    assert.equal(statusCode, 200);
    const call = expectForwarded(proxy, `${httpOrigin.url}/a%2Fb/../c/./%25zz`);
    assert.equal(call.path, '/a%2Fb/../c/./%25zz');
    assert.equal(httpOrigin.lastCall()?.url, '/a%2Fb/../c/./%25zz');
  });

  it('node:http through egress.httpsAgent and egress.agent: a CONNECT and an absolute-form call', async () => {
    proxy.clear();
    const get = (module: typeof http | typeof https, url: string, agent: http.Agent): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = module.get(url, { agent, timeout: 5_000 }, (res) => {
          res.resume();
          res.on('end', () => {
            resolve(res.statusCode ?? 0);
          });
        });
        req.on('timeout', () => req.destroy(new Error('client timeout')));
        req.on('error', reject);
      });
    assert.equal(await get(https, `${origin.url}/via-agent`, egress.httpsAgent('key_fetch')), 200);
    assert.equal(await get(http, `${httpOrigin.url}/via-agent`, egress.agent('key_fetch')), 200);
    const connect = expectTunnel(proxy, `127.0.0.1:${String(origin.port)}`);
    assert.equal(connect.authenticated, true);
    const forwarded = expectForwarded(proxy, `${httpOrigin.url}/via-agent`, { method: 'GET' });
    assert.equal(forwarded.authenticated, true);
    assert.equal(proxy.calls().length, 2);
  });

  it('IPv6 targets: CONNECT [::1]:port and absolute-form http://[::1]:port/', async (t) => {
    if (!(await ipv6Available())) {
      t.skip('no IPv6 loopback here');
      return;
    }
    const [v6, v6http] = await Promise.all([createTestOrigin({ tls: true, host: '::1' }), createTestOrigin({ host: '::1' })]);
    const local = createEgress({
      env: {
        https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD),
        http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD),
      },
      ca: v6.ca,
      ipAllowlist: LOOPBACK_ALLOWED,
    });
    try {
      proxy.clear();
      const response = await local.fetch('media', `${v6.url}/media`);
      assert.equal(response.status, 200);
      await response.text();
      const connect = expectTunnel(proxy, `[::1]:${String(v6.port)}`);
      assert.equal(connect.host, '::1');
      assert.equal(connect.port, v6.port);
      assert.equal(connect.headers.host, `[::1]:${String(v6.port)}`);

      const plain = await local.fetch('url_preview', `${v6http.url}/page`);
      assert.equal(plain.status, 200);
      await plain.text();
      const forwarded = expectForwarded(proxy, `http://[::1]:${String(v6http.port)}/page`);
      assert.equal(forwarded.host, '::1');
      assert.equal(forwarded.path, '/page');
      assert.equal(v6http.lastCall()?.headers.host, `[::1]:${String(v6http.port)}`);
    } finally {
      await local.close();
      await Promise.all([v6.close(), v6http.close()]);
    }
  });

  it('no credentials, or wrong ones: the call is recorded as rejected (407) with what was received', async () => {
    const noCredentials = createEgress({ env: { https_proxy: proxy.url }, ca: origin.ca, ipAllowlist: LOOPBACK_ALLOWED });
    const wrongCredentials = createEgress({
      env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, 'not-the-password') },
      ca: origin.ca,
      ipAllowlist: LOOPBACK_ALLOWED,
    });
    try {
      proxy.clear();
      const missing = await fetchError(noCredentials.fetch('push', `${origin.url}/`));
      assert.ok(missing instanceof ProxyAuthenticationError, String(missing));
      const first = proxy.lastCall();
      assert.equal(first?.outcome, 'rejected');
      assert.equal(first.statusCode, 407);
      assert.equal(first.authorization, undefined);
      assert.equal(first.authenticated, false);

      const wrong = await fetchError(wrongCredentials.fetch('push', `${origin.url}/`));
      assert.ok(wrong instanceof ProxyAuthenticationError, String(wrong));
      assert.doesNotMatch(`${wrong.message}${String(wrong.stack)}`, /not-the-password/);
      const second = proxy.lastCall();
      assert.equal(second?.outcome, 'rejected');
      assert.deepEqual(second.authorization, { username: CANARY_USER, password: 'not-the-password' });
      assert.equal(second.authenticated, false);
    } finally {
      await Promise.all([noCredentials.destroy(), wrongCredentials.destroy()]);
    }
  });

  it('an unreachable target: the CONNECT is recorded as failed (502, ECONNREFUSED) and the client gets ProxyConnectError', async () => {
    proxy.clear();
    const port = await closedPort();
    const error = await fetchError(egress.fetch('push', `https://127.0.0.1:${String(port)}/`));
    assert.ok(error instanceof ProxyConnectError, String(error));
    assert.equal(error.statusCode, 502);
    const call = proxy.lastCall();
    assert.equal(call?.method, 'CONNECT');
    assert.equal(call.outcome, 'failed');
    assert.equal(call.statusCode, 502);
    assert.equal(call.errorCode, 'ECONNREFUSED');
  });
});
