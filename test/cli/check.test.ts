// `matrix-egress check` run as a user runs it: the built bin (dist/cli/main.js) as a child process with
// an explicit environment (PATH plus the variables under test), against the recording proxy, test
// origins and a real Squid on loopback. Build first: npx tsc -p tsconfig.build.json.
//
// The servers live in this process, so the bin is run asynchronously (spawnSync would block the event
// loop the servers answer on). Every child is bounded by a kill timer and a per-step --timeout.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { CHECK_STEPS } from '../../src/cli/check.js';
import { createSelfSignedCertificate, createTestCertificateAuthority } from '../../src/testing/certificates.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { startSquid, type SquidInstance } from '../support/squid.js';
import { closedPort } from '../support/net.js';

const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));
const CANARY_USER = 'canary-user';
const CANARY_PASSWORD = 'canary-pw-5519';
const SECRETS = [CANARY_PASSWORD, Buffer.from(`${CANARY_USER}:${CANARY_PASSWORD}`).toString('base64'), 'wrong-pw-8841'];
/** Per-step time limit given to every run: failures that wait, wait this long at most. */
const STEP_TIMEOUT = ['--timeout', '5'];

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** Run `matrix-egress check …` and check that no secret reached either stream. */
function runCheck(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  assert.ok(existsSync(BIN), `${BIN} is missing: run "npx tsc -p tsconfig.build.json" first`);
  return new Promise<Run>((resolve) => {
    execFile(
      process.execPath,
      [BIN, 'check', ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 60_000, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const code = (error as { code?: unknown } | null)?.code;
        const run: Run = { status: error === null ? 0 : typeof code === 'number' ? code : null, stdout, stderr, args, env };
        for (const secret of [...SECRETS, CANARY_USER]) {
          assert.ok(!stdout.includes(secret), `${secret} leaked to stdout:\n${render(run)}`);
          assert.ok(!stderr.includes(secret), `${secret} leaked to stderr:\n${render(run)}`);
        }
        resolve(run);
      },
    );
  });
}

function render(run: Run): string {
  return `matrix-egress check ${run.args.join(' ')}\n--- exit ${String(run.status)}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
}

/** The status a step's line shows in human output (`undefined` when the step is not listed). */
function stepStatus(run: Run, name: string): string | undefined {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^${escaped} \\.+ (ok|failed|skipped)\\b`, 'm').exec(run.stdout)?.[1];
}

/** The human output's step lines, as "name status". */
function stepLines(run: Run): string[] {
  return [...run.stdout.matchAll(/^(\S[^.\n]*?) \.+ (ok|failed|skipped)\b/gm)].map((m) => `${m[1] ?? ''} ${m[2] ?? ''}`);
}

/** Exit 1, the named step failed, every step before it ok or skipped, every step after it not run. */
function assertFailedAt(run: Run, step: string): void {
  assert.equal(run.status, 1, render(run));
  assert.equal(stepStatus(run, step), 'failed', render(run));
  assert.equal(stepLines(run).filter((line) => line.endsWith(' failed')).length, 1, render(run));
  assert.ok(run.stdout.includes(`FAILED at step "${step}": `), render(run));
  assert.match(run.stdout, /\nhint: \S[^\n]+\n$/, render(run));
  assert.equal(run.stderr, '', render(run));
}

function assertWorked(run: Run): void {
  assert.equal(run.status, 0, render(run));
  assert.ok(!stepLines(run).some((line) => line.endsWith(' failed')), render(run));
  assert.match(run.stdout, /\nOK: the \S+ connection to \S+ works: it answered 200 /, render(run));
  assert.equal(run.stderr, '', render(run));
}

interface StepJson {
  name: string;
  status: 'ok' | 'failed' | 'skipped';
  ms: number;
  detail: string;
  info?: Record<string, string>;
  statusCode?: number;
  error?: { code: string; message: string; reason?: string; systemCode?: string; realm?: string; hint: string };
}

interface ReportJson {
  ok: boolean;
  type: string;
  url: string;
  route: 'proxy' | 'direct' | null;
  proxy: string | null;
  timeoutMs: number;
  ms: number;
  failedStep: string | null;
  hint: string | null;
  steps: StepJson[];
}

