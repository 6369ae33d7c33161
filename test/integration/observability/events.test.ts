/**
 * Issue 16: the diagnostics_channel events and `egress.stats()` after real traffic through the
 * recording proxy (CONNECT tunnels, forwarded http, direct, a 407, the SSRF guard), over every API:
 * `fetch`, `dispatcher().request`, and the http.Agents. Every payload and the stats are then searched
 * for the canary credentials, the request paths and the query strings: none may appear.
 */
import assert from 'node:assert/strict';
import diagnosticsChannel from 'node:diagnostics_channel';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';

import { createEgress, type Egress } from '../../../src/egress.js';
import { EGRESS_CHANNELS, type RequestFinishEvent, type RouteEvent, type TunnelErrorEvent, type TunnelOpenEvent } from '../../../src/observability/channels.js';
import { createRecordingProxy, type RecordingProxy } from '../../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';
import { fetchError } from '../../support/failures.js';
import { waitFor } from '../../support/net.js';

const CANARY_USER = 'cAnArY-uSeR-1616';
const CANARY_PASSWORD = 'cAnArY-p@ss:w/rd#1616';
const BASIC = Buffer.from(`${CANARY_USER}:${CANARY_PASSWORD}`).toString('base64');
const SECRET_PATH = '/_matrix/sEcReT-PaTh';
const SECRET_QUERY = 'access_token=qUeRy-CaNaRy';
const NEEDLES = [CANARY_USER, CANARY_PASSWORD, encodeURIComponent(CANARY_PASSWORD), 'cAnArY', BASIC, 'sEcReT', 'qUeRy', 'access_token'] as const;
const LOOPBACK_ALLOWED = { ipAllowlist: ['127.0.0.0/8', '::1'] } as const;

/** Every event published on the documented channels while subscribed, as [channel, payload]. */
function recordChannels(): { events: [string, unknown][]; stop(): void } {
  const events: [string, unknown][] = [];
  const subscriptions = Object.values(EGRESS_CHANNELS).map((name) => {
    const listener = (message: unknown): void => {
      events.push([name, message]);
    };
    diagnosticsChannel.subscribe(name, listener);
    return () => diagnosticsChannel.unsubscribe(name, listener);
  });
  return {
    events,
    stop: () => {
      for (const unsubscribe of subscriptions) unsubscribe();
    },
  };
}

function ofChannel<T>(events: readonly [string, unknown][], name: string): T[] {
  return events.filter(([channel]) => channel === name).map(([, payload]) => payload as T);
}

function assertNoSecrets(text: string, what: string): void {
  for (const needle of NEEDLES) assert.ok(!text.includes(needle), `${what} contains ${JSON.stringify(needle)}: ${text}`);
}

/** GET through a node:http agent; resolves with the status once the body has been read. */
function agentGet(module: typeof http | typeof https, url: string, agent: http.Agent, ca?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = module.get(url, { agent, ...(ca !== undefined && { ca }) }, (res) => {
      res.resume();
      res.once('end', () => {
        resolve(res.statusCode ?? 0);
      });
    });
    req.once('error', reject);
  });
}

