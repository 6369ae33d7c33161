import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { compileIpRanges } from '../../../src/ssrf/ip-set.js';
import { IpFilter } from '../../../src/ssrf/ip-filter.js';
import { ProxyConfigError } from '../../../src/errors.js';
import { parseAddress, type PackedAddress } from '../../../src/ssrf/address.js';

describe('IP range entries', () => {
  const valid: [entry: string, network: string, prefixLength: number, family: 4 | 6][] = [
    ['10.0.0.0/8', '10.0.0.0', 8, 4],
    ['192.0.2.1', '192.0.2.1', 32, 4],
    ['0.0.0.0/0', '0.0.0.0', 0, 4],
    ['fc00::/7', 'fc00::', 7, 6],
    ['::1', '::1', 128, 6],
    ['2001:DB8::/32', '2001:db8::', 32, 6],
    ['::/0', '::', 0, 6],
    // IPv4-mapped ranges are the IPv4 ranges they map.
    ['::ffff:10.0.0.0/104', '10.0.0.0', 8, 4],
    ['::ffff:192.0.2.1', '192.0.2.1', 32, 4],
    // IPv4-compatible ranges stay IPv6.
    ['::10.0.0.0/104', '::a00:0', 104, 6],
  ];
  for (const [entry, network, prefixLength, family] of valid) {
    it(`entry=${JSON.stringify(entry)} → ${network}/${String(prefixLength)}`, () => {
      const [range] = compileIpRanges([entry], 'ipBlocklist').ranges;
      assert.deepEqual(range, { entry, family, network, prefixLength });
    });
  }

  const invalid: [entry: unknown, problem: RegExp][] = [
    ['10.0.0.0/33', /prefix length must be from 0 to 32/],
    ['fc00::/129', /prefix length must be from 0 to 128/],
    ['10.0.0.0/', /whole number/],
    ['10.0.0.0/08', /whole number/],
    ['10.0.0.0/8/8', /whole number/],
    ['10.1.2.3/8', /bits after the prefix are set; the range is 10\.0\.0\.0\/8/],
    ['fd00::1/8', /the range is fd00::\/8/],
    ['::ffff:10.0.0.0/95', /IPv4-mapped range .* from 96 to 128/],
    ['010.0.0.0/8', /not an IP address/],
    ['0x7f.0.0.1', /not an IP address/],
    ['127.1', /not an IP address/],
    ['2130706433', /not an IP address/],
    ['[::1]', /without brackets/],
    ['fe80::1%eth0', /not an IP address/],
    ['localhost', /not an IP address/],
    [' 10.0.0.0/8', /not an IP address/],
    ['', /not an IP address/],
    [42, /must be a string/],
    [null, /must be a string/],
  ];
  for (const [entry, problem] of invalid) {
    it(`entry=${JSON.stringify(entry)} is refused, naming option ipBlocklist[2]`, () => {
      assert.throws(
        () => compileIpRanges(['10.0.0.0/8', '192.168.0.0/16', entry as string], 'ipBlocklist'),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError, String(error));
          assert.equal(error.code, 'ERR_EGRESS_PROXY_CONFIG');
          assert.equal(error.source, 'option ipBlocklist[2]');
          assert.match(error.message, /^option ipBlocklist\[2\][ :]/);
          assert.match(error.message, problem);
          return true;
        },
      );
    });
  }

  it('refuses a list that is not an array', () => {
    assert.throws(() => compileIpRanges('10.0.0.0/8' as unknown as string[], 'ipAllowlist'), /^ProxyConfigError: option ipAllowlist: must be an array/);
  });

  it('refuses holes in a sparse array instead of skipping them', () => {
    // eslint-disable-next-line no-sparse-arrays -- the point of the test
    assert.throws(() => compileIpRanges([, '10.0.0.0/8'] as unknown as string[], 'ipBlocklist'), /option ipBlocklist\[0\]: must be a string/);
  });

  it('copies the list: changing it afterwards changes nothing', () => {
    const list = ['10.0.0.0/8'];
    const set = compileIpRanges(list, 'ipBlocklist');
    list.push('8.8.8.0/24');
    list[0] = '11.0.0.0/8';
    assert.equal(set.has('10.1.1.1'), true);
    assert.equal(set.has('8.8.8.8'), false);
    assert.equal(set.has('11.0.0.1'), false);
    assert.ok(Object.isFrozen(set) && Object.isFrozen(set.ranges));
  });
});

