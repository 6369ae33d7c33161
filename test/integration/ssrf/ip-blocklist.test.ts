// The SSRF guard (SPEC §8) with real sockets on loopback. Loopback is in the default blocklist, so
// the origins here are blocked unless a test allowlists them: 127.0.0.1 plays an allowed host,
// 127.0.0.2 and ::1 play internal ones.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress, LookupOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { createEgress, type Egress } from '../../../src/egress.js';
import type { EgressOptions } from '../../../src/config/compile.js';
import { BlockedDestinationError } from '../../../src/errors.js';
import { createRecordingProxy, type RecordingProxy } from '../../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';

const CANARY_USER = 'canary-user';
const CANARY_PASSWORD = 'canary-pw-5519';


async function assertBlocked(promise: Promise<unknown>, host: string, address: string): Promise<BlockedDestinationError> {
  const error = await fetchError(promise);
  assert.ok(error instanceof BlockedDestinationError, `expected BlockedDestinationError, got ${String(error)}`);
  assert.equal(error.code, 'ERR_EGRESS_BLOCKED_DESTINATION');
  assert.equal(error.host, host);
  assert.equal(error.address, address);
  return error;
}

/** A resolver answering from a table (net's lookup signature), recording every question. */
function tableLookup(table: Record<string, readonly LookupAddress[]>): { lookup: LookupFunction; calls: { hostname: string; options: LookupOptions }[] } {
  const calls: { hostname: string; options: LookupOptions }[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    calls.push({ hostname, options });
    const answer = table[hostname];
    setImmediate(() => {
      if (answer === undefined) callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      else if (options.all === true) callback(null, [...answer]);
      else callback(null, answer[0]?.address ?? '', answer[0]?.family);
    });
  };
  return { lookup, calls };
}

