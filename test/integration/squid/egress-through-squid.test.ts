/**
 * createEgress through a real Squid (Debian's squid 5.x) on loopback: the fetch/dispatcher side of
 * issue 3's "Tests — real parts". Every certificate is made at test time and trusted through the
 * `ca` / `proxyCa` options; verification is never turned off.
 *
 * What proves a route:
 * - Squid's access log (a CONNECT is logged only when its tunnel closes, so each test closes its
 *   egress first and then waits for the line; negative checks read the log after a barrier request,
 *   see `settledLog`).
 * - The origin's side: loopback cannot tell Squid's connections from ours by address, so we ask
 *   /proc which process holds the client end of the connection the origin received (`peerProcess`).
 *
 * The http.Agent side (`egress.agent`/`httpsAgent`) is tested elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';

import { createEgress, type Egress } from '../../../src/egress.js';
import type { EgressOptions } from '../../../src/config/compile.js';
import { ProxyAuthenticationError, ProxyConnectError, ProxyTlsError } from '../../../src/errors.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../../src/policy/connection-types.js';
import { createSelfSignedCertificate, createTestCertificateAuthority } from '../../../src/testing/certificates.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { startSquid, type SquidInstance } from '../../support/squid.js';
import {
  aboutOrigin,
  assertCameDirect,
  assertCameFromSquid,
  assertNoProxyAuthorization,
  failureOf,
  fetchError,
  settledLog,
  waitForEntries,
} from '../../support/squid-fixtures.js';

// One CA and one leaf for every https origin of this file (RSA key generation is the slow part).
const ORIGIN_CA = createTestCertificateAuthority({ commonName: 'egress-through-squid origin CA' });
const ORIGIN_LEAF = ORIGIN_CA.issue({ hosts: ['localhost', '127.0.0.1', '::1'] });

function startHttpsOrigin(): Promise<TestOrigin> {
  return createTestOrigin({ tls: { ...ORIGIN_LEAF, ca: ORIGIN_CA.cert } });
}

/**
 * Our origins are loopback IP literals, which SPEC §8 blocklists for the user-steered types (even
 * through the proxy, for IP-literal URLs). These tests are about routing, so the blocklist is off
 * for every built-in type; it has tests of its own.
 */
const LOOPBACK_ALLOWED: NonNullable<EgressOptions['connectionTypes']> = Object.fromEntries(
  [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES].map((type) => [type, { ipBlocklist: false }]),
);

/** An egress that reads nothing from process.env and trusts the origin CA. */
function egressWith(options: EgressOptions): Egress {
  return createEgress({ env: {}, ca: ORIGIN_CA.cert, connectionTypes: LOOPBACK_ALLOWED, connectTimeout: 5_000, ...options });
}

function authority(origin: TestOrigin): string {
  return `127.0.0.1:${String(origin.port)}`;
}

async function getOk(egress: Egress, type: string, url: string): Promise<void> {
  const response = await egress.fetch(type, url);
  assert.equal(response.status, 200, `${type} ${url}`);
  await response.text();
}

let restoreEnv: () => void;
before(() => {
  restoreEnv = isolateProxyEnv();
});
after(() => {
  restoreEnv();
});

