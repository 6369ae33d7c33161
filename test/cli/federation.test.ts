// `matrix-egress federation <server_name>`: in-process against a loopback "internet" (host map, SRV
// table), and the built bin for usage errors.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { runFederation, type FederationReport } from '../../src/cli/federation.js';
import type { CliIo } from '../../src/cli/output.js';
import { createHostsLookup } from '../../src/testing/hosts.js';
import { createSrvResolver } from '../../src/testing/srv-resolver.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { FederationNet, json, privilegedPortsUsable } from '../support/federation-net.js';
import { runBin } from '../support/cli.js';

function capture(env: Record<string, string> = {}): { io: CliIo; stdout: () => string; stderr: () => string } {
  let out = '';
  let err = '';
  return {
    io: { stdout: { write: (text: string) => (out += text) }, stderr: { write: (text: string) => (err += text) }, env },
    stdout: () => out,
    stderr: () => err,
  };
}

const skip = (await privilegedPortsUsable()) ? false : 'needs to listen on port 443 of a loopback address';

describe('matrix-egress federation', { skip }, () => {
  const net = new FederationNet();
  const srv = createSrvResolver();
  let proxy: RecordingProxy;

  before(async () => {
    await net.serve('example.test', 443);
    await net.serve('target.example.test', 8450, {
      certNames: ['delegated.example.test'],
      handler: (_req, res) => {
        json(res, 200, { server_name: 'example.test', verify_keys: {} });
      },
    });
    net.wellKnown.set('example.test', (_req, res) => {
      json(res, 200, { 'm.server': 'delegated.example.test' });
    });
    srv.set('_matrix-fed._tcp.delegated.example.test', [{ name: 'target.example.test', port: 8450, priority: 0, weight: 0 }]);
    proxy = await createRecordingProxy({ hosts: net.hosts });
  });

  after(async () => {
    await proxy.close();
    await net.close();
  });

  const options = () => ({ lookup: createHostsLookup(net.hosts).lookup, ipAllowlist: ['127.0.0.0/8'], federation: { resolveSrv: srv.resolveSrv } });

  it('prints each discovery step, the routes, TLS name and Host, then the key request', async () => {
    const run = capture({ https_proxy: proxy.url });
    const status = await runFederation(['example.test', '--ca', '/dev/null'], run.io, { ...options(), ca: net.ca.cert });
    const out = run.stdout();
    assert.equal(status, 0, out + run.stderr());
    assert.match(out, /\.well-known\s+GET https:\/\/example\.test\/\.well-known\/matrix\/server/);
    assert.match(out, /route\s+proxy: federation traffic to https URLs goes through https_proxy/);
    assert.match(out, /answer\s+200, m\.server "delegated\.example\.test"/);
    assert.match(out, /SRV _matrix-fed\._tcp\.delegated\.example\.test\s+target\.example\.test:8450 \(priority 0, weight 0\)/);
    assert.match(out, /decided by\s+well-known-srv-matrix-fed/);
    assert.match(out, /targets\s+target\.example\.test:8450\s+proxy/);
    assert.match(out, /TLS name \(SNI\)\s+delegated\.example\.test/);
    assert.match(out, /Host\s+delegated\.example\.test/);
    assert.match(out, /status\s+200 in \d+ ms/);
    assert.match(out, /server_name\s+example\.test\n/);
    assert.deepEqual(proxy.calls().map((call) => call.target), ['example.test:443', 'target.example.test:8450']);
  });

  it('--json prints one report', async () => {
    const run = capture({});
    const status = await runFederation(['example.test', '--json'], run.io, { ...options(), ca: net.ca.cert });
    assert.equal(status, 0);
    const lines = run.stdout().trimEnd().split('\n');
    assert.equal(lines.length, 1);
    const report = JSON.parse(lines[0] ?? '') as FederationReport;
    assert.equal(report.ok, true);
    assert.equal(report.resolution?.source, 'well-known-srv-matrix-fed');
    assert.equal(report.wellKnownRoute?.route, 'direct');
    assert.equal(report.check?.status, 200);
    assert.equal(report.check.keyServerName, 'example.test');
  });

  it('--config: the proxy of the configuration file carries discovery and the key request', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'federation-config-'));
    try {
      const file = join(folder, 'egress.json');
      writeFileSync(file, JSON.stringify({ httpsProxy: proxy.url, federation: { wellKnownTimeout: 5000 } }));
      proxy.clear();
      // No proxy variable at all: only the file names the proxy.
      const run = capture({});
      const status = await runFederation(['example.test', '--json', '--config', file], run.io, { ...options(), ca: net.ca.cert });
      assert.equal(status, 0, run.stdout() + run.stderr());
      const report = JSON.parse(run.stdout()) as FederationReport;
      assert.equal(report.wellKnownRoute?.route, 'proxy');
      assert.match(report.wellKnownRoute.reason, /config file/);
      assert.deepEqual(proxy.calls().map((call) => call.target), ['example.test:443', 'target.example.test:8450']);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('an untrusted .well-known is not used; a failing request exits 1 with the reason', async () => {
    const run = capture({});
    // Without the test CA the server certificate is not trusted.
    const status = await runFederation(['example.test', '--timeout', '5'], run.io, options());
    assert.equal(status, 1);
    assert.match(run.stdout(), /answer\s+not used: UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    assert.match(run.stdout(), /decided by\s+default-8448/);
    assert.match(run.stdout(), /request\s+FAILED after \d+ ms: connect ECONNREFUSED/);
  });
});

describe('matrix-egress federation (bin)', () => {
  it('an invalid server name is a usage error: exit 2, one line on stderr', () => {
    const run = runBin(['federation', 'bad name!']);
    assert.equal(run.status, 2);
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^matrix-egress: Invalid Matrix server name "bad name!": [^\n]+\n$/);
  });

  it('--config with a bad file is a configuration error: exit 2, naming the JSON path', () => {
    const folder = mkdtempSync(join(tmpdir(), 'federation-config-'));
    try {
      const file = join(folder, 'egress.json');
      writeFileSync(file, JSON.stringify({ federation: { cacheSize: -1 } }));
      const run = runBin(['federation', 'example.test', '--config', file]);
      assert.equal(run.status, 2, run.stdout + run.stderr);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /federation\.cacheSize/);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it('--help describes the command; a missing argument is a usage error', () => {
    const help = runBin(['federation', '--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage: matrix-egress federation <server_name>/);
    const missing = runBin(['federation']);
    assert.equal(missing.status, 2);
  });
});
