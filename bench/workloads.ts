/**
 * The workloads and the one load loop they all use. Every loop is bounded twice: by a request count
 * and by a wall-clock cap; when the cap passes first, the run stops and is reported as timed out.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { LARGE_BODY_BYTES, SMALL_BODY_BYTES } from './origin.js';

/** Workload names, in the order they run and are reported. */
export const WORKLOAD_NAMES = ['https-seq', 'https-c32', 'https-1mib', 'http-seq', 'http-c32'] as const;
/** A workload name. */
export type WorkloadName = (typeof WORKLOAD_NAMES)[number];

/** One workload: `requests` GETs of `path`, `concurrency` at a time, after `warmup` untimed ones. */
export interface Workload {
  readonly name: WorkloadName;
  readonly title: string;
  readonly scheme: 'https' | 'http';
  readonly path: '/small' | '/1mib';
  readonly requests: number;
  readonly concurrency: number;
  /** Untimed requests first (same concurrency): JIT, TLS session and pool warm-up. */
  readonly warmup: number;
  readonly expectedBytes: number;
  /** Wall-clock cap of the timed part, in milliseconds. */
  readonly timeCapMs: number;
}

/** Default cap per workload run. */
export const DEFAULT_TIME_CAP_MS = 60_000;

/** The workloads, by name. */
export const WORKLOADS: Readonly<Record<WorkloadName, Workload>> = {
  'https-seq': {
    name: 'https-seq',
    title: `HTTPS, 2,000 sequential GETs of ${String(SMALL_BODY_BYTES)} B`,
    scheme: 'https',
    path: '/small',
    requests: 2000,
    concurrency: 1,
    warmup: 200,
    expectedBytes: SMALL_BODY_BYTES,
    timeCapMs: DEFAULT_TIME_CAP_MS,
  },
  'https-c32': {
    name: 'https-c32',
    title: `HTTPS, 2,000 GETs of ${String(SMALL_BODY_BYTES)} B at concurrency 32`,
    scheme: 'https',
    path: '/small',
    requests: 2000,
    concurrency: 32,
    warmup: 256,
    expectedBytes: SMALL_BODY_BYTES,
    timeCapMs: DEFAULT_TIME_CAP_MS,
  },
  'https-1mib': {
    name: 'https-1mib',
    title: 'HTTPS, 64 downloads of 1 MiB at concurrency 4',
    scheme: 'https',
    path: '/1mib',
    requests: 64,
    concurrency: 4,
    warmup: 8,
    expectedBytes: LARGE_BODY_BYTES,
    timeCapMs: DEFAULT_TIME_CAP_MS,
  },
  'http-seq': {
    name: 'http-seq',
    title: `HTTP, 2,000 sequential GETs of ${String(SMALL_BODY_BYTES)} B`,
    scheme: 'http',
    path: '/small',
    requests: 2000,
    concurrency: 1,
    warmup: 200,
    expectedBytes: SMALL_BODY_BYTES,
    timeCapMs: DEFAULT_TIME_CAP_MS,
  },
  'http-c32': {
    name: 'http-c32',
    title: `HTTP, 2,000 GETs of ${String(SMALL_BODY_BYTES)} B at concurrency 32`,
    scheme: 'http',
    path: '/small',
    requests: 2000,
    concurrency: 32,
    warmup: 256,
    expectedBytes: SMALL_BODY_BYTES,
    timeCapMs: DEFAULT_TIME_CAP_MS,
  },
};

/** What a client answers for one GET. */
export interface GetResult {
  readonly status: number;
  readonly bytes: number;
}

/** Outcome of one bounded load loop. */
export interface LoadResult {
  /** Requests answered 200 with the expected number of body bytes. */
  readonly completed: number;
  readonly failed: number;
  /** The first failure, as text (the loop stops at the first failure). */
  readonly firstError: string | undefined;
  readonly elapsedMs: number;
  /** True when the time cap passed before `total` requests completed. */
  readonly timedOut: boolean;
}

/**
 * Send `total` GETs to `url`, `concurrency` at a time, and stop at the first failure, when `total`
 * have been sent, or when `timeCapMs` has passed, whichever comes first. Returns at the cap even if
 * requests are still hanging (the caller's process then exits).
 */
export async function runLoad(
  get: (url: string) => Promise<GetResult>,
  url: string,
  options: { readonly total: number; readonly concurrency: number; readonly expectedBytes: number; readonly timeCapMs: number },
): Promise<LoadResult> {
  const started = performance.now();
  const deadline = started + options.timeCapMs;
  let issued = 0;
  let completed = 0;
  let failed = 0;
  let firstError: string | undefined;
  let stop = false;
  let timedOut = false;

  const lane = async (): Promise<void> => {
    while (!stop && issued < options.total) {
      if (performance.now() > deadline) {
        timedOut = true;
        stop = true;
        return;
      }
      issued++;
      try {
        const { status, bytes } = await get(url);
        if (status !== 200 || bytes !== options.expectedBytes) {
          throw new Error(`unexpected answer: status ${String(status)}, ${String(bytes)} body bytes (expected 200, ${String(options.expectedBytes)})`);
        }
        completed++;
      } catch (error) {
        failed++;
        firstError ??= describeError(error);
        stop = true;
      }
    }
  };

  let timer: NodeJS.Timeout | undefined;
  const cap = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      stop = true;
      resolve();
    }, options.timeCapMs + 1_000);
  });
  const lanes = Array.from({ length: Math.min(options.concurrency, options.total) }, () => lane());
  await Promise.race([Promise.all(lanes), cap]);
  clearTimeout(timer);
  return { completed, failed, firstError, elapsedMs: performance.now() - started, timedOut };
}

/** An error as one line: `name [code]: message (cause: …)`. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const head = `${error.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${error.message}`;
  return error.cause === undefined ? head : `${head} (cause: ${describeError(error.cause)})`;
}
