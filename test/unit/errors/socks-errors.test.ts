import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { parseProxyUrl } from '../../../src/config/proxy-url.js';
import { socksDestination, socksErrorFrom } from '../../../src/dispatch/socks.js';
import type { ProxyConnection } from '../../../src/dispatch/tunnel.js';
import {
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyUnreachableError,
  SOCKS5_REPLY_NAMES,
} from '../../../src/errors.js';

const PASSWORD = 's3cret-socks-pw';
const withAuth: ProxyConnection = {
  endpoint: parseProxyUrl(`socks5h://tor-user:${PASSWORD}@127.0.0.1:9050`, 'option proxyRules[0].proxy'),
  tls: { ca: undefined, secureContext: undefined, rejectUnauthorized: true },
  timeout: 1000,
};
const noAuth: ProxyConnection = { ...withAuth, endpoint: parseProxyUrl('socks5://127.0.0.1:1080', 'https_proxy') };

/** An error shaped as the `socks` package makes them: free text plus the whole option object, password included. */
function socksError(message: string): Error {
  return Object.assign(new Error(message), { options: { proxy: { userId: 'tor-user', password: PASSWORD } } });
}

function assertClean(error: Error): void {
  for (const text of [error.message, String(error.stack), String(error), inspect(error, { depth: 8, showHidden: true })]) {
    assert.ok(!text.includes(PASSWORD) && !text.includes('tor-user'), text);
  }
}

describe('SOCKS5 failures become typed errors (SPEC §9)', () => {
  const names: [string, number][] = [
    ['Failure', 1],
    ['NotAllowed', 2],
    ['NetworkUnreachable', 3],
    ['HostUnreachable', 4],
    ['ConnectionRefused', 5],
    ['TTLExpired', 6],
    ['CommandNotSupported', 7],
    ['AddressNotSupported', 8],
  ];
  for (const [name, reply] of names) {
    it(`reply 0x0${String(reply)} (${name}) → ProxyConnectError naming the reply`, () => {
      const error = socksErrorFrom(withAuth, 'x.onion:443', socksError(`Socks5 proxy rejected connection - ${name}`), undefined);
      assert.ok(error instanceof ProxyConnectError);
      assert.equal(error.code, 'ERR_EGRESS_PROXY_CONNECT');
      assert.equal(error.socksReply, reply);
      assert.equal(error.statusCode, 0);
      assert.equal(error.target, 'x.onion:443');
      assert.equal(
        error.message,
        `Proxy socks5h://127.0.0.1:9050 refused CONNECT to x.onion:443 with SOCKS reply 0x0${String(reply)} ${SOCKS5_REPLY_NAMES[reply] ?? ''}`,
      );
      assert.equal(error.cause, undefined, 'the socks error holds the password: never chained');
      assertClean(error);
    });
  }

  it('names reply 0x04 "host unreachable"', () => {
    const error = socksErrorFrom(noAuth, '203.0.113.9:443', socksError('Socks5 proxy rejected connection - HostUnreachable'), undefined);
    assert.match(error.message, /SOCKS reply 0x04 host unreachable$/);
  });

  it('a reply with a bad version byte or an unassigned code → ProxyProtocolError', () => {
    for (const name of ['Granted', 'undefined']) {
      const error = socksErrorFrom(withAuth, 'x.onion:443', socksError(`Socks5 proxy rejected connection - ${name}`), undefined);
      assert.ok(error instanceof ProxyProtocolError, name);
      assertClean(error);
    }
  });

  it('refused authentication → ProxyAuthenticationError, saying whether credentials were configured', () => {
    const refused = socksErrorFrom(withAuth, 'x.onion:443', socksError('Socks5 Authentication failed'), undefined);
    assert.ok(refused instanceof ProxyAuthenticationError);
    assert.equal(refused.code, 'ERR_EGRESS_PROXY_AUTH');
    assert.equal(refused.message, 'Proxy socks5h://127.0.0.1:9050 refused CONNECT to x.onion:443; SOCKS5 authentication failed: the proxy rejected the configured credentials');
    assertClean(refused);
    const none = socksErrorFrom(noAuth, 'a.example:443', socksError('Received invalid Socks5 initial handshake (no accepted authentication type)'), undefined);
    assert.ok(none instanceof ProxyAuthenticationError);
    assert.match(none.message, /requires credentials and none are configured/);
  });

  it('bytes that are not SOCKS5 → ProxyProtocolError', () => {
    for (const message of ['Received invalid Socks5 initial handshake (invalid socks version)', 'Received invalid Socks5 initial handshake (unknown authentication type)', 'something else']) {
      const error = socksErrorFrom(withAuth, 'x.onion:443', socksError(message), undefined);
      assert.ok(error instanceof ProxyProtocolError, message);
      assert.equal(error.code, 'ERR_EGRESS_PROXY_PROTOCOL');
      assertClean(error);
    }
  });

  it('timeouts, closes and socket errors → ProxyUnreachableError with the system code', () => {
    const timeout = socksErrorFrom(withAuth, 'x.onion:443', socksError('Proxy connection timed out'), undefined);
    assert.ok(timeout instanceof ProxyUnreachableError);
    assert.equal(timeout.syscallCode, 'ETIMEDOUT');
    const closed = socksErrorFrom(withAuth, 'x.onion:443', socksError('Socket closed'), undefined);
    assert.ok(closed instanceof ProxyUnreachableError);
    assert.equal(closed.syscallCode, 'ECONNRESET');
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const fromSocket = socksErrorFrom(withAuth, 'x.onion:443', socksError('read ECONNRESET'), reset);
    assert.ok(fromSocket instanceof ProxyUnreachableError);
    assert.equal(fromSocket.syscallCode, 'ECONNRESET');
    for (const error of [timeout, closed, fromSocket]) assertClean(error);
  });
});

describe('the host asked of a SOCKS5 proxy', () => {
  it('socks5h sends the name and never calls the resolver', async () => {
    let calls = 0;
    const resolve = ((): void => {
      calls += 1;
    }) as never;
    assert.equal(await socksDestination(withAuth, 'abcdefghijklmnop.onion', resolve), 'abcdefghijklmnop.onion');
    assert.equal(calls, 0);
  });

  it('socks5 asks for the address the resolver answers; IP literals are not resolved', async () => {
    const asked: string[] = [];
    const resolve = ((hostname: string, options: { all?: boolean }, callback: (error: null, addresses: { address: string; family: number }[]) => void): void => {
      asked.push(`${hostname} all=${String(options.all)}`);
      callback(null, [{ address: '127.0.0.5', family: 4 }, { address: '::1', family: 6 }]);
    }) as never;
    assert.equal(await socksDestination(noAuth, 'matrix.example', resolve), '127.0.0.5');
    assert.equal(await socksDestination(noAuth, '127.0.0.9', resolve), '127.0.0.9');
    assert.deepEqual(asked, ['matrix.example all=true']);
  });

  it('socks5 passes resolver failures through', async () => {
    const failing = ((_h: string, _o: unknown, callback: (error: Error) => void): void => {
      callback(Object.assign(new Error('getaddrinfo ENOTFOUND nowhere.example'), { code: 'ENOTFOUND' }));
    }) as never;
    await assert.rejects(socksDestination(noAuth, 'nowhere.example', failing), { code: 'ENOTFOUND' });
  });
});
