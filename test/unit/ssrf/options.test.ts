import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileEgressConfig, type EgressOptions } from '../../../src/config/compile.js';
import { DEFAULT_IP_BLOCKLIST } from '../../../src/ssrf/default-blocklist.js';
import { ProxyConfigError } from '../../../src/errors.js';

function configError(options: EgressOptions): ProxyConfigError {
  try {
    compileEgressConfig({ env: {}, ...options });
  } catch (error) {
    assert.ok(error instanceof ProxyConfigError, String(error));
    return error;
  }
  assert.fail('expected a ProxyConfigError');
}

describe('ipBlocklist, ipAllowlist and lookup options', () => {
  it('defaults: DEFAULT_IP_BLOCKLIST, an empty allowlist, the system resolver', () => {
    const config = compileEgressConfig({ env: {} });
    assert.deepEqual(config.ipFilter.blocklist.ranges.map((r) => r.entry), DEFAULT_IP_BLOCKLIST);
    assert.equal(config.ipFilter.allowlist.isEmpty, true);
    assert.equal(config.lookup, undefined);
    assert.equal(config.ipFilter.isBlocked('127.0.0.1'), true);
    assert.ok(Object.isFrozen(config.ipFilter));
  });

  it('an empty blocklist turns the check off', () => {
    assert.equal(compileEgressConfig({ env: {}, ipBlocklist: [] }).ipFilter.isOff, true);
  });

  it('the allowlist wins over the blocklist', () => {
    const { ipFilter } = compileEgressConfig({ env: {}, ipAllowlist: ['10.1.0.0/16', 'fd00::1'] });
    assert.equal(ipFilter.isBlocked('10.1.2.3'), false);
    assert.equal(ipFilter.isBlocked('10.2.0.1'), true);
    assert.equal(ipFilter.isBlocked('fd00::1'), false);
    assert.equal(ipFilter.isBlocked('fd00::2'), true);
  });

  it('a custom blocklist replaces the default', () => {
    const { ipFilter } = compileEgressConfig({ env: {}, ipBlocklist: ['203.0.113.0/24'] });
    assert.equal(ipFilter.isBlocked('203.0.113.9'), true);
    assert.equal(ipFilter.isBlocked('127.0.0.1'), false);
    // The IPv6 forms of a custom IPv4 range come with it.
    assert.equal(ipFilter.isBlocked('::ffff:203.0.113.9'), true);
    assert.equal(ipFilter.isBlocked('2002:cb00:7109::'), true);
    assert.equal(ipFilter.isBlocked('64:ff9b::203.0.113.9'), true);
  });

  it('names the option path and index of a bad entry', () => {
    const error = configError({ ipBlocklist: ['10.0.0.0/8', '192.168.0.0/16', 'fc00::/7', '10.0.0.0/33'] });
    assert.equal(error.source, 'option ipBlocklist[3]');
    assert.equal(error.value, '10.0.0.0/33');
    assert.match(error.message, /^option ipBlocklist\[3\] \("10\.0\.0\.0\/33"\): the prefix length must be from 0 to 32$/);
    assert.equal(configError({ ipAllowlist: ['::1', 'localhost'] }).source, 'option ipAllowlist[1]');
  });

  it('refuses lists that are not arrays and a lookup that is not a function', () => {
    assert.equal(configError({ ipBlocklist: '10.0.0.0/8' as unknown as string[] }).source, 'option ipBlocklist');
    assert.equal(configError({ ipAllowlist: null as unknown as string[] }).source, 'option ipAllowlist');
    assert.equal(configError({ ipBlocklist: null as unknown as string[] }).source, 'option ipBlocklist');
    assert.equal(configError({ lookup: 'dns' as unknown as EgressOptions['lookup'] }).source, 'option lookup');
  });

  it('explicit undefined means "not given"', () => {
    const config = compileEgressConfig({ env: {}, ipBlocklist: undefined, ipAllowlist: undefined, lookup: undefined });
    assert.equal(config.ipFilter.blocklist.ranges.length, DEFAULT_IP_BLOCKLIST.length);
  });

  it('copies the lists: mutating them afterwards changes nothing', () => {
    const blocklist = ['198.51.100.0/24'];
    const allowlist = ['198.51.100.7'];
    const { ipFilter } = compileEgressConfig({ env: {}, ipBlocklist: blocklist, ipAllowlist: allowlist });
    blocklist.push('8.8.8.0/24');
    allowlist[0] = '198.51.100.8';
    assert.equal(ipFilter.isBlocked('8.8.8.8'), false);
    assert.equal(ipFilter.isBlocked('198.51.100.7'), false);
    assert.equal(ipFilter.isBlocked('198.51.100.8'), true);
  });

  it('checked types follow SPEC §4, overridable per type', () => {
    const config = compileEgressConfig({ env: {}, connectionTypes: { push: { ipBlocklist: false }, appservice: { ipBlocklist: true } } });
    const checked = [...config.connectionTypes.values()].filter((p) => p.ipBlocklist).map((p) => p.name).sort();
    assert.deepEqual(checked, ['appservice', 'federation', 'key_fetch', 'key_revocation', 'media', 'url_preview']);
  });
});
