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

interface SkippedRow {
  noProxy: string;
  position: number;
  problem: string;
  kept?: string[];
}

describe('no_proxy entries not understood are skipped with one warning (tolerant mode)', () => {
  const { rows } = loadVectors('no-proxy-skipped') as { rows: SkippedRow[] };
  for (const row of rows) {
    it(`no_proxy=${JSON.stringify(row.noProxy)} skips entry ${String(row.position)}: ${row.problem}`, () => {
      const matcher = compileNoProxy(row.noProxy, 'NO_PROXY');
      const skipped = matcher.skipped.find((s) => s.position === row.position);
      assert.ok(skipped, `entry ${String(row.position)} not skipped; skipped: ${JSON.stringify(matcher.skipped)}`);
      assert.ok(skipped.problem.toLowerCase().includes(row.problem.toLowerCase()), `problem was: ${skipped.problem}`);
      assert.match(skipped.warning, new RegExp(`^NO_PROXY entry ${String(row.position)} \\(".*"\\) skipped: `));
      assert.ok(skipped.warning.endsWith(skipped.problem));
      assert.equal(new Set(matcher.warnings).size, matcher.skipped.length, 'one warning per skipped entry');
      if (row.kept !== undefined) assert.deepEqual(matcher.rules.map((r) => r.entry), row.kept);
    });
    it(`strictNoProxy: no_proxy=${JSON.stringify(row.noProxy)} is refused at entry ${String(row.position)}`, () => {
      assert.throws(
        () => compileNoProxy(row.noProxy, 'NO_PROXY', { strict: true }),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError, `expected ProxyConfigError, got ${String(error)}`);
          assert.equal(error.code, 'ERR_EGRESS_PROXY_CONFIG');
          assert.match(error.message, new RegExp(`^NO_PROXY entry ${String(row.position)}\\b`));
          assert.ok(error.message.toLowerCase().includes(row.problem.toLowerCase()), error.message);
          return true;
        },
      );
    });
  }
});

describe('no_proxy control characters fail closed in every mode', () => {
  const { rows } = loadVectors('no-proxy-errors') as { rows: ErrorRow[] };
  for (const row of rows) {
    for (const strict of [false, true]) {
      it(`no_proxy=${JSON.stringify(row.noProxy)} is refused at entry ${String(row.position)} (strict: ${String(strict)})`, () => {
        assert.throws(
          () => compileNoProxy(row.noProxy, 'NO_PROXY', { strict }),
          (error: unknown) => {
            assert.ok(error instanceof ProxyConfigError, `expected ProxyConfigError, got ${String(error)}`);
            assert.match(error.message, new RegExp(`^NO_PROXY entry ${String(row.position)}\\b.*control characters`));
            // eslint-disable-next-line no-control-regex -- the message must not carry the characters themselves
            assert.doesNotMatch(error.message, /[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/);
            return true;
          },
        );
      });
    }
  }
});

describe('no_proxy warnings never carry credentials', () => {
  it('redacts the userinfo of a URL entry in the rule, the warning and the strict error', () => {
    const matcher = compileNoProxy('http://alice:s3cret@example.com:8080, https://bob:hunter2@[::1', 'no_proxy');
    const text = JSON.stringify(matcher.rules) + JSON.stringify(matcher.skipped);
    assert.doesNotMatch(text, /alice|s3cret|bob|hunter2/);
    // Redacted the way every URL in our messages is (redactUrl), which writes the root path out.
    assert.equal(matcher.rules[0]?.entry, 'http://***@example.com:8080/');
    assert.equal(matcher.skipped.length, 1);
    assert.throws(
      () => compileNoProxy('https://bob:hunter2@[::1', 'no_proxy', { strict: true }),
      (error: unknown) => error instanceof ProxyConfigError && !/bob|hunter2/.test(error.message + String(error.stack)),
    );
    const noScheme = compileNoProxy('carol:pa55@intranet');
    assert.doesNotMatch(JSON.stringify(noScheme.skipped), /carol|pa55/);
  });
});

describe('no_proxy evident meanings', () => {
  it('compiles the deployment forms to the rules they mean', () => {
    const m = compileNoProxy('10.* 192.168.*.* 172.16. 169.254/16 mirrors.* <local> http://u:p@reg.example:5000/ 127.0.0.1/');
    assert.deepEqual(
      m.rules.map((r) => ({ ...r })),
      [
        { kind: 'cidr', entry: '10.*', network: '10.0.0.0', prefixLength: 8 },
        { kind: 'cidr', entry: '192.168.*.*', network: '192.168.0.0', prefixLength: 16 },
        { kind: 'cidr', entry: '172.16.', network: '172.16.0.0', prefixLength: 16 },
        { kind: 'cidr', entry: '169.254/16', network: '169.254.0.0', prefixLength: 16 },
        { kind: 'glob', entry: 'mirrors.*', pattern: 'mirrors.*', includeSubdomains: false, port: undefined },
        { kind: 'local', entry: '<local>' },
        { kind: 'domain', entry: 'http://***@reg.example:5000/', suffix: 'reg.example', includeApex: true, port: 5000 },
        { kind: 'ip', entry: '127.0.0.1/', address: '127.0.0.1', port: undefined },
      ],
    );
    assert.deepEqual(m.skipped, []);
  });

  it('checks globs last: an exact rule wins over a glob written first', () => {
    const m = compileNoProxy('*.example.*, api.example.com');
    assert.equal(m.match(targetFromUrl('https://api.example.com/'))?.entry, 'api.example.com');
    assert.equal(m.match(targetFromUrl('https://www.example.com/'))?.entry, '*.example.*');
  });

  it('a glob of many stars on a long host still decides (backtracking only to the last star)', () => {
    const m = compileNoProxy(`${'*a'.repeat(40)}*b`);
    const host = `${'a'.repeat(60)}.${'a'.repeat(60)}.${'a'.repeat(60)}.example`;
    assert.equal(m.match(targetFromUrl(`https://${host}/`)), undefined);
    assert.equal(m.match(targetFromUrl(`https://${'a'.repeat(41)}b/`))?.kind, 'glob');
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
