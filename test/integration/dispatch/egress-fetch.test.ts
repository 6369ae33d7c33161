import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { request, setGlobalDispatcher, getGlobalDispatcher, Agent } from 'undici';
import { createEgress, type Egress } from '../../../src/egress.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../../src/policy/connection-types.js';
import {
  ForbiddenHeaderError,
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyTlsError,
  ProxyUnreachableError,
  EgressClosedError,
} from '../../../src/errors.js';
import { createRecordingProxy, type RecordingProxy } from '../../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';

// The origins listen on loopback, which the default IP blocklist covers for most types (SPEC §8).
const LOOPBACK_ALLOWED = { ipAllowlist: ['127.0.0.0/8', '::1'] } as const;
const CANARY_USER = 'canary-user';
const CANARY_PASSWORD = 'canary-pw-7731';


describe('egress through the recording proxy', () => {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;
  let egress: Egress;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    proxy = await createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } });
    httpsOrigin = await createTestOrigin({ tls: true });
    httpOrigin = await createTestOrigin();
    egress = createEgress({
      ...LOOPBACK_ALLOWED,
      env: {
        https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD),
        http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD),
      },
      ca: httpsOrigin.ca,
    });
  });

  after(async () => {
    await egress.close();
    await Promise.all([proxy.close(), httpsOrigin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  it('https origin: one CONNECT with credentials, TLS validated, origin never sees Proxy-Authorization', async () => {
    proxy.clear();
    httpsOrigin.clear();
    const response = await egress.fetch('federation', `${httpsOrigin.url}/_matrix/federation/v1/version`);
    assert.equal(response.status, 200);
    await response.text();
    const connects = proxy.filterCalls({ method: 'CONNECT' });
    assert.equal(connects.length, 1);
    assert.equal(connects[0]?.target, `127.0.0.1:${String(httpsOrigin.port)}`);
    assert.equal(connects[0].headers.host, `127.0.0.1:${String(httpsOrigin.port)}`);
    assert.deepEqual(connects[0].authorization, { username: CANARY_USER, password: CANARY_PASSWORD });
    const seen = httpsOrigin.lastCall();
    assert.equal(seen?.url, '/_matrix/federation/v1/version');
    assert.equal(seen.headers['proxy-authorization'], undefined);
    assert.equal(seen.remoteAddress, '127.0.0.1');
  });

  it('http origin: absolute-form forward with Proxy-Authorization, never a tunnel', async () => {
    proxy.clear();
    httpOrigin.clear();
    const response = await egress.fetch('url_preview', `${httpOrigin.url}/page?q=1`);
    assert.equal(response.status, 200);
    await response.text();
    assert.equal(proxy.filterCalls({ method: 'CONNECT' }).length, 0);
    const forwarded = proxy.lastCall();
    assert.equal(forwarded?.method, 'GET');
    assert.equal(forwarded.target, `${httpOrigin.url}/page?q=1`);
    assert.equal(forwarded.authenticated, true);
    assert.equal(httpOrigin.lastCall()?.headers['proxy-authorization'], undefined);
    assert.equal(httpOrigin.lastCall()?.headers.host, `127.0.0.1:${String(httpOrigin.port)}`);
  });

  it('sends the request target byte-exact through a tunnel (dispatcher API)', async () => {
    httpsOrigin.clear();
    const { statusCode, body } = await egress.dispatcher('media').request({ origin: httpsOrigin.url, path: '/a%2Fb/../c/%25zz/./d', method: 'GET' });
    await body.text();
    assert.equal(statusCode, 200);
    assert.equal(httpsOrigin.lastCall()?.url, '/a%2Fb/../c/%25zz/./d');
  });

  it('sends the request target byte-exact when forwarding (dispatcher API)', async () => {
    proxy.clear();
    httpOrigin.clear();
    const { body } = await egress.dispatcher('push').request({ origin: httpOrigin.url, path: '/a%2Fb/../c/%25zz', method: 'GET' });
    await body.text();
    assert.equal(proxy.lastCall()?.target, `${httpOrigin.url}/a%2Fb/../c/%25zz`);
    assert.equal(httpOrigin.lastCall()?.url, '/a%2Fb/../c/%25zz');
  });

  it('fetch removes dot segments (URL standard) but keeps %2F and %25', async () => {
    httpsOrigin.clear();
    const response = await egress.fetch('media', `${httpsOrigin.url}/x/a%2Fb/./y/../c/%25zz`);
    await response.text();
    assert.equal(httpsOrigin.lastCall()?.url, '/x/a%2Fb/c/%25zz');
  });

  it('pools tunnels: sequential requests reuse one tunnel', async () => {
    const local = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: httpsOrigin.ca });
    try {
      const before = proxy.tunnelsOpened;
      for (let i = 0; i < 5; i++) {
        const response = await local.fetch('push', `${httpsOrigin.url}/n${String(i)}`);
        await response.text();
      }
      assert.equal(proxy.tunnelsOpened - before, 1);
    } finally {
      await local.close();
    }
  });

  it('pools forwarded http: sequential requests to two origins share one proxy connection', async () => {
    const secondOrigin = await createTestOrigin();
    const local = createEgress({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ...LOOPBACK_ALLOWED });
    try {
      const before = proxy.connections;
      for (let i = 0; i < 6; i++) {
        const origin = i % 2 === 0 ? httpOrigin : secondOrigin;
        const response = await local.fetch('url_preview', `${origin.url}/f${String(i)}`);
        await response.text();
      }
      assert.equal(proxy.connections - before, 1);
    } finally {
      await local.close();
      await secondOrigin.close();
    }
  });

  it('pools forwarded http through an https proxy across origins (the TLS name is the proxy\'s)', async () => {
    const tlsProxy = await createRecordingProxy({ tls: true });
    const secondOrigin = await createTestOrigin();
    const local = createEgress({ env: { http_proxy: tlsProxy.url }, proxyCa: tlsProxy.ca, ...LOOPBACK_ALLOWED });
    try {
      // One origin by IP, one by name: undici would derive a different TLS server name from each Host.
      const bases = [httpOrigin.url, `http://localhost:${String(secondOrigin.port)}`];
      for (let i = 0; i < 4; i++) {
        const response = await local.fetch('url_preview', `${bases[i % 2] ?? ''}/t${String(i)}`);
        assert.equal(response.status, 200);
        await response.text();
      }
      assert.equal(tlsProxy.connections, 1);
      assert.equal(tlsProxy.filterCalls({ method: 'GET' }).length, 4);
    } finally {
      await local.close();
      await Promise.all([tlsProxy.close(), secondOrigin.close()]);
    }
  });

  it('opens no more tunnels than requests in flight', async () => {
    const local = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: httpsOrigin.ca });
    try {
      const before = proxy.tunnelsOpened;
      const concurrency = 8;
      await Promise.all(
        Array.from({ length: concurrency }, async (_, i) => {
          const response = await local.fetch('push', `${httpsOrigin.url}/c${String(i)}`);
          await response.text();
        }),
      );
      const opened = proxy.tunnelsOpened - before;
      assert.ok(opened >= 1 && opened <= concurrency, `opened ${String(opened)} tunnels for ${String(concurrency)} requests`);
    } finally {
      await local.close();
    }
  });

  for (const type of PROXIED_CONNECTION_TYPES) {
    it(`${type} reaches the origin through the proxy (https by CONNECT, http forwarded)`, async () => {
      // A fresh egress per type: tunnels are pooled across types, so a shared one would hide the CONNECT.
      const credentials = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
      const local = createEgress({ env: { https_proxy: credentials, http_proxy: credentials }, ca: httpsOrigin.ca, ...LOOPBACK_ALLOWED });
      try {
        proxy.clear();
        httpsOrigin.clear();
        httpOrigin.clear();
        const tunnelsBefore = proxy.tunnelsOpened;
        for (const origin of [httpsOrigin, httpOrigin]) {
          const response = await local.fetch(type, `${origin.url}/${type}`);
          assert.equal(response.status, 200);
          await response.text();
        }
        assert.equal(proxy.tunnelsOpened - tunnelsBefore, 1);
        assert.equal(proxy.filterCalls({ method: 'CONNECT', port: httpsOrigin.port }).length, 1);
        assert.equal(proxy.filterCalls({ method: 'GET', target: `${httpOrigin.url}/${type}` }).length, 1);
        assert.equal(httpOrigin.lastCall()?.headers.via, '1.1 matrix-egress-recording-proxy');
      } finally {
        await local.close();
      }
    });
  }

  for (const type of DIRECT_CONNECTION_TYPES) {
    it(`${type} goes direct and never touches the proxy`, async () => {
      const local = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.url, http_proxy: proxy.url }, ca: httpsOrigin.ca });
      try {
        const connectionsBefore = proxy.connections;
        for (const origin of [httpsOrigin, httpOrigin]) {
          const response = await local.fetch(type, `${origin.url}/${type}`);
          assert.equal(response.status, 200);
          await response.text();
        }
        assert.equal(proxy.connections, connectionsBefore);
      } finally {
        await local.close();
      }
    });
  }

  it('no_proxy sends a proxied type direct', async () => {
    const local = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.url, no_proxy: '127.0.0.0/8' }, ca: httpsOrigin.ca });
    try {
      const connectionsBefore = proxy.connections;
      const response = await local.fetch('push', `${httpsOrigin.url}/direct`);
      assert.equal(response.status, 200);
      await response.text();
      assert.equal(proxy.connections, connectionsBefore);
      assert.equal(local.route('push', httpsOrigin.url).matched, '127.0.0.0/8');
    } finally {
      await local.close();
    }
  });

  it('direct routes stay direct with a global dispatcher set and NODE_USE_ENV_PROXY=1', async () => {
    const previous = getGlobalDispatcher();
    const local = createEgress({ ...LOOPBACK_ALLOWED, env: {}, ca: httpsOrigin.ca });
    process.env.NODE_USE_ENV_PROXY = '1';
    process.env.HTTPS_PROXY = proxy.url;
    process.env.HTTP_PROXY = proxy.url;
    const trap = new Agent({ connect: { timeout: 1 } });
    const globalRequests: string[] = [];
    const spy = trap.compose((dispatch) => (options, handler) => {
      globalRequests.push(String(options.origin));
      return dispatch(options, handler);
    });
    setGlobalDispatcher(spy);
    try {
      const connectionsBefore = proxy.connections;
      const response = await local.fetch('appservice', `${httpsOrigin.url}/as`);
      await response.text();
      const response2 = await local.fetch('push', `${httpsOrigin.url}/push`);
      await response2.text();
      assert.equal(proxy.connections, connectionsBefore);
      assert.deepEqual(globalRequests, []);
    } finally {
      setGlobalDispatcher(previous);
      delete process.env.NODE_USE_ENV_PROXY;
      delete process.env.HTTPS_PROXY;
      delete process.env.HTTP_PROXY;
      await trap.close();
      await local.close();
    }
  });

  it('refuses a caller-supplied Proxy-Authorization', async () => {
    const error = await fetchError(
      egress.fetch('push', `${httpsOrigin.url}/`, { headers: { 'Proxy-Authorization': 'Basic Zm9vOmJhcg==' } }),
    );
    assert.ok(error instanceof ForbiddenHeaderError, String(error));
    await assert.rejects(
      request(`${httpsOrigin.url}/`, { dispatcher: egress.dispatcher('appservice'), headers: { 'proxy-authorization': 'x' } }),
      ForbiddenHeaderError,
    );
  });

  it('refuses init.dispatcher and works after close() only with a typed error', async () => {
    const local = createEgress({ ...LOOPBACK_ALLOWED, env: {} });
    await assert.rejects(local.fetch('push', 'https://127.0.0.1:1/', { dispatcher: new Agent() } as never), TypeError);
    await local.close();
    await local.close();
    assert.throws(() => local.dispatcher('push'), EgressClosedError);
  });

  it('federation: connect to the resolved target, validate TLS and Host for the server name', async () => {
    proxy.clear();
    httpsOrigin.clear();
    // The origin's certificate names localhost; the "resolved target" is 127.0.0.1:<port>.
    const response = await egress.fetch('federation', `https://localhost:8448/_matrix/key/v2/server`, {
      connectTo: { host: '127.0.0.1', port: httpsOrigin.port },
    });
    assert.equal(response.status, 200);
    await response.text();
    assert.equal(proxy.filterCalls({ method: 'CONNECT' })[0]?.target ?? `127.0.0.1:${String(httpsOrigin.port)}`, `127.0.0.1:${String(httpsOrigin.port)}`);
    assert.equal(httpsOrigin.lastCall()?.servername, 'localhost');
    assert.equal(httpsOrigin.lastCall()?.headers.host, 'localhost:8448');
  });

  it('util.inspect of the egress and its dispatchers shows no credentials', () => {
    for (const value of [egress, egress.dispatcher('push'), egress.config, egress.route('push', httpsOrigin.url)]) {
      const text = inspect(value, { depth: 10, showHidden: true });
      assert.doesNotMatch(text, new RegExp(`${CANARY_PASSWORD}|${CANARY_USER}`));
    }
  });
});

