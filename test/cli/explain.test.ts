// Runs the built bin (dist/cli/main.js) as a user would, through test/support/cli.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../src/policy/connection-types.js';
import { runBin, type Run } from '../support/cli.js';
import { main } from '../../src/cli/main.js';

const CANARY_USER = 'canary-user';
const CANARY_PASSWORD = 'canary-pw-7731';


function render(run: Run, args: readonly string[], env: Record<string, string>): string {
  return `matrix-egress ${args.join(' ')} with ${JSON.stringify(env)}\n--- exit ${String(run.status)}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}

/** Parse stdout as exactly one JSON object on one line. */
function onlyJson(run: Run): Record<string, unknown> {
  assert.equal(run.stderr, '');
  assert.ok(run.stdout.endsWith('\n') && !run.stdout.slice(0, -1).includes('\n'), `one line of JSON expected:\n${run.stdout}`);
  const value: unknown = JSON.parse(run.stdout);
  assert.ok(typeof value === 'object' && value !== null && !Array.isArray(value));
  return value as Record<string, unknown>;
}

function assertNoCanary(run: Run): void {
  for (const secret of [CANARY_USER, CANARY_PASSWORD]) {
    assert.ok(!run.stdout.includes(secret), `${secret} leaked to stdout:\n${run.stdout}`);
    assert.ok(!run.stderr.includes(secret), `${secret} leaked to stderr:\n${run.stderr}`);
  }
}

/** Exit 2 and exactly one line on stderr, prefixed with the program name; nothing on stdout. */
function assertUsageFailure(run: Run, pattern: RegExp): void {
  assert.equal(run.status, 2, `exit 2 expected:\n${run.stderr}`);
  assert.equal(run.stdout, '');
  assert.match(run.stderr, /^matrix-egress: [^\n]+\n$/);
  assert.match(run.stderr, pattern);
}

const JSON_KEYS = ['type', 'url', 'route', 'proxy', 'reason', 'matched', 'ipBlocklist', 'noProxySkipped', 'reasonCode', 'rule'];

/** The decision keys of an explain document (the blocklist verdict and skipped entries have tests of their own in test/cli/explain-config.test.ts). */
function decisionOnly(json: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(json).filter(([key]) => key !== 'ipBlocklist' && key !== 'noProxySkipped'));
}

const ENV = {
  http_proxy: 'http://hp.example:3128',
  HTTPS_PROXY: `http://${CANARY_USER}:${CANARY_PASSWORD}@sp.example:3129`,
  no_proxy: 'internal.example, 10.0.0.0/8 *.svc.example [fd00::1]:8448',
};

describe('matrix-egress explain: the route of every connection type (SPEC §4)', () => {
  for (const type of PROXIED_CONNECTION_TYPES) {
    it(`${type}: https URL through https_proxy, http URL through ${type === 'federation' ? 'https_proxy too' : 'http_proxy'}`, () => {
      const https = runBin(['explain', type, 'https://remote.example/path', '--json'], ENV);
      assert.equal(https.status, 0, render(https, [type], ENV));
      assert.deepEqual(decisionOnly(onlyJson(https)), {
        type,
        url: 'https://remote.example/path',
        route: 'proxy',
        proxy: 'http://sp.example:3129',
        reason: `${type} traffic to https URLs goes through HTTPS_PROXY`,
        matched: null,
        reasonCode: 'proxy',
        rule: null,
      });

      const http = onlyJson(runBin(['explain', type, 'http://remote.example/', '--json'], ENV));
      assert.equal(http.route, 'proxy');
      assert.equal(http.proxy, type === 'federation' ? 'http://sp.example:3129' : 'http://hp.example:3128');
    });
  }

  for (const type of DIRECT_CONNECTION_TYPES) {
    it(`${type}: always direct, whatever the proxy variables say`, () => {
      for (const url of ['https://remote.example/', 'http://remote.example/', 'http://10.0.0.1/']) {
        const json = onlyJson(runBin(['explain', type, url, '--json'], ENV));
        assert.deepEqual(decisionOnly(json), { type, url, route: 'direct', proxy: null, reason: `${type} connections never use a proxy (direct, always)`, matched: null, reasonCode: 'always-direct', rule: null });
      }
    });
  }

  it('with no proxy variables every type goes direct and says which variable is missing', () => {
    for (const type of [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES]) {
      const json = onlyJson(runBin(['explain', type, 'https://remote.example/', '--json']));
      assert.equal(json.route, 'direct', type);
      assert.equal(json.proxy, null);
    }
    assert.equal(onlyJson(runBin(['explain', 'push', 'https://remote.example/', '--json'])).reason, 'no https_proxy is configured');
  });
});

