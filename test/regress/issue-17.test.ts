// Issue #17: one client surface. (1) The `lookup` option resolves every direct connection of every
// connection type, on every client surface (dispatcher, fetch and its redirect hops, both agents),
// whatever the type's ipBlocklist setting. (2) `egress.httpAgent(type)` pairs with `httpsAgent(type)`
// and `agent(type)` is its alias. Real origins on loopback, reached by a name only our resolver knows;
// the system resolver is never asked (the name would be ENOTFOUND, and this machine has no DNS).
import assert from 'node:assert/strict';
import type { LookupAddress } from 'node:dns';
import * as http from 'node:http';
import * as https from 'node:https';
import type { LookupFunction } from 'node:net';
import { after, before, describe, it } from 'node:test';

import { request } from 'undici';

import type { EgressOptions } from '../../src/config/compile.js';
import { createEgress, type Egress } from '../../src/egress.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../src/policy/connection-types.js';
import { createTestCertificateAuthority } from '../../src/testing/certificates.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';

/** A name the system resolver does not know: split-horizon DNS for an internal service. */
const NAME = 'hs.split-horizon.test';
const TYPES = [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES, 'my_bridge'] as const;
/** The default blocklist refuses loopback, where the origins are; the allowlist lets them through. */
const ALLOW_LOOPBACK = { ipAllowlist: ['127.0.0.0/8', '::1'] } as const;

/** A resolver that knows NAME and nothing else, counting what it was asked. */
function splitHorizon(asked: string[]): LookupFunction {
  return (hostname, options, callback) => {
    asked.push(hostname);
    process.nextTick(() => {
      if (hostname !== NAME) {
        const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
        callback(error, options.all === true ? [] : '');
        return;
      }
      const answer: LookupAddress = { address: '127.0.0.1', family: 4 };
      if (options.all === true) callback(null, [answer]);
      else callback(null, answer.address, answer.family);
    });
  };
}