/** stdout as exactly one line of JSON, nothing on stderr. */
function report(run: Run): ReportJson {
  assert.equal(run.stderr, '', render(run));
  assert.ok(run.stdout.endsWith('\n') && !run.stdout.slice(0, -1).includes('\n'), `one line of JSON expected:\n${render(run)}`);
  return JSON.parse(run.stdout) as ReportJson;
}

function step(json: ReportJson, name: string): StepJson {
  const found = json.steps.find((s) => s.name === name);
  assert.ok(found !== undefined, `no step ${name} in ${JSON.stringify(json)}`);
  return found;
}

// Throwaway PKI for the whole file (RSA key generation is the slow part).
const ORIGIN_CA = createTestCertificateAuthority({ commonName: 'check-test origin CA' });
const ORIGIN_LEAF = ORIGIN_CA.issue({ hosts: ['localhost', '127.0.0.1', '::1'] });
const PROXY_CA = createTestCertificateAuthority({ commonName: 'check-test proxy CA' });
const PROXY_LEAF = PROXY_CA.issue({ hosts: ['localhost', '127.0.0.1'] });
const PROXY_WRONG_NAME = PROXY_CA.issue({ hosts: ['proxy.elsewhere.example'] });
const PROXY_EXPIRED = PROXY_CA.issue({
  hosts: ['localhost', '127.0.0.1'],
  notBefore: new Date(Date.now() - 3 * 86_400_000),
  notAfter: new Date(Date.now() - 86_400_000),
});
const PROXY_SELF_SIGNED = createSelfSignedCertificate({ hosts: ['localhost', '127.0.0.1'] });

let dir: string;
let originCaFile: string;
let proxyCaFile: string;
let httpsOrigin: TestOrigin;
let httpOrigin: TestOrigin;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'matrix-egress-check-test-'));
  originCaFile = join(dir, 'origin-ca.pem');
  proxyCaFile = join(dir, 'proxy-ca.pem');
  await writeFile(originCaFile, ORIGIN_CA.cert);
  await writeFile(proxyCaFile, PROXY_CA.cert);
  [httpsOrigin, httpOrigin] = await Promise.all([createTestOrigin({ tls: { ...ORIGIN_LEAF, ca: ORIGIN_CA.cert } }), createTestOrigin()]);
});

after(async () => {
  await Promise.all([httpsOrigin.close(), httpOrigin.close()]);
  await rm(dir, { recursive: true, force: true });
});

