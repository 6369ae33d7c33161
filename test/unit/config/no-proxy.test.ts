import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileNoProxy } from '../../../src/config/no-proxy.js';
import { targetFromUrl } from '../../../src/match/target.js';
import { ProxyConfigError } from '../../../src/errors.js';
import { loadVectors } from '../../support/vectors.js';

interface DecisionRow {
  noProxy: string;
  url: string;
  direct: boolean;
  matched?: string;
}
interface ErrorRow {
  noProxy: string;
  position: number;
}

describe('no_proxy decisions (SPEC §3 vectors)', () => {
  const { rows } = loadVectors('no-proxy') as { rows: DecisionRow[] };
  for (const row of rows) {
    it(`no_proxy=${JSON.stringify(row.noProxy)} target=${JSON.stringify(row.url)} → ${row.direct ? 'direct' : 'proxy'}`, () => {
      const rule = compileNoProxy(row.noProxy).match(targetFromUrl(row.url));
      assert.equal(rule !== undefined, row.direct, `no_proxy=${JSON.stringify(row.noProxy)} target=${JSON.stringify(row.url)}`);
      if (row.matched !== undefined) assert.equal(rule?.entry, row.matched);
    });
  }
});

describe('no_proxy errors fail closed', () => {
  const { rows } = loadVectors('no-proxy-errors') as { rows: ErrorRow[] };
  for (const row of rows) {
    it(`no_proxy=${JSON.stringify(row.noProxy)} is refused at entry ${String(row.position)}`, () => {
      assert.throws(
        () => compileNoProxy(row.noProxy, 'NO_PROXY'),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError, `expected ProxyConfigError, got ${String(error)}`);
          assert.equal(error.code, 'ERR_EGRESS_PROXY_CONFIG');
          assert.match(error.message, new RegExp(`^NO_PROXY entry ${String(row.position)}\\b`));
          return true;
        },
      );
    });
  }

  it('redacts credentials quoted from a URL-like entry', () => {
    assert.throws(
      () => compileNoProxy('http://alice:s3cret@example.com'),
      (error: unknown) => error instanceof ProxyConfigError && !error.message.includes('s3cret') && !error.message.includes('alice'),
    );
  });
});

describe('no_proxy compilation', () => {
  it('keeps the rules in written order as a discriminated union', () => {
    const matcher = compileNoProxy('*.a.com, b.com:8448 10.0.0.0/8 [::1]:80');
    assert.deepEqual(
      matcher.rules.map((r) => r.kind),
      ['domain', 'domain', 'cidr', 'ip'],
    );
    assert.deepEqual(matcher.rules[0], { kind: 'domain', entry: '*.a.com', suffix: 'a.com', includeApex: false, port: undefined });
    assert.deepEqual(matcher.rules[2], { kind: 'cidr', entry: '10.0.0.0/8', network: '10.0.0.0', prefixLength: 8 });
    assert.deepEqual(matcher.rules[3], { kind: 'ip', entry: '[::1]:80', address: '::1', port: 80 });
  });

  it('is frozen: rules cannot be changed after compilation', () => {
    const matcher = compileNoProxy('example.com');
    assert.throws(() => {
      (matcher.rules as unknown[]).push({ kind: 'all', entry: '*' });
    }, TypeError);
    assert.ok(Object.isFrozen(matcher));
  });

  it('an empty or whitespace-only list matches nothing', () => {
    for (const value of ['', ' ', ',,', '\t\n']) {
      const matcher = compileNoProxy(value);
      assert.equal(matcher.isEmpty, true);
      assert.equal(matcher.match(targetFromUrl('http://example.com/')), undefined);
    }
  });

  it('prefers the most specific CIDR range and an exact address', () => {
    const matcher = compileNoProxy('10.0.0.0/8,10.1.0.0/16,10.1.2.3');
    assert.equal(matcher.match(targetFromUrl('http://10.1.2.3/'))?.entry, '10.1.2.3');
    assert.equal(matcher.match(targetFromUrl('http://10.1.9.9/'))?.entry, '10.1.0.0/16');
    assert.equal(matcher.match(targetFromUrl('http://10.9.9.9/'))?.entry, '10.0.0.0/8');
  });

  it('decides at 10,000 entries (a hash lookup, not a scan)', () => {
    const entries: string[] = [];
    for (let i = 0; i < 10_000; i++) entries.push(i % 3 === 0 ? `host${String(i)}.example` : i % 3 === 1 ? `10.${String(i >> 8)}.${String(i & 255)}.1` : `172.16.${String(i & 255)}.0/24`);
    const matcher = compileNoProxy(entries.join(','));
    assert.equal(matcher.rules.length, 10_000);
    assert.equal(matcher.match(targetFromUrl('https://a.host9999.example/'))?.entry, 'host9999.example');
    assert.equal(matcher.match(targetFromUrl('https://172.16.7.200/'))?.entry, '172.16.7.0/24');
    assert.equal(matcher.match(targetFromUrl('https://nothere.example/')), undefined);
  });
});