describe('egress through a real Squid: plain http_port', () => {
  let squid: SquidInstance;
  let httpOrigin: TestOrigin;
  /** One https origin per proxied type, so each type's CONNECT line is its own. */
  const typeOrigins = new Map<string, TestOrigin>();
  let directHttps: TestOrigin;
  let directHttp: TestOrigin;
  let noProxyOrigin: TestOrigin;
  let pathOrigin: TestOrigin;

  before(async () => {
    squid = await startSquid();
    [httpOrigin, directHttps, directHttp, noProxyOrigin, pathOrigin] = await Promise.all([
      createTestOrigin(),
      startHttpsOrigin(),
      createTestOrigin(),
      startHttpsOrigin(),
      startHttpsOrigin(),
    ]);
    for (const type of PROXIED_CONNECTION_TYPES) typeOrigins.set(type, await startHttpsOrigin());
  });

  after(async () => {
    await squid.stop({ force: true });
    await Promise.all([httpOrigin, directHttps, directHttp, noProxyOrigin, pathOrigin, ...typeOrigins.values()].map((o) => o.close()));
  });

  for (const type of PROXIED_CONNECTION_TYPES) {
    it(`${type}: https via CONNECT and http via absolute-form GET, both through Squid`, async () => {
      const origin = typeOrigins.get(type)!;
      const egress = egressWith({ httpsProxy: squid.url, httpProxy: squid.url });
      try {
        await getOk(egress, type, `${origin.url}/${type}`);
        assertCameFromSquid(origin.lastCall(), origin.port, squid);
        await getOk(egress, type, `${httpOrigin.url}/${type}`);
        assertCameFromSquid(httpOrigin.lastCall(), httpOrigin.port, squid);
        assert.equal(httpOrigin.lastCall()?.url, `/${type}`);
      } finally {
        await egress.close();
      }
      const [connect] = await waitForEntries(squid, (e) => e.method === 'CONNECT' && e.target === authority(origin), 1);
      assert.equal(connect?.status, 200);
      assert.equal(connect.result, 'TCP_TUNNEL');
      const log = await settledLog(squid);
      // Exactly one tunnel for this type's origin, and Squid never saw its request line (TLS inside).
      assert.deepEqual(
        log.filter(aboutOrigin(origin.port)).map((e) => `${e.method} ${e.target}`),
        [`CONNECT ${authority(origin)}`],
      );
      assert.ok(log.some((e) => e.method === 'GET' && e.target === `${httpOrigin.url}/${type}` && e.status === 200));
      assertNoProxyAuthorization(origin, httpOrigin);
    });
  }

  for (const type of DIRECT_CONNECTION_TYPES) {
    it(`${type}: goes direct to https and http origins and never appears in Squid's log`, async () => {
      const egress = egressWith({ httpsProxy: squid.url, httpProxy: squid.url });
      try {
        await getOk(egress, type, `${directHttps.url}/${type}`);
        assertCameDirect(directHttps.lastCall(), directHttps.port, squid);
        await getOk(egress, type, `${directHttp.url}/${type}`);
        assertCameDirect(directHttp.lastCall(), directHttp.port, squid);
        assert.equal(directHttp.lastCall()?.headers.via, undefined, 'no Via: Squid did not forward it');
      } finally {
        await egress.close();
      }
      const log = await settledLog(squid);
      assert.deepEqual(log.filter(aboutOrigin(directHttps.port)), []);
      assert.deepEqual(log.filter(aboutOrigin(directHttp.port)), []);
    });
  }

  it('http origin: absolute-form forward (GET http://127.0.0.1:port/…), never a CONNECT', async () => {
    const egress = egressWith({ httpProxy: squid.url });
    try {
      await getOk(egress, 'url_preview', `${httpOrigin.url}/page?q=1&x=%2F`);
    } finally {
      await egress.close();
    }
    const seen = httpOrigin.lastCall();
    assert.equal(seen?.url, '/page?q=1&x=%2F');
    assert.equal(seen.headers.host, authority(httpOrigin));
    assert.match(String(seen.headers.via), /squid/, 'Squid adds Via to what it forwards');
    const log = await settledLog(squid);
    const entry = log.find((e) => e.target === `${httpOrigin.url}/page?q=1&x=%2F`);
    assert.equal(entry?.method, 'GET');
    assert.equal(entry.status, 200);
    assert.ok(!log.some((e) => e.method === 'CONNECT' && e.target === authority(httpOrigin)), 'http origins are never tunnelled');
    assertNoProxyAuthorization(httpOrigin);
  });

  // Finding (Squid 5.7, Debian): Squid forwards the request target byte-exact. It removes no dot
  // segments (`/../`, `/./`), decodes no %-escapes (`%2F`, `%25`, `%41`, lowercase `%2f`) and keeps
  // `//`; its access log (%ru) shows the same bytes. So what the dispatcher sends is what the origin
  // receives, and federation signatures over the URI survive a Squid hop. (Through a tunnel Squid
  // never sees the path at all.)
  it('byte-exact request target through Squid (dispatcher API): /a%2Fb/../c/%25zz arrives untouched', async () => {
    const egress = egressWith({ httpsProxy: squid.url, httpProxy: squid.url });
    const paths = ['/a%2Fb/../c/%25zz', '/x/./y//z/%41%2f/..%2F..'];
    try {
      for (const path of paths) {
        const { statusCode, body } = await egress.dispatcher('push').request({ origin: httpOrigin.url, path, method: 'GET' });
        await body.text();
        assert.equal(statusCode, 200);
        assert.equal(httpOrigin.lastCall()?.url, path, 'the http origin got the path Squid forwarded');
        assertCameFromSquid(httpOrigin.lastCall(), httpOrigin.port, squid);

        const tunnelled = await egress.dispatcher('media').request({ origin: pathOrigin.url, path, method: 'GET' });
        await tunnelled.body.text();
        assert.equal(tunnelled.statusCode, 200);
        assert.equal(pathOrigin.lastCall()?.url, path, 'the https origin got the path sent through the tunnel');
      }
    } finally {
      await egress.close();
    }
    const log = await settledLog(squid);
    for (const path of paths) {
      assert.ok(
        log.some((e) => e.method === 'GET' && e.target === `${httpOrigin.url}${path}`),
        `Squid logged ${path} as sent: ${JSON.stringify(log.filter(aboutOrigin(httpOrigin.port)))}`,
      );
    }
    assertNoProxyAuthorization(httpOrigin, pathOrigin);
  });

  it('no_proxy matching the origin sends a proxied type direct; Squid never sees it', async () => {
    const egress = egressWith({ httpsProxy: squid.url, httpProxy: squid.url, noProxy: `127.0.0.1:${String(noProxyOrigin.port)}` });
    try {
      assert.equal(egress.route('push', noProxyOrigin.url).route, 'direct');
      for (const type of ['push', 'federation', 'media']) {
        await getOk(egress, type, `${noProxyOrigin.url}/${type}`);
        assertCameDirect(noProxyOrigin.lastCall(), noProxyOrigin.port, squid);
      }
      // The same egress still proxies an origin no_proxy does not match.
      const other = typeOrigins.get('push')!;
      await getOk(egress, 'push', `${other.url}/not-no-proxy`);
      assertCameFromSquid(other.lastCall(), other.port, squid);
    } finally {
      await egress.close();
    }
    const log = await settledLog(squid);
    assert.deepEqual(log.filter(aboutOrigin(noProxyOrigin.port)), []);
  });

  it('keep-alive: 20 sequential https fetches share one tunnel (one CONNECT in the log)', async () => {
    const origin = await startHttpsOrigin();
    const egress = egressWith({ httpsProxy: squid.url });
    try {
      for (let i = 0; i < 20; i++) await getOk(egress, 'push', `${origin.url}/seq/${String(i)}`);
      assert.equal(origin.calls().length, 20);
      assert.equal(origin.connections, 1, 'the origin accepted one connection (from Squid)');
      assertCameFromSquid(origin.lastCall(), origin.port, squid);
      await egress.close();
      await waitForEntries(squid, (e) => e.method === 'CONNECT' && e.target === authority(origin), 1);
      const connects = (await settledLog(squid)).filter(aboutOrigin(origin.port));
      assert.equal(connects.length, 1, JSON.stringify(connects));
      assertNoProxyAuthorization(origin);
    } finally {
      await egress.close();
      await origin.close();
    }
  });

  it('keep-alive: 16 concurrent https fetches open at most 16 tunnels', async () => {
    const origin = await startHttpsOrigin();
    const egress = egressWith({ httpsProxy: squid.url });
    try {
      await Promise.all(Array.from({ length: 16 }, (_, i) => getOk(egress, 'push', `${origin.url}/par/${String(i)}`)));
      const tunnels = origin.connections;
      assert.ok(tunnels >= 1 && tunnels <= 16, `the origin accepted ${String(tunnels)} connections`);
      await egress.close();
      await waitForEntries(squid, (e) => e.method === 'CONNECT' && e.target === authority(origin), tunnels);
      const connects = (await settledLog(squid)).filter(aboutOrigin(origin.port));
      assert.equal(connects.length, tunnels, 'one CONNECT per connection the origin accepted');
      assert.ok(connects.every((e) => e.method === 'CONNECT' && e.status === 200));
      assertNoProxyAuthorization(origin);
    } finally {
      await egress.close();
      await origin.close();
    }
  });

  it('the final log, after a graceful stop, has nothing for direct routes and one CONNECT per proxied type', async () => {
    await squid.stop(); // SIGTERM: Squid logs every open tunnel, then exits; accessLog() is final
    const log = await squid.accessLog();
    for (const origin of [directHttps, directHttp, noProxyOrigin]) {
      assert.deepEqual(log.filter(aboutOrigin(origin.port)), [], `origin ${origin.url}`);
    }
    for (const [type, origin] of typeOrigins) {
      const expected = type === 'push' ? 2 : 1; // push's origin was also used by the no_proxy test
      assert.equal(log.filter(aboutOrigin(origin.port)).length, expected, type);
    }
  });
});

