// SOCKS5 and SOCKS5h through the kit's recording SOCKS proxy (SPEC §9), on both APIs: the undici
// dispatchers / fetch and the http.Agents. Every target is on loopback.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { get as httpGet, type IncomingMessage, type RequestOptions } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { inspect } from 'node:util';
import { createEgress, type Egress } from '../../../src/egress.js';
import { EGRESS_CHANNELS } from '../../../src/observability/channels.js';
import {
  BlockedDestinationError,
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyUnreachableError,
} from '../../../src/errors.js';
import { createTestCertificateAuthority } from '../../../src/testing/certificates.js';
import { createRecordingProxy, type RecordingProxy } from '../../../src/testing/recording-proxy.js';
import { createRecordingSocksProxy, type RecordingSocksProxy } from '../../../src/testing/socks-proxy.js';
import { expectNoSocksCall, expectSocksAddress, expectSocksAuth, expectSocksName } from '../../../src/testing/socks-assertions.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';

const ONION = 'matrixabcdefghij.onion';
const SOCKS_USER = 'tor-user';
const SOCKS_PASSWORD = 'socks-canary-pw-4471';
const LOOPBACK_ALLOWED = { ipAllowlist: ['127.0.0.0/8', '::1'] } as const;

/** A resolver for tests: fixed answers, and a record of every name asked. */
function recordingLookup(answers: Readonly<Record<string, string>>): { lookup: LookupFunction; asked: string[] } {
  const asked: string[] = [];
  const lookup = ((hostname: string, _options: unknown, callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void): void => {
    asked.push(hostname);
    const address = answers[hostname];
    if (address === undefined) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
    else callback(null, [{ address, family: address.includes(':') ? 6 : 4 }]);
  }) as unknown as LookupFunction;
  return { lookup, asked };
}

function assertNoCredentials(error: unknown): void {
  const text = `${String(error)} ${(error as Error).stack ?? ''} ${inspect(error, { depth: 8, showHidden: true })}`;
  assert.ok(!text.includes(SOCKS_PASSWORD) && !text.includes(SOCKS_USER), text);
}

function getBody(get: typeof httpGet, url: string, options: RequestOptions): Promise<{ response: IncomingMessage; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, options, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        resolve({ response, body });
      });
    });
    req.on('error', reject);
  });
}

