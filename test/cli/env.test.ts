// Runs the built bin (dist/cli/main.js) as a user would, through test/support/cli.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../src/policy/connection-types.js';
import { runBin, type Run } from '../support/cli.js';

const CANARY_USER = 'canary-user';
const CANARY_PASSWORD = 'canary-pw-7731';


interface EnvJson {
  httpProxy: { url: string; credentials: boolean; source: string } | null;
  httpsProxy: { url: string; credentials: boolean; source: string } | null;
  noProxy: { source: string | null; entries: string[] };
  connectionTypes: Record<string, { route: string; ipBlocklist: boolean; proxySelection: string; alwaysDirect: boolean; effective: { http: string; https: string } }>;
  ca: number;
  proxyCa: number;
  connectTimeout: number;
  headersTimeout: number;
  ipBlocklist: string[];
  ipAllowlist: string[];
  insecureSkipVerify: boolean;
  disabled: string[];
  ignored: { variable: string; reason: string }[];
}

function envJson(env: Record<string, string>): EnvJson {
  const run = runBin(['env', '--json'], env);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, '');
  assert.ok(run.stdout.endsWith('\n') && !run.stdout.slice(0, -1).includes('\n'), `one line of JSON expected:\n${run.stdout}`);
  return JSON.parse(run.stdout) as EnvJson;
}

function assertNoCanary(run: Run): void {
  for (const secret of [CANARY_USER, CANARY_PASSWORD]) {
    assert.ok(!run.stdout.includes(secret), `${secret} leaked to stdout:\n${run.stdout}`);
    assert.ok(!run.stderr.includes(secret), `${secret} leaked to stderr:\n${run.stderr}`);
  }
}