describe("egress through a real Squid: stock SSL_ports rule ('http_access deny CONNECT !SSL_ports')", () => {
  let squid: SquidInstance;
  let fixedSquid: SquidInstance;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;

  before(async () => {
    [httpsOrigin, httpOrigin] = await Promise.all([startHttpsOrigin(), createTestOrigin()]);
    [squid, fixedSquid] = await Promise.all([
      startSquid({ stockSslPorts: true }),
      // The documented fix: add the port (8448 in production) to SSL_ports.
      startSquid({ stockSslPorts: true, allowConnectPorts: [httpsOrigin.port] }),
    ]);
  });

  after(async () => {
    await Promise.all([squid.stop({ force: true }), fixedSquid.stop({ force: true }), httpsOrigin.close(), httpOrigin.close()]);
  });

  it('SSL_ports blocks CONNECT to 8448: an https origin on a non-443 port → ProxyConnectError 403', async () => {
    const egress = egressWith({ httpsProxy: squid.url });
    try {
      const error = await fetchError(egress.fetch('federation', `${httpsOrigin.url}/_matrix/federation/v1/version`));
      assert.ok(error instanceof ProxyConnectError, String(error));
      assert.ok(!(error instanceof ProxyAuthenticationError));
      assert.equal(error.code, 'ERR_EGRESS_PROXY_CONNECT');
      assert.equal(error.statusCode, 403);
      assert.equal(error.target, authority(httpsOrigin));
    } finally {
      await egress.destroy();
    }
    const denied = await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === authority(httpsOrigin));
    assert.equal(denied.status, 403);
    assert.equal(denied.result, 'TCP_DENIED');
    assert.equal(httpsOrigin.connections, 0, 'the origin was never contacted');
  });

  it('an http origin on any port is still forwarded (absolute form, no CONNECT needed)', async () => {
    const egress = egressWith({ httpsProxy: squid.url, httpProxy: squid.url });
    try {
      await getOk(egress, 'push', `${httpOrigin.url}/stock`);
      assertCameFromSquid(httpOrigin.lastCall(), httpOrigin.port, squid);
    } finally {
      await egress.close();
    }
    const entry = await squid.waitForAccessLog((e) => e.target === `${httpOrigin.url}/stock`);
    assert.equal(entry.method, 'GET');
    assert.equal(entry.status, 200);
    assertNoProxyAuthorization(httpOrigin);
  });

  it('with the port added to SSL_ports the same CONNECT succeeds', async () => {
    const egress = egressWith({ httpsProxy: fixedSquid.url });
    try {
      await getOk(egress, 'federation', `${httpsOrigin.url}/_matrix/federation/v1/version`);
      assertCameFromSquid(httpsOrigin.lastCall(), httpsOrigin.port, fixedSquid);
    } finally {
      await egress.close();
    }
    const entry = await fixedSquid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === authority(httpsOrigin));
    assert.equal(entry.status, 200);
    assertNoProxyAuthorization(httpsOrigin);
  });
});

