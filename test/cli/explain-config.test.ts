// Issue #12 at the command line: explain and env tell the whole truth (always-direct targets, the IP
// blocklist verdict, skipped no_proxy entries), --config and --strict-no-proxy on every command, and
// the no_proxy corpus through `explain --json`: exit 0, routes as the routing rules say, no credential.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli/main.js';
import { runBin } from '../support/cli.js';
import { loadVectors } from '../support/vectors.js';

interface InProcessRun {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the CLI in-process (the bin's own `main`), with `env` as the whole environment. */
async function cli(argv: readonly string[], env: Record<string, string> = {}): Promise<InProcessRun> {
  let stdout = '';
  let stderr = '';
  const status = await main(argv, {
    stdout: { write: (chunk: string) => ((stdout += chunk), true) },
    stderr: { write: (chunk: string) => ((stderr += chunk), true) },
    env,
  });
  return { status, stdout, stderr };
}

function json(run: InProcessRun): Record<string, unknown> {
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stderr, '');
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

const PROXY = 'http://canary-user:canary-pw-0412@proxy.example:3128';
const SECRETS = ['canary-user', 'canary-pw-0412', 'url-user', 'url-pw-99'];

let dir = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'explain-config-'));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('explain: always-direct types accept any target', () => {
  for (const [type, target] of [
    ['redis', 'redis://redis.local:6379/0'],
    ['worker', 'synapse-worker-1:9093'],
    ['appservice', 'https://bridge.internal:29317/'],
    ['identity_server', 'sydent:8090'],
  ] as const) {
    it(`${type} ${target} → direct, always`, async () => {
      const doc = json(await cli(['explain', type, target, '--json'], { https_proxy: PROXY, http_proxy: PROXY }));
      assert.equal(doc.route, 'direct');
      assert.equal(doc.proxy, null);
      assert.match(String(doc.reason), /direct, always/);
      const text = await cli(['explain', type, target], { https_proxy: PROXY });
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /^route +direct$/m);
    });
  }
  it('a proxied type still refuses a non-http(s) URL (exit 2)', async () => {
    const run = await cli(['explain', 'push', 'redis://redis.local:6379/0']);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /Unsupported URL scheme "redis:"/);
  });
});

describe('explain: the IP blocklist verdict beside the route', () => {
  it('url_preview http://127.0.0.1:8008/ is proxied but refused by the blocklist', async () => {
    const doc = json(await cli(['explain', 'url_preview', 'http://127.0.0.1:8008/', '--json'], { http_proxy: PROXY }));
    assert.equal(doc.route, 'proxy');
    assert.deepEqual(doc.ipBlocklist, { verdict: 'blocked', range: '127.0.0.0/8' });
    const text = await cli(['explain', 'url_preview', 'http://127.0.0.1:8008/'], { http_proxy: PROXY });
    assert.match(text.stdout, /^route +proxy, but refused: the IP blocklist blocks this address$/m);
    assert.match(text.stdout, /^ip blocklist +blocked \(127\.0\.0\.0\/8\): the request is refused before it is sent$/m);
  });
  it('allowed, after-dns and not-checked', async () => {
    const env = { https_proxy: PROXY, no_proxy: 'direct.example' };
    assert.deepEqual(json(await cli(['explain', 'push', 'https://203.0.113.5/', '--json'], env)).ipBlocklist, { verdict: 'blocked', range: '203.0.113.0/24' });
    assert.deepEqual(json(await cli(['explain', 'push', 'https://8.8.8.8/', '--json'], env)).ipBlocklist, { verdict: 'allowed', range: null });
    assert.deepEqual(json(await cli(['explain', 'push', 'https://direct.example/', '--json'], env)).ipBlocklist, { verdict: 'after-dns', range: null });
    assert.deepEqual(json(await cli(['explain', 'push', 'https://matrix.example/', '--json'], env)).ipBlocklist, { verdict: 'not-checked', range: null });
    assert.deepEqual(json(await cli(['explain', 'oidc', 'https://127.0.0.1/', '--json'], env)).ipBlocklist, { verdict: 'not-checked', range: null });
  });
  it('an ipAllowlist from --config lets the address through', async () => {
    const file = join(dir, 'allow.json');
    writeFileSync(file, JSON.stringify({ ipAllowlist: ['127.0.0.1'] }));
    const doc = json(await cli(['explain', 'url_preview', 'http://127.0.0.1:8008/', '--json', '--config', file], { http_proxy: PROXY }));
    assert.deepEqual(doc.ipBlocklist, { verdict: 'allowed', range: null });
  });
});

