// The test kit's host map: the recording proxy's and the test origin's `hosts` options,
// createHostsLookup and createSrvResolver.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connect } from 'node:tls';
import { once } from 'node:events';

import { createRecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin } from '../../src/testing/test-origin.js';
import { createHostsLookup } from '../../src/testing/hosts.js';
import { createSrvResolver } from '../../src/testing/srv-resolver.js';
import { createEgress } from '../../src/egress.js';

describe('test kit: host maps', () => {
  it('the proxy tunnels a name from its host map to the mapped address and records the name', async () => {
    const origin = await createTestOrigin({ tls: true, hosts: { 'matrix.example.test': '127.0.0.1' } });
    const proxy = await createRecordingProxy({ hosts: { 'matrix.example.test': '127.0.0.1' } });
    const egress = createEgress({ env: { https_proxy: proxy.url }, ca: origin.ca });
    try {
      const response = await egress.fetch('push', `${origin.urlFor('matrix.example.test')}/x`);
      assert.equal(response.status, 200);
      await response.text();
      assert.equal(proxy.lastCall()?.target, `matrix.example.test:${String(origin.port)}`);
      assert.equal(proxy.lastCall()?.host, 'matrix.example.test');
      assert.equal(origin.lastCall()?.servername, 'matrix.example.test', 'the certificate names the mapped host');
    } finally {
      await egress.close();
      await proxy.close();
      await origin.close();
    }
  });

  it('the proxy forwards plain http to a mapped name, keeping its Host', async () => {
    const origin = await createTestOrigin({ hosts: { 'plain.example.test': '127.0.0.1' } });
    const proxy = await createRecordingProxy({ hosts: { 'plain.example.test': '127.0.0.1' } });
    const egress = createEgress({ env: { http_proxy: proxy.url } });
    try {
      const response = await egress.fetch('push', `${origin.urlFor('plain.example.test')}/y`);
      assert.equal(response.status, 200);
      await response.text();
      assert.equal(origin.lastCall()?.headers.host, `plain.example.test:${String(origin.port)}`);
    } finally {
      await egress.close();
      await proxy.close();
      await origin.close();
    }
  });

  it('host maps accept loopback addresses only; an origin listens on its map address', async () => {
    await assert.rejects(createRecordingProxy({ hosts: { 'x.test': '10.0.0.1' } }), TypeError);
    assert.throws(() => createHostsLookup({ 'x.test': '192.0.2.1' }), TypeError);
    await assert.rejects(createTestOrigin({ host: '127.0.0.1', hosts: { 'x.test': '127.0.0.2' } }), TypeError);
    const origin = await createTestOrigin({ hosts: { 'y.test': '127.0.0.3' } });
    try {
      assert.equal(origin.host, '127.0.0.3');
    } finally {
      await origin.close();
    }
  });

  it('createHostsLookup answers mapped names, passes IP literals and refuses the rest', async () => {
    const { lookup, calls } = createHostsLookup({ 'A.Example.test': '127.0.0.5' });
    const ask = (name: string) =>
      new Promise<unknown>((resolve) => {
        lookup(name, { all: true }, (error, addresses) => {
          resolve(error === null ? addresses : (error).code);
        });
      });
    assert.deepEqual(await ask('a.example.test.'), [{ address: '127.0.0.5', family: 4 }]);
    assert.deepEqual(await ask('127.0.0.9'), [{ address: '127.0.0.9', family: 4 }]);
    assert.equal(await ask('other.test'), 'ENOTFOUND');
    assert.deepEqual(calls, ['a.example.test.', '127.0.0.9', 'other.test']);
  });

  it('createSrvResolver answers from its table with dns-style errors, and records the names', async () => {
    const srv = createSrvResolver({ '_matrix-fed._tcp.a.test': [{ name: 't.test', port: 8448, priority: 1, weight: 2 }] });
    assert.deepEqual(await srv.resolveSrv('_matrix-fed._tcp.A.test'), [{ name: 't.test', port: 8448, priority: 1, weight: 2 }]);
    await assert.rejects(srv.resolveSrv('_matrix._tcp.a.test'), { code: 'ENOTFOUND' });
    srv.set('_matrix._tcp.a.test', { error: 'ETIMEOUT' });
    await assert.rejects(srv.resolveSrv('_matrix._tcp.a.test'), { code: 'ETIMEOUT' });
    assert.deepEqual(srv.calls(), ['_matrix-fed._tcp.a.test', '_matrix._tcp.a.test', '_matrix._tcp.a.test']);
    srv.clear();
    assert.deepEqual(srv.calls(), []);
  });

  it('an origin with hosts and tls: true presents a certificate naming them', async () => {
    const origin = await createTestOrigin({ tls: true, hosts: { 'cert.example.test': '127.0.0.1' } });
    try {
      const socket = connect({ host: '127.0.0.1', port: origin.port, servername: 'cert.example.test', ca: origin.ca });
      await once(socket, 'secureConnect');
      assert.equal(socket.authorized, true);
      socket.destroy();
    } finally {
      await origin.close();
    }
  });
});