describe('matrix-egress check through the recording proxy', { timeout: 120_000 }, () => {
  let proxy: RecordingProxy;
  let authProxy: RecordingProxy;

  before(async () => {
    [proxy, authProxy] = await Promise.all([
      createRecordingProxy(),
      createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } }),
    ]);
  });
  after(async () => {
    await Promise.all([proxy.close(), authProxy.close()]);
  });

  it('success: exit 0, every step of the tunnel ok, one CONNECT with credentials', async () => {
    const env = { HTTPS_PROXY: authProxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) };
    authProxy.clear();
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/_matrix/key/v2/server?x=1`, '--ca', originCaFile, ...STEP_TIMEOUT], env);
    assertWorked(run);
    assert.deepEqual(stepLines(run), [
      'configuration ok',
      'route ok',
      'IP blocklist skipped',
      'TCP to proxy ok',
      'TLS to proxy skipped',
      'proxy authentication ok',
      'CONNECT ok',
      'TLS to origin ok',
      'HTTP status ok',
    ]);
    assert.match(run.stdout, /^Checking the oidc connection to https:\/\/127\.0\.0\.1:\d+\/_matrix\/key\/v2\/server\?x=1 \(time limit per step: 5 s\)/);
    assert.match(run.stdout, /https_proxy +http:\/\/127\.0\.0\.1:\d+ \(from HTTPS_PROXY, with credentials\)/);
    assert.match(run.stdout, /CONNECT \.+ ok +\d+ ms {2}200 Connection Established: tunnel to 127\.0\.0\.1:\d+ open/);
    assert.match(run.stdout, /^ {4}issuer +CN=check-test origin CA$/m);
    assert.match(run.stdout, /HTTP status \.+ ok +\d+ ms {2}200 OK for GET \/_matrix\/key\/v2\/server\?x=1/);
    const connects = authProxy.filterCalls({ method: 'CONNECT' });
    assert.equal(connects.length, 1);
    const [connect] = connects;
    assert.ok(connect !== undefined);
    assert.equal(connect.target, `127.0.0.1:${String(httpsOrigin.port)}`);
    assert.equal(connect.authenticated, true);
    assert.equal(httpsOrigin.lastCall()?.headers['proxy-authorization'], undefined, 'Proxy-Authorization never reaches the origin');
  });

  it('success for an http:// URL: one absolute-form GET, judged as forwarded request and HTTP status', async () => {
    proxy.clear();
    const run = await runCheck(['--type', 'oidc', `${httpOrigin.url}/plain?q=1`, ...STEP_TIMEOUT], { http_proxy: proxy.url });
    assertWorked(run);
    assert.equal(stepStatus(run, 'forwarded request'), 'ok');
    assert.equal(stepStatus(run, 'CONNECT'), undefined, 'no CONNECT for http:// URLs');
    assert.deepEqual(
      proxy.calls().map((c) => `${c.method} ${c.target}`),
      [`GET ${httpOrigin.url}/plain?q=1`],
    );
  });

  it('the default type is push, whose IP blocklist refuses a loopback IP literal before any connection', async () => {
    proxy.clear();
    const run = await runCheck([`${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: proxy.url });
    assertFailedAt(run, 'IP blocklist');
    assert.match(run.stdout, /^Checking the push connection/);
    assert.match(run.stdout, /hint: .*ipAllowlist/);
    assert.equal(stepStatus(run, 'TCP to proxy'), 'skipped');
    assert.equal(proxy.calls().length, 0);
  });

  it('proxy refused: exit 1 at "TCP to proxy" with ECONNREFUSED', async () => {
    const refusing = await createRecordingProxy({ fail: { connect: 'refuse' } });
    try {
      const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: refusing.url });
      assertFailedAt(run, 'TCP to proxy');
      assert.match(run.stdout, /TCP to proxy \.+ failed .*ECONNREFUSED/);
      assert.match(run.stdout, /hint: Nothing accepts connections at 127\.0\.0\.1:\d+: check the host and port in https_proxy/);
      for (const later of ['TLS to proxy', 'proxy authentication', 'CONNECT', 'TLS to origin', 'HTTP status']) {
        assert.equal(stepStatus(run, later), 'skipped', later);
      }
    } finally {
      await refusing.close();
    }
  });

  it('407 without credentials: exit 1 at "proxy authentication", the realm shown', async () => {
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: authProxy.url });
    assertFailedAt(run, 'proxy authentication');
    assert.match(run.stdout, /proxy authentication \.+ failed .*realm "matrix-egress-test"/);
    assert.match(run.stdout, /hint: The proxy requires credentials \(realm "matrix-egress-test"\): put them in https_proxy as http:\/\/user:password@/);
    assert.equal(stepStatus(run, 'CONNECT'), 'skipped');

    const json = report(await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, '--json', ...STEP_TIMEOUT], { https_proxy: authProxy.url }));
    assert.equal(json.failedStep, 'proxy authentication');
    assert.deepEqual(step(json, 'proxy authentication').error?.realm, 'matrix-egress-test');
    assert.equal(step(json, 'proxy authentication').error?.code, 'ERR_EGRESS_PROXY_AUTH');
    assert.equal(step(json, 'proxy authentication').statusCode, 407);
  });

  it('407 to a forwarded plain-http request: reported as a refused forwarded request, not CONNECT (issue #12)', async () => {
    const json = report(await runCheck(['--type', 'oidc', `${httpOrigin.url}/`, '--json', ...STEP_TIMEOUT], { http_proxy: authProxy.url }));
    assert.equal(json.failedStep, 'proxy authentication');
    const error = step(json, 'proxy authentication').error;
    assert.ok(error !== undefined);
    assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
    assert.match(error.message, /refused a forwarded request to /);
    assert.doesNotMatch(JSON.stringify(json), /CONNECT to/);
  });

  it('--config: the proxy and connection type overrides of the file apply, and a bad file exits 2', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'check-config-'));
    try {
      const file = join(dir, 'egress.json');
      await writeFile(file, JSON.stringify({ httpProxy: proxy.url, connectionTypes: { bridge: { route: 'proxy', ipBlocklist: false } } }));
      proxy.clear();
      const run = await runCheck(['--type', 'bridge', `${httpOrigin.url}/cfg`, '--config', file, ...STEP_TIMEOUT]);
      assertWorked(run);
      assert.equal(proxy.filterCalls({ method: 'GET' }).length, 1);
      await writeFile(file, JSON.stringify({ httpProxy: proxy.url, proxyRulez: [] }));
      const bad = await runCheck(['--json', `${httpOrigin.url}/`, '--config', file]);
      assert.equal(bad.status, 2);
      assert.match(bad.stderr, /^matrix-egress: config file \S+egress\.json at proxyRulez: unknown key\n$/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('origin certificate untrusted behind the proxy: exit 1 at "TLS to origin", reason unknown-ca, hint names --ca', async () => {
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: proxy.url });
    assertFailedAt(run, 'TLS to origin');
    assert.equal(stepStatus(run, 'CONNECT'), 'ok');
    assert.match(run.stdout, /TLS to origin \.+ failed .*certificate rejected: unknown-ca/);
    assert.match(run.stdout, /^ {4}issuer +CN=check-test origin CA$/m, 'the rejected certificate is shown');
    assert.match(run.stdout, /hint: .*--ca FILE.*the ca option or NODE_EXTRA_CA_CERTS/);
  });

  it('origin trusted through NODE_EXTRA_CA_CERTS instead of --ca', async () => {
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: proxy.url, NODE_EXTRA_CA_CERTS: originCaFile });
    assertWorked(run);
    assert.match(run.stdout, /NODE_EXTRA_CA_CERTS +\S+origin-ca\.pem \(1 certificate\)/);
  });

  it('a proxy that never answers: exit 1 at "CONNECT" after --timeout, the waiting step on screen meanwhile', async () => {
    const hanging = await createRecordingProxy({ fail: { connect: 'hang' } });
    try {
      const child = spawn(process.execPath, [BIN, 'check', '--type', 'oidc', `${httpsOrigin.url}/`, '--timeout', '2'], {
        env: { PATH: process.env.PATH ?? '', https_proxy: hanging.url },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      let stdout = '';
      let labelShownAt: number | undefined;
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        stdout += chunk;
        // The label is written when the step starts; its status only when it ends.
        if (labelShownAt === undefined && /proxy authentication \.+ $/.test(stdout)) labelShownAt = Date.now();
      });
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => (stderr += chunk));
      const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
      const endedAt = Date.now();
      clearTimeout(killer);
      const run: Run = { status, stdout, stderr, args: ['--timeout', '2'], env: {} };
      assertFailedAt(run, 'CONNECT');
      assert.equal(stepStatus(run, 'proxy authentication'), 'skipped');
      assert.match(stdout, /CONNECT \.+ failed +\d+ ms {2}no answer to CONNECT/);
      assert.match(stdout, /hint: The proxy did not answer within 2 s/);
      assert.ok(labelShownAt !== undefined, `the step label never appeared on its own:\n${stdout}`);
      assert.ok(endedAt - labelShownAt >= 1_500, `the label appeared only ${String(endedAt - labelShownAt)} ms before the end`);
    } finally {
      await hanging.close();
    }
  });

  it('an https:// proxy value for a plain-HTTP proxy: exit 1 at "TLS to proxy", hint says write http://', async () => {
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: proxy.url.replace('http:', 'https:') });
    assertFailedAt(run, 'TLS to proxy');
    assert.match(run.stdout, /hint: 127\.0\.0\.1:\d+ does not speak TLS: .*write http:\/\/ in https_proxy/);
  });
});