describe('explain and env: skipped no_proxy entries, --strict-no-proxy', () => {
  const env = { https_proxy: PROXY, no_proxy: 'localhost,2.3.4,http://url-user:url-pw-99@10.0.0.0:99999,10.*' };
  it('explain --json lists them with their warnings, and still decides', async () => {
    const doc = json(await cli(['explain', 'push', 'https://10.1.2.3/', '--json'], env));
    assert.equal(doc.route, 'direct');
    assert.equal(doc.matched, '10.*');
    const skipped = doc.noProxySkipped as { position: number; entry: string; warning: string }[];
    assert.deepEqual(skipped.map((s) => s.position), [2, 3]);
    assert.match(skipped[0]?.warning ?? '', /^no_proxy entry 2 \("2\.3\.4"\) skipped: an incomplete IPv4 address/);
    assert.ok(!JSON.stringify(doc).includes('url-pw-99'));
  });
  it('explain and env text list them under "skipped"', async () => {
    for (const argv of [['explain', 'push', 'https://x.example/'], ['env']]) {
      const run = await cli(argv, env);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^skipped +no_proxy entry 2 \("2\.3\.4"\) skipped: /m);
      assert.match(run.stdout, /^ +no_proxy entry 3 \("http:\/\/\*\*\*@10\.0\.0\.0:99999\/?"\) skipped: the URL's host: the port/m);
      for (const secret of SECRETS) assert.ok(!run.stdout.includes(secret), secret);
    }
    const envJson = json(await cli(['env', '--json'], env)) as { noProxy: { skipped: { warning: string }[] } };
    assert.equal(envJson.noProxy.skipped.length, 2);
  });
  it('--strict-no-proxy turns the first into exit 2 on every command', async () => {
    for (const argv of [['explain', 'push', 'https://x.example/'], ['env'], ['demo'], ['check', 'https://x.example/']]) {
      const run = await cli([...argv, '--strict-no-proxy'], env);
      assert.equal(run.status, 2, `${argv.join(' ')}: ${run.stdout}${run.stderr}`);
      assert.match(run.stderr, /^matrix-egress: no_proxy entry 2 \("2\.3\.4"\): an incomplete IPv4 address/);
    }
  });
});

describe('--config on every command', () => {
  it('explain, env and demo see the file: proxies, no_proxy, type overrides; the file names its source', async () => {
    const file = join(dir, 'egress.json');
    writeFileSync(file, JSON.stringify({ httpsProxy: 'http://file-proxy.example:3128', noProxy: '*.internal', connectionTypes: { sygnal: { route: 'proxy' }, oidc: { route: 'direct' } } }));
    const env = { https_proxy: 'http://env-proxy.example:3128' };
    const doc = json(await cli(['explain', 'sygnal', 'https://push.example/', '--json', '--config', file], env));
    assert.equal(doc.proxy, 'http://file-proxy.example:3128');
    assert.match(String(doc.reason), /config file \S+egress\.json at httpsProxy/);
    assert.equal(json(await cli(['explain', 'oidc', 'https://idp.example/', '--json', '--config', file], env)).route, 'direct');
    assert.equal(json(await cli(['explain', 'push', 'https://a.internal/', '--json', '--config', file], env)).route, 'direct');
    const envDoc = json(await cli(['env', '--json', '--config', file], env)) as { httpsProxy: { source: string }; connectionTypes: Record<string, unknown> };
    assert.match(envDoc.httpsProxy.source, /^config file .*egress\.json at httpsProxy$/);
    assert.ok('sygnal' in envDoc.connectionTypes);
    const demo = json(await cli(['demo', '--json', '--config', file])) as { routes: { type: string; proxy: string | null }[] };
    assert.equal(demo.routes.find((r) => r.type === 'push')?.proxy, 'http://file-proxy.example:3128');
  });
  it('a bad file exits 2 with the file and the JSON path, on every command', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ connectionTypes: { push: { route: 'sideways' } } }));
    for (const argv of [['explain', 'push', 'https://x.example/'], ['env'], ['demo'], ['check', 'https://x.example/']]) {
      const run = await cli([...argv, '--config', file]);
      assert.equal(run.status, 2, argv.join(' '));
      assert.match(run.stderr, /^matrix-egress: config file \S+bad\.json at connectionTypes\.push\.route: must be "proxy" or "direct"\n$/);
    }
  });
  it('the built bin takes --config too', () => {
    const file = join(dir, 'bin.json');
    writeFileSync(file, JSON.stringify({ httpsProxy: 'http://bin-proxy.example:3128' }));
    const run = runBin(['explain', 'push', 'https://x.example/', '--json', '--config', file]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { proxy: string }).proxy, 'http://bin-proxy.example:3128');
  });
});

interface CorpusRow {
  origin: string;
  noProxy: string;
  direct: string[];
  proxy: string[];
}

describe('the no_proxy corpus through explain --json', () => {
  const { rows } = loadVectors('no-proxy-corpus') as { rows: CorpusRow[] };
  it(`${String(rows.length)} values: exit 0, routes as the rules say, no credential in any output`, async () => {
    for (const row of rows) {
      const env = { https_proxy: PROXY, http_proxy: PROXY, no_proxy: row.noProxy };
      for (const [url, expected] of [...row.direct.map((u) => [u, 'direct'] as const), ...row.proxy.map((u) => [u, 'proxy'] as const)]) {
        const run = await cli(['explain', 'push', url, '--json'], env);
        const where = `no_proxy=${JSON.stringify(row.noProxy)} target=${url}`;
        assert.equal(run.status, 0, `${where}: ${run.stderr}`);
        assert.equal((JSON.parse(run.stdout) as { route: string }).route, expected, where);
        for (const secret of [...SECRETS, 'secret@', ':secret', ':pw@']) assert.ok(!(run.stdout + run.stderr).includes(secret), `${where}: ${secret}`);
      }
    }
  });
});
