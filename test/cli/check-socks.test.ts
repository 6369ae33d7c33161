// `matrix-egress check` through a SOCKS5 proxy (the kit's recording SOCKS proxy, on loopback): the
// SOCKS steps in order, each failure reported at its own step with a typed code, no credentials shown.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createTestCertificateAuthority } from '../../src/testing/certificates.js';
import { createRecordingSocksProxy, type RecordingSocksProxy } from '../../src/testing/socks-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { BIN } from '../support/cli.js';

const USER = 'socks-check-user';
const PASSWORD = 'socks-check-pw-3381';

interface StepJson {
  readonly name: string;
  readonly status: 'ok' | 'failed' | 'skipped';
  readonly detail: string;
  readonly error?: { readonly code: string; readonly message: string; readonly systemCode?: string; readonly hint: string };
}

interface ReportJson {
  readonly ok: boolean;
  readonly route: string | null;
  readonly proxy: string | null;
  readonly failedStep: string | null;
  readonly steps: readonly StepJson[];
}

/** Run `check --json` without blocking this process (the SOCKS proxy under test lives in it). */
function check(args: readonly string[], env: Record<string, string>): Promise<{ status: number | null; json: ReportJson; raw: string }> {
  assert.ok(existsSync(BIN), `${BIN} is missing: run "npm run build" first`);
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'check', '--json', '--timeout', '3', ...args], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      const raw = stdout + stderr;
      assert.ok(!raw.includes(PASSWORD) && !raw.includes(USER), raw);
      const code = (error as { code?: unknown } | null)?.code;
      resolve({ status: error === null ? 0 : typeof code === 'number' ? code : null, json: JSON.parse(stdout) as ReportJson, raw });
    });
  });
}

function steps(json: ReportJson): string[] {
  return json.steps.map((s) => `${s.name} ${s.status}`);
}

function step(json: ReportJson, name: string): StepJson {
  const found = json.steps.find((s) => s.name === name);
  assert.ok(found !== undefined, `no step ${name}: ${JSON.stringify(json)}`);
  return found;
}

