/**
 * Faults, stress size (issue 8; `npm run test:stress`): the proxy killed and restarted many times
 * under load (recording proxy and a real Squid), storms of resets, hangs and mid-body aborts. After
 * each: every request with the proxy up succeeded, failures were typed and prompt, connection
 * attempts stayed bounded, and nothing was left open.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { createEgress, type Egress } from '../../src/egress.js';
import type { EgressOptions } from '../../src/config/compile.js';
import { ProxyUnreachableError } from '../../src/errors.js';
import { createRecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import {
  failureOf,
  fetchOk,
  isCutInFlight,
  openFds,
  runLoad,
  socketsTo,
  startOriginProcess,
  summarise,
  waitFor,
  withDeadline,
  type OriginProcess,
} from '../reliability/harness.js';
import { FD_TOLERANCE } from '../reliability/load-scenarios.js';
import { killAndRestartUnderLoad, PROMPT_MS, restartableRecordingProxy, restartableSquid } from '../reliability/restart-scenarios.js';

let restoreEnv: () => void;
let origin: OriginProcess;

before(async () => {
  restoreEnv = isolateProxyEnv();
  origin = await startOriginProcess();
});

after(async () => {
  await origin.close();
  restoreEnv();
});

function egressVia(proxyUrl: string, extra: EgressOptions = {}): Egress {
  return createEgress({ env: { https_proxy: proxyUrl, http_proxy: proxyUrl }, ca: origin.ca, ipBlocklist: [], connectTimeout: 2_000, ...extra });
}

/** Our descriptors, less the recording proxy's own upstream connections to the origin process. */
function fds(): number {
  return openFds() - socketsTo(origin.httpsPort) - socketsTo(origin.httpPort);
}

async function fdsBackTo(before: number): Promise<void> {
  let now = fds();
  await waitFor(`descriptors back to ${String(before)}`, () => (now = fds()) <= before + FD_TOLERANCE, 5_000, () => `now ${String(now)}`);
}

for (const [make, cycles] of [
  [restartableRecordingProxy, 10],
  [restartableSquid, 5],
] as const) {
  describe(`stress: ${make === restartableSquid ? 'Squid (SIGKILL)' : 'the recording proxy'} killed and restarted ${String(cycles)} times under load`, () => {
    it('typed, prompt failures while down; every request with the proxy up succeeds; nothing left open', { timeout: 120_000 }, async (t) => {
      const proxy = await make();
      const before = fds();
      const egress = egressVia(proxy.url);
      try {
        const figures = await killAndRestartUnderLoad(
          proxy,
          egress,
          { https: origin.httpsUrl, http: origin.httpUrl },
          { cycles, workers: 16, perPhase: 64 },
        );
        t.diagnostic(JSON.stringify(figures));
        console.log(`[stress figures] ${JSON.stringify({ scenario: `${proxy.name} restarts`, ...figures })}`);
        await egress.close();
        await waitFor('no socket left to the proxy', () => socketsTo(proxy.port) === 0, 5_000);
        await fdsBackTo(before);
      } finally {
        await egress.destroy();
        await proxy.dispose();
      }
    });
  });
}