function get(client: typeof http | typeof https, url: string, agent: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = client.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

describe('issue #17: lookup for every direct connection; httpAgent beside httpsAgent', () => {
  let restoreEnv: () => void;
  let httpOrigin: TestOrigin;
  let httpsOrigin: TestOrigin;
  let ca: string;
  const made: Egress[] = [];

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    if (req.url === '/redirect') {
      // From an IP-literal URL (no look-up) to the name: the second hop must resolve through `lookup`.
      res.writeHead(302, { location: `http://${NAME}:${String(httpOrigin.port)}/landed` }).end();
      return;
    }
    res.end(`ok ${req.url ?? ''}`);
  };

  before(async () => {
    restoreEnv = isolateProxyEnv();
    const authority = createTestCertificateAuthority({ commonName: 'issue-17 CA' });
    const leaf = authority.issue({ hosts: [NAME] });
    ca = authority.cert;
    httpOrigin = await createTestOrigin({ handler });
    httpsOrigin = await createTestOrigin({ tls: { cert: leaf.cert, key: leaf.key, ca }, handler });
  });

  after(async () => {
    await Promise.all(made.map((egress) => egress.close()));
    await Promise.all([httpOrigin.close(), httpsOrigin.close()]);
    restoreEnv();
  });

  function egressWith(asked: string[], options: EgressOptions = {}): Egress {
    const egress = createEgress({
      env: {},
      ca,
      lookup: splitHorizon(asked),
      ...ALLOW_LOOPBACK,
      ...options,
      connectionTypes: { my_bridge: { route: 'direct' }, ...options.connectionTypes },
    });
    made.push(egress);
    return egress;
  }

  /** Every client surface, one request each, to NAME; returns the bodies. */
  async function everySurface(egress: Egress, type: string): Promise<string[]> {
    const httpUrl = `http://${NAME}:${String(httpOrigin.port)}/${type}`;
    const httpsUrl = `https://${NAME}:${String(httpsOrigin.port)}/${type}`;
    const bodies: string[] = [];
    for (const url of [httpUrl, httpsUrl]) {
      const { statusCode, body } = await request(url, { dispatcher: egress.dispatcher(type) });
      assert.equal(statusCode, 200, `dispatcher ${type} ${url}`);
      bodies.push(await body.text());
      const response = await egress.fetch(type, url);
      assert.equal(response.status, 200, `fetch ${type} ${url}`);
      bodies.push(await response.text());
    }
    const redirected = await egress.fetch(type, `http://127.0.0.1:${String(httpOrigin.port)}/redirect`);
    assert.equal(redirected.url, `http://${NAME}:${String(httpOrigin.port)}/landed`, `fetch redirect ${type}`);
    bodies.push(await redirected.text());
    const plain = await get(http, httpUrl, egress.httpAgent(type));
    assert.equal(plain.status, 200, `httpAgent ${type}`);
    bodies.push(plain.body);
    const secure = await get(https, httpsUrl, egress.httpsAgent(type));
    assert.equal(secure.status, 200, `httpsAgent ${type}`);
    bodies.push(secure.body);
    return bodies;
  }

  const expected = (type: string): string[] => [...Array<string>(4).fill(`ok /${type}`), 'ok /landed', `ok /${type}`, `ok /${type}`];

  for (const type of TYPES) {
    it(`${type}: dispatcher, fetch (and its redirect hop), httpAgent and httpsAgent resolve through lookup`, async () => {
      const asked: string[] = [];
      const egress = egressWith(asked);
      assert.equal(egress.route(type, `https://${NAME}/`).route, 'direct');
      assert.deepEqual(await everySurface(egress, type), expected(type));
      assert.ok(asked.length > 0 && asked.every((name) => name === NAME), `${type}: lookup asked for ${asked.join(', ')}`);
    });
  }

  it('the same with every changeable ipBlocklist setting flipped, and with the blocklist off', async () => {
    // worker and redis are never checked (compile refuses ipBlocklist: true for them).
    const flipped = Object.fromEntries(
      TYPES.filter((type) => type !== 'worker' && type !== 'redis').map((type) => {
        const policy = createEgress({ env: {}, connectionTypes: { my_bridge: { route: 'direct' } } }).config.connectionTypes.get(type);
        return [type, { ipBlocklist: policy?.ipBlocklist !== true }];
      }),
    );
    for (const options of [{ connectionTypes: { ...flipped, my_bridge: { route: 'direct' as const, ...flipped.my_bridge } } }, { ipBlocklist: [] }]) {
      const asked: string[] = [];
      const egress = egressWith(asked, options);
      for (const type of TYPES) {
        assert.deepEqual(await everySurface(egress, type), expected(type), `${type} with ${JSON.stringify(options)}`);
      }
      assert.ok(asked.length > 0 && asked.every((name) => name === NAME));
    }
  });

  it('checked types still check the answers of lookup; unchecked ones use them as they are', async () => {
    const asked: string[] = [];
    // No allowlist: loopback is blocked for checked types.
    const egress = egressWith(asked, { ipAllowlist: [] });
    const url = `http://${NAME}:${String(httpOrigin.port)}/checked`;
    await assert.rejects(request(url, { dispatcher: egress.dispatcher('push') }), { code: 'ERR_EGRESS_BLOCKED_DESTINATION' });
    await assert.rejects(get(http, url, egress.httpAgent('push')), { code: 'ERR_EGRESS_BLOCKED_DESTINATION' });
    const { statusCode, body } = await request(url, { dispatcher: egress.dispatcher('appservice') });
    assert.equal(statusCode, 200);
    assert.equal(await body.text(), 'ok /checked');
    assert.equal((await get(http, url, egress.httpAgent('identity_server'))).status, 200);
    assert.ok(asked.every((name) => name === NAME));
  });

  describe('names sent to the proxy are not resolved locally', () => {
    let proxy: RecordingProxy;
    before(async () => {
      proxy = await createRecordingProxy({ allowTarget: () => false });
    });
    after(async () => {
      await proxy.close();
    });

    it('a proxied request to the name never asks lookup (the proxy resolves it)', async () => {
      const asked: string[] = [];
      const egress = egressWith(asked, { env: { http_proxy: proxy.url, https_proxy: proxy.url } });
      const { statusCode, body } = await request(`http://${NAME}:${String(httpOrigin.port)}/via-proxy`, { dispatcher: egress.dispatcher('push') });
      await body.dump();
      // allowTarget refuses: the proxy answered for itself, so the name went to it unresolved.
      assert.equal(statusCode, 403);
      assert.equal(proxy.lastCall()?.host, NAME);
      assert.deepEqual(asked, []);
    });
  });

  describe('httpAgent and its alias agent', () => {
    it('httpAgent(type) is the agent for http:// URLs; agent(type) returns the very same object', () => {
      const egress = egressWith([]);
      for (const type of TYPES) {
        const agent = egress.httpAgent(type);
        assert.ok(agent instanceof http.Agent, type);
        assert.equal(egress.agent(type), agent, `${type}: agent() is an alias`);
        assert.notEqual(egress.httpsAgent(type), agent, `${type}: https has its own agent`);
      }
      // Each type has an agent of its own, so its requests are counted per type (#16).
      assert.notEqual(egress.httpAgent('appservice'), egress.httpAgent('identity_server'));
    });

    it('both throw EgressClosedError after close()', async () => {
      const egress = egressWith([]);
      await egress.close();
      assert.throws(() => egress.httpAgent('push'), { code: 'ERR_EGRESS_CLOSED' });
      assert.throws(() => egress.agent('push'), { code: 'ERR_EGRESS_CLOSED' });
    });
  });
});
