/**
 * Load, stress size (issue 8; `npm run test:stress`): 10,000 requests at concurrency 64 through the
 * recording proxy and through a real Squid, to an https origin (CONNECT tunnels) and to an http
 * origin (forwarding), one run each. Zero errors; at most 64 tunnels; after `close()` no socket of
 * ours to the proxy, no open tunnel, the descriptor count back to its starting level, and the heap
 * (after a full GC) back near its starting level; RSS within a tolerance, and on a plateau: a repeat
 * run does not raise it further. Bounded: each run has its own time limit.
 *
 * Not a `*.test.ts` file, so the regular suite never runs it; scripts/run-stress.mjs does.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { isolateProxyEnv } from '../support/env.js';
import { startSquid, type SquidInstance } from '../support/squid.js';
import { startOriginProcess, type OriginProcess } from '../reliability/harness.js';
import { describeFigures, loadScenario, type LoadFigures } from '../reliability/load-scenarios.js';

const REQUESTS = 10_000;
const CONCURRENCY = 64;
/** Heap growth allowed after a run and a full GC: a leak of one 64-byte object per request would exceed it. */
const HEAP_TOLERANCE_MIB = 8;
/** RSS rarely shrinks back (the allocator keeps freed pages); a leak of a socket buffer per request would exceed it. */
const RSS_TOLERANCE_MIB = 96;
const RUN_TIMEOUT_MS = 150_000;
/** How far RSS may rise above the highest level of the earlier runs on a repeat run. */
const PLATEAU_TOLERANCE_MIB = 24;
/**
 * One request slower than this counts as a hang. On a loaded 2-CPU machine the first 64 TLS
 * handshakes at once alone take seconds; a stuck request would never finish at all.
 */
const REQUEST_DEADLINE_MS = 30_000;

const figures: LoadFigures[] = [];

function checkMemory(f: LoadFigures): void {
  const heap = f.memoryAfter.heapUsedMiB - f.memoryBefore.heapUsedMiB;
  const rss = f.memoryAfter.rssMiB - f.memoryBefore.rssMiB;
  assert.ok(heap <= HEAP_TOLERANCE_MIB, `heap grew by ${heap.toFixed(1)} MiB: ${describeFigures(f)}`);
  assert.ok(rss <= RSS_TOLERANCE_MIB, `RSS grew by ${rss.toFixed(1)} MiB: ${describeFigures(f)}`);
}

describe(`stress: ${String(REQUESTS)} requests at concurrency ${String(CONCURRENCY)}`, () => {
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
    // One line per run, for docs/reliability.md.
    for (const f of figures) console.log(`[stress figures] ${JSON.stringify(f)}`);
  });

  for (const scheme of ['https', 'http'] as const) {
    it(`recording proxy, ${scheme} origin`, { timeout: RUN_TIMEOUT_MS }, async (t) => {
      const f = await loadScenario({ kind: 'recording', proxy }, origin, scheme, REQUESTS, CONCURRENCY, REQUEST_DEADLINE_MS);
      figures.push(f);
      t.diagnostic(describeFigures(f));
      checkMemory(f);
    });
  }

  for (const scheme of ['https', 'http'] as const) {
    it(`Squid, ${scheme} origin`, { timeout: RUN_TIMEOUT_MS }, async (t) => {
      const f = await loadScenario({ kind: 'squid', squid }, origin, scheme, REQUESTS, CONCURRENCY, REQUEST_DEADLINE_MS);
      figures.push(f);
      t.diagnostic(describeFigures(f));
      checkMemory(f);
    });
  }

  it('the recording proxy, https origin, again: RSS stays on the plateau of the first run', { timeout: RUN_TIMEOUT_MS }, async (t) => {
    const first = figures.find((f) => f.proxy === 'recording' && f.scheme === 'https');
    assert.ok(first !== undefined, 'the first run did not complete');
    const f = await loadScenario({ kind: 'recording', proxy }, origin, 'https', REQUESTS, CONCURRENCY, REQUEST_DEADLINE_MS);
    figures.push(f);
    t.diagnostic(describeFigures(f));
    checkMemory(f);
    // RSS grows on a first run (TLS and allocator state) and then stays: a per-request leak would
    // add as much again on every run.
    const plateauGrowth = f.memoryAfter.rssMiB - Math.max(...figures.slice(0, -1).map((g) => g.memoryAfter.rssMiB));
    assert.ok(plateauGrowth <= PLATEAU_TOLERANCE_MIB, `RSS rose ${plateauGrowth.toFixed(1)} MiB above the highest earlier run`);
  });
});
