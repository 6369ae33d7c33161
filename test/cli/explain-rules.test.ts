// explain and env show the proxy rule that decides a route, from a --config file (issue #14); the
// rule's proxy credentials never appear.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBin } from '../support/cli.js';

const SECRET = 'tor-rule-pw-5520';

describe('matrix-egress explain and env with proxyRules from --config', () => {
  let dir = '';
  let config = '';

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'explain-rules-'));
    config = join(dir, 'egress.json');
    writeFileSync(
      config,
      JSON.stringify({
        proxyRules: [
          { hosts: '*.onion', proxy: `socks5h://tor:${SECRET}@127.0.0.1:9050` },
          { hosts: '*.i2p', proxy: 'http://127.0.0.1:4444' },
          { hosts: 'partner.example', proxy: null },
        ],
      }),
    );
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const env = { https_proxy: 'http://proxy.internal:3128', no_proxy: '*.onion' };

  it('explain --json: the .onion rule wins over no_proxy, with its index, hosts and reason code', () => {
    const run = runBin(['explain', 'federation', 'https://matrixabc.onion/_matrix/key/v2/server', '--json', '--config', config], env);
    assert.equal(run.status, 0, run.stderr);
    const json = JSON.parse(run.stdout) as Record<string, unknown>;
    assert.equal(json.route, 'proxy');
    assert.equal(json.proxy, 'socks5h://127.0.0.1:9050');
    assert.equal(json.reasonCode, 'proxy-rule');
    assert.deepEqual(json.rule, { index: 0, hosts: '*.onion', entry: '*.onion' });
    assert.ok(!run.stdout.includes(SECRET) && !run.stdout.includes('tor:'));
  });

  it('explain --json: a name through socks5:// is checked after DNS (resolved here), through socks5h:// it is not', () => {
    const viaSocks5 = runBin(['explain', 'federation', 'https://abc.example/', '--json'], { https_proxy: 'socks5://127.0.0.1:1080' });
    assert.equal(viaSocks5.status, 0, viaSocks5.stderr);
    assert.deepEqual((JSON.parse(viaSocks5.stdout) as { ipBlocklist: unknown }).ipBlocklist, { verdict: 'after-dns', range: null });
    const viaSocks5h = runBin(['explain', 'federation', 'https://abc.example/', '--json'], { https_proxy: 'socks5h://127.0.0.1:1080' });
    assert.equal(viaSocks5h.status, 0, viaSocks5h.stderr);
    assert.deepEqual((JSON.parse(viaSocks5h.stdout) as { ipBlocklist: unknown }).ipBlocklist, { verdict: 'not-checked', range: null });
  });

  it('explain: a direct rule and the scheme proxy for everything else', () => {
    const direct = JSON.parse(runBin(['explain', 'push', 'https://api.partner.example/', '--json', '--config', config], env).stdout) as Record<string, unknown>;
    assert.equal(direct.route, 'direct');
    assert.equal(direct.reasonCode, 'proxy-rule-direct');
    assert.deepEqual(direct.rule, { index: 2, hosts: 'partner.example', entry: 'partner.example' });
    const normal = JSON.parse(runBin(['explain', 'push', 'https://matrix.org/', '--json', '--config', config], env).stdout) as Record<string, unknown>;
    assert.equal(normal.reasonCode, 'proxy');
    assert.equal(normal.rule, null);
    const human = runBin(['explain', 'media', 'http://stats.i2p/', '--config', config], env);
    assert.match(human.stdout, /^rule +proxyRules\[1\] hosts "\*\.i2p" \(entry "\*\.i2p" matched\)$/m);
    assert.match(human.stdout, /^proxy +http:\/\/127\.0\.0\.1:4444/m);
  });

  it('env lists the rules in order, redacted, in text and JSON', () => {
    const human = runBin(['env', '--config', config], env);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /^proxy rules +0 {2}\*\.onion → socks5h:\/\/127\.0\.0\.1:9050 \(with credentials\)$/m);
    assert.match(human.stdout, /^ +1 {2}\*\.i2p → http:\/\/127\.0\.0\.1:4444$/m);
    assert.match(human.stdout, /^ +2 {2}partner\.example → direct$/m);
    const json = JSON.parse(runBin(['env', '--json', '--config', config], env).stdout) as { proxyRules: unknown };
    assert.deepEqual(json.proxyRules, [
      { hosts: '*.onion', proxy: { url: 'socks5h://127.0.0.1:9050', credentials: true, source: 'option proxyRules[0].proxy' }, ca: 0 },
      { hosts: '*.i2p', proxy: { url: 'http://127.0.0.1:4444', credentials: false, source: 'option proxyRules[1].proxy' }, ca: 0 },
      { hosts: 'partner.example', proxy: null, ca: 0 },
    ]);
    assert.ok(!human.stdout.includes(SECRET));
  });

  it('a socks4 rule is refused naming the file and the JSON path, without the password', () => {
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ proxyRules: [{ hosts: '*.onion', proxy: `socks4://tor:${SECRET}@127.0.0.1:9050` }] }));
    const run = runBin(['explain', 'federation', 'https://x.onion/', '--config', join(dir, 'bad.json')], env);
    assert.equal(run.status, 2);
    assert.match(run.stderr, /at proxyRules\[0\]\.proxy \("socks4:\/\/\*\*\*@127\.0\.0\.1:9050"\): unsupported proxy scheme "socks4:"/);
    assert.ok(!run.stderr.includes(SECRET));
  });
});