describe('SOCKS5h proxy rule for .onion (the Tor recipe) while the rest keeps its route', () => {
  let restoreEnv: () => void;
  let socks: RecordingSocksProxy;
  let httpProxy: RecordingProxy;
  let onionOrigin: TestOrigin;
  let clearnetOrigin: TestOrigin;
  let egress: Egress;
  let resolver: ReturnType<typeof recordingLookup>;
  let onionCa: string;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    const ca = createTestCertificateAuthority();
    onionCa = ca.cert;
    onionOrigin = await createTestOrigin({ tls: { ...ca.issue({ hosts: [ONION] }), ca: ca.cert } });
    clearnetOrigin = await createTestOrigin({ tls: true });
    socks = await createRecordingSocksProxy({ hosts: { [ONION]: '127.0.0.1' }, auth: { username: SOCKS_USER, password: SOCKS_PASSWORD } });
    httpProxy = await createRecordingProxy();
    resolver = recordingLookup({});
    egress = createEgress({
      ...LOOPBACK_ALLOWED,
      env: { https_proxy: httpProxy.url, http_proxy: httpProxy.url },
      ca: clearnetOrigin.ca,
      lookup: resolver.lookup,
      // The onion origin's CA is trusted for the rule's hosts only.
      proxyRules: [{ hosts: '*.onion', proxy: socks.urlWithCredentials(SOCKS_USER, SOCKS_PASSWORD, 'socks5h:'), ca: ca.cert }],
    });
  });

  after(async () => {
    await egress.close();
    await Promise.all([socks.close(), httpProxy.close(), onionOrigin.close(), clearnetOrigin.close()]);
    restoreEnv();
  });

  it('federation fetch to the .onion name goes through SOCKS5h by name, TLS validated for the name, resolver never called', async () => {
    socks.clear();
    httpProxy.clear();
    const response = await egress.fetch('federation', `https://${ONION}:${String(onionOrigin.port)}/_matrix/key/v2/server`);
    assert.equal(response.status, 200);
    await response.text();
    const call = expectSocksName(socks, ONION, { port: onionOrigin.port, outcome: 'connected' });
    assert.equal(call.address, undefined);
    expectSocksAuth(socks, { username: SOCKS_USER });
    assert.equal(onionOrigin.lastCall()?.servername, ONION);
    assert.equal(onionOrigin.lastCall()?.url, '/_matrix/key/v2/server');
    assert.deepEqual(resolver.asked, [], 'socks5h never resolves the name locally');
    assert.equal(httpProxy.calls().length, 0);
  });

  it('SOCKS tunnels are observed like CONNECT tunnels: tunnel events without credentials, stats', async () => {
    const events: unknown[] = [];
    const onOpen = (message: unknown): void => {
      events.push(message);
    };
    subscribe(EGRESS_CHANNELS.tunnelOpen, onOpen);
    const observed = createEgress({ ...LOOPBACK_ALLOWED, env: {}, lookup: resolver.lookup, proxyRules: [{ hosts: '*.onion', proxy: socks.urlWithCredentials(SOCKS_USER, SOCKS_PASSWORD), ca: onionCa }] });
    try {
      const response = await observed.fetch('federation', `https://${ONION}:${String(onionOrigin.port)}/`);
      await response.text();
      const opened = events.filter((event) => (event as { target?: string }).target === `${ONION}:${String(onionOrigin.port)}`);
      assert.equal(opened.length, 1, JSON.stringify(events));
      assert.equal((opened[0] as { proxy: string }).proxy, socks.socks5hUrl);
      assert.ok(!JSON.stringify(events).includes(SOCKS_PASSWORD));
      assert.equal(observed.stats().tunnels.opened, 1);
    } finally {
      unsubscribe(EGRESS_CHANNELS.tunnelOpen, onOpen);
      await observed.close();
    }
  });

  it('the same through the https.Agent', async () => {
    socks.clear();
    const { response, body } = await getBody(httpsGet, `https://${ONION}:${String(onionOrigin.port)}/_matrix/federation/v1/version`, {
      agent: egress.httpsAgent('federation'),
    });
    assert.equal(response.statusCode, 200, body);
    expectSocksName(socks, ONION, { outcome: 'connected' });
    assert.deepEqual(resolver.asked, []);
  });

  it('everything else keeps its route: CONNECT through the HTTP proxy, no SOCKS session', async () => {
    socks.clear();
    httpProxy.clear();
    const response = await egress.fetch('federation', `${clearnetOrigin.url}/_matrix/federation/v1/version`);
    assert.equal(response.status, 200);
    await response.text();
    expectNoSocksCall(socks);
    assert.equal(httpProxy.calls().length, 1);
    assert.equal(egress.route('federation', `https://${ONION}/`).reasonCode, 'proxy-rule');
    assert.equal(egress.route('federation', clearnetOrigin.url).reasonCode, 'proxy');
  });

  it('the rule CA is trusted for the rule only: the onion certificate fails on a route without it', async () => {
    const other = createEgress({ ...LOOPBACK_ALLOWED, env: {}, proxyRules: [{ hosts: '*.onion', proxy: socks.urlWithCredentials(SOCKS_USER, SOCKS_PASSWORD) }] });
    try {
      const error = await fetchError(other.fetch('federation', `https://${ONION}:${String(onionOrigin.port)}/`));
      assert.match(String((error as { code?: unknown }).code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/);
    } finally {
      await other.close();
    }
  });
});