describe('egress through a real Squid: Basic auth (basic_ncsa_auth)', () => {
  const USER = 'egress-user';
  const PASSWORD = 'canary-pw-5521';
  const WRONG = 'canary-pw-wrong-8813';
  let squid: SquidInstance;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;

  const proxyUrl = (password?: string): string =>
    password === undefined ? squid.url : squid.url.replace('http://', `http://${USER}:${encodeURIComponent(password)}@`);

  /** Neither password, nor the Basic token carrying it, in anything a log line could print. */
  function assertNoSecret(thrown: unknown, error: Error): void {
    const texts = [
      error.message,
      String(error.stack),
      String(error),
      inspect(error, { depth: 10, showHidden: true }),
      inspect(thrown, { depth: 10, showHidden: true }),
      JSON.stringify(error),
    ].join('\n');
    for (const password of [PASSWORD, WRONG]) {
      assert.ok(!texts.includes(password), `the error text shows ${password}`);
      assert.ok(!texts.includes(Buffer.from(`${USER}:${password}`).toString('base64')), 'the error text shows the Basic token');
    }
  }

  before(async () => {
    [squid, httpsOrigin, httpOrigin] = await Promise.all([
      startSquid({ auth: { username: USER, password: PASSWORD } }),
      startHttpsOrigin(),
      createTestOrigin(),
    ]);
  });

  after(async () => {
    await Promise.all([squid.stop({ force: true }), httpsOrigin.close(), httpOrigin.close()]);
  });

  it('right password: https (CONNECT) and http (forwarded) both work; the log names the user', async () => {
    const egress = egressWith({ httpsProxy: proxyUrl(PASSWORD), httpProxy: proxyUrl(PASSWORD) });
    try {
      await getOk(egress, 'push', `${httpsOrigin.url}/authed`);
      assertCameFromSquid(httpsOrigin.lastCall(), httpsOrigin.port, squid);
      await getOk(egress, 'url_preview', `${httpOrigin.url}/authed`);
      assertCameFromSquid(httpOrigin.lastCall(), httpOrigin.port, squid);
      assert.doesNotMatch(inspect(egress, { depth: 10, showHidden: true }), new RegExp(PASSWORD));
    } finally {
      await egress.close();
    }
    const connect = await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === authority(httpsOrigin));
    assert.equal(connect.status, 200);
    assert.equal(connect.user, USER);
    const forwarded = await squid.waitForAccessLog((e) => e.target === `${httpOrigin.url}/authed`);
    assert.equal(forwarded.method, 'GET');
    assert.equal(forwarded.status, 200);
    assert.equal(forwarded.user, USER);
    assertNoProxyAuthorization(httpsOrigin, httpOrigin);
  });

  it('wrong password, https origin → ProxyAuthenticationError (407); the password is in no error text', async () => {
    const egress = egressWith({ httpsProxy: proxyUrl(WRONG) });
    try {
      const { thrown, error } = await failureOf(egress.fetch('push', `${httpsOrigin.url}/wrong`));
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
      assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
      assert.equal(error.statusCode, 407);
      assert.equal(error.realm, 'matrix-egress-test');
      assert.match(error.message, /rejected the configured credentials/);
      assertNoSecret(thrown, error);
    } finally {
      await egress.destroy();
    }
    const denied = await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === authority(httpsOrigin) && e.status === 407);
    assert.equal(denied.result, 'TCP_DENIED');
    assert.ok(!httpsOrigin.calls().some((call) => call.url === '/wrong'), 'the origin never saw the request');
  });

  it('wrong password, http origin → ProxyAuthenticationError too (not a 407 response)', async () => {
    const egress = egressWith({ httpProxy: proxyUrl(WRONG) });
    try {
      const { thrown, error } = await failureOf(egress.fetch('url_preview', `${httpOrigin.url}/wrong`));
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
      assert.equal(error.statusCode, 407);
      assert.equal(error.realm, 'matrix-egress-test');
      assertNoSecret(thrown, error);
    } finally {
      await egress.destroy();
    }
    assert.ok(!httpOrigin.calls().some((call) => call.url === '/wrong'), 'the origin never saw the request');
  });

  it('no credentials → ProxyAuthenticationError for https and http origins', async () => {
    const egress = egressWith({ httpsProxy: squid.url, httpProxy: squid.url });
    try {
      for (const origin of [httpsOrigin, httpOrigin]) {
        const error = await fetchError(egress.fetch('media', `${origin.url}/anonymous`));
        assert.ok(error instanceof ProxyAuthenticationError, `${origin.url}: ${String(error)}`);
        assert.equal(error.statusCode, 407);
        assert.match(error.message, /none are configured/);
        assert.ok(!origin.calls().some((call) => call.url === '/anonymous'));
      }
    } finally {
      await egress.destroy();
    }
  });

  it('no origin ever received Proxy-Authorization', () => {
    assert.ok(httpsOrigin.calls().length > 0 && httpOrigin.calls().length > 0);
    assertNoProxyAuthorization(httpsOrigin, httpOrigin);
  });
});

