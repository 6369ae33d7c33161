// Issue #12: a no_proxy shared with other tools never stops the homeserver from starting. Every value
// of a corpus written the way deployment files write them compiles, routes as the routing rules say,
// and warns once per entry it skips; strictNoProxy turns those entries back into errors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileEgressConfig, configToJSON, type EgressLogger } from '../../src/config/compile.js';
import { route } from '../../src/policy/route.js';
import { ProxyConfigError } from '../../src/errors.js';
import { loadVectors } from '../support/vectors.js';

interface CorpusRow {
  origin: string;
  noProxy: string;
  direct: string[];
  proxy: string[];
  skipped: number;
}

const PROXY = 'http://127.0.0.1:3128';

function recordingLogger(): EgressLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, warn: (message: string) => lines.push(message) };
}

describe('issue #12: no_proxy values from real deployments all start', () => {
  const { rows } = loadVectors('no-proxy-corpus') as { rows: CorpusRow[] };

  it('the corpus holds at least 100 values from several kinds of deployment files', () => {
    assert.ok(rows.length >= 100, String(rows.length));
    assert.ok(new Set(rows.map((r) => r.origin)).size >= 10);
  });

  for (const row of rows) {
    it(`[${row.origin}] no_proxy=${JSON.stringify(row.noProxy)}`, () => {
      const logger = recordingLogger();
      const config = compileEgressConfig({ env: { http_proxy: PROXY, https_proxy: PROXY, no_proxy: row.noProxy }, logger });
      assert.equal(config.noProxy.skipped.length, row.skipped, JSON.stringify(config.noProxy.skipped));
      assert.equal(logger.lines.length, row.skipped, 'one warning per skipped entry');
      for (const line of logger.lines) assert.match(line, /^matrix-egress: no_proxy entry \d+ \(".*"\) skipped: /);
      for (const url of row.direct) {
        const decision = route(config, 'push', url);
        assert.equal(decision.route, 'direct', `no_proxy=${JSON.stringify(row.noProxy)} target=${url}: ${decision.reason}`);
      }
      for (const url of row.proxy) {
        const decision = route(config, 'push', url);
        assert.equal(decision.route, 'proxy', `no_proxy=${JSON.stringify(row.noProxy)} target=${url}: ${decision.reason}`);
      }
      if (row.skipped > 0) {
        assert.throws(
          () => compileEgressConfig({ env: { https_proxy: PROXY, no_proxy: row.noProxy }, strictNoProxy: true, logger }),
          (error: unknown) => error instanceof ProxyConfigError && /^no_proxy entry \d+/.test(error.message),
        );
      } else {
        compileEgressConfig({ env: { https_proxy: PROXY, no_proxy: row.noProxy }, strictNoProxy: true, logger });
      }
    });
  }
});

describe('issue #12: tolerant and strict no_proxy at the configuration level', () => {
  it('logs one warning per skipped entry through the logger option, once per configuration', () => {
    const logger = recordingLogger();
    const config = compileEgressConfig({ env: {}, noProxy: 'localhost, 2.3.4, 10.0.0.0/33, 10.*', logger });
    assert.deepEqual(logger.lines, [
      'matrix-egress: option noProxy entry 2 ("2.3.4") skipped: an incomplete IPv4 address is ambiguous; write a full address, a range (2.3.4.0/24) or a prefix (2.3.4.*)',
      'matrix-egress: option noProxy entry 3 ("10.0.0.0/33") skipped: the CIDR prefix length must be from 0 to 32 (got 33)',
    ]);
    assert.deepEqual(
      config.noProxy.rules.map((r) => r.entry),
      ['localhost', '10.*'],
    );
    assert.equal(config.sources.noProxy, 'option noProxy');
    const json = configToJSON(config) as { noProxy: { skipped: { position: number; entry: string; problem: string }[] } };
    assert.deepEqual(
      json.noProxy.skipped.map((s) => s.position),
      [2, 3],
    );
  });

  it('a list where every entry is skipped still names its source', () => {
    const config = compileEgressConfig({ env: { NO_PROXY: '2.3.4' }, logger: recordingLogger() });
    assert.equal(config.noProxy.isEmpty, true);
    assert.equal(config.sources.noProxy, 'NO_PROXY');
  });

  it('strictNoProxy refuses the first skipped entry; a boolean is required', () => {
    assert.throws(() => compileEgressConfig({ env: { no_proxy: 'ok.com,10.0.0.0/33' }, strictNoProxy: true }), /^ProxyConfigError: no_proxy entry 2 \("10.0.0.0\/33"\): the CIDR prefix length/);
    assert.throws(() => compileEgressConfig({ env: {}, strictNoProxy: 'yes' as unknown as boolean }), /option strictNoProxy: must be a boolean/);
    assert.equal(compileEgressConfig({ env: { no_proxy: '10.*,<local>' }, strictNoProxy: true }).noProxy.rules.length, 2);
  });

  it('control characters stay a configuration error without strictNoProxy', () => {
    assert.throws(() => compileEgressConfig({ env: { no_proxy: 'a.com,b\u001b.com' } }), /^ProxyConfigError: no_proxy entry 2 \("b\?\.com"\): control characters/);
  });

  it('proxy URLs stay fail-closed', () => {
    assert.throws(() => compileEgressConfig({ env: { https_proxy: 'http://proxy:3128/path', no_proxy: '2.3.4' }, logger: recordingLogger() }), ProxyConfigError);
  });
});
