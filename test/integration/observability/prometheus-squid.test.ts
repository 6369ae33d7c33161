/**
 * Issue 16: `matrix-egress/prometheus` scraped from a real prom-client Registry after real traffic
 * through a real Squid that requires (canary) credentials: CONNECT tunnels, forwarded http, a 5xx
 * from an origin, a CONNECT Squid refuses, the SSRF guard, and the http.Agent side. The scrape must
 * count every request under the right labels and hold no credential, host, path or query.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';

import { createEgress, type Egress } from '../../../src/egress.js';
import { registerEgressMetrics } from '../../../src/prometheus/index.js';
import { createTestCertificateAuthority } from '../../../src/testing/certificates.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';
import { closedPort } from '../../support/net.js';
import { startSquid, type SquidInstance } from '../../support/squid.js';

// Lowercase: Squid's basic auth folds user names to lowercase before the helper checks them (casesensitive off).
const CANARY_USER = 'prom-canary-user';
const CANARY_PASSWORD = 'pRoM-cAnArY-pw-4242';
const SECRET_PATH = '/_matrix/pRoM-sEcReT';
const SECRET_QUERY = 'access_token=pRoM-qUeRy';
const NEEDLES = [CANARY_USER, CANARY_PASSWORD, Buffer.from(`${CANARY_USER}:${CANARY_PASSWORD}`).toString('base64'), 'canary', 'sEcReT', 'qUeRy', '127.0.0', 'localhost'];

const ORIGIN_CA = createTestCertificateAuthority({ commonName: 'prometheus test origin CA' });
const ORIGIN_LEAF = ORIGIN_CA.issue({ hosts: ['localhost', '127.0.0.1'] });

/** The value of one sample line of the exposition, or undefined when absent. */
function sample(scrape: string, name: string, labels: Readonly<Record<string, string>>): number | undefined {
  for (const line of scrape.split('\n')) {
    const match = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const found = new Map([...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((m): [string, string] => [m[1] ?? '', m[2] ?? '']));
    if (found.size !== Object.keys(labels).length) continue;
    if (Object.entries(labels).every(([key, value]) => found.get(key) === value)) return Number(match[3]);
  }
  return undefined;
}

async function getStatus(egress: Egress, type: string, url: string): Promise<number> {
  const response = await egress.fetch(type, url);
  await response.text();
  return response.status;
}

describe('matrix-egress/prometheus: a real registry after real traffic through Squid', () => {
  let restoreEnv: () => void;
  let squid: SquidInstance;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;
  let egress: Egress;
  let registry: Registry;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    squid = await startSquid({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } });
    [httpsOrigin, httpOrigin] = await Promise.all([
      createTestOrigin({ tls: { ...ORIGIN_LEAF, ca: ORIGIN_CA.cert } }),
      createTestOrigin({
        handler: (req, res) => {
          req.resume();
          res.writeHead(req.url?.startsWith('/fail') === true ? 503 : 200, { 'Content-Length': '0' });
          res.end();
        },
      }),
    ]);
    const proxyUrl = squid.url.replace('://', `://${CANARY_USER}:${CANARY_PASSWORD}@`);
    egress = createEgress({
      env: { https_proxy: proxyUrl, http_proxy: proxyUrl },
      ca: ORIGIN_CA.cert,
      // Only 127.0.0.1 is allowed: 127.0.0.2 stays blocklisted, for the SSRF guard's count.
      ipAllowlist: ['127.0.0.1/32'],
      connectTimeout: 5_000,
    });
    registry = new Registry();
    registerEgressMetrics(egress, registry);
  });

  after(async () => {
    await egress.close();
    await squid.stop({ force: true });
    await Promise.all([httpsOrigin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  it('counts requests per type, route and outcome, errors, blocks and tunnels, with bounded labels and no secrets', async () => {
    const target = `${SECRET_PATH}?${SECRET_QUERY}`;
    for (let i = 0; i < 3; i++) assert.equal(await getStatus(egress, 'federation', `${httpsOrigin.url}${target}`), 200);
    for (let i = 0; i < 2; i++) assert.equal(await getStatus(egress, 'url_preview', `${httpOrigin.url}${target}`), 200);
    assert.equal(await getStatus(egress, 'push', `${httpOrigin.url}/fail${target}`), 503);
    // Squid answers CONNECT to a closed port with an error status: a proxy error.
    const refused = await fetchError(egress.fetch('key_fetch', `https://127.0.0.1:${String(await closedPort())}${target}`));
    assert.equal((refused as { code?: unknown }).code, 'ERR_EGRESS_PROXY_CONNECT');
    // An IP literal on the blocklist is refused before anything is sent, whatever the route.
    await fetchError(egress.fetch('push', `http://127.0.0.2:${String(httpOrigin.port)}${target}`));
    // The http.Agent side, through a CONNECT tunnel of its own.
    const agentStatus = await new Promise<number>((resolve, reject) => {
      https
        .get(`${httpsOrigin.url}${target}`, { agent: egress.httpsAgent('media'), ca: ORIGIN_CA.cert }, (res) => {
          res.resume();
          res.once('end', () => {
            resolve(res.statusCode ?? 0);
          });
        })
        .once('error', reject);
    });
    assert.equal(agentStatus, 200);

    const scrape = await registry.metrics();
    const expect = (name: string, labels: Record<string, string>, value: number): void => {
      assert.equal(sample(scrape, name, labels), value, `${name}${JSON.stringify(labels)} in\n${scrape}`);
    };
    expect('matrix_egress_requests_total', { type: 'federation', route: 'proxy', outcome: '2xx' }, 3);
    expect('matrix_egress_requests_total', { type: 'url_preview', route: 'proxy', outcome: '2xx' }, 2);
    expect('matrix_egress_requests_total', { type: 'push', route: 'proxy', outcome: '5xx' }, 1);
    expect('matrix_egress_requests_total', { type: 'key_fetch', route: 'proxy', outcome: 'error' }, 1);
    expect('matrix_egress_requests_total', { type: 'push', route: 'none', outcome: 'blocked' }, 1);
    expect('matrix_egress_requests_total', { type: 'media', route: 'proxy', outcome: '2xx' }, 1);
    expect('matrix_egress_request_errors_total', { type: 'key_fetch', route: 'proxy', code: 'ERR_EGRESS_PROXY_CONNECT' }, 1);
    expect('matrix_egress_proxy_errors_total', { code: 'ERR_EGRESS_PROXY_CONNECT' }, 1);
    expect('matrix_egress_blocked_total', { type: 'push' }, 1);
    expect('matrix_egress_request_duration_seconds_count', { type: 'federation', route: 'proxy' }, 3);
    expect('matrix_egress_request_duration_seconds_count', { type: 'url_preview', route: 'proxy' }, 2);
    expect('matrix_egress_tunnel_failures_total', { code: 'ERR_EGRESS_PROXY_CONNECT' }, 1);
    // Keep-alive: the three federation requests share one tunnel; the agent opened another.
    expect('matrix_egress_tunnels_opened_total', {}, 2);
    expect('matrix_egress_tunnels_open', {}, 2);
    assert.ok((sample(scrape, 'matrix_egress_pooled_connections', { route: 'proxy' }) ?? 0) >= 3);

    // Bounded labels only; nothing secret, no host, path or query.
    const labelNames = new Set([...scrape.matchAll(/[{,]([a-z_]+)="/g)].map((m) => m[1]));
    assert.deepEqual([...labelNames].sort(), ['code', 'le', 'outcome', 'route', 'type']);
    for (const needle of NEEDLES) assert.ok(!scrape.includes(needle), `the scrape contains ${needle}`);

    // Squid saw the traffic: its log names the authenticated user for the forwarded requests.
    await squid.waitForAccessLog((entry) => entry.method === 'GET' && entry.user === CANARY_USER && entry.status === 200);
  });

  it('unregister removes every metric; a second registration on one registry is refused', () => {
    const other = new Registry();
    const metrics = registerEgressMetrics(egress, other);
    assert.throws(() => registerEgressMetrics(egress, other), /already been registered/);
    metrics.unregister();
    metrics.unregister();
    assert.equal(other.getMetricsAsArray().length, 0);
    assert.throws(() => registerEgressMetrics({} as Egress, other), TypeError);
  });
});
