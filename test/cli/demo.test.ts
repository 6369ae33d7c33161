// Runs the built bin (dist/cli/main.js) as a user would: `matrix-egress demo`. Build first:
// npx tsc -p tsconfig.build.json. Every child gets an explicit environment (PATH plus the variables
// under test), so the parent's proxy variables never leak in.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../src/policy/connection-types.js';
import { createRecordingProxy } from '../../src/testing/recording-proxy.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const ALL_TYPES = [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES];
const CANARY_PASSWORD = 'canary-pw-9';
const DEMO_SECRETS = ['demo-password', Buffer.from('demo:demo-password').toString('base64')];

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

/** Run the bin asynchronously, so that servers in this process keep serving while it runs. */
function runBin(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  assert.ok(existsSync(BIN), `${BIN} is missing: run "npx tsc -p tsconfig.build.json" first`);
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ status: code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });
}

function render(run: Run): string {
  return `--- exit ${String(run.status)} after ${String(run.ms)} ms\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}

function assertNoSecret(run: Run, secrets: readonly string[]): void {
  for (const secret of secrets) {
    assert.ok(!run.stdout.includes(secret) && !run.stderr.includes(secret), `${secret} was printed:\n${render(run)}`);
  }
}

/** The table rows of the output, keyed by connection type: the cells split on runs of 2+ spaces. */
function tableRows(stdout: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  for (const line of stdout.split('\n')) {
    const cells = line.split(/ {2,}/);
    const type = cells[0];
    if (type !== undefined && (ALL_TYPES as readonly string[]).includes(type)) rows.set(type, cells);
  }
  return rows;
}

describe('matrix-egress demo without proxy variables: real requests on loopback', { timeout: 60_000 }, () => {
  it('prints a table with every type: proxied types show what the proxy saw, direct ones nothing; exit 0', async () => {
    const run = await runBin(['demo']);
    assert.equal(run.status, 0, render(run));
    assert.equal(run.stderr, '', render(run));
    assertNoSecret(run, DEMO_SECRETS);
    assert.match(run.stdout, /^type +route +proxy saw +origin$/m);
    assert.match(run.stdout, /proxy +http:\/\/127\.0\.0\.1:\d+, a recording forward proxy that requires Basic auth/);
    const rows = tableRows(run.stdout);
    assert.deepEqual([...rows.keys()], ALL_TYPES, render(run));
    for (const type of PROXIED_CONNECTION_TYPES) {
      const [, route, saw, status] = rows.get(type) ?? [];
      assert.equal(route, 'proxy', `${type}:\n${run.stdout}`);
      if (type === 'url_preview') {
        assert.match(saw ?? '', /^GET http:\/\/127\.0\.0\.1:\d+\/article$/, `${type}:\n${run.stdout}`);
      } else {
        assert.match(saw ?? '', /^CONNECT 127\.0\.0\.1:\d+$/, `${type}:\n${run.stdout}`);
      }
      assert.equal(status, '200', `${type}:\n${run.stdout}`);
    }
    for (const type of DIRECT_CONNECTION_TYPES) {
      assert.deepEqual(rows.get(type)?.slice(1), ['direct', 'nothing', '200'], `${type}:\n${run.stdout}`);
    }
    // Each type had its own origin, so no two rows show the same target.
    const targets = PROXIED_CONNECTION_TYPES.map((type) => rows.get(type)?.[2]);
    assert.equal(new Set(targets).size, targets.length);
    assert.match(run.stdout, /10 proxied types went through the proxy/);
    assert.match(run.stdout, /4 direct types never touched it/);
    assert.match(run.stdout, /No origin\nreceived Proxy-Authorization/);
    // Issue 16: the counters of the run follow the table.
    assert.match(run.stdout, /^What egress\.stats\(\) counted/m);
    assert.match(run.stdout, /^ {2}route proxy +10 requests \(10 × 2xx\)$/m);
    assert.match(run.stdout, /^ {2}route direct +4 requests \(4 × 2xx\)$/m);
    assert.match(run.stdout, /^ {2}tunnels +9 opened, 9 closed, 0 open, 0 failed$/m);
    // The brief is "< 3 s"; the bound here leaves room for a loaded CI machine.
    assert.ok(run.ms < 8_000, `took ${String(run.ms)} ms`);
  });

  it('--json: one object with a result per type, every request routed as decided', async () => {
    const run = await runBin(['demo', '--json']);
    assert.equal(run.status, 0, render(run));
    assertNoSecret(run, DEMO_SECRETS);
    assert.ok(run.stdout.endsWith('\n') && !run.stdout.slice(0, -1).includes('\n'), run.stdout);
    const document = JSON.parse(run.stdout) as {
      mode: string;
      trafficSent: boolean;
      proxy: string;
      ok: boolean;
      problems: string[];
      results: { type: string; method: string; url: string; route: string; proxySaw: string[]; status: number | null; error: string | null }[];
      stats: { types: Record<string, Record<string, { requests: number; outcomes: Record<string, number> }>>; tunnels: { opened: number } };
    };
    assert.equal(document.mode, 'live');
    assert.equal(document.trafficSent, true);
    assert.equal(document.ok, true);
    assert.deepEqual(document.problems, []);
    assert.match(document.proxy, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      document.results.map((result) => result.type),
      ALL_TYPES,
    );
    // Issue 16: egress.stats() after the run, one request per type on its route.
    for (const result of document.results) {
      assert.deepEqual(document.stats.types[result.type]?.[result.route], { requests: 1, outcomes: { '2xx': 1 }, errors: {}, blocked: 0 });
    }
    assert.equal(document.stats.tunnels.opened, 9);
    for (const result of document.results) {
      assert.equal(result.status, 200, JSON.stringify(result));
      assert.equal(result.error, null);
      const { host, port, protocol } = new URL(result.url);
      assert.equal(host, `127.0.0.1:${port}`);
      if ((DIRECT_CONNECTION_TYPES as readonly string[]).includes(result.type)) {
        assert.equal(result.route, 'direct');
        assert.deepEqual(result.proxySaw, []);
      } else if (protocol === 'https:') {
        assert.equal(result.route, 'proxy');
        assert.deepEqual(result.proxySaw, [`CONNECT ${host}`]);
      } else {
        assert.equal(result.type, 'url_preview');
        assert.deepEqual(result.proxySaw, [`${result.method} ${result.url}`]);
      }
    }
  });
});

describe('matrix-egress demo with proxy variables: explains, sends nothing', { timeout: 60_000 }, () => {
  it('explains the route of every type for https://matrix.org/ and never prints the password', async () => {
    const env = { https_proxy: `http://u:${CANARY_PASSWORD}@proxy.example:3128` };
    const run = await runBin(['demo'], env);
    assert.equal(run.status, 0, render(run));
    assert.equal(run.stderr, '');
    assertNoSecret(run, [CANARY_PASSWORD, `u:${CANARY_PASSWORD}`]);
    assert.match(run.stdout, /^Proxy variables are set \(https_proxy\): the demo sends no traffic\.$/m);
    assert.match(run.stdout, /would take to https:\/\/matrix\.org\//);
    assert.match(run.stdout, /^No traffic was sent\./m);
    const rows = tableRows(run.stdout);
    assert.deepEqual([...rows.keys()], ALL_TYPES);
    for (const type of PROXIED_CONNECTION_TYPES) {
      assert.deepEqual(rows.get(type)?.slice(1, 3), ['proxy', 'http://proxy.example:3128'], type);
    }
    for (const type of DIRECT_CONNECTION_TYPES) {
      assert.deepEqual(rows.get(type)?.slice(1, 3), ['direct', '-'], type);
    }
    assert.doesNotMatch(run.stdout, /CONNECT|127\.0\.0\.1/);
  });

  it('really sends nothing: a proxy named by https_proxy and http_proxy sees no connection', async () => {
    const proxy = await createRecordingProxy();
    try {
      const url = proxy.urlWithCredentials('u', CANARY_PASSWORD);
      const run = await runBin(['demo', '--json'], { HTTPS_PROXY: url, Http_Proxy: url, no_proxy: '' });
      assert.equal(run.status, 0, render(run));
      assertNoSecret(run, [CANARY_PASSWORD]);
      const document = JSON.parse(run.stdout) as { mode: string; trafficSent: boolean; variables: string[]; url: string; routes: { type: string; route: string; proxy: string | null }[] };
      assert.equal(document.mode, 'explain');
      assert.equal(document.trafficSent, false);
      assert.deepEqual(document.variables, ['HTTPS_PROXY', 'Http_Proxy', 'no_proxy']);
      assert.equal(document.url, 'https://matrix.org/');
      assert.deepEqual(
        document.routes.map((route) => [route.type, route.route, route.proxy]),
        ALL_TYPES.map((type) => [type, (DIRECT_CONNECTION_TYPES as readonly string[]).includes(type) ? 'direct' : 'proxy', (DIRECT_CONNECTION_TYPES as readonly string[]).includes(type) ? null : proxy.url]),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(proxy.connections, 0);
    } finally {
      await proxy.close();
    }
  });

  it('an empty no_proxy alone still counts as a proxy variable: explain mode, every type direct', async () => {
    const run = await runBin(['demo'], { No_Proxy: '' });
    assert.equal(run.status, 0, render(run));
    assert.match(run.stdout, /Proxy variables are set \(No_Proxy\)/);
    for (const cells of tableRows(run.stdout).values()) assert.equal(cells[1], 'direct');
  });

  it('a bad variable: exit 2, one line on stderr, no password', async () => {
    const run = await runBin(['demo'], { https_proxy: `socks4://u:${CANARY_PASSWORD}@proxy.example:1080` });
    assert.equal(run.status, 2, render(run));
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^matrix-egress: https_proxy [^\n]*supported schemes are http[^\n]*\n$/);
    assertNoSecret(run, [CANARY_PASSWORD]);
  });
});

describe('matrix-egress demo arguments', { timeout: 30_000 }, () => {
  it('--help prints the usage; an unknown flag or an argument is a usage error', async () => {
    const help = await runBin(['demo', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /^Usage: matrix-egress demo \[--json\]\n/);
    const listed = await runBin(['--help']);
    assert.match(listed.stdout, /^ {2}demo \[--json\] +Show the route of every connection type, live on loopback$/m);
    for (const args of [['demo', '--bogus'], ['demo', 'extra']]) {
      const run = await runBin(args);
      assert.equal(run.status, 2, render(run));
      assert.match(run.stderr, /^matrix-egress: demo: [^\n]+ \(see matrix-egress demo --help\)\n$/);
    }
  });
});
