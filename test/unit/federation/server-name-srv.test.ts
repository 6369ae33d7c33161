/**
 * The server-name grammar (Matrix specification, appendix "Server Name", with its examples) and the
 * RFC 2782 order of SRV targets.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { InvalidServerNameError } from '../../../src/errors.js';
import { parseServerName } from '../../../src/federation/server-name.js';
import { lookupSrv, orderSrvRecords, type SrvRecord } from '../../../src/federation/srv.js';
import { createSrvResolver } from '../../../src/testing/srv-resolver.js';

describe('parseServerName', () => {
  for (const [input, host, port, ip] of [
    // The specification's examples.
    ['matrix.org', 'matrix.org', undefined, false],
    ['matrix.org:8888', 'matrix.org', 8888, false],
    ['1.2.3.4', '1.2.3.4', undefined, true],
    ['1.2.3.4:1234', '1.2.3.4', 1234, true],
    ['[1234:5678::abcd]', '1234:5678::abcd', undefined, true],
    ['[1234:5678::abcd]:5678', '1234:5678::abcd', 5678, true],
    // More.
    ['Example.ORG', 'example.org', undefined, false],
    ['example.org.', 'example.org', undefined, false],
    ['localhost', 'localhost', undefined, false],
    ['my-server.example', 'my-server.example', undefined, false],
    ['[::1]:8448', '::1', 8448, true],
    ['bücher.example', 'xn--bcher-kva.example', undefined, false],
    ['host:65535', 'host', 65535, false],
  ] as const) {
    it(`${JSON.stringify(input)} → host ${host}, port ${String(port)}`, () => {
      const parsed = parseServerName(input);
      assert.deepEqual({ host: parsed.host, port: parsed.port, ip: parsed.ip }, { host, port, ip });
    });
  }

  for (const input of [
    '', ':8448', 'example.org:', 'example.org:0', 'example.org:65536', 'example.org:123456', 'example.org:+1', 'example.org:0x10',
    '::1', '1234:5678::abcd', '[1234:5678::abcd', '[1234:5678::abcd]x', '[example.org]', '[::1]:', '[::1%eth0]',
    '999.1.1.1', '1.2.3', '1.2.3.4.5', '0x7f.1', 'a..b', '.', 'exa_mple.org', 'exa mple.org', 'user@example.org', 'example.org/path',
    'example.org?x', 'example.org#x', 'a:b:c', 'host\r\nX: y', 'host\u0000', 'a'.repeat(256),
  ]) {
    it(`${JSON.stringify(input)} is refused with InvalidServerNameError`, () => {
      assert.throws(() => parseServerName(input), (error: unknown) => {
        assert.ok(error instanceof InvalidServerNameError);
        assert.equal(error.code, 'ERR_EGRESS_INVALID_SERVER_NAME');
        assert.ok(!error.message.includes("\r") && !error.message.includes("\n") && !error.message.includes("\u0000"));
        return true;
      });
    });
  }

  it('refuses what is not a string', () => {
    assert.throws(() => parseServerName(42), InvalidServerNameError);
    assert.throws(() => parseServerName(undefined), InvalidServerNameError);
  });
});

describe('orderSrvRecords (RFC 2782)', () => {
  const record = (name: string, priority: number, weight: number): SrvRecord => ({ name, port: 8448, priority, weight });

  it('lower priority first, whatever the weights', () => {
    const ordered = orderSrvRecords([record('c', 30, 100), record('a', 10, 0), record('b', 20, 1)]);
    assert.deepEqual(ordered.map((r) => r.name), ['a', 'b', 'c']);
  });

  it('within a priority, weights decide: a draw picks the record whose running sum reaches it', () => {
    const records = [record('w1', 0, 1), record('w3', 0, 3)];
    assert.deepEqual(orderSrvRecords(records, () => 0).map((r) => r.name), ['w1', 'w3']);
    assert.deepEqual(orderSrvRecords(records, () => 0.3).map((r) => r.name), ['w3', 'w1']);
  });

  it('weights hold over many draws (1 : 3 ≈ 25 % : 75 %)', () => {
    let first = 0;
    const runs = 20_000;
    for (let i = 0; i < runs; i++) {
      if (orderSrvRecords([record('w1', 0, 1), record('w3', 0, 3)])[0]?.name === 'w1') first++;
    }
    assert.ok(Math.abs(first / runs - 0.25) < 0.02, `w1 first in ${String(first)} of ${String(runs)}`);
  });

  it('zero-weight records come after weighted ones of their priority, and are all kept', () => {
    const ordered = orderSrvRecords([record('z1', 0, 0), record('w', 0, 5), record('z2', 0, 0), record('next', 1, 0)]);
    assert.equal(ordered[0]?.name, 'w');
    assert.deepEqual(new Set(ordered.slice(1, 3).map((r) => r.name)), new Set(['z1', 'z2']));
    assert.equal(ordered[3]?.name, 'next');
  });
});

describe('lookupSrv', () => {
  it('classifies answers: found, none (NXDOMAIN, NODATA, empty), no-service ("."), failed', async () => {
    const srv = createSrvResolver({
      found: [{ name: 'Target.Example.', port: 8448, priority: 0, weight: 0 }],
      nodata: { error: 'ENODATA' },
      empty: [],
      dot: [{ name: '.', port: 0, priority: 0, weight: 0 }],
      blank: [{ name: '', port: 0, priority: 0, weight: 0 }],
      fail: { error: 'ETIMEOUT' },
      junk: [{ name: 'bad name', port: 1, priority: 0, weight: 0 }, { name: 'ok.example', port: 70000, priority: 0, weight: 0 }],
    });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'found'), { kind: 'found', records: [{ name: 'target.example', port: 8448, priority: 0, weight: 0 }] });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'missing'), { kind: 'none' });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'nodata'), { kind: 'none' });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'empty'), { kind: 'none' });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'dot'), { kind: 'no-service' });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'blank'), { kind: 'no-service' });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'fail'), { kind: 'failed', code: 'ETIMEOUT' });
    assert.deepEqual(await lookupSrv(srv.resolveSrv, 'junk'), { kind: 'none' }, 'malformed records are dropped');
    assert.deepEqual(await lookupSrv(() => Promise.reject(new Error('boom')), 'x'), { kind: 'failed', code: 'ERROR' });
    assert.deepEqual(srv.calls(), ['found', 'missing', 'nodata', 'empty', 'dot', 'blank', 'fail', 'junk']);
  });
});
