/**
 * One benchmark job in its own process: one client, one workload. The parent (bench/run.ts) starts
 * it with the job as JSON in argv[2] and an IPC channel; the worker tells the parent when the timed
 * part starts and ends (so the parent can sample Squid's and the origin's CPU at those moments) and
 * sends its result. Run by hand (no IPC) it prints the result as JSON, e.g. under `--cpu-prof`.
 * @module
 */
import { subscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { CLIENTS, type ClientName } from './clients.js';
import { describeError, runLoad, WORKLOADS, type LoadResult, type WorkloadName } from './workloads.js';

/** What the parent asks a worker to do. */
export interface WorkerJob {
  readonly client: ClientName;
  readonly workload: WorkloadName;
  /** Origin base URL (`https://127.0.0.1:<port>`). */
  readonly origin: string;
  readonly proxyUrl: string;
  readonly ca: string;
  /** Cap of each of the warm-up and timed parts, in ms. */
  readonly timeCapMs: number;
}

/** What a worker reports. */
export interface WorkerResult {
  readonly client: ClientName;
  readonly workload: WorkloadName;
  readonly warmup: LoadResult | undefined;
  readonly timed: LoadResult | undefined;
  /** An error creating or using the client outside the load loops. */
  readonly error: string | undefined;
  /** User + system CPU of this process during the timed part, µs. */
  readonly cpuMicros: number;
  /** TCP connections this process opened to the proxy (warm-up and timed part). */
  readonly proxyConnections: number;
  /** `process.resourceUsage().maxRSS` at the end, KiB. */
  readonly maxRssKiB: number;
}

/** Messages between parent and worker. */
export type WorkerMessage =
  | { readonly kind: 'phase'; readonly phase: 'start' | 'end' }
  | { readonly kind: 'result'; readonly result: WorkerResult };

const CLOSE_CAP_MS = 5_000;

/** Tell the parent about a phase and wait for its acknowledgement (none without IPC). */
function phase(name: 'start' | 'end'): Promise<void> {
  const send = process.send?.bind(process);
  if (send === undefined) return Promise.resolve();
  return new Promise<void>((resolve) => {
    process.once('message', () => {
      resolve();
    });
    send({ kind: 'phase', phase: name } satisfies WorkerMessage);
  });
}

async function main(job: WorkerJob): Promise<WorkerResult> {
  const proxyPort = Number(new URL(job.proxyUrl).port);
  let proxyConnections = 0;
  // Every TCP connection to Squid carries one tunnel (or a series of forwarded requests).
  subscribe('net.client.socket', (message) => {
    const { socket } = message as { socket: Socket };
    socket.once('connect', () => {
      if (socket.remotePort === proxyPort && socket.remoteAddress === '127.0.0.1') proxyConnections++;
    });
  });

  const spec = CLIENTS[job.client];
  const workload = WORKLOADS[job.workload];
  const url = `${job.origin}${workload.path}`;
  let warmup: LoadResult | undefined;
  let timed: LoadResult | undefined;
  let error: string | undefined;
  let cpuMicros = 0;
  try {
    const client = await spec.create({ ca: job.ca, proxyUrl: job.proxyUrl, scheme: workload.scheme });
    const load = { concurrency: workload.concurrency, expectedBytes: workload.expectedBytes, timeCapMs: job.timeCapMs };
    warmup = await runLoad((u) => client.get(u), url, { ...load, total: workload.warmup });
    if (warmup.failed === 0 && !warmup.timedOut) {
      await phase('start');
      const cpuBefore = process.cpuUsage();
      timed = await runLoad((u) => client.get(u), url, { ...load, total: workload.requests });
      const cpu = process.cpuUsage(cpuBefore);
      cpuMicros = cpu.user + cpu.system;
      await phase('end');
    }
    let closeTimer: NodeJS.Timeout | undefined;
    await Promise.race([
      client.close(),
      new Promise<void>((resolve) => {
        closeTimer = setTimeout(resolve, CLOSE_CAP_MS);
      }),
    ]);
    clearTimeout(closeTimer);
  } catch (caught) {
    error = describeError(caught);
  }
  return {
    client: job.client,
    workload: job.workload,
    warmup,
    timed,
    error,
    cpuMicros,
    proxyConnections,
    maxRssKiB: process.resourceUsage().maxRSS,
  };
}

const job = JSON.parse(process.argv[2] ?? '{}') as WorkerJob;
const result = await main(job);
if (process.send === undefined) {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  process.send({ kind: 'result', result } satisfies WorkerMessage, () => {
    // Exit at once: a client that left sockets or timers behind must not hold the run up.
    process.exit(0);
  });
}