describe('matrix-egress check through a SOCKS5 proxy', { timeout: 120_000 }, () => {
  let dir: string;
  let caFile: string;
  let socks: RecordingSocksProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'matrix-egress-check-socks-'));
    const ca = createTestCertificateAuthority();
    caFile = join(dir, 'ca.pem');
    await writeFile(caFile, ca.cert);
    httpsOrigin = await createTestOrigin({ tls: { ...ca.issue({ hosts: ['localhost', 'origin.test'] }), ca: ca.cert } });
    httpOrigin = await createTestOrigin();
    socks = await createRecordingSocksProxy({ hosts: { 'origin.test': '127.0.0.1' }, auth: { username: USER, password: PASSWORD } });
  });

  after(async () => {
    await socks.setFailure(undefined);
    await Promise.all([socks.close(), httpsOrigin.close(), httpOrigin.close()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('socks5h, https: every SOCKS step ok, the name sent, TLS to the origin verified', async () => {
    const env = { HTTPS_PROXY: socks.urlWithCredentials(USER, PASSWORD, 'socks5h:') };
    const run = await check(['--type', 'oidc', `https://origin.test:${String(httpsOrigin.port)}/x`, '--ca', caFile], env);
    assert.equal(run.status, 0, run.raw);
    assert.deepEqual(steps(run.json), [
      'configuration ok',
      'route ok',
      'IP blocklist skipped',
      'TCP to proxy ok',
      'SOCKS greeting ok',
      'proxy authentication ok',
      'SOCKS CONNECT ok',
      'TLS to origin ok',
      'HTTP status ok',
    ]);
    assert.match(step(run.json, 'SOCKS greeting').detail, /username\/password/);
    assert.match(step(run.json, 'SOCKS CONNECT').detail, /tunnel to origin\.test:\d+ open/);
    assert.equal(run.json.proxy, socks.socks5hUrl);
    assert.equal(socks.lastCall()?.name, 'origin.test');
  });

  it('a proxy rule from --config, with its own caFile: the rule route, TLS verified against the rule CA', async () => {
    const config = join(dir, 'egress.json');
    await writeFile(config, JSON.stringify({ proxyRules: [{ hosts: '*.test', proxy: socks.urlWithCredentials(USER, PASSWORD, 'socks5h:'), caFile: 'ca.pem' }] }));
    const run = await check(['--type', 'federation', `https://origin.test:${String(httpsOrigin.port)}/`, '--config', config], {});
    assert.equal(run.status, 0, run.raw);
    assert.equal(run.json.proxy, socks.socks5hUrl);
    assert.match(step(run.json, 'route').detail, /proxyRules\[0\] \(hosts "\*\.test"\)/);
    assert.equal(step(run.json, 'TLS to origin').status, 'ok');
  });

  it('socks5, http: the local DNS step, the address asked for, origin-form GET', async () => {
    const env = { HTTP_PROXY: socks.urlWithCredentials(USER, PASSWORD, 'socks5:') };
    httpOrigin.clear();
    const run = await check(['--type', 'oidc', `http://localhost:${String(httpOrigin.port)}/page?q=1`], env);
    assert.equal(run.status, 0, run.raw);
    assert.deepEqual(steps(run.json), [
      'configuration ok',
      'route ok',
      'DNS ok',
      'IP blocklist skipped',
      'TCP to proxy ok',
      'SOCKS greeting ok',
      'proxy authentication ok',
      'SOCKS CONNECT ok',
      'HTTP status ok',
    ]);
    assert.ok(socks.lastCall()?.address !== undefined && socks.lastCall()?.name === undefined);
    assert.equal(httpOrigin.lastCall()?.url, '/page?q=1');
  });

  it('socks5 with a blocklisted answer fails at "IP blocklist" before the proxy is reached', async () => {
    const before = socks.connections;
    const run = await check(['--type', 'push', `http://localhost:${String(httpOrigin.port)}/`], { HTTP_PROXY: socks.socks5Url });
    assert.equal(run.status, 1, run.raw);
    assert.equal(run.json.failedStep, 'IP blocklist');
    assert.equal(step(run.json, 'IP blocklist').error?.code, 'ERR_EGRESS_BLOCKED_DESTINATION');
    assert.equal(socks.connections, before);
  });

  it('a wrong password fails at "proxy authentication"', async () => {
    const run = await check(['--type', 'oidc', `https://origin.test:${String(httpsOrigin.port)}/`, '--ca', caFile], {
      HTTPS_PROXY: socks.urlWithCredentials(USER, 'wrong-password-1', 'socks5h:'),
    });
    assert.equal(run.status, 1, run.raw);
    assert.equal(run.json.failedStep, 'proxy authentication');
    assert.equal(step(run.json, 'proxy authentication').error?.code, 'ERR_EGRESS_PROXY_AUTH');
    assert.ok(!run.raw.includes('wrong-password-1'));
    assert.equal(step(run.json, 'SOCKS CONNECT').status, 'skipped');
  });

  it('a refused CONNECT fails at "SOCKS CONNECT" naming the reply', async () => {
    await socks.setFailure({ connect: { reply: 0x05 } });
    try {
      const run = await check(['--type', 'oidc', `https://origin.test:${String(httpsOrigin.port)}/`, '--ca', caFile], {
        HTTPS_PROXY: socks.urlWithCredentials(USER, PASSWORD, 'socks5h:'),
      });
      assert.equal(run.status, 1, run.raw);
      assert.equal(run.json.failedStep, 'SOCKS CONNECT');
      const failed = step(run.json, 'SOCKS CONNECT');
      assert.equal(failed.error?.code, 'ERR_EGRESS_PROXY_CONNECT');
      assert.match(failed.error.message, /SOCKS reply 0x05 connection refused/);
      assert.equal(step(run.json, 'proxy authentication').status, 'ok');
    } finally {
      await socks.setFailure(undefined);
    }
  });

  it('an answer that is not SOCKS fails at "SOCKS greeting"', async () => {
    await socks.setFailure({ connect: 'garbage' });
    try {
      const run = await check(['--type', 'oidc', `https://origin.test:${String(httpsOrigin.port)}/`], { HTTPS_PROXY: socks.socks5hUrl });
      assert.equal(run.status, 1, run.raw);
      assert.equal(run.json.failedStep, 'SOCKS greeting');
      assert.equal(step(run.json, 'SOCKS greeting').error?.code, 'ERR_EGRESS_PROXY_PROTOCOL');
    } finally {
      await socks.setFailure(undefined);
    }
  });

  it('an untrusted origin certificate fails at "TLS to origin"', async () => {
    const run = await check(['--type', 'oidc', `https://origin.test:${String(httpsOrigin.port)}/`], { HTTPS_PROXY: socks.urlWithCredentials(USER, PASSWORD, 'socks5h:') });
    assert.equal(run.status, 1, run.raw);
    assert.equal(run.json.failedStep, 'TLS to origin');
  });
});
