/**
 * Caching of federation discovery with a controlled clock (SPEC §10 and Synapse's refinements):
 * default and header-driven periods with their bounds, refresh before expiry, a temporary failure
 * keeping a still-valid answer, exponential back-off of failures, jitter, the size bound, and SRV
 * answers. The `.well-known` answers are real undici Responses from a table; the network path is
 * covered by test/integration/federation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Response } from 'undici';

import {
  FederationResolver,
  SRV_CACHE,
  SRV_FAILURE_CACHE,
  WELL_KNOWN_DEFAULT_CACHE,
  WELL_KNOWN_DOWN_CACHE,
  WELL_KNOWN_FAILURE_CACHE,
  WELL_KNOWN_MAX_CACHE,
  WELL_KNOWN_MIN_CACHE,
} from '../../../src/federation/resolver.js';
import { maxAgeFromHeaders } from '../../../src/federation/well-known.js';
import { createSrvResolver } from '../../../src/testing/srv-resolver.js';

type Answer = { status: number; body?: string; headers?: Record<string, string> } | 'connection-refused';

function harness(options: { random?: () => number; cacheSize?: number } = {}) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const answers = new Map<string, Answer>();
  const requested: string[] = [];
  const srv = createSrvResolver();
  const resolver = new FederationResolver({
    fetchWellKnown: (url) => {
      requested.push(url);
      const answer = answers.get(new URL(url).hostname) ?? { status: 404 };
      if (answer === 'connection-refused') {
        return Promise.reject(new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }) }));
      }
      return Promise.resolve(new Response(answer.body ?? null, { status: answer.status, headers: answer.headers ?? {} }));
    },
    resolveSrv: srv.resolveSrv,
    cacheSize: options.cacheSize ?? 100,
    wellKnownTimeout: 1000,
    now: () => now,
    random: options.random ?? (() => 0.5),
  });
  return {
    resolver,
    srv,
    requested,
    delegate(host: string, server: string, headers: Record<string, string> = {}) {
      answers.set(host, { status: 200, body: JSON.stringify({ 'm.server': server }), headers });
    },
    answer(host: string, answer: Answer) {
      answers.set(host, answer);
    },
    advance(ms: number) {
      now += ms;
    },
    requestsFor(host: string): number {
      return requested.filter((url) => new URL(url).hostname === host).length;
    },
  };
}

const S = 1000;
const MIN = 60 * S;
const H = 60 * MIN;

describe('federation cache: .well-known answers', () => {
  it('no cache headers: 24 h (jitter ±10 %), refreshed in the last fifth of its life', async () => {
    const h = harness();
    h.delegate('a.test', 'b.test:8448');
    assert.equal((await h.resolver.resolve('a.test')).wellKnown?.expiresAt, Date.parse('2026-01-01T00:00:00Z') + WELL_KNOWN_DEFAULT_CACHE);
    h.advance(19 * H);
    assert.equal((await h.resolver.resolve('a.test')).wellKnown?.fromCache, true);
    h.advance(H);
    assert.equal((await h.resolver.resolve('a.test')).wellKnown?.fromCache, false);
    assert.equal(h.requestsFor('a.test'), 2);
  });

  it('jitter spreads the default period over [21.6 h, 26.4 h]', async () => {
    for (const [random, expected] of [
      [0, 0.9 * WELL_KNOWN_DEFAULT_CACHE],
      [0.999999, 1.1 * WELL_KNOWN_DEFAULT_CACHE],
    ] as const) {
      const h = harness({ random: () => random });
      h.delegate('a.test', 'b.test:8448');
      const start = Date.parse('2026-01-01T00:00:00Z');
      const expiresAt = (await h.resolver.resolve('a.test')).wellKnown?.expiresAt ?? 0;
      assert.ok(Math.abs(expiresAt - start - expected) < 1000, `${String(expiresAt - start)} ≈ ${String(expected)}`);
    }
  });

  for (const [headers, expected] of [
    [{ 'cache-control': 'max-age=1000' }, 1000 * S],
    [{ 'cache-control': 'public, max-age=7200' }, 7200 * S],
    [{ 'cache-control': 'max-age=10' }, WELL_KNOWN_MIN_CACHE],
    [{ 'cache-control': 'max-age=0' }, WELL_KNOWN_MIN_CACHE],
    [{ 'cache-control': 'no-store' }, WELL_KNOWN_MIN_CACHE],
    [{ 'cache-control': 'max-age=1000000' }, WELL_KNOWN_MAX_CACHE],
    [{ expires: 'Thu, 01 Jan 2026 02:00:00 GMT' }, 2 * H],
    [{ expires: '0' }, WELL_KNOWN_MIN_CACHE],
  ] as const) {
    it(`headers ${JSON.stringify(headers)} → cached ${String(expected / S)} s`, async () => {
      const h = harness();
      h.delegate('a.test', 'b.test:8448', headers);
      const resolution = await h.resolver.resolve('a.test');
      assert.equal((resolution.wellKnown?.expiresAt ?? 0) - Date.parse('2026-01-01T00:00:00Z'), expected);
    });
  }

  it('a temporary failure keeps a still-valid answer, and asks again only after 2 minutes', async () => {
    const h = harness();
    h.delegate('a.test', 'b.test:8448', { 'cache-control': 'max-age=3600' });
    await h.resolver.resolve('a.test');
    h.advance(2900 * S);
    h.answer('a.test', 'connection-refused');
    const kept = await h.resolver.resolve('a.test');
    assert.equal(kept.source, 'well-known-explicit-port');
    assert.equal(kept.hostHeader, 'b.test:8448');
    assert.equal(h.requestsFor('a.test'), 2);
    h.advance(MIN);
    await h.resolver.resolve('a.test');
    assert.equal(h.requestsFor('a.test'), 2, 'no request within the 2-minute pause');
    h.answer('a.test', { status: 503 });
    h.advance(WELL_KNOWN_DOWN_CACHE);
    assert.equal((await h.resolver.resolve('a.test')).hostHeader, 'b.test:8448', 'a 5xx is temporary too');
  });

  it('once expired, a failure is no delegation, and is cached only 2 minutes after a recent valid answer', async () => {
    const h = harness();
    h.delegate('a.test', 'b.test:8448', { 'cache-control': 'max-age=1000' });
    await h.resolver.resolve('a.test');
    h.advance(1001 * S);
    h.answer('a.test', 'connection-refused');
    const failed = await h.resolver.resolve('a.test');
    assert.equal(failed.source, 'default-8448');
    assert.equal(failed.wellKnown?.temporary, true);
    assert.equal(failed.wellKnown.expiresAt - (Date.parse('2026-01-01T00:00:00Z') + 1001 * S), WELL_KNOWN_DOWN_CACHE);
  });

  it('a permanent failure (404) replaces a valid answer at once, without waiting for expiry', async () => {
    const h = harness();
    h.delegate('a.test', 'b.test:8448', { 'cache-control': 'max-age=1000' });
    await h.resolver.resolve('a.test');
    h.advance(900 * S);
    h.answer('a.test', { status: 404 });
    assert.equal((await h.resolver.resolve('a.test')).source, 'default-8448');
  });

  it('repeated failures back off exponentially: 1 h, 2 h, 4 h …, at most 48 h', async () => {
    const h = harness();
    const start = Date.parse('2026-01-01T00:00:00Z');
    let at = start;
    const periods: number[] = [];
    for (let i = 0; i < 8; i++) {
      const resolution = await h.resolver.resolve('a.test');
      assert.equal(resolution.wellKnown?.fromCache, false);
      const expiresAt = resolution.wellKnown.expiresAt;
      periods.push((expiresAt - at) / H);
      h.advance(expiresAt - at);
      at = expiresAt;
    }
    assert.deepEqual(periods, [1, 2, 4, 8, 16, 32, 48, 48]);
    assert.equal(WELL_KNOWN_FAILURE_CACHE, H);
    assert.equal(h.requestsFor('a.test'), 8);
  });

  it('a success resets the back-off', async () => {
    const h = harness();
    await h.resolver.resolve('a.test');
    h.advance(H);
    await h.resolver.resolve('a.test');
    h.advance(2 * H);
    h.delegate('a.test', 'b.test:8448', { 'cache-control': 'max-age=600' });
    await h.resolver.resolve('a.test');
    h.advance(3 * H);
    h.answer('a.test', { status: 404 });
    const failed = await h.resolver.resolve('a.test');
    assert.equal((failed.wellKnown?.expiresAt ?? 0) - (Date.parse('2026-01-01T00:00:00Z') + 6 * H), H);
  });

  it('the cache is bounded: beyond cacheSize names, the least recently used is forgotten', async () => {
    const h = harness({ cacheSize: 2 });
    for (const name of ['a.test', 'b.test', 'a.test', 'c.test', 'a.test', 'b.test']) await h.resolver.resolve(name);
    assert.equal(h.requestsFor('a.test'), 1);
    assert.equal(h.requestsFor('b.test'), 2);
    assert.equal(h.requestsFor('c.test'), 1);
  });

  it('clearCache() forgets every answer', async () => {
    const h = harness();
    await h.resolver.resolve('a.test');
    h.resolver.clearCache();
    await h.resolver.resolve('a.test');
    assert.equal(h.requestsFor('a.test'), 2);
  });
});

describe('federation cache: SRV answers', () => {
  it(`answers are kept ${String(SRV_CACHE / MIN)} minutes, then asked again`, async () => {
    const h = harness();
    h.srv.set('_matrix-fed._tcp.a.test', [{ name: 't.test', port: 1, priority: 0, weight: 0 }]);
    await h.resolver.resolve('a.test');
    h.advance(SRV_CACHE - S);
    assert.equal((await h.resolver.resolve('a.test')).srv[0]?.fromCache, true);
    h.advance(2 * S);
    h.resolver.resolve('a.test').catch(() => undefined);
    await h.resolver.resolve('a.test');
    assert.deepEqual(h.srv.calls().filter((name) => name === '_matrix-fed._tcp.a.test').length, 2);
  });

  it('a failing DNS server does not lose a known answer; a failure without one counts as none, retried after a minute', async () => {
    const h = harness();
    h.srv.set('_matrix-fed._tcp.a.test', [{ name: 't.test', port: 1, priority: 0, weight: 0 }]);
    await h.resolver.resolve('a.test');
    h.advance(SRV_CACHE + S);
    h.srv.set('_matrix-fed._tcp.a.test', { error: 'ETIMEOUT' });
    const kept = await h.resolver.resolve('a.test');
    assert.deepEqual(kept.targets, [{ host: 't.test', port: 1 }]);
    assert.equal(kept.srv[0]?.error, 'ETIMEOUT');

    h.srv.set('_matrix-fed._tcp.b.test', { error: 'ESERVFAIL' });
    const none = await h.resolver.resolve('b.test');
    assert.equal(none.source, 'default-8448');
    h.advance(SRV_FAILURE_CACHE * 1.2);
    await h.resolver.resolve('b.test');
    assert.equal(h.srv.calls().filter((name) => name === '_matrix-fed._tcp.b.test').length, 2);
  });
});

describe('maxAgeFromHeaders (RFC 9111 §5.2, §5.3)', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  const headers = (record: Record<string, string>) => ({ get: (name: string) => record[name] ?? null });
  for (const [record, expected] of [
    [{}, undefined],
    [{ 'cache-control': 'max-age=60' }, 60],
    [{ 'cache-control': 'MAX-AGE = 60' }, 60],
    [{ 'cache-control': 'max-age="60"' }, 60],
    [{ 'cache-control': 'max-age=abc' }, undefined],
    [{ 'cache-control': 'no-store, max-age=60' }, 0],
    [{ 'cache-control': 'max-age=60', expires: 'Thu, 01 Jan 2026 01:00:00 GMT' }, 60],
    [{ expires: 'Thu, 01 Jan 2026 01:00:00 GMT' }, 3600],
    [{ expires: 'Wed, 31 Dec 2025 01:00:00 GMT' }, 0],
    [{ expires: 'not a date' }, 0],
  ] as const) {
    it(`${JSON.stringify(record)} → ${String(expected)}`, () => {
      assert.equal(maxAgeFromHeaders(headers(record), now), expected);
    });
  }
});
