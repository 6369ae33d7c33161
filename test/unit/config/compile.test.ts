import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { compileEgressConfig } from '../../../src/config/compile.js';
import { ProxyConfigError } from '../../../src/errors.js';

describe('compileEgressConfig', () => {
  it('reads the injected env once: mutating it afterwards changes nothing', () => {
    const env: Record<string, string> = { https_proxy: 'http://p.example:3128', no_proxy: 'a.com' };
    const config = compileEgressConfig({ env });
    env.https_proxy = 'http://other.example:1';
    env.no_proxy = '*';
    assert.equal(config.httpsProxy?.url, 'http://p.example:3128');
    assert.deepEqual(config.noProxy.rules.map((r) => r.entry), ['a.com']);
  });

  it('does not read process.env when env is given', () => {
    process.env.HTTPS_PROXY = 'http://from-process:1';
    try {
      assert.equal(compileEgressConfig({ env: {} }).httpsProxy, undefined);
    } finally {
      delete process.env.HTTPS_PROXY;
    }
  });

  it('options win over env per key; null and "" disable', () => {
    const env = { http_proxy: 'http://envh:1', https_proxy: 'http://envs:1', no_proxy: 'env.com' };
    const a = compileEgressConfig({ env, httpsProxy: 'http://opt:2' });
    assert.equal(a.httpsProxy?.url, 'http://opt:2');
    assert.equal(a.sources.httpsProxy, 'option httpsProxy');
    assert.equal(a.httpProxy?.url, 'http://envh:1');
    assert.equal(a.sources.httpProxy, 'http_proxy');
    assert.equal(compileEgressConfig({ env, httpProxy: null }).httpProxy, undefined);
    assert.equal(compileEgressConfig({ env, httpsProxy: '' }).httpsProxy, undefined);
    const c = compileEgressConfig({ env, noProxy: null });
    assert.equal(c.noProxy.isEmpty, true);
    assert.equal(c.sources.noProxy, undefined);
    assert.equal(compileEgressConfig({ env: { no_proxy: ' , ' } }).sources.noProxy, undefined);
  });

  it('an empty env value disables (no silent fallback)', () => {
    const config = compileEgressConfig({ env: { https_proxy: '', HTTPS_PROXY: 'http://up:1' } });
    assert.equal(config.httpsProxy, undefined);
  });

  it('the result is frozen, including the type table', () => {
    const config = compileEgressConfig({ env: {} });
    assert.ok(Object.isFrozen(config));
    const asMap = config.connectionTypes as unknown as Partial<Map<string, unknown>>;
    assert.equal(asMap.set, undefined);
    assert.equal(asMap.delete, undefined);
    assert.throws(() => {
      (config.connectionTypes as unknown as Record<string, unknown>).extra = 1;
    }, TypeError);
    assert.ok(Object.isFrozen(config.connectionTypes.get('push')));
  });

  it('names the variable in errors, with credentials redacted', () => {
    assert.throws(
      () => compileEgressConfig({ env: { HTTPS_PROXY: 'socks5://bob:hunter2@p:1080' } }),
      (error: unknown) => {
        assert.ok(error instanceof ProxyConfigError);
        assert.match(error.message, /^HTTPS_PROXY/);
        assert.doesNotMatch(error.message + String(error.stack) + inspect(error), /bob|hunter2/);
        return true;
      },
    );
    assert.throws(() => compileEgressConfig({ env: { no_proxy: 'ok.com,10.0.0.0/33' }, strictNoProxy: true }), /^ProxyConfigError: no_proxy entry 2/);
    assert.throws(() => compileEgressConfig({ env: {}, noProxy: '1.2.3', strictNoProxy: true }), /option noProxy entry 1/);
  });

  it('validates option shapes, naming the option path', () => {
    const cases: [unknown, RegExp][] = [
      [{ proxy: 'x' }, /option proxy: unknown option/],
      [{ httpsProxy: 42 }, /option httpsProxy: must be a string or null/],
      [{ connectTimeout: -1 }, /option connectTimeout/],
      [{ connectTimeout: 1.5 }, /option connectTimeout/],
      [{ useInsecureSslClientJustForTestingDoNotUse: 'yes' }, /option useInsecureSslClientJustForTestingDoNotUse/],
      [{ logger: {} }, /option logger/],
      [{ ca: 'not a pem' }, /option ca\[0\]: is not a PEM certificate/],
      [{ connectionTypes: { push: { route: 'sideways' } } }, /option connectionTypes\.push\.route: must be "proxy" or "direct"/],
      [{ connectionTypes: { push: { rout: 'direct' } } }, /option connectionTypes\.push\.rout: unknown option/],
      [{ connectionTypes: { worker: { route: 'proxy' } } }, /option connectionTypes\.worker\.route: the worker type always goes direct/],
      [{ connectionTypes: { my_type: {} } }, /option connectionTypes\.my_type\.route: a new connection type needs a route/],
      [{ connectionTypes: { 'Bad-Name': { route: 'proxy' } } }, /option connectionTypes\.Bad-Name/],
      [{ connectionTypes: { push: { ipBlocklist: 'yes' } } }, /option connectionTypes\.push\.ipBlocklist/],
      [{ connectionTypes: { worker: { ipBlocklist: true } } }, /option connectionTypes\.worker\.ipBlocklist: the worker type is internal/],
      [{ connectionTypes: { redis: { ipBlocklist: true } } }, /option connectionTypes\.redis\.ipBlocklist/],
      [{ headersTimeout: 0 }, /option headersTimeout/],
    ];
    for (const [options, pattern] of cases) {
      assert.throws(() => compileEgressConfig({ env: {}, ...(options as object) }), (error: unknown) => {
        assert.ok(error instanceof ProxyConfigError, `${JSON.stringify(options)} threw ${String(error)}`);
        assert.match(error.message, pattern);
        return true;
      });
    }
  });

  it('registers new types and overrides built-in routes', () => {
    const config = compileEgressConfig({
      env: {},
      connectionTypes: { sygnal_probe: { route: 'proxy' }, media: { route: 'direct' }, appservice: { ipBlocklist: true } },
    });
    assert.equal(config.connectionTypes.get('sygnal_probe')?.route, 'proxy');
    assert.equal(config.connectionTypes.get('sygnal_probe')?.builtIn, false);
    assert.equal(config.connectionTypes.get('media')?.route, 'direct');
    assert.equal(config.connectionTypes.get('appservice')?.ipBlocklist, true);
  });

  it('prints redacted in inspect and JSON', () => {
    const config = compileEgressConfig({ env: { https_proxy: 'http://carol:pa55word@p.example:3128' } });
    for (const text of [inspect(config, { depth: 10, showHidden: true }), JSON.stringify(config)]) {
      assert.doesNotMatch(text, /carol|pa55word/);
      assert.match(text, /p\.example:3128/);
    }
  });
});
