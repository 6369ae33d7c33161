import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileEgressConfig } from '../../../src/config/compile.js';
import { route } from '../../../src/policy/route.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../../src/policy/connection-types.js';
import { InvalidUrlError, UnknownConnectionTypeError } from '../../../src/errors.js';

const env = { http_proxy: 'http://hp.example:3128', https_proxy: 'http://user:pw@sp.example:3129', no_proxy: 'internal.example,10.0.0.0/8' };

describe('route decisions per connection type (SPEC §4)', () => {
  const config = compileEgressConfig({ env });

  for (const type of PROXIED_CONNECTION_TYPES) {
    it(`${type}: https URL goes through https_proxy`, () => {
      const decision = route(config, type, 'https://matrix.example/_matrix/x');
      assert.equal(decision.route, 'proxy');
      assert.equal(decision.proxy?.url, 'http://sp.example:3129');
      assert.equal(decision.reasonCode, 'proxy');
      assert.equal(decision.matched, null);
    });
    it(`${type}: no_proxy match goes direct and names the entry`, () => {
      const decision = route(config, type, 'https://a.internal.example/');
      assert.equal(decision.route, 'direct');
      assert.equal(decision.reasonCode, 'no-proxy-match');
      assert.equal(decision.matched, 'internal.example');
      assert.equal(decision.proxy, null);
    });
  }

  for (const type of DIRECT_CONNECTION_TYPES) {
    it(`${type}: always direct, whatever the proxy settings`, () => {
      for (const url of ['https://matrix.example/', 'http://matrix.example/', 'http://10.0.0.1/']) {
        const decision = route(config, type, url);
        assert.equal(decision.route, 'direct');
        assert.equal(decision.reasonCode, 'always-direct');
        assert.equal(decision.proxy, null);
      }
    });
  }

  it('http URLs use http_proxy, not https_proxy', () => {
    assert.equal(route(config, 'url_preview', 'http://news.example/').proxy?.url, 'http://hp.example:3128');
  });

  it('federation uses https_proxy only', () => {
    assert.equal(route(config, 'federation', 'http://matrix.example:8008/').proxy?.url, 'http://sp.example:3129');
    const noHttps = compileEgressConfig({ env: { http_proxy: 'http://hp.example:3128' } });
    const decision = route(noHttps, 'federation', 'http://matrix.example/');
    assert.equal(decision.route, 'direct');
    assert.equal(decision.reasonCode, 'no-proxy-configured');
  });

  it('https goes direct when only http_proxy is set (no fallback)', () => {
    const onlyHttp = compileEgressConfig({ env: { http_proxy: 'http://hp.example:3128' } });
    const decision = route(onlyHttp, 'push', 'https://push.example/');
    assert.equal(decision.route, 'direct');
    assert.match(decision.reason, /no https_proxy is configured/);
  });

  it('an override sends a proxied type direct', () => {
    const overridden = compileEgressConfig({ env, connectionTypes: { media: { route: 'direct' } } });
    assert.equal(route(overridden, 'media', 'https://m.example/').reasonCode, 'type-override-direct');
  });

  it('a registered type routes like a built-in one', () => {
    const custom = compileEgressConfig({ env, connectionTypes: { bridge_api: { route: 'proxy' }, sidecar: { route: 'direct' } } });
    assert.equal(route(custom, 'bridge_api', 'https://api.example/').route, 'proxy');
    assert.equal(route(custom, 'sidecar', 'https://api.example/').route, 'direct');
  });

  it('the decision never carries credentials', () => {
    const text = JSON.stringify(route(config, 'push', 'https://push.example/'));
    assert.doesNotMatch(text, /user|pw@/);
    assert.match(text, /sp\.example:3129/);
  });

  it('rejects unknown types and bad URLs with typed errors', () => {
    assert.throws(() => route(config, 'carrier_pigeon', 'https://x.example/'), UnknownConnectionTypeError);
    assert.throws(() => route(config, 'push', 'not a url'), InvalidUrlError);
    assert.throws(() => route(config, 'push', 'ftp://x.example/'), InvalidUrlError);
    assert.throws(
      () => route(config, 'push', 'http://u:secretpw@[::1'),
      (error: unknown) => error instanceof InvalidUrlError && !error.message.includes('secretpw'),
    );
  });
});
