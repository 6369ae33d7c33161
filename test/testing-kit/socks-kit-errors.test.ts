// The SOCKS test kit seen from OUR client: every failure the recording SOCKS proxy can inject
// becomes the typed error SPEC §9 documents when the request is made with createEgress through a
// proxy rule, as the table in docs/guides/testing-proxy-routing.md says. Loopback only; bounded.
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';

import { createEgress } from '../../src/egress.js';
import { ProxyAuthenticationError, ProxyConnectError, ProxyProtocolError, ProxyUnreachableError } from '../../src/errors.js';
import { createTestCertificateAuthority } from '../../src/testing/certificates.js';
import { expectSocksAuth } from '../../src/testing/socks-assertions.js';
import { createRecordingSocksProxy, type RecordingSocksProxy, type SocksFailureInjection } from '../../src/testing/socks-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import { fetchError } from '../support/failures.js';

const SUITE = { timeout: 30_000 };
const USER = 'kit-user';
const PASSWORD = 'canary-socks-pw-9931';
const ONION = 'matrixkiterrors.onion';

describe('SOCKS failure injection becomes the documented error on the client', SUITE, () => {
  let restoreEnv: () => void;
  let origin: TestOrigin;
  let socks: RecordingSocksProxy;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    // TLS inside the tunnel is validated for the onion name, so the origin's certificate carries it.
    const authority = createTestCertificateAuthority();
    const leaf = authority.issue({ hosts: [ONION] });
    origin = await createTestOrigin({ tls: { cert: leaf.cert, key: leaf.key, ca: authority.cert } });
    socks = await createRecordingSocksProxy({ auth: { username: USER, password: PASSWORD }, hosts: { [ONION]: '127.0.0.1' } });
  });

  after(async () => {
    await Promise.all([socks.close(), origin.close()]);
    restoreEnv();
  });

  /** One request through a fresh egress with the onion rule, under `fail`; returns what it threw. */
  async function failWith(fail: SocksFailureInjection | undefined, password = PASSWORD): Promise<Error> {
    await socks.setFailure(fail);
    const egress = createEgress({
      env: {},
      ca: origin.ca,
      connectTimeout: 400,
      proxyRules: [{ hosts: '*.onion', proxy: socks.urlWithCredentials(USER, password) }],
    });
    try {
      const before = socks.connections;
      const error = await fetchError(egress.fetch('federation', `https://${ONION}:${String(origin.port)}/`));
      assert.ok(socks.connections - before <= 1, 'one attempt, no retry storm');
      const text = `${error.message}\n${String(error.stack)}\n${inspect(error, { depth: 5, showHidden: true })}`;
      assert.ok(!text.includes(PASSWORD), `the password leaked:\n${text}`);
      return error;
    } finally {
      await socks.setFailure(undefined);
      await egress.close();
    }
  }

  it('no failure: the request succeeds by name, authenticated', async () => {
    const egress = createEgress({ env: {}, ca: origin.ca, proxyRules: [{ hosts: '*.onion', proxy: socks.urlWithCredentials(USER, PASSWORD) }] });
    try {
      const response = await egress.fetch('federation', `https://${ONION}:${String(origin.port)}/ok`);
      assert.equal(response.status, 200);
      await response.text();
      expectSocksAuth(socks, { username: USER });
    } finally {
      await egress.close();
    }
  });

  it("wrong password, fail.auth 'reject' and 'no-acceptable-method' → ProxyAuthenticationError", async () => {
    for (const [fail, password] of [
      [undefined, 'wrong'],
      [{ auth: 'reject' }, PASSWORD],
      [{ auth: 'no-acceptable-method' }, PASSWORD],
    ] as const) {
      const error = await failWith(fail, password);
      assert.ok(error instanceof ProxyAuthenticationError, `${JSON.stringify(fail)}: ${String(error)}`);
      assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
    }
  });

  it('{ connect: { reply } } → ProxyConnectError with socksReply', async () => {
    const error = await failWith({ connect: { reply: 0x06 } });
    assert.ok(error instanceof ProxyConnectError, String(error));
    assert.equal(error.socksReply, 6);
    assert.match(error.message, /SOCKS reply 0x06 TTL expired/);
  });

  it("'garbage' at either stage → ProxyProtocolError", async () => {
    for (const stage of ['greeting', 'request'] as const) {
      const error = await failWith({ connect: 'garbage', stage });
      assert.ok(error instanceof ProxyProtocolError, `${stage}: ${String(error)}`);
    }
  });

  it("'refuse', 'reset' and 'hang' at either stage → ProxyUnreachableError", async () => {
    for (const [fail, code] of [
      [{ connect: 'refuse' }, 'ECONNREFUSED'],
      [{ connect: 'reset' }, 'ECONNRESET'],
      [{ connect: 'reset', stage: 'request' }, 'ECONNRESET'],
      [{ connect: 'hang' }, 'ETIMEDOUT'],
      [{ connect: 'hang', stage: 'request' }, 'ETIMEDOUT'],
      [{ delayMs: 2_000 }, 'ETIMEDOUT'],
    ] as const) {
      const error = await failWith(fail);
      assert.ok(error instanceof ProxyUnreachableError, `${JSON.stringify(fail)}: ${String(error)}`);
      assert.equal(error.syscallCode, code, JSON.stringify(fail));
    }
  });
});
