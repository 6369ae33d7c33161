/**
 * Faults on the proxy side (issue 8): every fault ends in a prompt, typed error (or, for a request
 * that was on the wire when the proxy died, a socket error), never a hang or a reconnect storm, and
 * the egress recovers as soon as the proxy does — no pooled connection to a dead proxy poisons later
 * requests.
 *
 * Covered: the proxy killed mid-run and restarted on the same port (recording proxy and a real
 * Squid, SIGKILL); a refusing listener with pooled connections still up; a proxy that resets every
 * connection; one that accepts and never answers; garbage and truncated CONNECT answers; 407 with
 * and without a realm (recording proxy and Squid).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { createEgress, type Egress } from '../../src/egress.js';
import type { EgressOptions } from '../../src/config/compile.js';
import {
  EgressError,
  ProxyAuthenticationError,
  ProxyProtocolError,
  ProxyTlsError,
  ProxyUnreachableError,
} from '../../src/errors.js';
import { createRecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import { startSquid } from '../support/squid.js';
import { failureOf, fetchOk, isCutInFlight, isUndiciError, socketsTo, waitFor } from './harness.js';
import { killAndRestartUnderLoad, PROMPT_MS, restartableRecordingProxy, restartableSquid } from './restart-scenarios.js';

let restoreEnv: () => void;
let httpsOrigin: TestOrigin;
let httpOrigin: TestOrigin;

before(async () => {
  restoreEnv = isolateProxyEnv();
  [httpsOrigin, httpOrigin] = await Promise.all([createTestOrigin({ tls: true }), createTestOrigin()]);
});

after(async () => {
  await Promise.all([httpsOrigin.close(), httpOrigin.close()]);
  restoreEnv();
});

function egressVia(proxyUrl: string, extra: EgressOptions = {}): Egress {
  // Loopback origins are on the default IP blocklist; these tests are about the proxy hop.
  return createEgress({ env: { https_proxy: proxyUrl, http_proxy: proxyUrl }, ca: httpsOrigin.ca, ipBlocklist: [], connectTimeout: 2_000, ...extra });
}

function errorCode(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}

// --- killed and restarted ---------------------------------------------------------

for (const make of [restartableRecordingProxy, restartableSquid]) {
  describe(`proxy killed and restarted on the same port: ${make === restartableSquid ? 'Squid (SIGKILL)' : 'recording proxy'}`, () => {
    it('mid-run: typed, prompt errors while it is down, every request after the restart succeeds', async (t) => {
      const proxy = await make();
      const egress = egressVia(proxy.url);
      try {
        const figures = await killAndRestartUnderLoad(proxy, egress, { https: httpsOrigin.url, http: httpOrigin.url }, { cycles: 1, workers: 4, perPhase: 16 });
        t.diagnostic(JSON.stringify(figures));
        await egress.close();
        await waitFor('no socket left to the proxy', () => socketsTo(proxy.port) === 0);
      } finally {
        await egress.destroy();
        await proxy.dispose();
      }
    });

    it('quiet restart: pooled connections to the dead proxy do not fail the first requests after it', async () => {
      const proxy = await make();
      const egress = egressVia(proxy.url);
      try {
        // Pool a tunnel (https) and a forwarding connection (http), idle when the proxy dies.
        await fetchOk(egress, 'push', `${httpsOrigin.url}/pooled`);
        await fetchOk(egress, 'push', `${httpOrigin.url}/pooled`);
        await proxy.kill();
        await proxy.restart();
        for (let i = 0; i < 3; i++) {
          await fetchOk(egress, 'push', `${httpsOrigin.url}/after-${String(i)}`);
          await fetchOk(egress, 'push', `${httpOrigin.url}/after-${String(i)}`);
        }
        await egress.close();
        await waitFor('no socket left to the proxy', () => socketsTo(proxy.port) === 0);
      } finally {
        await egress.destroy();
        await proxy.dispose();
      }
    });
  });
}

describe('a proxy that stops listening (recording proxy `refuse`)', () => {
  it('new connections are refused promptly while pooled ones keep working; then it recovers', async () => {
    const proxy = await createRecordingProxy();
    const egress = egressVia(proxy.url);
    // The same origin by another name (its certificate names both): a separate tunnel pool.
    const other = httpsOrigin.url.replace('127.0.0.1', 'localhost');
    try {
      await fetchOk(egress, 'push', `${httpsOrigin.url}/pooled`);
      await proxy.setFailure({ connect: 'refuse' });
      // The pooled tunnel is still up: refusing new connections does not touch it.
      await fetchOk(egress, 'push', `${httpsOrigin.url}/still-pooled`);
      // Another origin needs a new connection: refused.
      const { error, ms } = await failureOf(egress.fetch('push', `${other}/new`));
      assert.ok(error instanceof ProxyUnreachableError, String(error));
      assert.equal(error.syscallCode, 'ECONNREFUSED');
      assert.ok(ms < PROMPT_MS, `${String(ms)} ms`);
      await proxy.setFailure(undefined);
      await fetchOk(egress, 'push', `${other}/recovered`);
      await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });
});

// --- resets, hangs, garbage -------------------------------------------------------

describe('a proxy that resets every connection', () => {
  it('each request fails once, promptly and typed: one connection per request at most, no storm; then recovery', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'reset' } });
    const egress = egressVia(proxy.url);
    try {
      const requests = 20;
      const failures = await Promise.all(
        Array.from({ length: requests }, (_, i) => failureOf(egress.fetch('push', `${i % 2 === 0 ? httpsOrigin.url : httpOrigin.url}/reset`))),
      );
      for (const { error, ms } of failures) {
        // A reset seen while connecting is typed; the forwarding pool can also see it after the TCP
        // handshake, as a socket error (reported: it should be a ProxyUnreachableError too).
        assert.ok(error instanceof ProxyUnreachableError || errorCode(error) === 'ECONNRESET' || errorCode(error) === 'UND_ERR_SOCKET', String(error));
        assert.ok(ms < PROMPT_MS, `${String(ms)} ms`);
      }
      assert.ok(proxy.connections <= requests, `${String(proxy.connections)} connections for ${String(requests)} requests`);
      // And nothing keeps reconnecting in the background (undici #3897).
      const settled = proxy.connections;
      await sleep(300);
      assert.equal(proxy.connections, settled, 'connections kept coming after the requests failed');

      await proxy.setFailure(undefined);
      await fetchOk(egress, 'push', `${httpsOrigin.url}/recovered`);
      await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it('a reset on a pooled forwarding connection costs at most one new connection per request', async () => {
    const proxy = await createRecordingProxy();
    const egress = egressVia(proxy.url);
    try {
      await fetchOk(egress, 'push', `${httpOrigin.url}/pooled`);
      const before = proxy.connections;
      await proxy.setFailure({ connect: 'reset' });
      const requests = 5;
      for (let i = 0; i < requests; i++) {
        const { error, ms } = await failureOf(egress.fetch('push', `${httpOrigin.url}/reset-${String(i)}`));
        assert.ok(error instanceof ProxyUnreachableError || isCutInFlight(error), String(error));
        assert.ok(ms < PROMPT_MS, `${String(ms)} ms`);
      }
      assert.ok(proxy.connections - before <= requests, `${String(proxy.connections - before)} new connections for ${String(requests)} requests`);
      await proxy.setFailure(undefined);
      await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });
});

describe('a proxy that accepts and never answers', () => {
  const CONNECT_TIMEOUT = 300;

  it('CONNECT: ProxyUnreachableError ETIMEDOUT after connectTimeout, sockets released; then recovery', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
    const egress = egressVia(proxy.url, { connectTimeout: CONNECT_TIMEOUT });
    try {
      const failures = await Promise.all(Array.from({ length: 5 }, () => failureOf(egress.fetch('push', `${httpsOrigin.url}/hang`))));
      for (const { error, ms } of failures) {
        assert.ok(error instanceof ProxyUnreachableError, String(error));
        assert.equal(error.syscallCode, 'ETIMEDOUT');
        assert.ok(ms >= CONNECT_TIMEOUT - 20 && ms < CONNECT_TIMEOUT + PROMPT_MS, `${String(ms)} ms`);
      }
      assert.ok(proxy.connections <= 5);
      await waitFor('the timed-out connections closed', () => socketsTo(proxy.port) === 0);
      await proxy.setFailure(undefined);
      await fetchOk(egress, 'push', `${httpsOrigin.url}/recovered`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it('forwarded http: the caller’s AbortSignal ends it promptly and no request is left at the proxy', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
    const egress = egressVia(proxy.url, { connectTimeout: CONNECT_TIMEOUT });
    try {
      const { error, ms } = await failureOf(egress.fetch('push', `${httpOrigin.url}/hang`, { signal: AbortSignal.timeout(CONNECT_TIMEOUT) }));
      assert.equal(error.name, 'TimeoutError');
      assert.ok(ms < CONNECT_TIMEOUT + PROMPT_MS, `${String(ms)} ms`);
      await proxy.setFailure(undefined);
      await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
      await egress.close();
      await waitFor('no socket left to the proxy', () => socketsTo(proxy.port) === 0);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  for (const via of ['fetch', 'http.Agent'] as const) {
    it(
      `forwarded http without a caller deadline (${via}): the headersTimeout fires; then recovery`,
      async () => {
        const headersTimeout = 400;
        const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
        const egress = egressVia(proxy.url, { connectTimeout: CONNECT_TIMEOUT, headersTimeout });
        try {
          const request =
            via === 'fetch'
              ? egress.fetch('push', `${httpOrigin.url}/hang`)
              : new Promise((resolve, reject) => {
                  const req = http.request(`${httpOrigin.url}/hang`, { agent: egress.agent('push') }, resolve);
                  req.on('error', reject);
                  req.end();
                });
          const { error, ms } = await failureOf(request, headersTimeout + PROMPT_MS);
          assert.ok(error instanceof EgressError || isUndiciError(error) || /TIMEOUT|ECONNRESET/.test((error as { code?: string }).code ?? ''), String(error));
          assert.ok(ms >= headersTimeout - 20 && ms < headersTimeout + PROMPT_MS, `${String(ms)} ms`);
          await proxy.setFailure(undefined);
          await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
        } finally {
          await egress.destroy();
          await proxy.close();
        }
      },
    );
  }
});

/** A raw TCP "proxy" that answers every request with `script` (then closes unless `hold`). */
async function scriptedProxy(script: string | Buffer, hold = false): Promise<{ url: string; connections: () => number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => sockets.delete(socket));
    socket.once('data', () => {
      if (hold) socket.write(script);
      else socket.end(script);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}

describe('garbage or truncated answers to CONNECT', () => {
  const cases: readonly { name: string; script: string; hold?: boolean; outcome: string; expect: (error: Error) => boolean }[] = [
    { name: 'not HTTP at all', script: '\u0000\u00ffNOT-HTTP\r\n\r\n', outcome: 'ProxyProtocolError', expect: (e) => e instanceof ProxyProtocolError },
    { name: 'HTTP/2 status line', script: 'HTTP/2 200\r\n\r\n', outcome: 'ProxyProtocolError', expect: (e) => e instanceof ProxyProtocolError },
    { name: 'status code out of range', script: 'HTTP/1.1 999 Odd\r\n\r\n', outcome: 'ProxyProtocolError', expect: (e) => e instanceof ProxyProtocolError },
    { name: 'a header line without a colon', script: 'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', outcome: 'ProxyProtocolError', expect: (e) => e instanceof ProxyProtocolError },
    { name: 'a head that never ends (20 KiB)', script: `HTTP/1.1 200 OK\r\nX: ${'x'.repeat(20_000)}`, hold: true, outcome: 'ProxyProtocolError', expect: (e) => e instanceof ProxyProtocolError },
    { name: 'truncated status line, then close', script: 'HTTP/1.1 200 Conn', outcome: 'ProxyUnreachableError', expect: (e) => e instanceof ProxyUnreachableError && e.syscallCode === 'ECONNRESET' },
    { name: 'head without its blank line, then close', script: 'HTTP/1.1 200 OK\r\nVia: x\r\n', outcome: 'ProxyUnreachableError', expect: (e) => e instanceof ProxyUnreachableError },
    { name: 'closed without a byte', script: '', outcome: 'ProxyUnreachableError', expect: (e) => e instanceof ProxyUnreachableError },
    { name: 'half a head, then silence', script: 'HTTP/1.1 200 OK\r\n', hold: true, outcome: 'ProxyUnreachableError ETIMEDOUT', expect: (e) => e instanceof ProxyUnreachableError && e.syscallCode === 'ETIMEDOUT' },
    // 200, then bytes that are not TLS: the origin hop fails (inside the tunnel), not a hang.
    { name: '200 followed by non-TLS bytes', script: 'HTTP/1.1 200 OK\r\n\r\nnot a TLS record\r\n', hold: true, outcome: 'a TLS error from the origin hop', expect: (e) => /SSL|TLS|ECONNRESET|UND_ERR_SOCKET/.test(errorCode(e)) && !(e instanceof ProxyTlsError) },
  ];
  for (const { name, script, hold, outcome, expect } of cases) {
    it(`${name} → ${outcome}, one connection, prompt`, async () => {
      const fake = await scriptedProxy(script, hold);
      const egress = egressVia(fake.url, { connectTimeout: 500 });
      try {
        const { error, ms } = await failureOf(egress.fetch('push', `${httpsOrigin.url}/`));
        assert.ok(expect(error), `${name}: got ${error.name} ${errorCode(error)}: ${error.message}`);
        assert.ok(ms < 500 + PROMPT_MS, `${String(ms)} ms`);
        assert.equal(fake.connections(), 1, 'retried');
      } finally {
        await egress.destroy();
        await fake.close();
      }
    });
  }

  it('forwarded http: garbage and truncated answers → undici errors, one connection each', async () => {
    for (const script of ['\u0000\u00ffNOT-HTTP\r\n\r\n', 'HTTP/1.1 200 O', '']) {
      const fake = await scriptedProxy(script);
      const egress = egressVia(fake.url, { connectTimeout: 500 });
      try {
        const { error, ms } = await failureOf(egress.fetch('push', `${httpOrigin.url}/`));
        assert.ok(isUndiciError(error) || error instanceof EgressError, `${JSON.stringify(script)}: ${String(error)}`);
        assert.ok(ms < PROMPT_MS, `${String(ms)} ms`);
        assert.equal(fake.connections(), 1, `${JSON.stringify(script)}: retried`);
      } finally {
        await egress.destroy();
        await fake.close();
      }
    }
  });

  it('recording proxy `garbage`, then cleared: ProxyProtocolError, then recovery', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'garbage' } });
    const egress = egressVia(proxy.url);
    try {
      const { error } = await failureOf(egress.fetch('push', `${httpsOrigin.url}/`));
      assert.ok(error instanceof ProxyProtocolError, String(error));
      await proxy.setFailure(undefined);
      await fetchOk(egress, 'push', `${httpsOrigin.url}/recovered`);
      await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });
});

