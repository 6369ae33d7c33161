/**
 * One load scenario, shared by the regular suite (a few hundred requests) and the stress run
 * (ten thousand): N requests at concurrency C through a proxy to an origin in a child process, then
 * `egress.close()`, with the figures that show nothing leaked. Not a test file.
 */
import assert from 'node:assert/strict';

import { createEgress } from '../../src/egress.js';
import type { RecordingProxy } from '../../src/testing/recording-proxy.js';
import type { SquidInstance } from '../support/squid.js';
import { settledLog } from '../support/squid-fixtures.js';
import {
  fetchOk,
  memoryAfterGc,
  openFds,
  runLoad,
  socketsTo,
  summarise,
  waitFor,
  type MemorySample,
  type OriginProcess,
} from './harness.js';

/** The proxy under load: our recording proxy (in this process) or a real Squid (a child process). */
export type ProxyUnderTest = { readonly kind: 'recording'; readonly proxy: RecordingProxy } | { readonly kind: 'squid'; readonly squid: SquidInstance };

/** Which origin the requests go to: https (tunnels), http (forwarding), or alternating. */
export type Scheme = 'https' | 'http' | 'mixed';

/** Everything a scenario measured. */
export interface LoadFigures {
  readonly proxy: 'recording' | 'squid';
  readonly scheme: Scheme;
  readonly requests: number;
  readonly concurrency: number;
  readonly errors: number;
  readonly errorSummary: string;
  readonly durationMs: number;
  readonly requestsPerSecond: number;
  readonly maxLatencyMs: number;
  /** Descriptors of this process not owned by the recording proxy's upstream side, before the egress existed. */
  readonly fdsBefore: number;
  /** Highest such count sampled during the run. */
  readonly fdsPeak: number;
  /** Most connections of ours to the proxy at once (sampled every 100 ms). */
  readonly proxySocketsPeak: number;
  /** The count once `close()` resolved and the peers had seen the connections go. */
  readonly fdsAfterClose: number;
  readonly closeMs: number;
  readonly memoryBefore: MemorySample;
  readonly memoryAfter: MemorySample;
  /** Connections the recording proxy accepted during the run (0 for Squid: it is not counted there). */
  readonly proxyConnections: number;
  /** CONNECT tunnels opened during the run: the recording proxy's count, or the CONNECTs Squid logged. */
  readonly tunnels: number;
}

/** How far the descriptor count may stay above the starting level after `close()`. */
export const FD_TOLERANCE = 2;

function proxyUrl(target: ProxyUnderTest): string {
  return target.kind === 'recording' ? target.proxy.url : target.squid.url;
}

function proxyPort(target: ProxyUnderTest): number {
  return target.kind === 'recording' ? target.proxy.port : target.squid.port;
}

async function squidConnects(squid: SquidInstance, origin: OriginProcess): Promise<number> {
  const authority = `127.0.0.1:${String(origin.httpsPort)}`;
  return (await settledLog(squid)).filter((entry) => entry.method === 'CONNECT' && entry.target === authority).length;
}

/**
 * Run `requests` fetches at `concurrency` through `target` to the origin's `scheme` side and check:
 * zero errors; no more tunnels than requests in flight; after `close()`, no socket of ours to the
 * proxy, no open tunnel, and the descriptor count back to where it started (exact, within
 * {@link FD_TOLERANCE}). Returns the figures; memory is measured, and judged by the caller.
 */