describe('proxy failures become typed errors, promptly', () => {
  let restoreEnv: () => void;
  let origin: TestOrigin;
  before(async () => {
    restoreEnv = isolateProxyEnv();
    origin = await createTestOrigin({ tls: true });
  });
  after(async () => {
    await origin.close();
    restoreEnv();
  });

  async function failWith(proxy: RecordingProxy, url = `${origin.url}/`, env?: Record<string, string>): Promise<Error> {
    const egress = createEgress({ ...LOOPBACK_ALLOWED, env: env ?? { https_proxy: proxy.url, http_proxy: proxy.url }, ca: origin.ca, connectTimeout: 2000 });
    try {
      return await fetchError(egress.fetch('push', url));
    } finally {
      await egress.destroy();
    }
  }

  it('407 without credentials → ProxyAuthenticationError with the realm', async () => {
    const proxy = await createRecordingProxy({ auth: { username: 'u', password: 'p' }, realm: 'corp' });
    try {
      const error = await failWith(proxy);
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
      assert.equal(error.statusCode, 407);
      assert.equal(error.realm, 'corp');
      assert.match(error.message, /none are configured/);
    } finally {
      await proxy.close();
    }
  });

  it('407 with wrong credentials → ProxyAuthenticationError, password not in the message', async () => {
    const proxy = await createRecordingProxy({ auth: { username: 'u', password: 'right' }, realm: null });
    try {
      const error = await failWith(proxy, undefined, { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) });
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
      assert.equal(error.realm, undefined);
      assert.doesNotMatch(`${error.message}${String(error.stack)}${inspect(error)}`, new RegExp(CANARY_PASSWORD));
    } finally {
      await proxy.close();
    }
  });

  it('407 on a forwarded http request → ProxyAuthenticationError, not a response', async () => {
    const proxy = await createRecordingProxy({ auth: { username: 'u', password: 'p' } });
    const httpOrigin = await createTestOrigin();
    try {
      const error = await failWith(proxy, `${httpOrigin.url}/`);
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
    } finally {
      await Promise.all([proxy.close(), httpOrigin.close()]);
    }
  });

  for (const status of [403, 502, 503]) {
    it(`CONNECT answered ${String(status)} → ProxyConnectError`, async () => {
      const proxy = await createRecordingProxy({ fail: { connect: { status } } });
      try {
        const error = await failWith(proxy);
        assert.ok(error instanceof ProxyConnectError && !(error instanceof ProxyAuthenticationError), String(error));
        assert.equal(error.statusCode, status);
        assert.equal(error.code, 'ERR_EGRESS_PROXY_CONNECT');
      } finally {
        await proxy.close();
      }
    });
  }

  it('refused → ProxyUnreachableError (ECONNREFUSED), one attempt per request', async () => {
    const proxy = await createRecordingProxy();
    await proxy.setFailure({ connect: 'refuse' });
    try {
      const started = Date.now();
      const error = await failWith(proxy);
      assert.ok(error instanceof ProxyUnreachableError, String(error));
      assert.equal(error.syscallCode, 'ECONNREFUSED');
      assert.ok(Date.now() - started < 1500);
    } finally {
      await proxy.close();
    }
  });

  it('reset on every connection → ProxyUnreachableError after a bounded number of attempts', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'reset' } });
    try {
      const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.url }, ca: origin.ca });
      const errors = await Promise.all(Array.from({ length: 10 }, () => fetchError(egress.fetch('push', `${origin.url}/`))));
      await egress.destroy();
      for (const error of errors) assert.ok(error instanceof ProxyUnreachableError, String(error));
      // One connection per request at most: no reconnect storm (undici #3897).
      assert.ok(proxy.connections <= 10, `the proxy saw ${String(proxy.connections)} connections for 10 requests`);
    } finally {
      await proxy.close();
    }
  });

  it('a proxy that never answers → ProxyUnreachableError after the connect timeout', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
    try {
      const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.url }, ca: origin.ca, connectTimeout: 300 });
      const started = Date.now();
      const error = await fetchError(egress.fetch('push', `${origin.url}/`));
      await egress.destroy();
      assert.ok(error instanceof ProxyUnreachableError, String(error));
      assert.equal(error.syscallCode, 'ETIMEDOUT');
      assert.ok(Date.now() - started < 2000);
    } finally {
      await proxy.close();
    }
  });

  it('garbage instead of an HTTP answer → ProxyProtocolError', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'garbage' } });
    try {
      const error = await failWith(proxy);
      assert.ok(error instanceof ProxyProtocolError || error instanceof ProxyUnreachableError, String(error));
    } finally {
      await proxy.close();
    }
  });

  it('https proxy trusted through proxyCa works; untrusted → ProxyTlsError', async () => {
    const proxy = await createRecordingProxy({ tls: true });
    try {
      const good = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.url }, proxyCa: proxy.ca, ca: origin.ca });
      const response = await good.fetch('push', `${origin.url}/via-tls-proxy`);
      assert.equal(response.status, 200);
      await response.text();
      await good.close();
      assert.equal(proxy.lastCall()?.method, 'CONNECT');

      const error = await failWith(proxy, undefined, { https_proxy: proxy.url });
      assert.ok(error instanceof ProxyTlsError, String(error));
      assert.ok(['unknown-ca', 'self-signed'].includes(error.reason), error.reason);
    } finally {
      await proxy.close();
    }
  });

  it('an https proxy named by a host its certificate lacks → hostname-mismatch', async () => {
    const proxy = await createRecordingProxy({ tls: true });
    try {
      // The throwaway certificate covers localhost, 127.0.0.1 and ::1 — not 127.0.0.2.
      const wrongName = proxy.url.replace('127.0.0.1', '127.0.0.2');
      const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: wrongName }, proxyCa: proxy.ca, ca: origin.ca });
      const error = await fetchError(egress.fetch('push', `${origin.url}/`));
      await egress.destroy();
      // 127.0.0.2 is not listening unless the proxy binds 0.0.0.0; either way the error is typed.
      assert.ok(error instanceof ProxyTlsError || error instanceof ProxyUnreachableError, String(error));
    } finally {
      await proxy.close();
    }
  });

  it('origin TLS is validated inside the tunnel', async () => {
    const proxy = await createRecordingProxy();
    try {
      // No `ca`: the throwaway origin certificate is not trusted.
      const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxy.url } });
      const error = await fetchError(egress.fetch('push', `${origin.url}/`));
      await egress.destroy();
      assert.match(String((error as { code?: string }).code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED|UNABLE_TO_GET_ISSUER/);
      assert.equal(proxy.filterCalls({ method: 'CONNECT' }).length, 1);
    } finally {
      await proxy.close();
    }
  });

  it('the testing switch turns verification off for both hops and warns once', async () => {
    const proxy = await createRecordingProxy({ tls: true });
    const warnings: string[] = [];
    try {
      const egress = createEgress({
      ...LOOPBACK_ALLOWED,
        env: { https_proxy: proxy.url },
        useInsecureSslClientJustForTestingDoNotUse: true,
        logger: { warn: (message) => warnings.push(message) },
      });
      for (let i = 0; i < 3; i++) {
        const response = await egress.fetch('push', `${origin.url}/`);
        await response.text();
      }
      await egress.close();
      assert.equal(warnings.length, 1);
      assert.match(warnings[0] ?? '', /verification is OFF/);
    } finally {
      await proxy.close();
    }
  });
});
