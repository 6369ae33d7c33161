/**
 * "The proxy was killed mid-run and came back on the same port", shared by the regular suite (one
 * cycle) and the stress run (many). Requests run in a loop on both schemes while the proxy is
 * killed and restarted; every outcome is recorded with the phase it started in. Not a test file.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

import type { Egress } from '../../src/egress.js';
import { EgressError, ProxyUnreachableError } from '../../src/errors.js';
import { createRecordingProxy } from '../../src/testing/recording-proxy.js';
import { startSquid, type SquidInstance } from '../support/squid.js';
import { fetchOk, isCutInFlight, killSquid, restartSquid, summarise, unwrap, waitFor, type RestartedSquid } from './harness.js';

/** A proxy that can be killed and started again on the same port. */
export interface Restartable {
  readonly name: string;
  readonly url: string;
  readonly port: number;
  kill(): Promise<void>;
  restart(): Promise<void>;
  /** Release everything (idempotent). */
  dispose(): Promise<void>;
}

/** The recording proxy: `close()` destroys every client connection and tunnel, as a dying proxy does. */
export async function restartableRecordingProxy(): Promise<Restartable> {
  let proxy = await createRecordingProxy();
  const { port, url } = proxy;
  return {
    name: 'recording proxy',
    url,
    port,
    kill: () => proxy.close(),
    async restart() {
      proxy = await createRecordingProxy({ port });
    },
    dispose: () => proxy.close(),
  };
}

/** A real Squid, killed with SIGKILL and started again from its own config. */
export async function restartableSquid(): Promise<Restartable> {
  const squid: SquidInstance = await startSquid();
  const restarted: RestartedSquid[] = [];
  return {
    name: 'Squid',
    url: squid.url,
    port: squid.port,
    async kill() {
      const last = restarted.at(-1);
      if (last === undefined) await killSquid(squid);
      else await last.stop();
    },
    async restart() {
      restarted.push(await restartSquid(squid));
    },
    async dispose() {
      for (const instance of restarted) await instance.stop();
      await squid.stop({ force: true });
    },
  };
}

type Phase = 'before' | 'killing' | 'down' | 'restarting' | 'after';

interface Outcome {
  readonly cycle: number;
  readonly phase: Phase;
  readonly scheme: 'https' | 'http';
  readonly error: Error | undefined;
  readonly ms: number;
  /** A kill happened while it was in flight. */
  readonly straddled: boolean;
}

/** Figures of one run of {@link killAndRestartUnderLoad}. */
export interface RestartFigures {
  readonly cycles: number;
  readonly requests: number;
  readonly failures: number;
  readonly refused: number;
  readonly cutInFlight: number;
  readonly succeededAfterRestart: number;
  readonly slowestFailureMs: number;
}

/** "Prompt": a refused or cut request fails well within this. */
export const PROMPT_MS = 1_500;

/**
 * With `workers` loops per scheme fetching from the two origins through `proxy`, kill and restart
 * it `cycles` times and check: before a kill and after each restart every request succeeds (no
 * pooled connection to the dead proxy fails a later request); while it is down, requests fail
 * promptly with ProxyUnreachableError ECONNREFUSED, or — for one on a connection that died — a
 * socket error; nothing hangs.
 */
export async function killAndRestartUnderLoad(
  proxy: Restartable,
  egress: Egress,
  origins: { readonly https: string; readonly http: string },
  options: { readonly cycles: number; readonly workers: number; readonly perPhase: number },
): Promise<RestartFigures> {
  let cycle = 0;
  let phase: Phase = 'before';
  let stop = false;
  let kills = 0;
  const outcomes: Outcome[] = [];
  const worker = async (scheme: 'https' | 'http'): Promise<void> => {
    const base = scheme === 'https' ? origins.https : origins.http;
    while (!stop) {
      const started = phase;
      const startedCycle = cycle;
      const killsBefore = kills;
      const t0 = Date.now();
      let error: Error | undefined;
      try {
        await fetchOk(egress, 'push', `${base}/${String(startedCycle)}-${started}`, 5_000);
      } catch (thrown) {
        error = unwrap(thrown);
      }
      outcomes.push({ cycle: startedCycle, phase: started, scheme, error, ms: Date.now() - t0, straddled: kills !== killsBefore });
      if (error !== undefined) await sleep(5);
    }
  };
  const workers = [...Array.from({ length: options.workers }, () => worker('https')), ...Array.from({ length: options.workers }, () => worker('http'))];
  const count = (p: Phase): number => outcomes.filter((o) => o.cycle === cycle && o.phase === p).length;
  try {
    for (; cycle < options.cycles; cycle++) {
      phase = 'before';
      await waitFor('requests before the kill', () => count('before') >= options.perPhase, 10_000);
      phase = 'killing';
      kills++;
      await proxy.kill();
      phase = 'down';
      await waitFor('requests while the proxy is down', () => count('down') >= options.perPhase, 5_000);
      phase = 'restarting';
      await proxy.restart();
      phase = 'after';
      await waitFor('requests after the restart', () => count('after') >= options.perPhase, 10_000);
    }
  } finally {
    stop = true;
    await Promise.all(workers);
  }

  const failed = outcomes.filter((o) => o.error !== undefined);
  const describe = (o: Outcome): string => `cycle ${String(o.cycle)} ${o.phase} ${o.scheme}: ${String(o.error)}`;
  assert.ok(outcomes.some((o) => o.phase === 'before' && o.error === undefined), 'nothing succeeded before a kill');
  // A request that started and ended with the proxy up must succeed: no pooled connection to the
  // dead proxy may fail it. One that was on the wire when the proxy died may fail (see below).
  assert.deepEqual(failed.filter((o) => (o.phase === 'after' || o.phase === 'before') && !o.straddled).map(describe), [], 'failures with the proxy up');
  for (const o of failed) {
    assert.ok(o.error instanceof EgressError || isCutInFlight(o.error as Error), `untyped: ${describe(o)}`);
    assert.ok(o.ms < PROMPT_MS, `a failure took ${String(o.ms)} ms: ${describe(o)}`);
  }
  for (const o of failed.filter((f) => f.phase === 'down')) {
    assert.ok(o.error instanceof ProxyUnreachableError || isCutInFlight(o.error as Error), `while down: ${describe(o)}`);
  }
  const refused = failed.filter((o) => o.error instanceof ProxyUnreachableError && o.error.syscallCode === 'ECONNREFUSED');
  for (let c = 0; c < options.cycles; c++) {
    assert.ok(
      refused.some((o) => o.cycle === c),
      `cycle ${String(c)}: no ECONNREFUSED while down (${summarise(failed.filter((o) => o.cycle === c).map((o) => o.error as Error))})`,
    );
  }
  return {
    cycles: options.cycles,
    requests: outcomes.length,
    failures: failed.length,
    refused: refused.length,
    cutInFlight: failed.filter((o) => isCutInFlight(o.error as Error)).length,
    succeededAfterRestart: outcomes.filter((o) => o.phase === 'after' && o.error === undefined).length,
    slowestFailureMs: Math.max(0, ...failed.map((o) => o.ms)),
  };
}
