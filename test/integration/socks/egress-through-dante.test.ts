// The egress through a real SOCKS5 server, Dante (test/support/dante.ts), with and without RFC 1929
// username authentication: https and http origins, socks5 vs socks5h, both APIs, pooling, errors.
// Loopback only. Needs `bash scripts/dante.sh install`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { get as httpGet, type IncomingMessage, type RequestOptions } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { inspect } from 'node:util';
import { createEgress, type Egress } from '../../../src/egress.js';
import { ProxyAuthenticationError, ProxyConnectError } from '../../../src/errors.js';
import { createTestCertificateAuthority } from '../../../src/testing/certificates.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { assertDanteAvailable, startDante, type DanteInstance } from '../../support/dante.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';

const ONION = 'matrixdantetest.onion';
const USER = 'synapse';
const PASSWORD = 'dante-canary-pw-9913';
const LOOPBACK_ALLOWED = { ipAllowlist: ['127.0.0.0/8', '::1'] } as const;

function withCredentials(url: string, username: string, password: string): string {
  return url.replace('://', `://${encodeURIComponent(username)}:${encodeURIComponent(password)}@`);
}

function countingLookup(): { lookup: LookupFunction; asked: string[] } {
  const asked: string[] = [];
  const lookup = ((hostname: string, _options: unknown, callback: (error: null, addresses: LookupAddress[]) => void): void => {
    asked.push(hostname);
    callback(null, [{ address: '127.0.0.1', family: 4 }]);
  }) as unknown as LookupFunction;
  return { lookup, asked };
}

function get(getter: typeof httpGet, url: string, options: RequestOptions): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    getter(url, options, (response) => {
      response.resume();
      response.on('end', () => {
        resolve(response);
      });
    }).on('error', reject);
  });
}