describe('egress through a real Squid: https_port (TLS to the proxy)', () => {
  const PROXY_CA = createTestCertificateAuthority({ commonName: 'egress-through-squid proxy CA' });
  let trusted: SquidInstance;
  let selfSigned: SquidInstance;
  let wrongName: SquidInstance;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;

  before(async () => {
    [trusted, selfSigned, wrongName, httpsOrigin, httpOrigin] = await Promise.all([
      startSquid({ https: PROXY_CA.issue({ hosts: ['localhost', '127.0.0.1'] }) }),
      startSquid({ https: createSelfSignedCertificate({ hosts: ['localhost', '127.0.0.1'] }) }),
      startSquid({ https: PROXY_CA.issue({ hosts: ['proxy.invalid'] }) }),
      startHttpsOrigin(),
      createTestOrigin(),
    ]);
  });

  after(async () => {
    await Promise.all([
      trusted.stop({ force: true }),
      selfSigned.stop({ force: true }),
      wrongName.stop({ force: true }),
      httpsOrigin.close(),
      httpOrigin.close(),
    ]);
  });

  it('certificate from a CA passed as proxyCa: https and http origins work via https://127.0.0.1 and https://localhost', async () => {
    const byIp = trusted.httpsUrl!;
    const byName = byIp.replace('127.0.0.1', 'localhost');
    for (const proxy of [byIp, byName]) {
      const egress = egressWith({ httpsProxy: proxy, httpProxy: proxy, proxyCa: PROXY_CA.cert });
      try {
        await getOk(egress, 'push', `${httpsOrigin.url}/tls-proxy`);
        assertCameFromSquid(httpsOrigin.lastCall(), httpsOrigin.port, trusted);
        await getOk(egress, 'push', `${httpOrigin.url}/tls-proxy`);
        assertCameFromSquid(httpOrigin.lastCall(), httpOrigin.port, trusted);
      } finally {
        await egress.close();
      }
    }
    await waitForEntries(trusted, (e) => e.method === 'CONNECT' && e.target === authority(httpsOrigin) && e.status === 200, 2);
    await waitForEntries(trusted, (e) => e.method === 'GET' && e.target === `${httpOrigin.url}/tls-proxy` && e.status === 200, 2);
    assertNoProxyAuthorization(httpsOrigin, httpOrigin);
  });

  it('same certificate without proxyCa → ProxyTlsError unknown-ca (https and http origins)', async () => {
    const egress = egressWith({ httpsProxy: trusted.httpsUrl, httpProxy: trusted.httpsUrl });
    const callsBefore = httpsOrigin.calls().length + httpOrigin.calls().length;
    try {
      for (const origin of [httpsOrigin, httpOrigin]) {
        const error = await fetchError(egress.fetch('push', `${origin.url}/untrusted`));
        assert.ok(error instanceof ProxyTlsError, `${origin.url}: ${String(error)}`);
        assert.equal(error.code, 'ERR_EGRESS_PROXY_TLS');
        assert.equal(error.reason, 'unknown-ca');
        assert.equal(error.proxy, trusted.httpsUrl);
      }
    } finally {
      await egress.destroy();
    }
    assert.equal(httpsOrigin.calls().length + httpOrigin.calls().length, callsBefore, 'no origin was reached');
  });

  it('self-signed proxy certificate → ProxyTlsError self-signed', async () => {
    const egress = egressWith({ httpsProxy: selfSigned.httpsUrl });
    try {
      const error = await fetchError(egress.fetch('push', `${httpsOrigin.url}/self-signed`));
      assert.ok(error instanceof ProxyTlsError, String(error));
      assert.equal(error.reason, 'self-signed');
    } finally {
      await egress.destroy();
    }
    assert.ok(!httpsOrigin.calls().some((call) => call.url === '/self-signed'));
  });

  it('certificate issued for another name (trusted CA) → ProxyTlsError hostname-mismatch', async () => {
    const egress = egressWith({ httpsProxy: wrongName.httpsUrl, proxyCa: PROXY_CA.cert });
    try {
      const error = await fetchError(egress.fetch('push', `${httpsOrigin.url}/mismatch`));
      assert.ok(error instanceof ProxyTlsError, String(error));
      assert.equal(error.reason, 'hostname-mismatch');
    } finally {
      await egress.destroy();
    }
    assert.ok(!httpsOrigin.calls().some((call) => call.url === '/mismatch'));
  });
});