describe('SSRF guard: direct connections', () => {
  let restoreEnv: () => void;
  let allowed: TestOrigin;
  let internal: TestOrigin;
  let internal6: TestOrigin;
  let secure: TestOrigin;
  const egresses: Egress[] = [];

  function egress(options: EgressOptions = {}): Egress {
    const created = createEgress({ env: {}, ...options });
    egresses.push(created);
    return created;
  }

  before(async () => {
    restoreEnv = isolateProxyEnv();
    allowed = await createTestOrigin({
      handler: (req, res) => {
        req.resume();
        const location = new URL(req.url ?? '/', 'http://x').searchParams.get('to');
        if (location !== null) res.writeHead(302, { Location: location }).end();
        else res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
      },
    });
    internal = await createTestOrigin({ host: '127.0.0.2' });
    internal6 = await createTestOrigin({ host: '::1' });
    secure = await createTestOrigin({ tls: true });
  });

  after(async () => {
    await Promise.all(egresses.map((e) => e.close()));
    await Promise.all([allowed.close(), internal.close(), internal6.close(), secure.close()]);
    restoreEnv();
  });

  it('the default blocklist refuses loopback before any byte is sent (fetch and request)', async () => {
    const e = egress();
    const before = allowed.connections;
    await assertBlocked(e.fetch('url_preview', `${allowed.url}/`), '127.0.0.1', '127.0.0.1');
    await assert.rejects(e.dispatcher('push').request({ origin: allowed.url, path: '/', method: 'GET' }), BlockedDestinationError);
    await assertBlocked(e.fetch('federation', `http://[::1]:${String(internal6.port)}/`), '::1', '::1');
    assert.equal(allowed.connections, before);
    assert.equal(internal6.connections, 0);
  });

  it('types whose ipBlocklist is off go direct unchecked (SPEC §4 defaults, per-type override)', async () => {
    const e = egress({ connectionTypes: { url_preview: { ipBlocklist: false } } });
    for (const type of ['phone_home', 'worker', 'appservice', 'url_preview']) {
      const response = await e.fetch(type, `${internal.url}/`);
      assert.equal(response.status, 200, type);
      await response.text();
    }
    await assertBlocked(egress({ connectionTypes: { appservice: { ipBlocklist: true } } }).fetch('appservice', `${internal.url}/`), '127.0.0.2', '127.0.0.2');
  });

  it('an allowlisted address inside a blocked range is reachable; its neighbours stay blocked', async () => {
    const e = egress({ ipAllowlist: ['127.0.0.1'] });
    const before = internal.connections;
    const response = await e.fetch('media', `${allowed.url}/`);
    assert.equal(await response.text(), 'ok');
    await assertBlocked(e.fetch('media', `${internal.url}/`), '127.0.0.2', '127.0.0.2');
    assert.equal(internal.connections, before);
  });

  it('a name resolving to a blocked address is refused; the resolver is asked for every address', async () => {
    const { lookup, calls } = tableLookup({ 'internal.test': [{ address: '127.0.0.2', family: 4 }] });
    const e = egress({ ipAllowlist: ['127.0.0.1'], lookup });
    const before = internal.connections;
    await assertBlocked(e.fetch('push', `http://internal.test:${String(internal.port)}/`), 'internal.test', '127.0.0.2');
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.hostname, 'internal.test');
    assert.equal(calls[0].options.all, true);
    assert.equal(internal.connections, before);
  });

  it('a name resolving to an allowed address is connected to at exactly that address', async () => {
    const { lookup, calls } = tableLookup({ 'app.test': [{ address: '127.0.0.1', family: 4 }] });
    const e = egress({ ipAllowlist: ['127.0.0.1'], lookup });
    const response = await e.fetch('url_preview', `http://app.test:${String(allowed.port)}/page`);
    assert.equal(await response.text(), 'ok');
    assert.equal(calls.length, 1);
    assert.equal(allowed.lastCall()?.headers.host, `app.test:${String(allowed.port)}`);
  });

  it('mixed A/AAAA answers: one blocked answer refuses the name, in either order', async () => {
    const { lookup } = tableLookup({
      'mixed.test': [
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ],
      'mixed6.test': [
        { address: '::1', family: 6 },
        { address: '127.0.0.1', family: 4 },
      ],
    });
    const e = egress({ ipAllowlist: ['127.0.0.1'], lookup });
    const before = allowed.connections;
    await assertBlocked(e.fetch('federation', `http://mixed.test:${String(allowed.port)}/`), 'mixed.test', '::1');
    await assertBlocked(e.fetch('federation', `http://mixed6.test:${String(internal6.port)}/`), 'mixed6.test', '::1');
    assert.equal(allowed.connections, before);
    assert.equal(internal6.connections, 0);
  });

  it('with the system resolver, localhost is refused', async () => {
    const before = allowed.connections;
    const error = await fetchError(egress().fetch('key_fetch', `http://localhost:${String(allowed.port)}/`));
    assert.ok(error instanceof BlockedDestinationError, String(error));
    assert.equal(error.host, 'localhost');
    assert.match(error.address, /^(?:127\.0\.0\.1|::1)$/);
    assert.equal(allowed.connections, before);
  });

  it('fetch checks every redirect hop: a 302 to a blocked address fails at that hop', async () => {
    const { lookup } = tableLookup({ 'evil.test': [{ address: '127.0.0.2', family: 4 }] });
    const e = egress({ ipAllowlist: ['127.0.0.1'], lookup });
    const before = internal.connections;
    for (const [target, host] of [
      [`http://127.0.0.2:${String(internal.port)}/secret`, '127.0.0.2'],
      [`http://evil.test:${String(internal.port)}/secret`, 'evil.test'],
      [`http://[::ffff:7f00:2]:${String(internal.port)}/secret`, '127.0.0.2'],
    ] as const) {
      allowed.clear();
      await assertBlocked(e.fetch('url_preview', `${allowed.url}/start?to=${encodeURIComponent(target)}`), host, '127.0.0.2');
      assert.equal(allowed.calls().length, 1, 'the first hop was served');
    }
    assert.equal(internal.connections, before);
  });

  it('an IPv4-mapped IPv6 literal is checked as its IPv4 address', async () => {
    const blocked = await assertBlocked(egress().fetch('push', `http://[::ffff:127.0.0.1]:${String(allowed.port)}/`), '127.0.0.1', '127.0.0.1');
    assert.ok(!blocked.message.includes('ffff'), blocked.message);
    const e = egress({ ipAllowlist: ['127.0.0.1'] });
    await assertBlocked(e.fetch('push', `http://[::ffff:127.0.0.2]:${String(internal.port)}/`), '127.0.0.2', '127.0.0.2');
    const response = await e.fetch('push', `http://[::ffff:127.0.0.1]:${String(allowed.port)}/`);
    assert.equal(await response.text(), 'ok');
  });

  it('decimal, octal, hex and short IPv4 spellings are canonicalised by the URL parser, then blocked', async () => {
    const e = egress({ ipAllowlist: ['127.0.0.1'] });
    const port = String(internal.port);
    const before = internal.connections;
    for (const url of [`http://2130706434:${port}/`, `http://0x7f.2:${port}/`, `http://0177.0.0.2:${port}/`, `http://127.2:${port}/`, `http://0x7f000002:${port}/`]) {
      await assertBlocked(e.fetch('url_preview', url), '127.0.0.2', '127.0.0.2');
    }
    assert.equal(internal.connections, before);
  });

  it('https: SNI and certificate validation still use the name, not the checked address', async () => {
    const { lookup } = tableLookup({
      localhost: [{ address: '127.0.0.1', family: 4 }],
      'wrong-name.test': [{ address: '127.0.0.1', family: 4 }],
    });
    const e = egress({ ipAllowlist: ['127.0.0.1'], lookup, ca: secure.ca });
    const response = await e.fetch('federation', `https://localhost:${String(secure.port)}/`);
    assert.equal(response.status, 200);
    await response.text();
    assert.equal(secure.lastCall()?.servername, 'localhost');
    const mismatch = await fetchError(e.fetch('federation', `https://wrong-name.test:${String(secure.port)}/`));
    assert.equal((mismatch as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('connectTo (federation after SRV) is checked on the target connected to', async () => {
    const e = egress({ ipAllowlist: ['127.0.0.1'], ca: secure.ca });
    await assertBlocked(
      e.fetch('federation', `https://localhost:${String(secure.port)}/`, { connectTo: { host: '127.0.0.2', port: secure.port } }),
      '127.0.0.2',
      '127.0.0.2',
    );
  });

  it('an empty blocklist turns the check off', async () => {
    const response = await egress({ ipBlocklist: [] }).fetch('media', `${internal.url}/`);
    assert.equal(response.status, 200);
    await response.text();
  });
});

describe('SSRF guard: through the proxy', () => {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let origin: TestOrigin;
  let secure: TestOrigin;
  let egress: Egress;
  let calls: { hostname: string; options: LookupOptions }[];

  before(async () => {
    restoreEnv = isolateProxyEnv();
    proxy = await createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } });
    origin = await createTestOrigin({
      handler: (req, res) => {
        req.resume();
        const location = new URL(req.url ?? '/', 'http://x').searchParams.get('to');
        if (location !== null) res.writeHead(302, { Location: location }).end();
        else res.writeHead(200).end('ok');
      },
    });
    secure = await createTestOrigin({ tls: true });
    const table = tableLookup({});
    calls = table.calls;
    const withCredentials = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
    egress = createEgress({ env: { http_proxy: withCredentials, https_proxy: withCredentials }, lookup: table.lookup, ca: secure.ca });
  });

  after(async () => {
    await egress.close();
    await Promise.all([proxy.close(), origin.close(), secure.close()]);
    restoreEnv();
  });

  it('host names are not resolved locally, and the proxy (on loopback) is never checked', async () => {
    proxy.clear();
    const response = await egress.fetch('url_preview', `http://localhost:${String(origin.port)}/page`);
    assert.equal(await response.text(), 'ok');
    const tunnelled = await egress.fetch('media', `https://localhost:${String(secure.port)}/`);
    assert.equal(tunnelled.status, 200);
    await tunnelled.text();
    assert.deepEqual(calls, []);
    assert.deepEqual(
      proxy.calls().map((call) => call.target),
      [`http://localhost:${String(origin.port)}/page`, `localhost:${String(secure.port)}`],
    );
  });

  it('IP-literal URLs in the blocklist are refused before the proxy sees anything', async () => {
    proxy.clear();
    const before = proxy.connections;
    await assertBlocked(egress.fetch('media', `https://127.0.0.1:${String(secure.port)}/`), '127.0.0.1', '127.0.0.1');
    await assertBlocked(egress.fetch('push', `http://0x7f.1:${String(origin.port)}/`), '127.0.0.1', '127.0.0.1');
    await assertBlocked(egress.fetch('federation', `https://[::1]:${String(secure.port)}/`), '::1', '::1');
    await assertBlocked(egress.fetch('url_preview', `http://[::ffff:169.254.169.254]/latest/meta-data/`), '169.254.169.254', '169.254.169.254');
    await assert.rejects(egress.dispatcher('key_fetch').request({ origin: 'http://10.0.0.1', path: '/', method: 'GET' }), BlockedDestinationError);
    assert.equal(proxy.calls().length, 0);
    assert.equal(proxy.connections, before);
  });

  it('a redirect to a blocked IP literal is refused at that hop, before the proxy is asked for it', async () => {
    proxy.clear();
    const to = encodeURIComponent('http://127.0.0.2/secret');
    await assertBlocked(egress.fetch('url_preview', `http://localhost:${String(origin.port)}/start?to=${to}`), '127.0.0.2', '127.0.0.2');
    assert.equal(proxy.calls().length, 1);
  });

  it('types whose ipBlocklist is off send IP literals to the proxy', async () => {
    proxy.clear();
    const response = await egress.fetch('phone_home', `${origin.url}/`);
    assert.equal(await response.text(), 'ok');
    assert.equal(proxy.calls().length, 1);
  });

  it('the error carries the host and address, never the proxy credentials', async () => {
    const error = await assertBlocked(egress.fetch('push', `http://192.168.1.1:8080/`), '192.168.1.1', '192.168.1.1');
    for (const text of [error.message, String(error), error.stack ?? '', JSON.stringify(error)]) {
      assert.ok(!text.includes(CANARY_PASSWORD) && !text.includes(CANARY_USER), text);
    }
  });
});