describe('matrix-egress check: TLS to an https:// proxy', { timeout: 120_000 }, () => {
  /** Check through a TLS recording proxy serving `material`, with extra arguments and environment. */
  async function viaTlsProxy(material: { cert: string; key: string }, args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
    const proxy = await createRecordingProxy({ tls: material });
    try {
      return await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, '--ca', originCaFile, ...args, ...STEP_TIMEOUT], { https_proxy: proxy.url, ...env });
    } finally {
      await proxy.close();
    }
  }

  it('trusted with --proxy-ca: exit 0, the proxy certificate shown', async () => {
    const run = await viaTlsProxy(PROXY_LEAF, ['--proxy-ca', proxyCaFile]);
    assertWorked(run);
    assert.match(run.stdout, /TLS to proxy \.+ ok +\d+ ms {2}TLSv1\.[23], certificate verified for 127\.0\.0\.1 against the system CAs and --proxy-ca/);
    assert.match(run.stdout, /^ {4}issuer +CN=check-test proxy CA$/m);
  });

  it('trusted through NODE_EXTRA_CA_CERTS: exit 0', async () => {
    const run = await viaTlsProxy(PROXY_LEAF, [], { NODE_EXTRA_CA_CERTS: proxyCaFile });
    assertWorked(run);
    assert.equal(stepStatus(run, 'TLS to proxy'), 'ok');
  });

  it('unknown CA: exit 1 at "TLS to proxy", reason unknown-ca, hint names proxyCa and NODE_EXTRA_CA_CERTS', async () => {
    const run = await viaTlsProxy(PROXY_LEAF, []);
    assertFailedAt(run, 'TLS to proxy');
    assert.match(run.stdout, /TLS to proxy \.+ failed .*certificate rejected: unknown-ca/);
    assert.match(run.stdout, /hint: Trust the CA that signed it \(CN=check-test proxy CA\): --proxy-ca FILE for this check, and for the homeserver the proxyCa option or NODE_EXTRA_CA_CERTS=FILE\./);
    const json = report(await viaTlsProxy(PROXY_LEAF, ['--json']));
    assert.deepEqual(
      { code: step(json, 'TLS to proxy').error?.code, reason: step(json, 'TLS to proxy').error?.reason },
      { code: 'ERR_EGRESS_PROXY_TLS', reason: 'unknown-ca' },
    );
    assert.equal(step(json, 'TLS to proxy').info?.issuer, 'CN=check-test proxy CA');
  });

  it('self-signed: exit 1 at "TLS to proxy", reason self-signed', async () => {
    const run = await viaTlsProxy(PROXY_SELF_SIGNED, []);
    assertFailedAt(run, 'TLS to proxy');
    assert.match(run.stdout, /certificate rejected: self-signed/);
    assert.match(run.stdout, /hint: Trust the proxy certificate itself: .*proxyCa option or NODE_EXTRA_CA_CERTS/);
  });

  it('hostname mismatch: exit 1 at "TLS to proxy", the names the certificate holds shown', async () => {
    const run = await viaTlsProxy(PROXY_WRONG_NAME, ['--proxy-ca', proxyCaFile]);
    assertFailedAt(run, 'TLS to proxy');
    assert.match(run.stdout, /certificate rejected: hostname-mismatch/);
    assert.match(run.stdout, /hint: The proxy certificate does not name 127\.0\.0\.1 \(it names DNS:proxy\.elsewhere\.example\)/);
  });

  it('expired: exit 1 at "TLS to proxy", reason expired, validity shown', async () => {
    const run = await viaTlsProxy(PROXY_EXPIRED, ['--proxy-ca', proxyCaFile]);
    assertFailedAt(run, 'TLS to proxy');
    assert.match(run.stdout, /certificate rejected: expired/);
    assert.match(run.stdout, /hint: The proxy certificate is valid only from \S+ to \S+: renew it on the proxy/);
    assert.match(run.stdout, /^ {4}notAfter +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
  });
});