describe('SOCKS5 (local resolution) and SOCKS5h: name vs address, blocklist, origin-form, TLS', () => {
  let restoreEnv: () => void;
  let socks: RecordingSocksProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    socks = await createRecordingSocksProxy({ hosts: { 'origin.test': '127.0.0.1', 'wrong-name.test': '127.0.0.1' } });
    httpsOrigin = await createTestOrigin({ tls: true });
    httpOrigin = await createTestOrigin();
  });

  after(async () => {
    await Promise.all([socks.close(), httpsOrigin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  it('socks5: the name is resolved through the lookup option and the proxy is asked for the address', async () => {
    const resolver = recordingLookup({ localhost: '127.0.0.1' });
    const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: socks.socks5Url, http_proxy: socks.socks5Url }, ca: httpsOrigin.ca, lookup: resolver.lookup });
    try {
      socks.clear();
      const response = await egress.fetch('media', `https://localhost:${String(httpsOrigin.port)}/_matrix/media/v3/download/x/y`);
      assert.equal(response.status, 200);
      await response.text();
      const call = expectSocksAddress(socks, '127.0.0.1', { port: httpsOrigin.port, outcome: 'connected' });
      assert.equal(call.name, undefined);
      assert.deepEqual(resolver.asked, ['localhost']);
      assert.equal(httpsOrigin.lastCall()?.servername, 'localhost', 'SNI is the origin name, not the address asked for');
    } finally {
      await egress.close();
    }
  });

  it('socks5h: the proxy is asked for the name; http origins get origin-form requests inside the tunnel', async () => {
    const resolver = recordingLookup({});
    const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { http_proxy: socks.socks5hUrl }, lookup: resolver.lookup });
    try {
      socks.clear();
      httpOrigin.clear();
      const response = await egress.fetch('url_preview', `http://origin.test:${String(httpOrigin.port)}/page?q=1`);
      assert.equal(response.status, 200);
      await response.text();
      expectSocksName(socks, 'origin.test', { port: httpOrigin.port, outcome: 'connected' });
      assert.equal(httpOrigin.lastCall()?.url, '/page?q=1');
      assert.equal(httpOrigin.lastCall()?.headers.host, `origin.test:${String(httpOrigin.port)}`);
      assert.deepEqual(resolver.asked, []);

      // The http.Agent: origin-form too, pooled per origin.
      const { response: viaAgent } = await getBody(httpGet, `http://origin.test:${String(httpOrigin.port)}/agent`, { agent: egress.agent('url_preview') });
      assert.equal(viaAgent.statusCode, 200);
      assert.equal(httpOrigin.lastCall()?.url, '/agent');
      assert.deepEqual(resolver.asked, []);
    } finally {
      await egress.close();
    }
  });

  it('socks5: the IP blocklist applies to the resolved address, before any byte reaches the proxy', async () => {
    const resolver = recordingLookup({ 'inside.test': '127.0.0.1', 'also-inside.test': '10.1.2.3' });
    const egress = createEgress({ env: { https_proxy: socks.socks5Url, http_proxy: socks.socks5Url }, lookup: resolver.lookup });
    try {
      socks.clear();
      const before = socks.connections;
      const error = await fetchError(egress.fetch('push', 'https://inside.test/_matrix/push/v1/notify'));
      assert.ok(error instanceof BlockedDestinationError, String(error));
      assert.equal(error.address, '127.0.0.1');
      const agentError = await getBody(httpGet, 'http://also-inside.test/', { agent: egress.agent('push') }).then(
        () => assert.fail('expected a refusal'),
        (thrown: unknown) => thrown,
      );
      assert.ok(agentError instanceof BlockedDestinationError, String(agentError));
      assert.equal(socks.connections, before, 'no connection to the proxy');
      // An IP-literal URL is checked whatever the route (SPEC §8).
      assert.ok((await fetchError(egress.fetch('push', `https://127.0.0.1:${String(httpsOrigin.port)}/`))) instanceof BlockedDestinationError);
      // Types without the blocklist, and socks5h (the proxy resolves), are not refused here.
      assert.equal(egress.route('oidc', 'https://inside.test/').proxy?.url, socks.socks5Url);
    } finally {
      await egress.close();
    }
  });

  it('TLS to the origin inside the tunnel is validated: unknown CA and wrong name fail', async () => {
    const untrusting = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: socks.socks5hUrl } });
    const trusting = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: socks.socks5hUrl }, ca: httpsOrigin.ca });
    try {
      const unknownCa = await fetchError(untrusting.fetch('federation', `https://origin.test:${String(httpsOrigin.port)}/`));
      assert.match(String((unknownCa as { code?: unknown }).code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT/);
      const wrongName = await fetchError(trusting.fetch('federation', `https://wrong-name.test:${String(httpsOrigin.port)}/`));
      assert.equal((wrongName as { code?: unknown }).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      await Promise.all([untrusting.close(), trusting.close()]);
    }
  });

  it('pooling: tunnels ≤ requests in flight, and sequential requests reuse one tunnel', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = await createTestOrigin({
      handler: async (req, res) => {
        req.resume();
        await gate;
        res.end('ok');
      },
    });
    const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { http_proxy: socks.socks5hUrl } });
    try {
      const opened = socks.tunnelsOpened;
      const inFlight = 4;
      const pending = Array.from({ length: inFlight }, (_, i) => egress.fetch('media', `http://localhost:${String(slow.port)}/${String(i)}`).then((r) => r.text()));
      while (slow.calls().length < inFlight) await new Promise((resolve) => setTimeout(resolve, 10));
      release();
      await Promise.all(pending);
      const concurrent = socks.tunnelsOpened - opened;
      assert.ok(concurrent <= inFlight, `${String(concurrent)} tunnels for ${String(inFlight)} requests`);
      for (let i = 0; i < 5; i += 1) await (await egress.fetch('media', `http://localhost:${String(slow.port)}/seq`)).text();
      assert.equal(socks.tunnelsOpened - opened, concurrent, 'sequential requests reuse pooled tunnels');
    } finally {
      await egress.close();
      await slow.close();
    }
  });
});

