/**
 * Load, regular-suite size (issue 8): 500 requests at concurrency 16 through the recording proxy and
 * through a real Squid, alternating between an https origin (CONNECT tunnels) and an http origin
 * (forwarding). Zero
 * errors, no more tunnels than requests in flight, and after `close()` no socket, tunnel or
 * descriptor left. The 10,000-request version is test/stress/load.stress.ts (`npm run test:stress`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { isolateProxyEnv } from '../support/env.js';
import { startSquid, type SquidInstance } from '../support/squid.js';
import { startOriginProcess, type OriginProcess } from './harness.js';
import { describeFigures, loadScenario, type LoadFigures } from './load-scenarios.js';

const REQUESTS = 500;
const CONCURRENCY = 16;
/** Heap growth allowed after a run and a full GC. A leak of one object per request would show far above it. */
const HEAP_TOLERANCE_MIB = 16;

function checkMemory(figures: LoadFigures): void {
  const growth = figures.memoryAfter.heapUsedMiB - figures.memoryBefore.heapUsedMiB;
  assert.ok(growth <= HEAP_TOLERANCE_MIB, `heap grew by ${growth.toFixed(1)} MiB: ${describeFigures(figures)}`);
}

describe(`load: ${String(REQUESTS)} requests at concurrency ${String(CONCURRENCY)}`, () => {
  let restoreEnv: () => void;
  let origin: OriginProcess;
  let proxy: RecordingProxy;
  let squid: SquidInstance;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    [origin, proxy, squid] = await Promise.all([startOriginProcess(), createRecordingProxy(), startSquid()]);
  });

  after(async () => {
    await Promise.all([origin.close(), proxy.close(), squid.stop({ force: true })]);
    restoreEnv();
  });

  it('through the recording proxy, https and http origins alternating', async (t) => {
    const figures = await loadScenario({ kind: 'recording', proxy }, origin, 'mixed', REQUESTS, CONCURRENCY);
    t.diagnostic(describeFigures(figures));
    checkMemory(figures);
  });

  it('through Squid, https and http origins alternating', async (t) => {
    const figures = await loadScenario({ kind: 'squid', squid }, origin, 'mixed', REQUESTS, CONCURRENCY);
    t.diagnostic(describeFigures(figures));
    checkMemory(figures);
  });
});
