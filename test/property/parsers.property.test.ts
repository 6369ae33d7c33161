// Property tests: on arbitrary input the parsers either succeed or throw our typed configuration
// error — never a TypeError, RangeError or a hang — and never echo a password back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseProxyUrl } from '../../src/config/proxy-url.js';
import { compileNoProxy } from '../../src/config/no-proxy.js';
import { compileEgressConfig } from '../../src/config/compile.js';
import { readProxyEnv } from '../../src/config/env.js';
import { targetFromHostPort, targetFromUrl } from '../../src/match/target.js';
import { EgressError, InvalidUrlError, ProxyConfigError } from '../../src/errors.js';

const RUNS = 3000;

/** Strings biased towards the characters that matter to these grammars. */
const grammarish = fc.string({
  unit: fc.constantFrom(
    ...'abcxyz019.:/@[]%*,- \t\r\n\0_#?!'.split(''),
    'http://',
    'https://',
    'socks5://',
    '::1',
    '127.0.0.1',
    '/8',
    '/33',
    '.example.com',
    '*.',
    'xn--',
    'ü',
    '%40',
    '%0d%0a',
  ),
  maxLength: 40,
});
const anyString = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme', maxLength: 30 }), grammarish);

function onlyTyped(run: () => unknown, allowed: (error: unknown) => boolean): void {
  try {
    run();
  } catch (error) {
    assert.ok(allowed(error), `unexpected ${String(error)}`);
  }
}

describe('parsers never throw unexpectedly', () => {
  it('parseProxyUrl: success or ProxyConfigError', () => {
    fc.assert(
      fc.property(anyString, (value) => {
        onlyTyped(() => parseProxyUrl(value, 'https_proxy'), (e) => e instanceof ProxyConfigError);
      }),
      { numRuns: RUNS },
    );
  });

  it('compileNoProxy (tolerant): never throws, except a ProxyConfigError for control characters', () => {
    fc.assert(
      fc.property(anyString, (value) => {
        // eslint-disable-next-line no-control-regex -- the one thing tolerant mode still refuses
        const hasControl = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/.test(value);
        onlyTyped(
          () => compileNoProxy(value),
          (e) => hasControl && e instanceof ProxyConfigError && e.message.includes('control characters'),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('compileNoProxy (strict): success or ProxyConfigError', () => {
    fc.assert(
      fc.property(anyString, (value) => {
        onlyTyped(() => compileNoProxy(value, 'no_proxy', { strict: true }), (e) => e instanceof ProxyConfigError);
      }),
      { numRuns: RUNS },
    );
  });

  it('a compiled no_proxy list decides any parsable URL without throwing', () => {
    fc.assert(
      fc.property(anyString, fc.webUrl({ withQueryParameters: true, withFragments: true }), (list, url) => {
        let matcher;
        try {
          matcher = compileNoProxy(list);
        } catch {
          return;
        }
        matcher.match(targetFromUrl(url));
      }),
      { numRuns: RUNS },
    );
  });

  it('targetFromUrl: success or InvalidUrlError', () => {
    fc.assert(
      fc.property(fc.oneof(anyString, fc.webUrl()), (value) => {
        onlyTyped(() => targetFromUrl(value), (e) => e instanceof InvalidUrlError);
      }),
      { numRuns: RUNS },
    );
  });

  it('compileEgressConfig over arbitrary env: success or a typed error, never a password in it', () => {
    const password = 'Pw-canary-0451';
    fc.assert(
      fc.property(anyString, anyString, anyString, fc.boolean(), (a, b, c, withCreds) => {
        const httpsProxy = withCreds ? `http://u:${password}@${a}` : a;
        const noProxy = withCreds ? `${c},http://u:${password}@${c}` : c;
        const warnings: string[] = [];
        onlyTyped(
          () => compileEgressConfig({ env: { https_proxy: httpsProxy, HTTP_PROXY: b, no_proxy: noProxy }, logger: { warn: (m) => warnings.push(m) } }),
          (e) => e instanceof EgressError && !e.message.includes(password) && !String(e.stack).includes(password),
        );
        assert.ok(!warnings.join('\n').includes(password), 'a no_proxy warning carried a password');
      }),
      { numRuns: RUNS },
    );
  });

  it('readProxyEnv never throws on any record', () => {
    fc.assert(
      fc.property(fc.dictionary(anyString, fc.option(anyString, { nil: undefined })), (env) => {
        readProxyEnv(env);
      }),
      { numRuns: 1000 },
    );
  });

  it('a valid proxy URL round-trips through its redacted form', () => {
    const host = fc.constantFrom('proxy.example', '127.0.0.1', '[::1]', 'p-1.internal');
    fc.assert(
      fc.property(host, fc.integer({ min: 1, max: 65535 }), fc.constantFrom('http', 'https'), (h, port, scheme) => {
        const endpoint = parseProxyUrl(`${scheme}://${h}:${String(port)}`, 'x');
        assert.equal(parseProxyUrl(endpoint.url, 'x').url, endpoint.url);
      }),
      { numRuns: 500 },
    );
  });
});

describe('targetFromUrl reads WHATWG-canonical IP literals directly (issue #12 decision cost)', () => {
  const scheme = fc.constantFrom('http', 'https');
  const host = fc.oneof(
    fc.ipV4(),
    fc.ipV6().map((v6) => `[${v6}]`),
    fc.ipV4().map((v4) => `[::ffff:${v4}]`),
    fc.ipV4Extended(),
    fc.domain(),
  );
  it('agrees with the general parser on host, port and address for any IP or host', () => {
    fc.assert(
      fc.property(scheme, host, fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }), (s, h, port) => {
        const url = `${s}://${h}${port === undefined ? '' : `:${String(port)}`}/p`;
        let parsed: URL;
        try {
          parsed = new URL(url);
        } catch {
          return;
        }
        const fast = targetFromUrl(url);
        const slow = targetFromHostPort(s, parsed.hostname, parsed.port === '' ? (s === 'https' ? 443 : 80) : Number(parsed.port));
        assert.equal(fast.host, slow.host, url);
        assert.equal(fast.port, slow.port, url);
        assert.equal(fast.ip?.kind(), slow.ip?.kind(), url);
        assert.equal(fast.ip?.toNormalizedString(), slow.ip?.toNormalizedString(), url);
      }),
      { numRuns: RUNS },
    );
  });
});