describe('matrix-egress check: direct routes', { timeout: 60_000 }, () => {
  it('success by host name: DNS, TCP, TLS and HTTP status all ok', async () => {
    const run = await runCheck(['--type', 'oidc', `https://localhost:${String(httpsOrigin.port)}/direct`, '--ca', originCaFile, ...STEP_TIMEOUT]);
    assertWorked(run);
    assert.deepEqual(stepLines(run), [
      'configuration ok',
      'route ok',
      'DNS ok',
      'IP blocklist skipped',
      'TCP to origin ok',
      'TLS to origin ok',
      'HTTP status ok',
    ]);
    assert.match(run.stdout, /route \.+ ok +\d+ ms {2}direct: no https_proxy is configured/);
    assert.match(run.stdout, /works: it answered 200 directly/);
  });

  it('no_proxy sends it direct even with a proxy set', async () => {
    const json = report(await runCheck(['--type', 'oidc', `${httpOrigin.url}/`, '--json', ...STEP_TIMEOUT], { http_proxy: 'http://127.0.0.1:9', no_proxy: '127.0.0.1' }));
    assert.equal(json.ok, true);
    assert.equal(json.route, 'direct');
    assert.equal(json.proxy, null);
    assert.match(step(json, 'route').detail, /no_proxy entry "127\.0\.0\.1" matches/);
  });

  it('failure: exit 1 at "TCP to origin", the hint says why the route is direct', async () => {
    const port = await closedPort();
    const run = await runCheck(['--type', 'oidc', `https://127.0.0.1:${String(port)}/`, ...STEP_TIMEOUT]);
    assertFailedAt(run, 'TCP to origin');
    assert.match(run.stdout, /hint: Nothing accepts connections at 127\.0\.0\.1:\d+; it goes direct because no proxy is set for https:\/\/ URLs/);
    assert.equal(stepStatus(run, 'TLS to origin'), 'skipped');
  });
});

