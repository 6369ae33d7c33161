import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { compileEgressConfig, type ProxyRuleOptions } from '../../../src/config/compile.js';
import { route } from '../../../src/policy/route.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../../src/policy/connection-types.js';
import { ProxyConfigError } from '../../../src/errors.js';

const env = { http_proxy: 'http://hp.example:3128', https_proxy: 'http://sp.example:3129', no_proxy: 'internal.test,*.onion' };
const rules: ProxyRuleOptions[] = [
  { hosts: '*.onion', proxy: 'socks5h://tor:s3cret-tor@127.0.0.1:9050' },
  { hosts: '*.i2p', proxy: 'http://127.0.0.1:4444' },
  { hosts: 'partner.example, 192.0.2.0/24', proxy: null },
  { hosts: '*.onion, *.example', proxy: 'socks5://127.0.0.1:1080' },
];

describe('proxyRules (SPEC §9)', () => {
  const config = compileEgressConfig({ env, proxyRules: rules });

  for (const type of PROXIED_CONNECTION_TYPES) {
    it(`${type}: the first matching rule wins over no_proxy and the scheme's proxy`, () => {
      for (const scheme of ['https', 'http']) {
        const onion = route(config, type, `${scheme}://abcdefghijklmnop.onion/_matrix/key/v2/server`);
        assert.equal(onion.route, 'proxy');
        assert.equal(onion.proxy?.url, 'socks5h://127.0.0.1:9050');
        assert.equal(onion.reasonCode, 'proxy-rule');
        assert.deepEqual(onion.rule, { index: 0, hosts: '*.onion', entry: '*.onion' });
        assert.equal(onion.matched, null);
      }
      const i2p = route(config, type, 'http://stats.i2p/');
      assert.equal(i2p.proxy?.url, 'http://127.0.0.1:4444');
      assert.equal(i2p.rule?.index, 1);
    });
    it(`${type}: a rule with proxy null sends its hosts direct, naming the rule`, () => {
      for (const url of ['https://partner.example/', 'https://api.partner.example/', 'https://192.0.2.7/']) {
        const decision = route(config, type, url);
        assert.equal(decision.route, 'direct', url);
        assert.equal(decision.reasonCode, 'proxy-rule-direct');
        assert.equal(decision.rule?.index, 2);
        assert.match(decision.reason, /proxyRules\[2\] \(hosts "partner\.example, 192\.0\.2\.0\/24"\)/);
      }
    });
    it(`${type}: hosts no rule matches keep their route`, () => {
      const normal = route(config, type, 'https://matrix.org/');
      assert.equal(normal.reasonCode, 'proxy');
      assert.equal(normal.rule, null);
      assert.equal(route(config, type, 'https://a.internal.test/').reasonCode, 'no-proxy-match');
    });
  }

  it('the later rule applies to hosts the earlier ones do not match', () => {
    const decision = route(config, 'media', 'https://media.example/');
    assert.equal(decision.proxy?.url, 'socks5://127.0.0.1:1080');
    assert.deepEqual(decision.rule, { index: 3, hosts: '*.onion, *.example', entry: '*.example' });
  });

  for (const type of DIRECT_CONNECTION_TYPES) {
    it(`${type}: rules never apply to the always-direct types`, () => {
      const decision = route(config, type, 'https://abcdefghijklmnop.onion/');
      assert.equal(decision.reasonCode, 'always-direct');
      assert.equal(decision.rule, null);
    });
  }

  it('rules do not apply to a type configured to go direct', () => {
    const direct = compileEgressConfig({ env, proxyRules: rules, connectionTypes: { push: { route: 'direct' } } });
    assert.equal(route(direct, 'push', 'https://x.onion/').reasonCode, 'type-override-direct');
    const custom = compileEgressConfig({ env, proxyRules: rules, connectionTypes: { bridge: { route: 'proxy' } } });
    assert.equal(route(custom, 'bridge', 'https://x.onion/').reasonCode, 'proxy-rule');
  });

  it('apply with no scheme proxy configured at all', () => {
    const only = compileEgressConfig({ env: {}, proxyRules: [{ hosts: '*.onion', proxy: 'socks5h://127.0.0.1:9050' }] });
    assert.equal(route(only, 'federation', 'https://x.onion/').route, 'proxy');
    assert.equal(route(only, 'federation', 'https://matrix.org/').reasonCode, 'no-proxy-configured');
  });

  it('never show rule credentials in the decision, the config or JSON', () => {
    const decision = route(config, 'federation', 'https://x.onion/');
    for (const text of [JSON.stringify(decision), inspect(decision, { depth: 6 }), inspect(config, { depth: 6 }), JSON.stringify(config)]) {
      assert.ok(!text.includes('s3cret-tor') && !text.includes('tor:'), text);
    }
    const json = JSON.parse(JSON.stringify(config)) as { proxyRules: unknown };
    assert.deepEqual((json.proxyRules as unknown[])[0], {
      hosts: '*.onion',
      proxy: { url: 'socks5h://127.0.0.1:9050', credentials: true, source: 'option proxyRules[0].proxy' },
      ca: 0,
    });
  });

  it('is compiled once: mutating the option afterwards changes nothing', () => {
    const mutable: { hosts: string; proxy: string | null }[] = [{ hosts: '*.onion', proxy: 'socks5h://127.0.0.1:9050' }];
    const compiled = compileEgressConfig({ env: {}, proxyRules: mutable });
    mutable[0] = { hosts: '*', proxy: null };
    mutable.push({ hosts: '*', proxy: null });
    assert.equal(route(compiled, 'push', 'https://x.onion/').reasonCode, 'proxy-rule');
    assert.equal(compiled.proxyRules.length, 1);
    assert.ok(Object.isFrozen(compiled.proxyRules) && Object.isFrozen(compiled.proxyRules[0]));
  });

  const bad: { name: string; rules: unknown; path: RegExp }[] = [
    { name: 'not an array', rules: { hosts: '*.onion' }, path: /^option proxyRules: must be an array/ },
    { name: 'a rule that is not an object', rules: ['*.onion'], path: /^option proxyRules\[0\]: must be an object/ },
    { name: 'unknown key', rules: [{ hosts: 'a', proxy: null, via: 'x' }], path: /^option proxyRules\[0\]\.via: unknown option/ },
    { name: 'missing hosts', rules: [{ proxy: null }], path: /^option proxyRules\[0\]\.hosts: must be a non-empty string/ },
    { name: 'empty hosts', rules: [{ hosts: ' ', proxy: null }], path: /^option proxyRules\[0\]\.hosts/ },
    { name: 'bad hosts entry', rules: [{ hosts: 'ok.example', proxy: null }, { hosts: '10.0.0.0/33', proxy: null }], path: /^option proxyRules\[1\]\.hosts/ },
    { name: 'missing proxy', rules: [{ hosts: 'a' }], path: /^option proxyRules\[0\]\.proxy: must be a proxy URL or null/ },
    { name: 'empty proxy', rules: [{ hosts: 'a', proxy: '' }], path: /^option proxyRules\[0\]\.proxy.*empty/ },
    { name: 'socks4 proxy', rules: [{ hosts: 'a', proxy: 'socks4://u:s3cret-tor@p' }], path: /^option proxyRules\[0\]\.proxy \("socks4:\/\/\*\*\*@p"\): unsupported proxy scheme "socks4:"; supported schemes are/ },
    { name: 'bad ca', rules: [{ hosts: 'a', proxy: null, ca: 'nope' }], path: /^option proxyRules\[0\]\.ca\[0\]: is not a PEM certificate/ },
  ];
  for (const row of bad) {
    it(`refuses ${row.name}, naming the option path`, () => {
      assert.throws(
        () => compileEgressConfig({ env: {}, proxyRules: row.rules as ProxyRuleOptions[] }),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError, String(error));
          assert.match(error.message, row.path);
          assert.ok(!error.message.includes('s3cret-tor'));
          return true;
        },
      );
    });
  }
});
