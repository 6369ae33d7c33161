/**
 * Shared helpers of the reliability, security and stress tests: resource accounting from /proc
 * (open descriptors, our own TCP sockets by peer port), bounded load runs, deadlines, an origin in a
 * child process, and killing and restarting a real Squid on the same port.
 *
 * Linux only (reads /proc), like the Squid the tests run. Not a test file: no `.test.` in the name.
 */
import assert from 'node:assert/strict';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants as fsConstants, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

import type { Egress } from '../../src/egress.js';
import type { ConnectionType } from '../../src/policy/connection-types.js';
import type { SquidInstance } from '../support/squid.js';
import { tcpRows } from '../support/proc-net.js';

// --- resource accounting ------------------------------------------------------

/** Open file descriptors of this process (exact: one readdir of /proc/self/fd). */
export function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** One TCP socket held by this process. */
export interface OwnSocket {
  readonly localPort: number;
  readonly remotePort: number;
  /** Kernel state as hex, e.g. `01` ESTABLISHED, `0A` LISTEN, `08` CLOSE_WAIT. */
  readonly state: string;
}

function ownSocketInodes(): Set<string> {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (match?.[1] !== undefined) inodes.add(match[1]);
    } catch {
      // closed between readdir and readlink
    }
  }
  return inodes;
}

/** The TCP sockets (v4 and v6) whose descriptor this process holds. */
function ownTcpSockets(): OwnSocket[] {
  const inodes = ownSocketInodes();
  return tcpRows()
    .filter((row) => inodes.has(row.inode))
    .map(({ localPort, remotePort, state }) => ({ localPort, remotePort, state }));
}

/**
 * Client sockets of this process connected to `port` (any state but LISTEN). With the proxy on
 * `port`, that is exactly the egress's connections to the proxy, even when the proxy runs in this
 * process too: the proxy's own ends have `port` as their local port, not their remote one.
 */
export function socketsTo(port: number): number {
  return ownTcpSockets().filter((socket) => socket.remotePort === port && socket.state !== '0A').length;
}

/** Poll `check` until it holds; fail with `what` and the last `detail()` after `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 3_000, detail?: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return;
    if (Date.now() > until) assert.fail(`${what}: not reached within ${String(timeoutMs)} ms${detail === undefined ? '' : ` (${detail()})`}`);
    await sleep(10);
  }
}

/** Memory after a full garbage collection, in MiB. */
export interface MemorySample {
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  /** Memory of Buffers and other objects held outside the V8 heap. */
  readonly externalMiB: number;
}

let collect: (() => void) | undefined;

/** A full GC: `global.gc` under `--expose-gc`, else the same function obtained through V8's flags. */
function forceGc(): void {
  if (collect === undefined) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed !== undefined) {
      collect = exposed;
    } else {
      setFlagsFromString('--expose-gc');
      collect = runInNewContext('gc') as () => void;
    }
  }
  collect();
}

/** RSS and heap after two full collections (the second frees what finalizers released). */
export async function memoryAfterGc(): Promise<MemorySample> {
  forceGc();
  await sleep(20);
  forceGc();
  const { rss, heapUsed, external } = process.memoryUsage();
  const mib = (bytes: number): number => Math.round((bytes / 1024 / 1024) * 10) / 10;
  return { rssMiB: mib(rss), heapUsedMiB: mib(heapUsed), externalMiB: mib(external) };
}

// --- requests -----------------------------------------------------------------

/** The error behind a rejection: undici's fetch wraps dispatcher errors in `TypeError('fetch failed')`. */
export function unwrap(error: unknown): Error {
  const err = error instanceof Error ? error : new Error(String(error));
  return err.name === 'TypeError' && err.message === 'fetch failed' && err.cause instanceof Error ? err.cause : err;
}