describe('matrix-egress check through a real Squid', { timeout: 120_000 }, () => {
  let squid: SquidInstance;
  let blockedOrigin: TestOrigin;

  before(async () => {
    blockedOrigin = await createTestOrigin({ tls: { ...ORIGIN_LEAF, ca: ORIGIN_CA.cert } });
    // Stock Debian rules (CONNECT only to SSL_ports), with the first origin's port added as an
    // operator would add 8448, Basic auth, and an https_port whose certificate NODE_EXTRA_CA_CERTS trusts.
    squid = await startSquid({
      stockSslPorts: true,
      allowConnectPorts: [httpsOrigin.port],
      auth: { username: CANARY_USER, password: CANARY_PASSWORD },
      https: { cert: PROXY_LEAF.cert, key: PROXY_LEAF.key },
    });
  });
  after(async () => {
    await squid.stop({ force: true });
    await blockedOrigin.close();
  });

  function withCredentials(url: string, password = CANARY_PASSWORD): string {
    return url.replace('://', `://${CANARY_USER}:${encodeURIComponent(password)}@`);
  }

  it('success through http_port: exit 0, Squid logs the tunnel for our user', async () => {
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/squid`, '--ca', originCaFile, ...STEP_TIMEOUT], { https_proxy: withCredentials(squid.url) });
    assertWorked(run);
    assert.match(run.stdout, /CONNECT \.+ ok +\d+ ms {2}200 Connection established/i);
    const entry = await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === `127.0.0.1:${String(httpsOrigin.port)}`);
    assert.equal(entry.status, 200);
    assert.equal(entry.user, CANARY_USER);
  });

  it('success through https_port trusted by NODE_EXTRA_CA_CERTS, and an http:// URL forwarded', async () => {
    const https = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/tls`, '--ca', originCaFile, ...STEP_TIMEOUT], {
      https_proxy: withCredentials(squid.httpsUrl ?? ''),
      NODE_EXTRA_CA_CERTS: proxyCaFile,
    });
    assertWorked(https);
    assert.equal(stepStatus(https, 'TLS to proxy'), 'ok');

    const http = await runCheck(['--type', 'oidc', `${httpOrigin.url}/fwd`, ...STEP_TIMEOUT], { http_proxy: withCredentials(squid.url) });
    assertWorked(http);
    assert.match(http.stdout, /forwarded request \.+ ok +\d+ ms {2}relayed by the proxy \(via: [^)]*squid/i);
  });

  it('wrong password: exit 1 at "proxy authentication", Squid\'s realm shown', async () => {
    const run = await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: withCredentials(squid.url, 'wrong-pw-8841') });
    assertFailedAt(run, 'proxy authentication');
    assert.match(run.stdout, /the proxy rejected the credentials from https_proxy \(realm "matrix-egress-test"\)/);
    assert.match(run.stdout, /hint: The proxy rejected the user name or password in https_proxy/);
  });

  it('CONNECT 403 to a port outside SSL_ports: exit 1 at "CONNECT", hint names SSL_ports and 8448', async () => {
    const run = await runCheck(['--type', 'oidc', `${blockedOrigin.url}/`, ...STEP_TIMEOUT], { https_proxy: withCredentials(squid.url) });
    assertFailedAt(run, 'CONNECT');
    assert.equal(stepStatus(run, 'proxy authentication'), 'ok');
    assert.match(run.stdout, /CONNECT \.+ failed +\d+ ms {2}403 Forbidden/);
    assert.match(run.stdout, /hint: The proxy refuses CONNECT to port \d+: a stock Squid allows CONNECT only to SSL_ports \(443\); .*acl SSL_ports port 443 \d+ \(federation needs 8448\)/);
    const json = report(await runCheck(['--type', 'oidc', `${blockedOrigin.url}/`, '--json', ...STEP_TIMEOUT], { https_proxy: withCredentials(squid.url) }));
    assert.equal(step(json, 'CONNECT').statusCode, 403);
    assert.equal(step(json, 'CONNECT').error?.code, 'ERR_EGRESS_PROXY_CONNECT');
  });
});

