import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { parseProxyUrl, DEFAULT_PROXY_PORT } from '../../../src/config/proxy-url.js';
import { ProxyConfigError } from '../../../src/errors.js';
import { loadVectors } from '../../support/vectors.js';

interface OkRow {
  value: string;
  url: string;
  user?: string;
  password?: string;
}

const vectors = loadVectors('proxy-url') as { ok: OkRow[]; errors: string[] };

describe('proxy URL parsing (SPEC §2 vectors)', () => {
  for (const row of vectors.ok) {
    it(`proxy=${JSON.stringify(row.value)} → ${row.url}`, () => {
      const endpoint = parseProxyUrl(row.value, 'https_proxy');
      assert.equal(endpoint.url, row.url);
      if (row.user === undefined) {
        assert.equal(endpoint.hasCredentials, false);
        assert.equal(endpoint.proxyAuthorization(), undefined);
      } else {
        const expected = `Basic ${Buffer.from(`${row.user}:${row.password ?? ''}`).toString('base64')}`;
        assert.equal(endpoint.proxyAuthorization(), expected);
      }
    });
  }

  for (const value of vectors.errors) {
    it(`proxy=${JSON.stringify(value)} is refused`, () => {
      assert.throws(
        () => parseProxyUrl(value, 'HTTPS_PROXY'),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError, `expected ProxyConfigError, got ${String(error)}`);
          assert.ok(error.message.startsWith('HTTPS_PROXY'), error.message);
          assert.equal(error.source, 'HTTPS_PROXY');
          return true;
        },
      );
    });
  }

  it('uses port 1080 for both schemes when none is given', () => {
    assert.equal(DEFAULT_PROXY_PORT, 1080);
    assert.equal(parseProxyUrl('http://p', 'x').port, 1080);
    assert.equal(parseProxyUrl('https://p', 'x').port, 1080);
  });

  it('says only HTTP(S) proxies are supported for another scheme', () => {
    assert.throws(() => parseProxyUrl('socks5://p:1080', 'https_proxy'), /only HTTP\(S\) proxies are supported/);
  });

  it('says IPv6 hosts need brackets', () => {
    assert.throws(() => parseProxyUrl('fd00::1', 'http_proxy'), /brackets/);
  });
});

describe('ProxyEndpoint never shows credentials', () => {
  const endpoint = parseProxyUrl('http://alice:s3cr%2Ft@proxy.example:3128', 'https_proxy');
  const renderings = {
    toString: String(endpoint),
    template: `proxy ${endpoint.url}`,
    json: JSON.stringify(endpoint),
    inspect: inspect(endpoint, { showHidden: true, depth: 5 }),
    keys: JSON.stringify(Object.entries(endpoint)),
  };
  for (const [name, text] of Object.entries(renderings)) {
    it(`${name} holds neither user nor password`, () => {
      assert.doesNotMatch(text, /alice|s3cr/);
      assert.match(text, /proxy\.example/);
    });
  }

  it('still knows the credentials for the Proxy-Authorization header', () => {
    assert.equal(endpoint.proxyAuthorization(), `Basic ${Buffer.from('alice:s3cr/t').toString('base64')}`);
    assert.equal(endpoint.hasCredentials, true);
  });

  it('error messages redact the user name and password', () => {
    for (const bad of ['socks5://alice:s3cret@p', 'http://alice:s3cret@p:99999', 'http://alice:s3cret@p/path', 'http://alice:s3cr et@p']) {
      assert.throws(
        () => parseProxyUrl(bad, 'https_proxy'),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError);
          for (const text of [error.message, String(error.stack), inspect(error), JSON.stringify(error)]) {
            assert.doesNotMatch(text, /alice|s3cr/, `leaked in: ${text}`);
          }
          return true;
        },
      );
    }
  });

  it('is frozen', () => {
    assert.ok(Object.isFrozen(endpoint));
  });
});
