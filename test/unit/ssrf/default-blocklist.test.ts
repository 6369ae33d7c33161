import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_IP_BLOCKLIST } from '../../../src/ssrf/default-blocklist.js';
import { IpFilter } from '../../../src/ssrf/ip-filter.js';
import { compileIpRanges } from '../../../src/ssrf/ip-set.js';

/** One row per range of SPEC §8: addresses inside (first, last, notable) and the allowed neighbours just outside. */
interface Row {
  readonly range: string;
  readonly inside: readonly string[];
  /** Empty when both neighbours are themselves blocked (noted per row). */
  readonly outside: readonly string[];
}

const MAX6 = 'ffff:ffff:ffff:ffff:ffff:ffff';

const IPV4_ROWS: readonly Row[] = [
  { range: '0.0.0.0/8', inside: ['0.0.0.0', '0.255.255.255'], outside: ['1.0.0.0'] },
  { range: '10.0.0.0/8', inside: ['10.0.0.0', '10.255.255.255'], outside: ['9.255.255.255', '11.0.0.0'] },
  { range: '100.64.0.0/10', inside: ['100.64.0.0', '100.127.255.255'], outside: ['100.63.255.255', '100.128.0.0'] },
  { range: '127.0.0.0/8', inside: ['127.0.0.1', '127.255.255.255'], outside: ['126.255.255.255', '128.0.0.0'] },
  { range: '169.254.0.0/16', inside: ['169.254.169.254', '169.254.0.0'], outside: ['169.253.255.255', '169.255.0.0'] },
  { range: '172.16.0.0/12', inside: ['172.16.0.0', '172.31.255.255'], outside: ['172.15.255.255', '172.32.0.0'] },
  { range: '192.0.0.0/24', inside: ['192.0.0.8', '192.0.0.255'], outside: ['191.255.255.255', '192.0.1.0'] },
  { range: '192.0.2.0/24', inside: ['192.0.2.0', '192.0.2.255'], outside: ['192.0.1.255', '192.0.3.0'] },
  { range: '192.88.99.0/24', inside: ['192.88.99.1'], outside: ['192.88.98.255', '192.88.100.0'] },
  { range: '192.168.0.0/16', inside: ['192.168.0.0', '192.168.255.255'], outside: ['192.167.255.255', '192.169.0.0'] },
  { range: '198.18.0.0/15', inside: ['198.18.0.0', '198.19.255.255'], outside: ['198.17.255.255', '198.20.0.0'] },
  { range: '198.51.100.0/24', inside: ['198.51.100.7'], outside: ['198.51.99.255', '198.51.101.0'] },
  { range: '203.0.113.0/24', inside: ['203.0.113.7'], outside: ['203.0.112.255', '203.0.114.0'] },
  // Above it lies 240.0.0.0/4, also blocked.
  { range: '224.0.0.0/4', inside: ['224.0.0.1', '239.255.255.255'], outside: ['223.255.255.255'] },
  // Below it lies multicast; above it, nothing.
  { range: '240.0.0.0/4', inside: ['240.0.0.1', '255.255.255.255'], outside: [] },
];