describe('matrix-egress check --json', { timeout: 60_000 }, () => {
  it('one JSON object with exactly the documented keys, and nothing else on stdout or stderr', async () => {
    const proxy = await createRecordingProxy();
    try {
      const ok = report(await runCheck(['--json', '--type', 'oidc', `${httpsOrigin.url}/j`, '--ca', originCaFile, ...STEP_TIMEOUT], { https_proxy: proxy.url }));
      assert.deepEqual(Object.keys(ok), ['ok', 'type', 'url', 'route', 'proxy', 'timeoutMs', 'ms', 'failedStep', 'hint', 'steps']);
      assert.deepEqual(
        { ok: ok.ok, type: ok.type, url: ok.url, route: ok.route, proxy: ok.proxy, timeoutMs: ok.timeoutMs, failedStep: ok.failedStep, hint: ok.hint },
        { ok: true, type: 'oidc', url: `${httpsOrigin.url}/j`, route: 'proxy', proxy: proxy.url, timeoutMs: 5000, failedStep: null, hint: null },
      );
      assert.deepEqual(
        ok.steps.map((s) => s.name),
        ['configuration', 'route', 'IP blocklist', 'TCP to proxy', 'TLS to proxy', 'proxy authentication', 'CONNECT', 'TLS to origin', 'HTTP status'],
      );
      for (const s of ok.steps) {
        assert.ok(CHECK_STEPS.includes(s.name as (typeof CHECK_STEPS)[number]), s.name);
        assert.ok(['ok', 'skipped'].includes(s.status), JSON.stringify(s));
        assert.ok(Number.isInteger(s.ms) && s.ms >= 0, JSON.stringify(s));
        assert.equal(typeof s.detail, 'string');
        assert.equal(s.error, undefined);
        for (const key of Object.keys(s)) assert.ok(['name', 'status', 'ms', 'detail', 'info', 'statusCode', 'error'].includes(key), key);
      }
      assert.equal(step(ok, 'HTTP status').statusCode, 200);
      assert.deepEqual(Object.keys(step(ok, 'TLS to origin').info ?? {}), ['subject', 'issuer', 'notBefore', 'notAfter', 'names', 'sha256']);

      const failed = report(await runCheck(['--type', 'oidc', `${httpsOrigin.url}/`, '--json', ...STEP_TIMEOUT], { https_proxy: `http://127.0.0.1:${String(await closedPort())}` }));
      assert.equal(failed.ok, false);
      assert.equal(failed.failedStep, 'TCP to proxy');
      const error = step(failed, 'TCP to proxy').error;
      assert.ok(error !== undefined);
      assert.deepEqual(Object.keys(error), ['code', 'message', 'systemCode', 'hint']);
      assert.equal(error.code, 'ERR_EGRESS_PROXY_UNREACHABLE');
      assert.equal(error.systemCode, 'ECONNREFUSED');
      assert.equal(failed.hint, error.hint);
      assert.deepEqual(
        failed.steps.filter((s) => s.status === 'skipped' && s.detail === 'not run: TCP to proxy failed').map((s) => s.name),
        ['TLS to proxy', 'proxy authentication', 'CONNECT', 'TLS to origin', 'HTTP status'],
      );
    } finally {
      await proxy.close();
    }
  });

  it('an invalid proxy variable is a configuration error: exit 2 with one line, as explain, redacted', async () => {
    for (const flags of [['--json'], []]) {
      const run = await runCheck([...flags, `${httpsOrigin.url}/`], { HTTPS_PROXY: `socks4://${CANARY_USER}:${CANARY_PASSWORD}@proxy.internal:1080` });
      assert.equal(run.status, 2);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /^matrix-egress: HTTPS_PROXY \("socks4:\/\/\*\*\*@proxy\.internal:1080"\): unsupported proxy scheme[^\n]*\n$/);
    }
  });
});