describe('matrix-egress explain: no_proxy matches name the entry', () => {
  const rows: { url: string; matched: string }[] = [
    { url: 'https://internal.example/', matched: 'internal.example' },
    { url: 'https://a.b.internal.example/', matched: 'internal.example' },
    { url: 'http://10.20.30.40:8008/', matched: '10.0.0.0/8' },
    { url: 'http://[::ffff:10.0.0.1]/', matched: '10.0.0.0/8' },
    { url: 'https://api.svc.example/', matched: '*.svc.example' },
    { url: 'https://[fd00:0::1]:8448/', matched: '[fd00::1]:8448' },
  ];
  for (const row of rows) {
    it(`no_proxy=${JSON.stringify(ENV.no_proxy)} target=${JSON.stringify(row.url)} → direct via ${row.matched}`, () => {
      const json = onlyJson(runBin(['explain', 'media', row.url, '--json'], ENV));
      assert.equal(json.route, 'direct');
      assert.equal(json.proxy, null);
      assert.equal(json.matched, row.matched);
      assert.match(String(json.reason), new RegExp(`no_proxy entry "${row.matched.replace(/[.*[\]]/g, '\\$&')}" matches`));
    });
  }

  const misses = ['https://notinternal.example/', 'https://svc.example/', 'https://[fd00::1]/', 'http://11.0.0.1/'];
  for (const url of misses) {
    it(`no_proxy=${JSON.stringify(ENV.no_proxy)} target=${JSON.stringify(url)} → proxy`, () => {
      const json = onlyJson(runBin(['explain', 'media', url, '--json'], ENV));
      assert.equal(json.route, 'proxy');
      assert.equal(json.matched, null);
    });
  }

  it('human output shows the matched entry and the variable it came from', () => {
    const run = runBin(['explain', 'url_preview', 'https://x.internal.example/'], ENV);
    assert.equal(run.status, 0);
    assert.match(run.stdout, /^matched {7}internal\.example \(from no_proxy\)$/m);
    assert.match(run.stdout, /^route {9}direct$/m);
    assert.match(run.stdout, /^proxy {9}none \(direct\)$/m);
  });
});

describe('matrix-egress explain: output shapes', () => {
  it('--json prints one object with exactly the documented keys, in order', () => {
    for (const args of [
      ['explain', 'push', 'https://push.example/_matrix/push/v1/notify', '--json'],
      ['explain', '--json', 'worker', 'http://worker1:9093/'],
    ]) {
      const json = onlyJson(runBin(args, ENV));
      assert.deepEqual(Object.keys(json), JSON_KEYS);
      assert.ok(json.route === 'proxy' || json.route === 'direct');
      assert.ok(json.proxy === null || (typeof json.proxy === 'string' && /^https?:\/\/[^@/]+:\d+$/.test(json.proxy)));
      assert.ok(json.matched === null || typeof json.matched === 'string');
      assert.equal(typeof json.reason, 'string');
    }
  });

  it('human output is seven aligned lines: type, url, route, proxy (with its variable), reason, matched, ip blocklist', () => {
    const run = runBin(['explain', 'push', 'https://push.example/notify'], ENV);
    assert.equal(run.status, 0);
    assert.equal(run.stderr, '');
    assert.equal(
      run.stdout,
      [
        'type          push',
        'url           https://push.example/notify',
        'route         proxy',
        'proxy         http://sp.example:3129 (from HTTPS_PROXY, with credentials)',
        'reason        push traffic to https URLs goes through HTTPS_PROXY',
        'matched       none',
        'ip blocklist  not checked here (the proxy resolves the host name)',
        '',
      ].join('\n'),
    );
  });

  it('the URL is shown as parsed: IDN in punycode, default port dropped', () => {
    const json = onlyJson(runBin(['explain', 'push', 'https://Bücher.example:443/a', '--json'], ENV));
    assert.equal(json.url, 'https://xn--bcher-kva.example/a');
  });
});