const IPV6_ROWS: readonly Row[] = [
  // The neighbours ::1 and ::2 are blocked too (::2 as the IPv4-compatible form of 0.0.0.2).
  { range: '::/128', inside: ['::'], outside: ['::808:808'] },
  { range: '::1/128', inside: ['::1', '0:0:0:0:0:0:0:1'], outside: ['::808:808'] },
  { range: '64:ff9b:1::/48', inside: ['64:ff9b:1::1', `64:ff9b:1:${MAX6.slice(0, 24)}`], outside: ['64:ff9b:2::', '64:ff9b:0:ffff::1'] },
  { range: '100::/64', inside: ['100::1', '100::ffff:ffff:ffff:ffff'], outside: ['100:0:0:1::', `ff:${MAX6}:ffff`] },
  { range: '2001::/32', inside: ['2001::1', `2001:0:${MAX6}`], outside: ['2001:1::', `2000:${MAX6}:ffff`] },
  { range: '2001:2::/48', inside: ['2001:2::1', `2001:2:0:${MAX6.slice(0, 24)}`], outside: ['2001:2:1::', `2001:1:${MAX6}`] },
  { range: '2001:db8::/32', inside: ['2001:db8::1', `2001:db8:${MAX6}`], outside: ['2001:db9::', `2001:db7:${MAX6}`] },
  { range: '2002::/16', inside: ['2002:808:808::1', `2002:${MAX6}:ffff`], outside: ['2003::1', `2001:${MAX6}:ffff`] },
  { range: '3fff::/20', inside: ['3fff::1', `3fff:fff:${MAX6}`], outside: ['3fff:1000::', `3ffe:${MAX6}:ffff`] },
  { range: '5f00::/16', inside: ['5f00::1', `5f00:${MAX6}:ffff`], outside: ['5f01::', `5eff:${MAX6}:ffff`] },
  { range: 'fc00::/7', inside: ['fc00::1', `fdff:${MAX6}:ffff`], outside: [`fbff:${MAX6}:ffff`, 'fe00::'] },
  // Above it lies fec0::/10, also blocked.
  { range: 'fe80::/10', inside: ['fe80::1', `febf:${MAX6}:ffff`], outside: [`fe7f:${MAX6}:ffff`] },
  // Between link-local and multicast, both blocked.
  { range: 'fec0::/10', inside: ['fec0::1', `feff:${MAX6}:ffff`], outside: [] },
  { range: 'ff00::/8', inside: ['ff02::1', `ffff:${MAX6}:ffff`], outside: [] },
];

const PUBLIC = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '2a00:1450:4001:82b::200e'];

const filter = new IpFilter(compileIpRanges(DEFAULT_IP_BLOCKLIST, 'ipBlocklist'), compileIpRanges([], 'ipAllowlist'));

/** `a.b.c.d` as two IPv6 hex groups. */
function hexGroups(v4: string): string {
  const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
  return `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

describe('DEFAULT_IP_BLOCKLIST (SPEC §8)', () => {
  it('has one row below per entry, and nothing else', () => {
    assert.deepEqual([...IPV4_ROWS, ...IPV6_ROWS].map((row) => row.range).sort(), [...DEFAULT_IP_BLOCKLIST].sort());
  });

  it('is frozen and compiles', () => {
    assert.ok(Object.isFrozen(DEFAULT_IP_BLOCKLIST));
    assert.throws(() => {
      (DEFAULT_IP_BLOCKLIST as string[]).push('8.8.8.8');
    }, TypeError);
  });

  for (const row of [...IPV4_ROWS, ...IPV6_ROWS]) {
    it(`range=${row.range}: ${row.inside.join(', ')} blocked; ${row.outside.join(', ') || '(no free neighbour)'} allowed`, () => {
      for (const address of row.inside) {
        assert.equal(filter.check(address)?.range?.entry, row.range, `range=${row.range} address=${address} should be blocked by it`);
      }
      for (const address of row.outside) {
        assert.equal(filter.check(address), undefined, `range=${row.range} address=${address} should be allowed`);
      }
    });
  }

  for (const row of IPV4_ROWS) {
    it(`range=${row.range}: IPv4-mapped, IPv4-compatible, 6to4 and NAT64 forms follow the IPv4 address`, () => {
      for (const address of row.inside) {
        for (const form of [`::ffff:${address}`, `::ffff:${hexGroups(address)}`, `::${address}`, `2002:${hexGroups(address)}::1`, `64:ff9b::${address}`]) {
          assert.equal(filter.isBlocked(form), true, `range=${row.range} address=${form} should be blocked`);
        }
      }
      for (const address of row.outside) {
        for (const form of [`::ffff:${address}`, `::${address}`, `64:ff9b::${address}`]) {
          assert.equal(filter.isBlocked(form), false, `range=${row.range} address=${form} should be allowed`);
        }
        // Every 6to4 address is blocked (2002::/16), whatever it embeds.
        assert.equal(filter.isBlocked(`2002:${hexGroups(address)}::1`), true);
      }
    });
  }

  for (const address of PUBLIC) {
    it(`public address=${address} is allowed`, () => {
      assert.equal(filter.check(address), undefined);
    });
  }

  it('does not block the whole NAT64 well-known prefix: DNS64 synthesises it for every IPv4-only name', () => {
    assert.equal(filter.isBlocked('64:ff9b::808:808'), false);
    assert.equal(filter.isBlocked('64:ff9b::a9fe:a9fe'), true);
  });
});