describe('matrix-egress check: usage errors exit 2', { timeout: 60_000 }, () => {
  const cases: { args: string[]; message: RegExp }[] = [
    { args: [], message: /check: missing <url>/ },
    { args: ['--type', 'carrier_pigeon', 'https://x.example/'], message: /Unknown connection type "carrier_pigeon"/ },
    { args: ['matrix.example.org'], message: /Invalid URL "matrix\.example\.org"/ },
    { args: ['ftp://files.example/'], message: /Unsupported URL scheme "ftp:"/ },
    { args: ['--timeout', 'soon', 'https://x.example/'], message: /--timeout must be a number of seconds/ },
    { args: ['--timeout', '0', 'https://x.example/'], message: /--timeout must be a number of seconds/ },
    { args: ['--ca', '/nonexistent/ca.pem', 'https://x.example/'], message: /cannot read the --ca file "\/nonexistent\/ca\.pem" \(ENOENT\)/ },
    { args: ['--verbose', 'https://x.example/'], message: /check: unknown option --verbose/ },
    { args: [`--password=${CANARY_PASSWORD}`, 'https://x.example/'], message: /check: unknown option --password/ },
    { args: ['https://a.example/', 'https://b.example/'], message: /check: unexpected argument/ },
    { args: ['--json', `https://${CANARY_USER}:${CANARY_PASSWORD}@x.example/`, 'extra'], message: /unexpected argument "extra"/ },
  ];
  for (const { args, message } of cases) {
    it(`check ${args.join(' ')}`, async () => {
      const run = await runCheck(args, { https_proxy: `http://${CANARY_USER}:${CANARY_PASSWORD}@127.0.0.1:9` });
      assert.equal(run.status, 2, render(run));
      assert.equal(run.stdout, '', render(run));
      assert.match(run.stderr, /^matrix-egress: [^\n]+ \(see matrix-egress check --help\)\n$|^matrix-egress: [^\n]+\n$/, render(run));
      assert.match(run.stderr, message, render(run));
    });
  }

  it('a --ca file without a certificate, or with a broken one', async () => {
    const file = join(dir, 'not-a-cert.pem');
    await writeFile(file, 'hello\n');
    const run = await runCheck(['--ca', file, 'https://x.example/']);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /the --ca file "[^"]+not-a-cert\.pem" holds no PEM certificate/);

    const broken = join(dir, 'broken.pem');
    await writeFile(broken, `${PROXY_CA.cert}-----BEGIN CERTIFICATE-----\nMIIBroken\n-----END CERTIFICATE-----\n`);
    const second = await runCheck(['--proxy-ca', broken, 'https://x.example/']);
    assert.equal(second.status, 2);
    assert.match(second.stderr, /certificate 2 in the --proxy-ca file "[^"]+broken\.pem" is not valid PEM/);
  });

  it('--help prints the usage on stdout, exit 0', async () => {
    const run = await runCheck(['--help']);
    assert.equal(run.status, 0);
    assert.match(run.stdout, /^Usage: matrix-egress check \[--type <type>\] <url>/);
    assert.equal(run.stderr, '');
  });
});
