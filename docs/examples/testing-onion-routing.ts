// Test that .onion federation goes through Tor by name while the rest keeps its route, with the
// test kit's recording SOCKS5 proxy standing in for Tor. Loopback only; run it with `node --test`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createEgress, type Egress } from 'matrix-egress';
import {
  createRecordingSocksProxy,
  createTestOrigin,
  expectNoSocksCall,
  expectSocksName,
  type RecordingSocksProxy,
  type TestOrigin,
} from 'matrix-egress/testing';

describe('onion routing', () => {
  let tor: RecordingSocksProxy;
  let onion: TestOrigin;
  let clearnet: TestOrigin;
  let egress: Egress;
  const resolved: string[] = [];

  before(async () => {
    onion = await createTestOrigin();
    clearnet = await createTestOrigin();
    // The stand-in for Tor "resolves" the onion name to the loopback origin; nothing else.
    tor = await createRecordingSocksProxy({ hosts: { 'matrixabc.onion': '127.0.0.1' } });
    egress = createEgress({
      env: {},
      ipAllowlist: ['127.0.0.0/8'], // the test origins live on loopback, which the SSRF guard blocks
      proxyRules: [{ hosts: '*.onion', proxy: tor.socks5hUrl }], // as in production: socks5h://127.0.0.1:9050
      // Records every name this process resolves itself.
      lookup: (hostname, options, callback) => {
        resolved.push(hostname);
        callback(null, [{ address: '127.0.0.1', family: 4 }]);
      },
    });
  });

  after(async () => {
    await egress.close();
    await Promise.all([tor.close(), onion.close(), clearnet.close()]);
  });

  it('sends .onion requests to the SOCKS proxy by name, never resolving them here', async () => {
    const response = await egress.fetch('federation', `http://matrixabc.onion:${String(onion.port)}/_matrix/federation/v1/version`);
    assert.equal(response.status, 200);
    await response.text();
    expectSocksName(tor, 'matrixabc.onion', { outcome: 'connected' });
    assert.deepEqual(resolved, []);
    assert.equal(egress.route('federation', 'https://matrixabc.onion/').reasonCode, 'proxy-rule');
  });

  it('leaves every other destination on its route', async () => {
    tor.clear();
    const response = await egress.fetch('federation', `http://localhost:${String(clearnet.port)}/`);
    assert.equal(response.status, 200);
    await response.text();
    expectNoSocksCall(tor);
  });
});