// --- 407 -------------------------------------------------------------------------

describe('407 Proxy Authentication Required', () => {
  for (const realm of ['corp', null] as const) {
    it(`${realm === null ? 'without a realm' : 'with a realm'}: ProxyAuthenticationError on CONNECT and on forwarding`, async () => {
      const proxy = await createRecordingProxy({ auth: { username: 'u', password: 'p' }, realm });
      try {
        for (const [url, credentials] of [
          [proxy.url, false],
          [proxy.urlWithCredentials('u', 'wrong'), true],
        ] as const) {
          const egress = egressVia(url);
          try {
            for (const origin of [httpsOrigin, httpOrigin]) {
              const { error, ms } = await failureOf(egress.fetch('push', `${origin.url}/`));
              assert.ok(error instanceof ProxyAuthenticationError, `${origin.protocol} ${String(error)}`);
              assert.equal(error.statusCode, 407);
              assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
              assert.equal(error.realm, realm ?? undefined);
              assert.match(error.message, credentials ? /rejected the configured credentials/ : /none are configured/);
              assert.ok(ms < PROMPT_MS, `${String(ms)} ms`);
            }
          } finally {
            await egress.destroy();
          }
        }
        // And with the right credentials the same proxy lets us through.
        const good = egressVia(proxy.urlWithCredentials('u', 'p'));
        try {
          await fetchOk(good, 'push', `${httpsOrigin.url}/ok`);
          await fetchOk(good, 'push', `${httpOrigin.url}/ok`);
        } finally {
          await good.close();
        }
      } finally {
        await proxy.close();
      }
    });
  }

  it('a one-off 407 does not stick: the next request on the same egress succeeds', async () => {
    const proxy = await createRecordingProxy({ fail: { connect: { status: 407, times: 2 } } });
    const egress = egressVia(proxy.url);
    try {
      for (const origin of [httpsOrigin, httpOrigin]) {
        const { error } = await failureOf(egress.fetch('push', `${origin.url}/`));
        assert.ok(error instanceof ProxyAuthenticationError, String(error));
        assert.equal(error.realm, 'matrix-egress-test');
      }
      await fetchOk(egress, 'push', `${httpsOrigin.url}/recovered`);
      await fetchOk(egress, 'push', `${httpOrigin.url}/recovered`);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it('Squid with basic auth: 407 with its realm, without and with wrong credentials; right ones pass', async () => {
    const squid = await startSquid({ auth: { username: 'alice', password: 's3cret' } });
    try {
      const withUser = (password: string | undefined): string => (password === undefined ? squid.url : squid.url.replace('http://', `http://alice:${password}@`));
      for (const password of [undefined, 'wrong']) {
        const egress = egressVia(withUser(password));
        try {
          for (const origin of [httpsOrigin, httpOrigin]) {
            const { error, ms } = await failureOf(egress.fetch('push', `${origin.url}/`));
            assert.ok(error instanceof ProxyAuthenticationError, `${origin.protocol} ${String(error)}`);
            assert.equal(error.realm, 'matrix-egress-test');
            assert.ok(ms < PROMPT_MS * 2, `${String(ms)} ms`);
          }
        } finally {
          await egress.destroy();
        }
      }
      const good = egressVia(withUser('s3cret'));
      try {
        await fetchOk(good, 'push', `${httpsOrigin.url}/ok`);
        await fetchOk(good, 'push', `${httpOrigin.url}/ok`);
      } finally {
        await good.close();
      }
    } finally {
      await squid.stop({ force: true });
    }
  });
});