describe('matrix-egress env --json', () => {
  it('prints one object with the documented keys; nothing set → everything null or empty', () => {
    const json = envJson({});
    assert.deepEqual(Object.keys(json), [
      'httpProxy',
      'httpsProxy',
      'noProxy',
      'connectionTypes',
      'ca',
      'proxyCa',
      'connectTimeout',
      'headersTimeout',
      'insecureSkipVerify',
      'ipBlocklist',
      'ipAllowlist',
      'proxyRules',
      'disabled',
      'ignored',
    ]);
    assert.equal(json.httpProxy, null);
    assert.equal(json.httpsProxy, null);
    assert.deepEqual(json.noProxy, { source: null, entries: [], skipped: [] });
    assert.deepEqual(json.disabled, []);
    assert.deepEqual(json.ignored, []);
    assert.equal(json.connectTimeout, 10_000);
    assert.equal(json.headersTimeout, 60_000);
    assert.equal(json.insecureSkipVerify, false);
    assert.ok(Array.isArray(json.ipBlocklist) && json.ipBlocklist.includes('127.0.0.0/8'));
    assert.deepEqual(json.ipAllowlist, []);
  });

  it('names the variable each value came from, with defaults applied', () => {
    const json = envJson({ HTTP_PROXY: 'proxy.internal', https_proxy: 'https://proxy.internal:3129/', No_Proxy: 'localhost, 10.0.0.0/8,[::1]:8448' });
    assert.deepEqual(json.httpProxy, { url: 'http://proxy.internal:1080', credentials: false, source: 'HTTP_PROXY' });
    assert.deepEqual(json.httpsProxy, { url: 'https://proxy.internal:3129', credentials: false, source: 'https_proxy' });
    assert.deepEqual(json.noProxy, { source: 'No_Proxy', entries: ['localhost', '10.0.0.0/8', '[::1]:8448'], skipped: [] });
  });

  it('lowercase wins: sources show the lowercase variable, the others are listed as ignored', () => {
    const json = envJson({
      https_proxy: 'http://lower.example:1',
      HTTPS_PROXY: 'http://upper.example:2',
      Https_Proxy: 'http://mixed.example:3',
      NO_PROXY: 'upper.example',
      no_proxy: 'lower.example',
    });
    assert.equal(json.httpsProxy?.source, 'https_proxy');
    assert.equal(json.httpsProxy.url, 'http://lower.example:1');
    assert.deepEqual(json.noProxy, { source: 'no_proxy', entries: ['lower.example'], skipped: [] });
    assert.deepEqual(json.ignored, [
      { variable: 'HTTPS_PROXY', reason: 'https_proxy takes precedence' },
      { variable: 'Https_Proxy', reason: 'https_proxy takes precedence' },
      { variable: 'NO_PROXY', reason: 'no_proxy takes precedence' },
    ]);
  });

  it('uppercase wins over other casings', () => {
    const json = envJson({ HTTPS_PROXY: 'http://upper.example:2', Https_Proxy: 'http://mixed.example:3' });
    assert.equal(json.httpsProxy?.source, 'HTTPS_PROXY');
    assert.deepEqual(json.ignored, [{ variable: 'Https_Proxy', reason: 'HTTPS_PROXY takes precedence' }]);
  });

  it('an empty lowercase value disables the setting and masks the uppercase one', () => {
    const json = envJson({ https_proxy: '', HTTPS_PROXY: 'http://upper.example:2', no_proxy: '', NO_PROXY: '*' });
    assert.equal(json.httpsProxy, null);
    assert.deepEqual(json.noProxy, { source: null, entries: [], skipped: [] });
    assert.deepEqual(json.disabled, ['https_proxy', 'no_proxy']);
    assert.deepEqual(json.ignored, [
      { variable: 'HTTPS_PROXY', reason: 'https_proxy is set and empty, which disables it' },
      { variable: 'NO_PROXY', reason: 'no_proxy is set and empty, which disables it' },
    ]);
  });

  it('httpoxy: HTTP_PROXY is ignored under REQUEST_METHOD, lowercase http_proxy still counts', () => {
    const cgi = envJson({ REQUEST_METHOD: 'POST', HTTP_PROXY: 'http://evil.example:1' });
    assert.equal(cgi.httpProxy, null);
    const [only, ...others] = cgi.ignored;
    assert.deepEqual(others, []);
    assert.equal(only?.variable, 'HTTP_PROXY');
    assert.match(only.reason, /REQUEST_METHOD.*httpoxy/);
    const lower = envJson({ REQUEST_METHOD: 'POST', http_proxy: 'http://ok.example:1' });
    assert.equal(lower.httpProxy?.source, 'http_proxy');
  });

  it('no https_proxy fallback to http_proxy; ALL_PROXY is listed as not read', () => {
    const json = envJson({ http_proxy: 'http://hp.example:1', ALL_PROXY: 'http://all.example:1', all_proxy: 'http://all.example:1' });
    assert.equal(json.httpsProxy, null);
    assert.deepEqual(
      json.ignored.map((i) => i.variable),
      ['ALL_PROXY', 'all_proxy'],
    );
    assert.match(json.ignored[0]?.reason ?? '', /not read/);
  });

  it('connection type table: every built-in type with its route', () => {
    const json = envJson({});
    assert.deepEqual(Object.keys(json.connectionTypes), [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES]);
    for (const type of PROXIED_CONNECTION_TYPES) {
      const policy = json.connectionTypes[type];
      assert.equal(policy?.route, 'proxy', type);
      assert.equal(policy.alwaysDirect, false, type);
      assert.equal(policy.proxySelection, type === 'federation' ? 'https-only' : 'by-scheme', type);
      // Nothing is configured: the configured route is proxy, the effective one direct (issue #12).
      assert.deepEqual(policy.effective, { http: 'direct', https: 'direct' }, type);
    }
    for (const type of DIRECT_CONNECTION_TYPES) {
      assert.deepEqual(
        json.connectionTypes[type],
        { route: 'direct', ipBlocklist: false, proxySelection: 'by-scheme', alwaysDirect: true, effective: { http: 'direct', https: 'direct' } },
        type,
      );
    }
    const blocklisted = Object.entries(json.connectionTypes).filter(([, p]) => p.ipBlocklist).map(([name]) => name);
    assert.deepEqual(blocklisted, ['push', 'url_preview', 'federation', 'key_fetch', 'key_revocation', 'media']);
  });
});