export async function loadScenario(
  target: ProxyUnderTest,
  origin: OriginProcess,
  scheme: Scheme,
  requests: number,
  concurrency: number,
  /** Longest one request may take before it counts as a hang (a bound, not a latency target). */
  deadlineMs = 10_000,
): Promise<LoadFigures> {
  const base = (i: number): string =>
    scheme === 'https' || (scheme === 'mixed' && i % 2 === 0) ? origin.httpsUrl : origin.httpUrl;
  const port = proxyPort(target);
  // The recording proxy keeps its own upstream connections to the origin (kept-alive for
  // forwarded requests): they are the proxy's, not the egress's, so they are not counted.
  const fds = (): number => openFds() - socketsTo(origin.httpsPort) - socketsTo(origin.httpPort);
  const options = {
    env: { https_proxy: proxyUrl(target), http_proxy: proxyUrl(target) },
    ca: origin.ca,
    // Loopback origins are on the default IP blocklist; routing under load is what is tested here.
    ipBlocklist: [],
  };

  // Warm-up with a throwaway egress: module loading, TLS contexts and the first sessions are not leaks.
  const warm = createEgress(options);
  await runLoad(concurrency * 2, concurrency, (i) => fetchOk(warm, 'push', `${base(i)}/warm-${String(i)}`, deadlineMs));
  await warm.close();
  await waitFor('warm-up sockets to the proxy closed', () => socketsTo(port) === 0);
  if (target.kind === 'recording') {
    await waitFor('warm-up tunnels closed', () => target.proxy.openTunnels === 0);
    target.proxy.clear();
  }

  const memoryBefore = await memoryAfterGc();
  const fdsBefore = fds();
  const connectionsBefore = target.kind === 'recording' ? target.proxy.connections : 0;
  const tunnelsBefore = target.kind === 'recording' ? target.proxy.tunnelsOpened : await squidConnects(target.squid, origin);

  const egress = createEgress(options);
  let fdsPeak = fdsBefore;
  let proxySocketsPeak = 0;
  const sampler = setInterval(() => {
    fdsPeak = Math.max(fdsPeak, fds());
    proxySocketsPeak = Math.max(proxySocketsPeak, socketsTo(port));
  }, 100);
  let result;
  try {
    result = await runLoad(requests, concurrency, (i) => fetchOk(egress, 'push', `${base(i)}/load-${String(i)}`, deadlineMs));
  } finally {
    clearInterval(sampler);
  }
  fdsPeak = Math.max(fdsPeak, fds());
  const proxyConnectionsDuring = target.kind === 'recording' ? target.proxy.connections - connectionsBefore : 0;

  const closeStarted = Date.now();
  await egress.close();
  const closeMs = Date.now() - closeStarted;

  await waitFor('no socket of ours left to the proxy', () => socketsTo(port) === 0, 5_000, () => `${String(socketsTo(port))} left`);
  if (target.kind === 'recording') {
    await waitFor('no tunnel left open at the proxy', () => target.proxy.openTunnels === 0, 5_000, () => `${String(target.proxy.openTunnels)} open`);
    target.proxy.clear();
  }
  let fdsAfterClose = fds();
  await waitFor(
    `descriptors back to the starting level (${String(fdsBefore)})`,
    () => (fdsAfterClose = fds()) <= fdsBefore + FD_TOLERANCE,
    5_000,
    () => `now ${String(fdsAfterClose)}`,
  );
  const tunnels =
    scheme === 'http'
      ? 0
      : target.kind === 'recording'
        ? target.proxy.tunnelsOpened - tunnelsBefore
        : (await squidConnects(target.squid, origin)) - tunnelsBefore;
  const memoryAfter = await memoryAfterGc();

  const figures: LoadFigures = {
    proxy: target.kind,
    scheme,
    requests,
    concurrency,
    errors: result.errors.length,
    errorSummary: summarise(result.errors),
    durationMs: result.durationMs,
    requestsPerSecond: Math.round(requests / (result.durationMs / 1000)),
    maxLatencyMs: result.maxLatencyMs,
    fdsBefore,
    fdsPeak,
    proxySocketsPeak,
    fdsAfterClose,
    closeMs,
    memoryBefore,
    memoryAfter,
    proxyConnections: proxyConnectionsDuring,
    tunnels,
  };

  assert.equal(figures.errors, 0, `errors: ${figures.errorSummary}; first: ${String(result.errors[0]?.stack)}`);
  if (scheme !== 'http') {
    assert.ok(tunnels >= 1 && tunnels <= concurrency, `${String(tunnels)} tunnels for ${String(concurrency)} requests in flight`);
  }
  // The total the proxy accepts may grow slowly over a long run (its keep-alive timeout recycles idle
  // connections); what must stay bounded is how many are open at once. Slack of 2x for connections
  // being replaced while the sampler looks.
  assert.ok(proxySocketsPeak <= concurrency * 2, `${String(proxySocketsPeak)} connections to the proxy at once at concurrency ${String(concurrency)}`);
  return figures;
}

/** One line per scenario for the test log (and docs/reliability.md). */
export function describeFigures(f: LoadFigures): string {
  return (
    `${f.proxy} ${f.scheme}: ${String(f.requests)} requests at ${String(f.concurrency)} in ${String(f.durationMs)} ms ` +
    `(${String(f.requestsPerSecond)}/s, max ${String(f.maxLatencyMs)} ms), errors ${String(f.errors)}; ` +
    `fds ${String(f.fdsBefore)} → peak ${String(f.fdsPeak)} → ${String(f.fdsAfterClose)} after close (${String(f.closeMs)} ms); ` +
    `proxy connections at once ≤ ${String(f.proxySocketsPeak)}; ` +
    `rss ${String(f.memoryBefore.rssMiB)} → ${String(f.memoryAfter.rssMiB)} MiB, heap ${String(f.memoryBefore.heapUsedMiB)} → ${String(f.memoryAfter.heapUsedMiB)} MiB, ` +
    `external ${String(f.memoryBefore.externalMiB)} → ${String(f.memoryAfter.externalMiB)} MiB; ` +
    `tunnels ${String(f.tunnels)}${f.proxy === 'recording' ? `, proxy connections accepted ${String(f.proxyConnections)}` : ''}`
  );
}