describe('observability: events and stats through the recording proxy', () => {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    proxy = await createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } });
    [httpsOrigin, httpOrigin] = await Promise.all([createTestOrigin({ tls: true }), createTestOrigin()]);
  });

  after(async () => {
    await Promise.all([proxy.close(), httpsOrigin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  function proxiedEgress(password = CANARY_PASSWORD): Egress {
    const url = proxy.urlWithCredentials(CANARY_USER, password);
    return createEgress({ ...LOOPBACK_ALLOWED, env: { https_proxy: url, http_proxy: url }, ca: httpsOrigin.ca, connectTimeout: 5_000 });
  }

  it('every API and route publishes route, tunnel and finish events, counted per type and route', async () => {
    const recorder = recordChannels();
    const egress = proxiedEgress();
    try {
      const target = `${SECRET_PATH}?${SECRET_QUERY}`;
      // undici: fetch (https tunnel, http forward) and dispatcher().request (https tunnel).
      const first = await egress.fetch('federation', `${httpsOrigin.url}${target}`);
      assert.equal(first.status, 200);
      await first.text();
      const forwarded = await egress.fetch('url_preview', `${httpOrigin.url}${target}`);
      assert.equal(forwarded.status, 200);
      await forwarded.text();
      const viaRequest = await request(`${httpsOrigin.url}${target}`, { dispatcher: egress.dispatcher('push') });
      assert.equal(viaRequest.statusCode, 200);
      await viaRequest.body.text();
      // Always direct.
      const direct = await egress.fetch('appservice', `${httpOrigin.url}${target}`);
      await direct.text();
      // node:http agents: https through a tunnel, http forwarded.
      assert.equal(await agentGet(https, `${httpsOrigin.url}${target}`, egress.httpsAgent('media'), httpsOrigin.ca), 200);
      assert.equal(await agentGet(http, `${httpOrigin.url}${target}`, egress.agent('media')), 200);

      const finishes = ofChannel<RequestFinishEvent>(recorder.events, EGRESS_CHANNELS.requestFinish);
      const summary = finishes.map((e) => `${e.api} ${e.type} ${String(e.route)} ${e.outcome} ${String(e.statusCode)}`);
      assert.deepEqual(summary, [
        'dispatcher federation proxy 2xx 200',
        'dispatcher url_preview proxy 2xx 200',
        'dispatcher push proxy 2xx 200',
        'dispatcher appservice direct 2xx 200',
        'agent media proxy 2xx 200',
        'agent media proxy 2xx 200',
      ]);
      for (const event of finishes) {
        assert.equal(event.method, 'GET');
        assert.equal(event.errorCode, null);
        assert.ok(event.durationMs >= 0 && event.durationMs < 60_000);
      }

      const routes = ofChannel<RouteEvent>(recorder.events, EGRESS_CHANNELS.route);
      assert.equal(routes.length, 6);
      const federationRoute = routes[0]!;
      assert.deepEqual(
        { ...federationRoute },
        {
          api: 'dispatcher',
          type: 'federation',
          route: 'proxy',
          reasonCode: 'proxy',
          matched: null,
          proxy: proxy.url,
          scheme: 'https',
          host: '127.0.0.1',
          port: httpsOrigin.port,
        },
      );
      assert.equal(routes[3]?.reasonCode, 'always-direct');
      assert.equal(routes[3].proxy, null);
      assert.deepEqual(routes.slice(4).map((r) => r.api), ['agent', 'agent']);

      // Tunnels: the undici pool (one, reused by push) and the https agent's.
      const opened = ofChannel<TunnelOpenEvent>(recorder.events, EGRESS_CHANNELS.tunnelOpen);
      assert.equal(opened.length, 2);
      for (const event of opened) {
        assert.equal(event.proxy, proxy.url);
        assert.equal(event.target, `127.0.0.1:${String(httpsOrigin.port)}`);
        assert.ok(event.durationMs >= 0);
      }

      const stats = egress.stats();
      assert.equal(stats.types.federation?.proxy.requests, 1);
      assert.deepEqual(stats.types.federation.proxy.outcomes, { '2xx': 1 });
      assert.equal(stats.types.push?.proxy.requests, 1);
      assert.equal(stats.types.url_preview?.proxy.requests, 1);
      assert.equal(stats.types.appservice?.direct.requests, 1);
      assert.equal(stats.types.media?.proxy.requests, 2);
      assert.equal(stats.types.key_fetch?.proxy.requests, 0);
      assert.deepEqual(stats.tunnels, { open: 2, opened: 2, closed: 0, failed: 0, errors: {} });
      assert.ok(stats.pooledConnections.proxy >= 3, `pooled proxy connections: ${String(stats.pooledConnections.proxy)}`);
      assert.ok(stats.pooledConnections.direct >= 1);

      await egress.close();
      await waitFor(() => recorder.events.filter(([channel]) => channel === EGRESS_CHANNELS.tunnelClose).length === 2, 'two tunnel:close events', 5_000);
      assert.equal(egress.stats().tunnels.open, 0);
      assert.equal(egress.stats().tunnels.closed, 2);

      assertNoSecrets(JSON.stringify(recorder.events), 'the events');
      assertNoSecrets(JSON.stringify(egress.stats()), 'the stats');
    } finally {
      recorder.stop();
      await egress.close();
    }
  });

  it('a refused CONNECT publishes tunnel:error and a failed finish, and counts the code', async () => {
    const recorder = recordChannels();
    const egress = proxiedEgress('wrong-cAnArY-password');
    try {
      const error = await fetchError(egress.fetch('federation', `${httpsOrigin.url}${SECRET_PATH}?${SECRET_QUERY}`));
      assert.equal((error as { code?: unknown }).code, 'ERR_EGRESS_PROXY_AUTH');
      const failures = ofChannel<TunnelErrorEvent>(recorder.events, EGRESS_CHANNELS.tunnelError);
      assert.equal(failures.length, 1);
      assert.equal(failures[0]?.errorCode, 'ERR_EGRESS_PROXY_AUTH');
      assert.equal(failures[0].proxy, proxy.url);
      const [finish] = ofChannel<RequestFinishEvent>(recorder.events, EGRESS_CHANNELS.requestFinish);
      assert.equal(finish?.outcome, 'error');
      assert.equal(finish.errorCode, 'ERR_EGRESS_PROXY_AUTH');
      assert.equal(finish.route, 'proxy');
      const stats = egress.stats();
      assert.deepEqual(stats.types.federation?.proxy.errors, { ERR_EGRESS_PROXY_AUTH: 1 });
      assert.deepEqual(stats.tunnels.errors, { ERR_EGRESS_PROXY_AUTH: 1 });
      assert.equal(stats.tunnels.failed, 1);
      assertNoSecrets(JSON.stringify(recorder.events), 'the events');
      assertNoSecrets(JSON.stringify(stats), 'the stats');
    } finally {
      recorder.stop();
      await egress.close();
    }
  });

  it('the SSRF guard publishes matrix-egress:blocked with the rule, on IP literals and resolved names, on both APIs', async () => {
    const recorder = recordChannels();
    // No proxy: push goes direct and is checked against the default blocklist.
    const egress = createEgress({ env: {} });
    try {
      await fetchError(egress.fetch('push', `${httpOrigin.url}${SECRET_PATH}?${SECRET_QUERY}`));
      await fetchError(egress.fetch('push', `http://localhost:${String(httpOrigin.port)}${SECRET_PATH}?${SECRET_QUERY}`));
      await assert.rejects(agentGet(http, `${httpOrigin.url}${SECRET_PATH}`, egress.agent('url_preview')), { code: 'ERR_EGRESS_BLOCKED_DESTINATION' });
      const blocked = ofChannel<{ api: string; type: string; host: string; address: string; rule: string | null }>(recorder.events, EGRESS_CHANNELS.blocked);
      assert.deepEqual(
        blocked.map((b) => [b.api, b.type, b.host, b.address, b.rule]),
        [
          ['dispatcher', 'push', '127.0.0.1', '127.0.0.1', '127.0.0.0/8'],
          ['dispatcher', 'push', 'localhost', blocked[1]?.address, blocked[1]?.address === '::1' ? '::1/128' : '127.0.0.0/8'],
          ['agent', 'url_preview', '127.0.0.1', '127.0.0.1', '127.0.0.0/8'],
        ],
      );
      const outcomes = ofChannel<RequestFinishEvent>(recorder.events, EGRESS_CHANNELS.requestFinish).map((e) => [e.type, e.outcome, e.errorCode]);
      assert.deepEqual(outcomes, [
        ['push', 'blocked', 'ERR_EGRESS_BLOCKED_DESTINATION'],
        ['push', 'blocked', 'ERR_EGRESS_BLOCKED_DESTINATION'],
        ['url_preview', 'blocked', 'ERR_EGRESS_BLOCKED_DESTINATION'],
      ]);
      const stats = egress.stats();
      const pushBlocked = (stats.types.push?.none.blocked ?? 0) + (stats.types.push?.direct.blocked ?? 0);
      assert.equal(pushBlocked, 2);
      assert.equal((stats.types.url_preview?.none.blocked ?? 0) + (stats.types.url_preview?.direct.blocked ?? 0), 1);
      assertNoSecrets(JSON.stringify(recorder.events), 'the events');
    } finally {
      recorder.stop();
      await egress.close();
    }
  });

  it('publishes nothing and builds no payload without subscribers, and still counts', async () => {
    const egress = proxiedEgress();
    try {
      for (const name of Object.values(EGRESS_CHANNELS)) assert.equal(diagnosticsChannel.hasSubscribers(name), false, name);
      const response = await egress.fetch('federation', `${httpsOrigin.url}/x`);
      await response.text();
      assert.equal(egress.stats().types.federation?.proxy.requests, 1);
      assert.equal(egress.stats().tunnels.opened, 1);
    } finally {
      await egress.close();
    }
  });
});