describe('matrix-egress env (human output)', () => {
  it('shows each proxy with its variable, numbered no_proxy entries, ignored variables and the type table', () => {
    const run = runBin(['env'], {
      http_proxy: '',
      HTTP_PROXY: 'http://upper.example:1',
      HTTPS_PROXY: `http://${CANARY_USER}:${CANARY_PASSWORD}@proxy.internal:3128`,
      NO_PROXY: 'internal.example,10.0.0.0/8',
    });
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    assertNoCanary(run);
    const expectedTop = [
      'http_proxy   disabled (http_proxy is empty): http:// URLs go direct',
      'https_proxy  http://proxy.internal:3128 (from HTTPS_PROXY, with credentials)',
      'no_proxy     2 entries (from NO_PROXY)',
      '              1  internal.example',
      '              2  10.0.0.0/8',
      'ignored      HTTP_PROXY: http_proxy is set and empty, which disables it',
      '',
      'type             route                             ip blocklist  proxy',
    ].join('\n');
    assert.ok(run.stdout.startsWith(expectedTop), run.stdout);
    // http_proxy is disabled: http:// URLs of by-scheme types go direct, and the table says so.
    assert.match(run.stdout, /^push {13}proxy for https, direct for http {2}yes {11}http_proxy or https_proxy by URL scheme$/m);
    assert.match(run.stdout, /^federation {7}proxy {29}yes {11}https_proxy for every URL$/m);
    for (const type of DIRECT_CONNECTION_TYPES) assert.match(run.stdout, new RegExp(`^${type} +direct, always +no +none, always direct$`, 'm'));
  });

  it('nothing set', () => {
    const run = runBin(['env']);
    assert.equal(run.status, 0);
    assert.match(run.stdout, /^http_proxy {3}not set: http:\/\/ URLs go direct$/m);
    assert.match(run.stdout, /^https_proxy {2}not set: https:\/\/ URLs go direct$/m);
    assert.match(run.stdout, /^no_proxy {5}none$/m);
    assert.doesNotMatch(run.stdout, /^ignored/m);
    // No proxy set: every proxied type goes direct (issue #12: not "proxy").
    assert.match(run.stdout, /^push {13}direct \(no proxy set\) /m);
  });

  it('--help and usage errors', () => {
    const help = runBin(['env', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: matrix-egress env \[--json\]/);
    const extra = runBin(['env', 'extra']);
    assert.equal(extra.status, 2);
    assert.equal(extra.stderr, 'matrix-egress: env: unexpected argument "extra" (see matrix-egress env --help)\n');
    const flag = runBin(['env', '--verbose']);
    assert.equal(flag.status, 2);
    assert.equal(flag.stderr, 'matrix-egress: env: unknown option --verbose (see matrix-egress env --help)\n');
  });
});

describe('matrix-egress env: credentials never appear (SPEC §7)', () => {
  const userinfo = `${CANARY_USER}:${CANARY_PASSWORD}`;

  it('success: credentials are reported as present, never printed, in human and JSON output', () => {
    const env = {
      http_proxy: `http://${userinfo}@hp.example:3128`,
      HTTPS_PROXY: `https://${CANARY_USER}:canary%2Dpw%2D7731@sp.example`,
      https_proxy: `http://${userinfo}@lower.example:3129`,
    };
    for (const flags of [[], ['--json']]) {
      const run = runBin(['env', ...flags], env);
      assert.equal(run.status, 0, run.stderr);
      assertNoCanary(run);
      assert.ok(!run.stdout.includes('canary%2Dpw'), run.stdout);
    }
    const json = envJson(env);
    assert.deepEqual(json.httpProxy, { url: 'http://hp.example:3128', credentials: true, source: 'http_proxy' });
    assert.deepEqual(json.httpsProxy, { url: 'http://lower.example:3129', credentials: true, source: 'https_proxy' });
  });

  const badEnvs: Record<string, string>[] = [
    { HTTPS_PROXY: `socks4://${userinfo}@p:1080` },
    { https_proxy: '', HTTP_PROXY: `http://${userinfo}@p:70000` },
    { ALL_PROXY: `http://${userinfo}@fine.example:1`, http_proxy: `http://${userinfo}@p:1/x` },
  ];
  for (const env of badEnvs) {
    it(`error: ${Object.keys(env).join(', ')} → exit 2, names the variable, no credentials`, () => {
      for (const flags of [[], ['--json']]) {
        const run = runBin(['env', ...flags], env);
        assert.equal(run.status, 2, run.stdout);
        assert.equal(run.stdout, '');
        assert.match(run.stderr, /^matrix-egress: (HTTPS_PROXY|HTTP_PROXY|no_proxy entry 1|http_proxy) \("[^"]*\*\*\*@[^"]*"\): [^\n]+\n$/);
        assertNoCanary(run);
      }
    });
  }
});