describe('SOCKS failures are typed, bounded and credential-free (SPEC §7, §9)', () => {
  let restoreEnv: () => void;
  let socks: RecordingSocksProxy;
  const target = 'https://origin.test/';

  before(async () => {
    restoreEnv = isolateProxyEnv();
    socks = await createRecordingSocksProxy({ hosts: { 'origin.test': '127.0.0.1' }, auth: { username: SOCKS_USER, password: SOCKS_PASSWORD } });
  });

  after(async () => {
    await socks.setFailure(undefined);
    await socks.close();
    restoreEnv();
  });

  async function failOnce(proxyUrl: string): Promise<Error> {
    const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: proxyUrl }, connectTimeout: 500 });
    try {
      const before = socks.connections;
      const error = await fetchError(egress.fetch('federation', target));
      const attempts = socks.connections - before;
      assert.ok(attempts <= 1, `${String(attempts)} connections for one failed request: no retry storm`);
      assertNoCredentials(error);
      return error;
    } finally {
      await egress.close();
    }
  }

  const good = (): string => socks.urlWithCredentials(SOCKS_USER, SOCKS_PASSWORD);

  it('wrong password → ProxyAuthenticationError', async () => {
    const error = await failOnce(socks.urlWithCredentials(SOCKS_USER, 'not-the-password'));
    assert.ok(error instanceof ProxyAuthenticationError, String(error));
    assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
    assert.match(error.message, /SOCKS5 authentication failed: the proxy rejected the configured credentials/);
  });

  it('no credentials where they are required → ProxyAuthenticationError', async () => {
    const error = await failOnce(socks.socks5hUrl);
    assert.ok(error instanceof ProxyAuthenticationError, String(error));
    assert.match(error.message, /requires credentials and none are configured/);
  });

  for (const [reply, name] of [
    [0x01, 'general SOCKS server failure'],
    [0x02, 'connection not allowed by ruleset'],
    [0x04, 'host unreachable'],
    [0x05, 'connection refused'],
  ] as const) {
    it(`reply 0x0${String(reply)} → ProxyConnectError naming "${name}"`, async () => {
      await socks.setFailure({ connect: { reply } });
      try {
        const error = await failOnce(good());
        assert.ok(error instanceof ProxyConnectError, String(error));
        assert.equal(error.code, 'ERR_EGRESS_PROXY_CONNECT');
        assert.equal(error.socksReply, reply);
        assert.match(error.message, new RegExp(`SOCKS reply 0x0${String(reply)} ${name}$`));
      } finally {
        await socks.setFailure(undefined);
      }
    });
  }

  it('bytes that are not SOCKS → ProxyProtocolError', async () => {
    await socks.setFailure({ connect: 'garbage' });
    try {
      const error = await failOnce(good());
      assert.ok(error instanceof ProxyProtocolError, String(error));
    } finally {
      await socks.setFailure(undefined);
    }
  });

  it('refused, reset and silent proxies → ProxyUnreachableError, one attempt each', async () => {
    for (const [connect, code] of [
      ['refuse', 'ECONNREFUSED'],
      ['reset', 'ECONNRESET'],
      ['hang', 'ETIMEDOUT'],
    ] as const) {
      await socks.setFailure({ connect });
      try {
        const error = await failOnce(good());
        assert.ok(error instanceof ProxyUnreachableError, `${connect}: ${String(error)}`);
        assert.equal(error.syscallCode, code, connect);
      } finally {
        await socks.setFailure(undefined);
      }
    }
  });

  it('the http.Agents report the same typed errors', async () => {
    await socks.setFailure({ connect: { reply: 0x04 } });
    const egress = createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: good() }, connectTimeout: 500 });
    try {
      const error = await getBody(httpsGet, target, { agent: egress.httpsAgent('federation') }).then(
        () => assert.fail('expected a failure'),
        (thrown: unknown) => thrown,
      );
      assert.ok(error instanceof ProxyConnectError, String(error));
      assert.equal(error.socksReply, 4);
      assertNoCredentials(error);
    } finally {
      await socks.setFailure(undefined);
      await egress.close();
    }
  });
});