describe('stress: storms', () => {
  it('2,000 requests at concurrency 64 against a proxy that resets everything: typed, bounded, then recovery', { timeout: 120_000 }, async (t) => {
    const proxy = await createRecordingProxy({ fail: { connect: 'reset' } });
    const before = fds();
    const egress = egressVia(proxy.url);
    try {
      const requests = 2_000;
      const slowest = { ms: 0 };
      const result = await runLoad(requests, 64, async (i) => {
        const { error, ms } = await failureOf(egress.fetch('push', `${i % 2 === 0 ? origin.httpsUrl : origin.httpUrl}/reset-${String(i)}`));
        slowest.ms = Math.max(slowest.ms, ms);
        assert.ok(error instanceof ProxyUnreachableError || isCutInFlight(error), String(error));
      });
      assert.equal(result.errors.length, 0, summarise(result.errors));
      assert.ok(slowest.ms < PROMPT_MS, `slowest failure ${String(slowest.ms)} ms`);
      assert.ok(proxy.connections <= requests, `${String(proxy.connections)} connections for ${String(requests)} requests`);
      const settled = proxy.connections;
      await sleep(500);
      assert.equal(proxy.connections, settled, 'connections kept coming after the requests failed');
      const figures = { scenario: 'reset storm', requests, durationMs: result.durationMs, proxyConnections: proxy.connections, slowestFailureMs: slowest.ms };
      t.diagnostic(JSON.stringify(figures));
      console.log(`[stress figures] ${JSON.stringify(figures)}`);

      await proxy.setFailure(undefined);
      const recovery = await runLoad(500, 64, (i) => fetchOk(egress, 'push', `${i % 2 === 0 ? origin.httpsUrl : origin.httpUrl}/ok-${String(i)}`));
      assert.equal(recovery.errors.length, 0, summarise(recovery.errors));
      await egress.close();
      await waitFor('no socket left to the proxy', () => socketsTo(proxy.port) === 0);
      await fdsBackTo(before);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  it('500 CONNECTs at concurrency 64 to a proxy that never answers: all ETIMEDOUT on time, nothing left', { timeout: 120_000 }, async (t) => {
    const before = fds();
    const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
    const timeout = 300;
    const egress = egressVia(proxy.url, { connectTimeout: timeout });
    try {
      const requests = 500;
      const slowest = { ms: 0 };
      const result = await runLoad(requests, 64, async (i) => {
        const { error, ms } = await failureOf(egress.fetch('push', `${origin.httpsUrl}/hang-${String(i)}`));
        slowest.ms = Math.max(slowest.ms, ms);
        assert.ok(error instanceof ProxyUnreachableError && error.syscallCode === 'ETIMEDOUT', String(error));
      });
      assert.equal(result.errors.length, 0, summarise(result.errors));
      assert.ok(slowest.ms < timeout + PROMPT_MS, `slowest ${String(slowest.ms)} ms`);
      assert.ok(proxy.connections <= requests);
      const figures = { scenario: 'hang storm', requests, durationMs: result.durationMs, slowestFailureMs: slowest.ms };
      t.diagnostic(JSON.stringify(figures));
      console.log(`[stress figures] ${JSON.stringify(figures)}`);
      await waitFor('the timed-out connections closed', () => socketsTo(proxy.port) === 0);
      await egress.close();
      // The recording proxy keeps its end of a `hang` connection half-open after the client closed it
      // (CLOSE_WAIT until proxy.close(); reported): those are the test kit's, so close it first.
      await proxy.close();
      await fdsBackTo(before);
    } finally {
      await egress.destroy();
      await proxy.close();
    }
  });

  describe('requests aborted mid-body', () => {
    let slowHttps: TestOrigin;
    let slowHttp: TestOrigin;

    /** Streams 64 KiB every 10 ms until the client goes away. */
    const slowBody = (_req: IncomingMessage, res: ServerResponse): void => {
      res.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const timer = setInterval(() => {
        if (res.destroyed) clearInterval(timer);
        else res.write(chunk);
      }, 10);
      res.once('close', () => {
        clearInterval(timer);
      });
    };

    before(async () => {
      [slowHttps, slowHttp] = await Promise.all([createTestOrigin({ tls: true, handler: slowBody }), createTestOrigin({ handler: slowBody })]);
    });

    after(async () => {
      await Promise.all([slowHttps.close(), slowHttp.close()]);
    });

    it('400 aborts at concurrency 16: no socket, tunnel or descriptor accumulates', { timeout: 120_000 }, async (t) => {
      const proxy = await createRecordingProxy();
      const before = openFds();
      const egress = createEgress({ env: { https_proxy: proxy.url, http_proxy: proxy.url }, ca: slowHttps.ca, ipBlocklist: [] });
      try {
        const requests = 400;
        const result = await runLoad(requests, 16, async (i) => {
          const controller = new AbortController();
          const url = `${i % 2 === 0 ? slowHttps.url : slowHttp.url}/big-${String(i)}`;
          const response = await withDeadline(egress.fetch('push', url, { signal: controller.signal }), 5_000, 'response head');
          assert.ok(response.body !== null);
          const reader = response.body.getReader();
          let received = 0;
          while (received < 128 * 1024) {
            const { value } = (await withDeadline(reader.read(), 5_000, 'body chunk')) as { value?: Uint8Array; done: boolean };
            received += value?.length ?? 0;
          }
          controller.abort();
          await assert.rejects(withDeadline(reader.read(), 1_000, 'read after abort'), { name: 'AbortError' });
        });
        assert.equal(result.errors.length, 0, summarise(result.errors));
        // https: aborted tunnels close; http: the forwarding pool keeps at most its connections for 16 in flight.
        await waitFor('aborted tunnels closed at the proxy', () => proxy.openTunnels === 0, 5_000);
        await waitFor('connections to the proxy bounded by the concurrency', () => socketsTo(proxy.port) <= 16 * 2, 5_000);
        const figures = {
          scenario: 'abort storm',
          requests,
          durationMs: result.durationMs,
          tunnelsOpened: proxy.tunnelsOpened,
          proxyConnections: proxy.connections,
          socketsToProxyAfter: socketsTo(proxy.port),
        };
        t.diagnostic(JSON.stringify(figures));
        console.log(`[stress figures] ${JSON.stringify(figures)}`);
        // undici reconnects once after an aborted response (see test/reliability/origin-faults.test.ts).
        assert.ok(proxy.tunnelsOpened <= requests, `${String(proxy.tunnelsOpened)} tunnels for ${String(requests / 2)} aborted https requests`);
        await egress.close();
        await waitFor('no socket left to the proxy', () => socketsTo(proxy.port) === 0);
        await proxy.close();
        let now = openFds();
        await waitFor(`descriptors back to ${String(before)}`, () => (now = openFds()) <= before + FD_TOLERANCE, 5_000, () => `now ${String(now)}`);
      } finally {
        await egress.destroy();
        await proxy.close();
      }
    });
  });
});