describe('IpRangeSet.match', () => {
  const set = compileIpRanges(['10.0.0.0/8', '10.1.0.0/16', '10.1.2.3', '0.0.0.0/0', 'fc00::/7', 'fd12:3456::/32', '2001:db8::1', '64:ff9b:1::/48', '100::/64'], 'ipBlocklist');
  const v6Only = compileIpRanges(['fc00::/7', '::/128'], 'ipBlocklist');
  const rows: [address: string, entry: string | undefined, within?: typeof set][] = [
    ['10.1.2.3', '10.1.2.3'],
    ['10.1.2.4', '10.1.0.0/16'],
    ['10.2.0.0', '10.0.0.0/8'],
    ['11.0.0.0', '0.0.0.0/0'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['fd12:3456::1', 'fd12:3456::/32'],
    ['fd12:3457::1', 'fc00::/7'],
    ['fe00::1', undefined],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:db8::2', undefined],
    ['64:ff9b:1:ffff::1', '64:ff9b:1::/48'],
    ['64:ff9b:2::1', undefined],
    ['100::ffff:ffff:ffff:ffff', '100::/64'],
    ['100:0:0:1::', undefined],
    ['::', '::/128', v6Only],
    ['::1', undefined, v6Only],
    // An IPv4 address is never in an IPv6 range, whatever its mapped form would be.
    ['10.0.0.1', undefined, v6Only],
  ];
  for (const [address, entry, within = set] of rows) {
    it(`address=${JSON.stringify(address)} → ${entry ?? 'no range'}`, () => {
      assert.equal(within.match(parseOrFail(address))?.entry, entry);
    });
  }

  it('an empty set matches nothing', () => {
    const empty = compileIpRanges([], 'ipAllowlist');
    assert.equal(empty.isEmpty, true);
    assert.equal(empty.has('127.0.0.1'), false);
    assert.equal(empty.has('::1'), false);
  });

  it('text that is not an address is in no range', () => {
    assert.equal(set.has('not-an-ip'), false);
  });
});

describe('IpFilter: allowlist over blocklist, transition addresses', () => {
  const filter = new IpFilter(
    compileIpRanges(['127.0.0.0/8', '10.0.0.0/8', '::1/128', 'fc00::/7'], 'ipBlocklist'),
    compileIpRanges(['127.0.0.1', 'fd00::5', '10.9.0.0/16'], 'ipAllowlist'),
  );
  const rows: [address: string, blockedBy: string | undefined, embedded?: string][] = [
    ['127.0.0.1', undefined],
    ['127.0.0.2', '127.0.0.0/8'],
    ['::ffff:127.0.0.1', undefined],
    ['::ffff:127.0.0.2', '127.0.0.0/8'],
    ['10.9.1.1', undefined],
    ['10.8.1.1', '10.0.0.0/8'],
    ['fd00::5', undefined],
    ['fd00::6', 'fc00::/7'],
    ['::1', '::1/128'],
    ['8.8.8.8', undefined],
    // IPv4-compatible, 6to4 and NAT64 forms of a blocked IPv4 address are blocked...
    ['::127.0.0.2', '127.0.0.0/8', '127.0.0.2'],
    ['2002:7f00:2::1', '127.0.0.0/8', '127.0.0.2'],
    ['2002:a08:101::', '10.0.0.0/8', '10.8.1.1'],
    ['64:ff9b::7f00:2', '127.0.0.0/8', '127.0.0.2'],
    ['64:ff9b::10.8.1.1', '10.0.0.0/8', '10.8.1.1'],
    // ...and so are those of an allowlisted one: they go through a relay, not to it.
    ['2002:7f00:1::', '127.0.0.0/8', '127.0.0.1'],
    ['64:ff9b::127.0.0.1', '127.0.0.0/8', '127.0.0.1'],
    // Forms of public addresses pass.
    ['::8.8.8.8', undefined],
    ['2002:808:808::', undefined],
    ['64:ff9b::8.8.8.8', undefined],
    // Not NAT64 well-known prefix: bits 64–95 must be zero (RFC 6052 §2.2).
    ['64:ff9b:0:0:1::7f00:2', undefined],
  ];
  for (const [address, blockedBy, embedded] of rows) {
    it(`address=${JSON.stringify(address)} → ${blockedBy === undefined ? 'allowed' : `blocked by ${blockedBy}`}`, () => {
      const verdict = filter.check(address);
      assert.equal(verdict?.range?.entry, blockedBy);
      assert.equal(verdict?.embedded, embedded);
      assert.equal(filter.isBlocked(address), blockedBy !== undefined);
    });
  }

  it('refuses an answer that is not an IP address (fail closed)', () => {
    assert.deepEqual(filter.check('example.com'), { address: 'example.com', range: undefined, embedded: undefined });
  });

  it('an empty blocklist refuses nothing, junk included', () => {
    const off = new IpFilter(compileIpRanges([], 'ipBlocklist'), compileIpRanges([], 'ipAllowlist'));
    assert.equal(off.isOff, true);
    assert.equal(off.isBlocked('127.0.0.1'), false);
    assert.equal(off.isBlocked('junk'), false);
  });

  it('never throws on garbage', () => {
    for (const junk of ['', '%', ':::', '1.2.3.4.5', '::ffff:', '[::1]', 'fe80::%', '\u0000', 'x'.repeat(10_000)]) {
      assert.equal(filter.isBlocked(junk), true, JSON.stringify(junk.slice(0, 20)));
    }
  });
});

function parseOrFail(address: string): PackedAddress {
  const packed = parseAddress(address);
  assert.ok(packed !== undefined, `address=${JSON.stringify(address)}`);
  return packed;
}
