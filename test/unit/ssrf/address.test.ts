import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { formatAddress, parseAddress } from '../../../src/ssrf/address.js';

describe('parseAddress: what a socket connects to', () => {
  const rows: [text: string, canonical: string | undefined][] = [
    ['127.0.0.1', '127.0.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['::1', '::1'],
    ['::', '::'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0db8::0001', '2001:db8::1'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    // IPv4-mapped: the IPv4 address, in either spelling.
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['0:0:0:0:0:ffff:10.1.2.3', '10.1.2.3'],
    // IPv4-compatible stays IPv6 (ipaddr.js 2.5 would read this as IPv4-mapped).
    ['::127.0.0.1', '::7f00:1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['fe80::1%eth0', 'fe80::1'],
    ['fe80::1%2', 'fe80::1'],
    // Refused: shorthand and non-decimal IPv4 (URLs expand these before we see them), junk.
    ['0177.0.0.1', undefined],
    ['0x7f.0.0.1', undefined],
    ['127.1', undefined],
    ['2130706433', undefined],
    ['127.0.0.01', undefined],
    ['256.0.0.1', undefined],
    ['1.2.3.4%eth0', undefined],
    ['[::1]', undefined],
    ['1::2::3', undefined],
    ['1:2:3:4:5:6:7:8:9', undefined],
    ['12345::', undefined],
    [':1', undefined],
    ['1:', undefined],
    ['::ffff:1.2.3', undefined],
    ['fe80::1%', undefined],
    ['localhost', undefined],
    ['', undefined],
  ];
  for (const [text, canonical] of rows) {
    it(`address=${JSON.stringify(text)} → ${canonical ?? 'not an address'}`, () => {
      const parsed = parseAddress(text);
      assert.equal(parsed === undefined ? undefined : formatAddress(parsed), canonical);
    });
  }

  it('accepts exactly what net.isIP accepts', () => {
    const hexGroup = fc.stringMatching(/^[0-9a-fA-F]{0,5}$/);
    const v6ish = fc.array(fc.oneof(hexGroup, fc.constant(''), fc.constantFrom('1.2.3.4', '255.0.0.1', '01.2.3.4')), { maxLength: 10 }).map((parts) => parts.join(':'));
    const v4ish = fc.array(fc.oneof(fc.nat(300).map(String), fc.constantFrom('00', '01', '0x1', '')), { maxLength: 5 }).map((parts) => parts.join('.'));
    const zone = fc.constantFrom('', '', '', '%eth0', '%1', '%', '%a_b', '%a:b.c-d');
    fc.assert(
      fc.property(fc.oneof(v6ish, v4ish, fc.string({ maxLength: 12 })), zone, (address, suffix) => {
        const text = address + suffix;
        assert.equal(parseAddress(text) !== undefined, isIP(text) !== 0, `address=${JSON.stringify(text)}`);
      }),
      { numRuns: 20_000 },
    );
  });

  it('round-trips every address through its canonical text', () => {
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
        const parsed = parseAddress(text);
        assert.ok(parsed !== undefined, `address=${JSON.stringify(text)}`);
        assert.deepEqual(parseAddress(formatAddress(parsed)), parsed);
      }),
      { numRuns: 5000 },
    );
  });
});
