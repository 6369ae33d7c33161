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

  it('lists the supported schemes for another scheme (socks4 and socks4a stay errors)', () => {
    for (const value of ['socks4://p:1080', 'socks4a://p', 'ftp://p']) {
      assert.throws(() => parseProxyUrl(value, 'https_proxy'), /supported schemes are http:\/\/, https:\/\/, socks5:\/\/ or socks5h:\/\//);
    }
  });

  it('accepts socks5:// and socks5h:// with port 1080 by default (SPEC §2, §9)', () => {
    const local = parseProxyUrl('socks5://p', 'x');
    assert.equal(local.protocol, 'socks5:');
    assert.equal(local.port, 1080);
    assert.equal(local.isSocks, true);
    const remote = parseProxyUrl('SOCKS5h://127.0.0.1:9050', 'x');
    assert.equal(remote.protocol, 'socks5h:');
    assert.equal(remote.url, 'socks5h://127.0.0.1:9050');
    assert.equal(parseProxyUrl('http://p', 'x').isSocks, false);
  });

  it('percent-decodes SOCKS5 credentials (RFC 1929) and refuses ones longer than 255 bytes', () => {
    const endpoint = parseProxyUrl('socks5h://tor%20user:p%40ss%3Aw0rd@p:1080', 'x');
    assert.deepEqual(endpoint.credentials(), { username: 'tor user', password: 'p@ss:w0rd' });
    assert.deepEqual(parseProxyUrl('socks5://alice@p', 'x').credentials(), { username: 'alice', password: '' });
    const long = 'x'.repeat(256);
    assert.throws(() => parseProxyUrl(`socks5://${long}:pw@p`, 'x'), /SOCKS5 user name is longer than 255 bytes/);
    assert.throws(() => parseProxyUrl(`socks5://u:${long}@p`, 'x'), (error: unknown) => {
      assert.ok(error instanceof ProxyConfigError);
      assert.match(error.message, /SOCKS5 password is longer than 255 bytes/);
      assert.ok(!error.message.includes(long));
      return true;
    });
    assert.equal(parseProxyUrl(`socks5://${'é'.repeat(127)}:pw@p`, 'x').hasCredentials, true);
    assert.throws(() => parseProxyUrl(`socks5://${'é'.repeat(128)}:pw@p`, 'x'), /longer than 255 bytes/);
  });

  it('never shows SOCKS credentials', () => {
    const endpoint = parseProxyUrl('socks5h://tor-user:s3cret-pw@127.0.0.1:9050', 'option proxyRules[0].proxy');
    for (const text of [String(endpoint), JSON.stringify(endpoint), inspect(endpoint, { depth: 5, showHidden: true }), endpoint.url]) {
      assert.ok(!text.includes('s3cret-pw') && !text.includes('tor-user'), text);
    }
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
    for (const bad of ['socks4://alice:s3cret@p', 'http://alice:s3cret@p:99999', 'http://alice:s3cret@p/path', 'http://alice:s3cr et@p']) {
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