/** Reject with a clear message when `promise` takes longer than `ms`: a hang is a failure, never a stuck test. */
export async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what}: still pending after ${String(ms)} ms (a hang)`));
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a request that must fail failed with, and how long it took. */
export interface Failure {
  readonly error: Error;
  readonly ms: number;
}

/** Await a request that must fail (within `deadlineMs`); returns the unwrapped error and the time taken. */
export async function failureOf(promise: Promise<unknown>, deadlineMs = 10_000): Promise<Failure> {
  const started = Date.now();
  try {
    const value = await withDeadline(promise, deadlineMs, 'a request expected to fail');
    if (value !== null && typeof value === 'object' && 'body' in value) {
      const body: unknown = Reflect.get(value, 'body');
      if (body !== null && typeof body === 'object' && 'cancel' in body) await (body as { cancel(): Promise<void> }).cancel();
    }
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('a request expected to fail')) throw error;
    return { error: unwrap(error), ms: Date.now() - started };
  }
  assert.fail('expected the request to fail');
}

/** `egress.fetch` that must answer 200; the body is read to the end. */
export async function fetchOk(egress: Egress, type: ConnectionType, url: string, deadlineMs = 10_000): Promise<void> {
  const response = await withDeadline(egress.fetch(type, url), deadlineMs, `fetch ${url}`);
  await response.arrayBuffer();
  assert.equal(response.status, 200, `fetch ${url}`);
}

/** The outcome of {@link runLoad}. */
export interface LoadResult {
  readonly requests: number;
  readonly errors: readonly Error[];
  readonly durationMs: number;
  readonly maxLatencyMs: number;
}

/**
 * Run `total` calls of `one(i)` with at most `concurrency` in flight. Failures are collected, not
 * thrown, so a run reports how many went wrong instead of stopping at the first.
 */
export async function runLoad(total: number, concurrency: number, one: (i: number) => Promise<void>): Promise<LoadResult> {
  const errors: Error[] = [];
  let next = 0;
  let maxLatencyMs = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      const t0 = Date.now();
      try {
        await one(i);
      } catch (error) {
        errors.push(unwrap(error));
      }
      maxLatencyMs = Math.max(maxLatencyMs, Date.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { requests: total, errors, durationMs: Date.now() - started, maxLatencyMs };
}

/** `errors` summarised as `name:code ×count`, for assertion messages. */
export function summarise(errors: readonly Error[]): string {
  const counts = new Map<string, number>();
  for (const error of errors) {
    const code = (error as { code?: unknown }).code;
    const key = `${error.name}:${typeof code === 'string' ? code : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, count]) => `${key} ×${String(count)}`).join(', ') || 'none';
}

// --- an origin in a child process --------------------------------------------

/** An https and an http test origin served by a child process. */
export interface OriginProcess {
  /** `https://127.0.0.1:<port>` */
  readonly httpsUrl: string;
  /** `http://127.0.0.1:<port>` */
  readonly httpUrl: string;
  readonly httpsPort: number;
  readonly httpPort: number;
  /** PEM CA of the https origin. */
  readonly ca: string;
  /** Requests the child has answered so far. */
  requests(): Promise<number>;
  /** Stop the child (by its PID) and wait for it to exit. Idempotent. */
  close(): Promise<void>;
}

interface ReadyMessage {
  readonly type: 'ready';
  readonly httpsUrl: string;
  readonly httpUrl: string;
  readonly httpsPort: number;
  readonly httpPort: number;
  readonly ca: string;
}

/**
 * Start the origins in a child process, so that their sockets are not counted among this process's
 * descriptors (the count then measures the egress alone) and they run on another CPU.
 */
export async function startOriginProcess(): Promise<OriginProcess> {
  const child = fork(new URL('./origin-process.js', import.meta.url), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const exited = once(child, 'exit');
  const ready = await withDeadline(
    new Promise<ReadyMessage>((resolve, reject) => {
      child.once('message', (message) => {
        resolve(message as ReadyMessage);
      });
      child.once('exit', (code) => {
        reject(new Error(`the origin process exited with ${String(code)} before it was ready`));
      });
    }),
    20_000,
    'origin process start-up',
  );
  let closing: Promise<void> | undefined;
  return {
    httpsUrl: ready.httpsUrl,
    httpUrl: ready.httpUrl,
    httpsPort: ready.httpsPort,
    httpPort: ready.httpPort,
    ca: ready.ca,
    async requests(): Promise<number> {
      const answer = new Promise<number>((resolve) => {
        child.once('message', (message) => {
          resolve((message as { requests: number }).requests);
        });
      });
      child.send('count');
      return withDeadline(answer, 5_000, 'origin process request count');
    },
    close(): Promise<void> {
      closing ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          killOwnChild(child, 'SIGKILL');
          await exited;
        }
      })();
      return closing;
    },
  };
}

function killOwnChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // already gone
  }
}

// --- Squid killed and restarted on the same port ------------------------------

/** A Squid started again by {@link restartSquid}, on the port and with the config of the killed one. */
export interface RestartedSquid {
  readonly pid: number;
  /** Stop it by PID (SIGKILL) and remove its shared-memory segments. Idempotent. */
  stop(): Promise<void>;
}

const restarted = new Set<ChildProcess>();
let exitHookInstalled = false;

function squidBinary(): string {
  for (const dir of [...(process.env['PATH'] ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, 'squid'), fsConstants.X_OK);
      return join(dir, 'squid');
    } catch {
      // not here
    }
  }
  throw new Error('squid not found; run: bash scripts/squid.sh install');
}

function removeShm(service: string): void {
  try {
    for (const name of readdirSync('/dev/shm')) {
      if (name.startsWith(`${service}-`)) rmSync(join('/dev/shm', name), { force: true });
    }
  } catch {
    // no /dev/shm
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Kill a Squid started by `startSquid` with SIGKILL (by its PID: it is our child), as a crash would,
 * and wait until it is gone. Its directory (config, logs) is kept for {@link restartSquid}; call its
 * `stop()` at the end as usual.
 */
export async function killSquid(squid: SquidInstance): Promise<void> {
  try {
    process.kill(squid.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  await waitFor('the killed Squid to exit', () => !isAlive(squid.pid), 5_000);
}

let restartCounter = 0;

/**
 * Start Squid again from the killed instance's own squid.conf: same port, same rules, same logs.
 * Squid binds with SO_REUSEADDR, so the port is free at once. `startSquid` has no port option,
 * hence this; it relies on its layout (`<dir>/squid.conf`, cache.log in the same directory).
 */
export async function restartSquid(squid: SquidInstance, timeoutMs = 10_000): Promise<RestartedSquid> {
  const cacheLog = join(squid.dir, 'cache.log');
  const readLog = (): string => {
    try {
      return readFileSync(cacheLog, 'utf8');
    } catch {
      return '';
    }
  };
  const logBefore = readLog().length;
  const service = `egressre${String(process.pid)}x${String(++restartCounter)}`;
  const child = spawn(squidBinary(), ['-N', '-n', service, '-f', join(squid.dir, 'squid.conf')], {
    cwd: squid.dir,
    stdio: 'ignore',
  });
  const { pid } = child;
  if (pid === undefined) throw new Error('could not spawn squid');
  restarted.add(child);
  child.unref();
  const exited = once(child, 'exit').then(() => {
    restarted.delete(child);
  });
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const running of restarted) killOwnChild(running, 'SIGKILL');
    });
  }
  const needle = `local=127.0.0.1:${String(squid.port)} `;
  await waitFor(
    'the restarted Squid to accept connections',
    () => readLog().slice(logBefore).split('\n').some((line) => line.includes('Accepting') && line.includes(needle)),
    timeoutMs,
    () => readLog().slice(logBefore).slice(-2000),
  );
  let stopping: Promise<void> | undefined;
  return {
    pid,
    stop(): Promise<void> {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          killOwnChild(child, 'SIGKILL');
          await exited;
        }
        removeShm(service);
      })();
      return stopping;
    },
  };
}

// --- error classes ---------------------------------------------------------------

/** Socket-level codes of a request cut while it was on the wire (the proxy died under it). */
const CUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED']);

/** True for the error of a request whose connection broke while it was in flight. */
export function isCutInFlight(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && CUT_CODES.has(code);
}

/** True for one of undici's own errors (`UND_ERR_*` codes, or its HTTP parser's). */
export function isUndiciError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return (typeof code === 'string' && code.startsWith('UND_ERR')) || error.name === 'HTTPParserError';
}