for (const auth of [false, true]) {
  describe(`egress through Dante ${auth ? 'with' : 'without'} username authentication`, () => {
    let restoreEnv: () => void;
    let dante: DanteInstance;
    let onionOrigin: TestOrigin;
    let httpOrigin: TestOrigin;
    let caCert: string;

    before(async () => {
      assertDanteAvailable();
      restoreEnv = isolateProxyEnv();
      const ca = createTestCertificateAuthority();
      caCert = ca.cert;
      onionOrigin = await createTestOrigin({ tls: { ...ca.issue({ hosts: [ONION, 'localhost'] }), ca: ca.cert } });
      httpOrigin = await createTestOrigin();
      dante = await startDante({ hosts: { [ONION]: '127.0.0.1' }, ...(auth && { auth: { username: USER, password: PASSWORD } }) });
    });

    after(async () => {
      await dante.stop();
      await Promise.all([onionOrigin.close(), httpOrigin.close()]);
      restoreEnv();
    });

    const proxyUrl = (scheme: 'socks5h' | 'socks5'): string => {
      const url = scheme === 'socks5h' ? dante.socks5hUrl : dante.socks5Url;
      return auth ? withCredentials(url, USER, PASSWORD) : url;
    };

    function egressWith(options: Parameters<typeof createEgress>[0]): Egress {
      return createEgress({ ...LOOPBACK_ALLOWED, env: {}, ...options });
    }

    it('https .onion via a socks5h rule: Dante resolves the name, TLS validated for it, both APIs', async () => {
      const resolver = countingLookup();
      const egress = egressWith({ lookup: resolver.lookup, ca: caCert, proxyRules: [{ hosts: '*.onion', proxy: proxyUrl('socks5h') }] });
      try {
        onionOrigin.clear();
        const response = await egress.fetch('federation', `https://${ONION}:${String(onionOrigin.port)}/_matrix/federation/v1/version`);
        assert.equal(response.status, 200);
        await response.text();
        assert.equal(onionOrigin.lastCall()?.servername, ONION);
        const viaAgent = await get(httpsGet, `https://${ONION}:${String(onionOrigin.port)}/agent`, { agent: egress.httpsAgent('federation') });
        assert.equal(viaAgent.statusCode, 200);
        assert.deepEqual(resolver.asked, [], 'the local resolver is never asked for the onion name');
        // Dante logs the address it resolved the name to (the recording SOCKS proxy's tests prove that the name was sent).
        const opened = await dante.waitForLog(
          (entry) => entry.operation === 'tcp/connect' && entry.phase === 'open' && entry.detail.includes(`127.0.0.1.${String(onionOrigin.port)}`),
        );
        if (auth) assert.equal(opened.user, USER);
      } finally {
        await egress.close();
      }
    });

    it('http origin via socks5: resolved locally, Dante asked for the address, origin-form inside the tunnel', async () => {
      const resolver = countingLookup();
      const egress = egressWith({ lookup: resolver.lookup, httpProxy: proxyUrl('socks5') });
      try {
        httpOrigin.clear();
        const response = await egress.fetch('media', `http://origin.test:${String(httpOrigin.port)}/_matrix/media/v3/download/a/b?x=1`);
        assert.equal(response.status, 200);
        await response.text();
        assert.deepEqual(resolver.asked, ['origin.test']);
        assert.equal(httpOrigin.lastCall()?.url, '/_matrix/media/v3/download/a/b?x=1');
        const viaAgent = await get(httpGet, `http://origin.test:${String(httpOrigin.port)}/agent`, { agent: egress.agent('media') });
        assert.equal(viaAgent.statusCode, 200);
        assert.equal(httpOrigin.lastCall()?.url, '/agent');
        await dante.waitForLog((entry) => entry.operation === 'tcp/connect' && entry.phase === 'open' && entry.detail.includes(`127.0.0.1.${String(httpOrigin.port)}`));
      } finally {
        await egress.close();
      }
    });

    it('tunnels ≤ requests in flight; sequential requests reuse a pooled tunnel', async () => {
      const egress = egressWith({ httpsProxy: proxyUrl('socks5h'), ca: caCert });
      try {
        const before = await dante.tunnelsOpened();
        const inFlight = 3;
        await Promise.all(
          Array.from({ length: inFlight }, async (_, i) => (await egress.fetch('push', `https://localhost:${String(onionOrigin.port)}/${String(i)}`)).text()),
        );
        for (let i = 0; i < 4; i += 1) await (await egress.fetch('push', `https://localhost:${String(onionOrigin.port)}/seq`)).text();
        const opened = (await dante.tunnelsOpened()) - before;
        assert.ok(opened >= 1 && opened <= inFlight, `${String(opened)} tunnels for ${String(inFlight)} requests in flight and 4 sequential ones`);
      } finally {
        await egress.close();
      }
    });

    it('a name Dante cannot resolve → ProxyConnectError naming the SOCKS reply', async () => {
      const egress = egressWith({ httpsProxy: proxyUrl('socks5h') });
      try {
        const error = await fetchError(egress.fetch('federation', `https://unknown-name.onion:${String(onionOrigin.port)}/`));
        assert.ok(error instanceof ProxyConnectError, String(error));
        assert.ok(error.socksReply !== undefined && error.socksReply >= 1 && error.socksReply <= 8, String(error.socksReply));
        assert.match(error.message, /SOCKS reply 0x0[1-8] /);
        assert.ok(!inspect(error, { depth: 8, showHidden: true }).includes(PASSWORD));
      } finally {
        await egress.close();
      }
    });

    if (auth) {
      it('a wrong password, or none, → ProxyAuthenticationError without credentials in it', async () => {
        for (const url of [withCredentials(dante.socks5hUrl, USER, 'wrong-password'), dante.socks5hUrl]) {
          const egress = egressWith({ httpsProxy: url });
          try {
            const error = await fetchError(egress.fetch('federation', `https://${ONION}:${String(onionOrigin.port)}/`));
            assert.ok(error instanceof ProxyAuthenticationError, String(error));
            const text = `${String(error)} ${inspect(error, { depth: 8, showHidden: true })}`;
            assert.ok(!text.includes('wrong-password') && !text.includes(PASSWORD) && !text.includes(USER), text);
          } finally {
            await egress.close();
          }
        }
      });
    }
  });
}
