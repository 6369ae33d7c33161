import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  EgressError,
  ProxyAuthenticationError,
  ProxyConfigError,
  ProxyConnectError,
  ProxyTlsError,
  ProxyUnreachableError,
  BlockedDestinationError,
  HeadersTimeoutError,
  ProxyProtocolError,
  hasEgressCode,
  isEgressError,
} from '../../../src/errors.js';

describe('errors', () => {
  it('carry stable codes and names', () => {
    const cases: [EgressError, string, string][] = [
      [new ProxyConfigError('https_proxy', 'bad'), 'ERR_EGRESS_PROXY_CONFIG', 'ProxyConfigError'],
      [new ProxyConnectError('http://p:1', 'x:443', 502), 'ERR_EGRESS_PROXY_CONNECT', 'ProxyConnectError'],
      [new ProxyAuthenticationError('http://p:1', 'x:443', 'r', true), 'ERR_EGRESS_PROXY_AUTH', 'ProxyAuthenticationError'],
      [new ProxyTlsError('https://p:1', 'expired'), 'ERR_EGRESS_PROXY_TLS', 'ProxyTlsError'],
      [new ProxyUnreachableError('http://p:1', 'ECONNREFUSED'), 'ERR_EGRESS_PROXY_UNREACHABLE', 'ProxyUnreachableError'],
      [new BlockedDestinationError('h', '10.0.0.1'), 'ERR_EGRESS_BLOCKED_DESTINATION', 'BlockedDestinationError'],
      [new HeadersTimeoutError('h:80', 400), 'ERR_EGRESS_HEADERS_TIMEOUT', 'HeadersTimeoutError'],
      [new ProxyProtocolError('http://p:1', 'garbage'), 'ERR_EGRESS_PROXY_PROTOCOL', 'ProxyProtocolError'],
    ];
    for (const [error, code, name] of cases) {
      assert.equal(error.code, code);
      assert.equal(error.name, name);
      assert.ok(error instanceof EgressError);
      assert.ok(error instanceof Error);
      assert.ok(isEgressError(error));
      assert.ok(hasEgressCode(error, code as EgressError['code']));
      assert.match(String(error), new RegExp(`^${name}: `));
    }
  });

  it('names a forwarded request rather than CONNECT when the 407 answered one', () => {
    assert.match(new ProxyAuthenticationError('http://p:1', 'x:80', undefined, true, true).message, /refused a forwarded request to x:80 with status 407/);
    assert.match(new ProxyConnectError('http://p:1', 'x:443', 403).message, /refused CONNECT to x:443 with status 403/);
  });

  it('407 is a ProxyConnectError subclass with its own code', () => {
    const error = new ProxyAuthenticationError('http://p:1', 'x:443', undefined, false);
    assert.ok(error instanceof ProxyConnectError);
    assert.equal(error.statusCode, 407);
    assert.match(error.message, /requires credentials and none are configured/);
    assert.ok(!(new ProxyConnectError('http://p:1', 'x:443', 403) instanceof ProxyAuthenticationError));
  });

  it('instanceof works across copies of the package through the brand', () => {
    const foreign: object = new ProxyTlsError('https://p:1', 'unknown-ca');
    // A plain object carrying the brand stands for an error from another copy of the package.
    const fromOtherCopy = Object.create(Error.prototype, { [Symbol.for('matrix-egress.error')]: { value: true } }) as object;
    assert.ok(foreign instanceof EgressError);
    assert.ok(fromOtherCopy instanceof EgressError);
    assert.ok(!({} instanceof EgressError));
    assert.ok(!(new Error('x') instanceof EgressError));
  });

  it('keeps the cause', () => {
    const cause = new Error('root');
    assert.equal(new ProxyUnreachableError('http://p:1', 'ECONNRESET', { cause }).cause, cause);
  });
});