describe('matrix-egress explain: SPEC §1 precedence is visible in the decision', () => {
  it('lowercase https_proxy wins over HTTPS_PROXY', () => {
    const json = onlyJson(runBin(['explain', 'push', 'https://x.example/', '--json'], { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' }));
    assert.equal(json.proxy, 'http://lower:1');
    assert.equal(json.reason, 'push traffic to https URLs goes through https_proxy');
  });

  it('an empty lowercase https_proxy masks HTTPS_PROXY', () => {
    const json = onlyJson(runBin(['explain', 'push', 'https://x.example/', '--json'], { https_proxy: '', HTTPS_PROXY: 'http://upper:2' }));
    assert.equal(json.route, 'direct');
    assert.equal(json.reason, 'no https_proxy is configured');
  });

  it('https never falls back to http_proxy', () => {
    const json = onlyJson(runBin(['explain', 'push', 'https://x.example/', '--json'], { http_proxy: 'http://hp:1' }));
    assert.equal(json.route, 'direct');
  });

  it('httpoxy: HTTP_PROXY is ignored when REQUEST_METHOD is set', () => {
    const env = { REQUEST_METHOD: 'GET', HTTP_PROXY: 'http://evil.example:1' };
    const json = onlyJson(runBin(['explain', 'url_preview', 'http://x.example/', '--json'], env));
    assert.equal(json.route, 'direct');
    assert.equal(json.proxy, null);
  });

  it('ALL_PROXY is not read', () => {
    const json = onlyJson(runBin(['explain', 'push', 'https://x.example/', '--json'], { ALL_PROXY: 'http://all:1', all_proxy: 'http://all:1' }));
    assert.equal(json.route, 'direct');
  });
});

describe('matrix-egress explain: errors exit 2 with one line on stderr', () => {
  it('unknown type', () => {
    assertUsageFailure(runBin(['explain', 'carrier_pigeon', 'https://x.example/'], ENV), /Unknown connection type "carrier_pigeon"; known types: push,/);
  });

  it('bad URL, unsupported URL scheme', () => {
    assertUsageFailure(runBin(['explain', 'push', 'not a url'], ENV), /Invalid URL "not a url"/);
    assertUsageFailure(runBin(['explain', 'push', 'ftp://files.example/'], ENV), /Unsupported URL scheme "ftp:"/);
    assertUsageFailure(runBin(['explain', 'push', 'https://x.example/', '--json', '--strict-no-proxy'], { https_proxy: 'http://p:1', no_proxy: '2.3.4' }), /no_proxy entry 1 \("2\.3\.4"\)/);
  });

  it('bad proxy variable: the message names the variable, the --json flag changes nothing', () => {
    for (const flags of [[], ['--json']]) {
      const run = runBin(['explain', 'push', 'https://x.example/', ...flags], { HTTPS_PROXY: 'http://proxy.example:99999' });
      assertUsageFailure(run, /^matrix-egress: HTTPS_PROXY \("http:\/\/proxy\.example:99999"\): the proxy port must be a number from 1 to 65535\n$/);
    }
  });

  it('the proxy variables are checked even for an always-direct type (fail closed)', () => {
    assertUsageFailure(runBin(['explain', 'redis', 'http://redis:6379/'], { http_proxy: 'ftp://p' }), /^matrix-egress: http_proxy /);
  });

  it('usage errors: missing or extra arguments, unknown or malformed flags', () => {
    assertUsageFailure(runBin(['explain'], ENV), /explain: missing <type> and <url> \(see matrix-egress explain --help\)/);
    assertUsageFailure(runBin(['explain', 'push'], ENV), /explain: missing <url>/);
    assertUsageFailure(runBin(['explain', 'push', 'https://x/', 'extra'], ENV), /explain: unexpected argument "extra"/);
    assertUsageFailure(runBin(['explain', '--jsn', 'push', 'https://x/'], ENV), /explain: unknown option --jsn/);
    assertUsageFailure(runBin(['explain', '--json=yes', 'push', 'https://x/'], ENV), /explain: option --json takes no value/);
  });

  it('--help prints the command help on stdout, exit 0, without needing arguments', () => {
    for (const args of [['explain', '--help'], ['explain', '-h'], ['help', 'explain']]) {
      const run = runBin(args);
      assert.equal(run.status, 0);
      assert.equal(run.stderr, '');
      assert.match(run.stdout, /^Usage: matrix-egress explain <type> <url> \[--json\]/);
    }
  });
});

describe('matrix-egress explain: credentials never appear in output (SPEC §7)', () => {
  const userinfo = `${CANARY_USER}:${CANARY_PASSWORD}`;

  it('success: proxy credentials from the environment and userinfo in the URL are redacted, human and JSON', () => {
    const url = `https://${userinfo}@matrix.example/_matrix/federation/v1/query/profile?user_id=@alice:example.org`;
    const human = runBin(['explain', 'federation', url], ENV);
    assert.equal(human.status, 0);
    assertNoCanary(human);
    assert.match(human.stdout, /^url +https:\/\/\*\*\*@matrix\.example\/_matrix\/federation\/v1\/query\/profile\?user_id=@alice:example\.org$/m);

    const machine = runBin(['explain', 'federation', url, '--json'], ENV);
    assertNoCanary(machine);
    const json = onlyJson(machine);
    assert.equal(json.url, 'https://***@matrix.example/_matrix/federation/v1/query/profile?user_id=@alice:example.org');
    assert.equal(json.proxy, 'http://sp.example:3129');
  });

  const badEnvs: { name: string; env: Record<string, string>; variable: RegExp; strict?: boolean }[] = [
    { name: 'socks4 scheme', env: { HTTPS_PROXY: `socks4://${userinfo}@p:1080` }, variable: /HTTPS_PROXY .*supported schemes are http/ },
    { name: 'bad port', env: { http_proxy: `http://${userinfo}@p:0` }, variable: /http_proxy .*port/ },
    { name: 'a path', env: { https_proxy: `https://${userinfo}@p:3128/path` }, variable: /https_proxy .*no path/ },
    { name: 'space in the password', env: { https_proxy: `http://${CANARY_USER}:${CANARY_PASSWORD} x@p:3128` }, variable: /https_proxy .*space/ },
    { name: 'percent-encoded password with CR', env: { https_proxy: `http://${CANARY_USER}:canary%2Dpw%2D7731%0D@p:3128` }, variable: /https_proxy .*CR, LF or NUL/ },
    { name: 'no host', env: { HTTPS_PROXY: `http://${userinfo}@` }, variable: /HTTPS_PROXY .*host is missing/ },
    {
      name: 'userinfo in a no_proxy entry (--strict-no-proxy)',
      env: { https_proxy: 'http://p:1', NO_PROXY: `ok.example,${userinfo}@internal.example` },
      variable: /NO_PROXY entry 2 .*not user credentials/,
      strict: true,
    },
  ];
  for (const row of badEnvs) {
    it(`error: ${row.name} → exit 2, names the variable, no credentials`, () => {
      for (const flags of [[], ['--json']].map((f) => ('strict' in row ? [...f, '--strict-no-proxy'] : f))) {
        const run = runBin(['explain', 'push', 'https://x.example/', ...flags], row.env);
        assertUsageFailure(run, row.variable);
        assertNoCanary(run);
        assert.ok(!run.stderr.includes('canary%2Dpw'), run.stderr);
      }
    });
  }

  it('error: credentials in a bad request URL or a stray argument are redacted', () => {
    const badUrl = runBin(['explain', 'push', `https://${userinfo}@host:99999/`], ENV);
    assertUsageFailure(badUrl, /Invalid URL "https:\/\/\*\*\*@host:99999\/"/);
    assertNoCanary(badUrl);
    const extra = runBin(['explain', 'push', 'https://x/', `https://${userinfo}@y/`], ENV);
    assertUsageFailure(extra, /unexpected argument "https:\/\/\*\*\*@y\/"/);
    assertNoCanary(extra);
    const flag = runBin(['explain', `--password=${CANARY_PASSWORD}`, 'push', 'https://x/'], ENV);
    assertUsageFailure(flag, /unknown option --password/);
    assertNoCanary(flag);
    for (const global of [`--password=${CANARY_PASSWORD}`, `-p${CANARY_PASSWORD}`]) {
      const run = runBin([global, 'env'], ENV);
      assertUsageFailure(run, /unknown option (--password|-p); options go after the command/);
      assertNoCanary(run);
    }
    const command = runBin([`https://${userinfo}@y/`], ENV);
    assertUsageFailure(command, /unknown command "https:\/\/\*\*\*@y\/"/);
    assertNoCanary(command);
  });
});

describe('matrix-egress: the dispatcher', () => {
  it('no arguments: usage on stderr, exit 2', () => {
    const run = runBin([]);
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^Usage: matrix-egress <command>/);
  });

  it('--help, -h and help: usage on stdout listing every command, exit 0', () => {
    for (const args of [['--help'], ['-h'], ['help']]) {
      const run = runBin(args);
      assert.equal(run.status, 0);
      assert.equal(run.stderr, '');
      assert.match(run.stdout, /^Usage: matrix-egress <command>/);
      assert.match(run.stdout, /^ {2}explain <type> <url> \[--json\] /m);
      assert.match(run.stdout, /^ {2}env \[--json\] /m);
    }
  });

  it('--version prints the version of package.json', async () => {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    const run = runBin(['--version']);
    assert.equal(run.status, 0);
    assert.equal(run.stdout, `${pkg.version}\n`);
  });

  it('unknown command, unknown global option, bad help topic: exit 2, one helpful line', () => {
    assertUsageFailure(runBin(['frobnicate']), /unknown command "frobnicate"; commands: explain, env, check, demo, help \(see matrix-egress --help\)/);
    assertUsageFailure(runBin(['--json', 'env']), /unknown option --json; options go after the command/);
    assertUsageFailure(runBin(['help', 'nope']), /unknown command "nope"/);
    assertUsageFailure(runBin(['--version', 'x']), /--version takes no arguments/);
  });

  it('runs in-process with an injected io (the same code the bin runs)', async () => {
    let stdout = '';
    let stderr = '';
    const io = { stdout: { write: (t: string) => (stdout += t) }, stderr: { write: (t: string) => (stderr += t) }, env: { https_proxy: 'http://p.example:3128' } };
    assert.equal(await main(['explain', 'oidc', 'https://idp.example/', '--json'], io), 0);
    assert.equal(stderr, '');
    assert.equal((JSON.parse(stdout) as { proxy: string }).proxy, 'http://p.example:3128');
    stdout = '';
    assert.equal(await main(['--version'], io), 0);
    assert.match(stdout, /^\d+\.\d+\.\d+/);
    assert.equal(await main(['explain', 'push', 'https://x/'], { ...io, env: { https_proxy: 'socks4://p' } }), 2);
    assert.match(stderr, /^matrix-egress: https_proxy /);
  });
});
