/**
 * `npm run bench`: start an HTTPS and an HTTP origin and a real Squid on loopback, run every client on
 * every workload in its own process, interleaved (round 1: A B C…, round 2: B C… A, …), then the
 * no_proxy decision micro-benchmark, the dispatch-overhead pairs and the observability overhead, and write
 * bench/results/latest.md (and .json).
 *
 * Options: --rounds N (default 3), --clients a,b, --workloads w1,w2, --time-cap MS (per workload
 * run, default 60000), --budget S (stop starting rounds after S seconds, default 480),
 * --no-decision, --no-overhead, --no-observability, --cpu-prof (workers write V8 CPU profiles to bench/results/profiles/),
 * --socks (SOCKS5 through a real Dante instead: the direct references and the SOCKS clients, written to
 * bench/results/socks-latest.md).
 * @module
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { cpus, freemem, totalmem, availableParallelism, platform, release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { assertDanteAvailable, childProcesses, startDante, type DanteInstance } from '../test/support/dante.js';
import { assertSquidAvailable, startSquid, type SquidInstance } from '../test/support/squid.js';
import { CLIENTS, CLIENT_NAMES, type ClientName } from './clients.js';
import type { DecisionResults } from './decision.js';
import { startOrigins, type BenchOrigins } from './origin.js';
import type { OverheadFigure } from './overhead.js';
import type { MicroFigure, ObservabilityFigure } from './observability.js';
import { renderReport, renderSocksReport, type Environment, type JobRecord } from './report.js';
import type { WorkerJob, WorkerMessage, WorkerResult } from './worker.js';
import { DEFAULT_TIME_CAP_MS, WORKLOAD_NAMES, WORKLOADS, type WorkloadName } from './workloads.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = join(here, '..', '..');
const resultsDir = join(repoRoot, 'bench', 'results');
const PROXY_VARIABLES = ['http_proxy', 'https_proxy', 'no_proxy', 'all_proxy'].flatMap((v) => [v, v.toUpperCase()]);

function parseList<T extends string>(raw: string | undefined, all: readonly T[], what: string): T[] {
  if (raw === undefined) return [...all];
  const picked = raw.split(',').map((s) => s.trim());
  for (const name of picked) {
    if (!(all as readonly string[]).includes(name)) throw new Error(`Unknown ${what} ${JSON.stringify(name)}; known: ${all.join(', ')}`);
  }
  return picked as T[];
}

/** The environment of a child: ours without any proxy variable, plus the ones given. */
function childEnv(extra: Readonly<Record<string, string>>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PROXY_VARIABLES) Reflect.deleteProperty(env, name);
  return { ...env, ...extra };
}

/** How a line of a proxy's log counts: a tunnel, a forwarded request, or nothing. */
type LineKind = 'connect' | 'request' | undefined;

/** Reads what a proxy (Squid or Dante) appended to its log since the last call, and its CPU time. */
class ProxyMeter {
  readonly #logPath: string;
  readonly #pids: () => readonly number[];
  readonly #classify: (line: string) => LineKind;
  readonly #ticksPerSecond: number;
  #offset = 0;

  constructor(logPath: string, pids: () => readonly number[], classify: (line: string) => LineKind) {
    this.#logPath = logPath;
    this.#pids = pids;
    this.#classify = classify;
    let ticks = 100;
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      // keep the usual 100
    }
    this.#ticksPerSecond = ticks;
  }

  /** Squid's CONNECT lines are tunnels, its other lines forwarded requests. */
  static forSquid(squid: SquidInstance): ProxyMeter {
    return new ProxyMeter(join(squid.dir, 'access.log'), () => [squid.pid], (line) => {
      const method = line.split(' ')[2];
      return method === undefined ? undefined : method === 'CONNECT' ? 'connect' : 'request';
    });
  }

  /** Dante logs `pass(n): tcp/connect [: …` when a SOCKS tunnel opens; its CPU is spread over its children. */
  static forDante(dante: DanteInstance): ProxyMeter {
    return new ProxyMeter(join(dante.dir, 'danted.log'), () => [dante.pid, ...childProcesses(dante.pid)], (line) =>
      /: pass\(\d+\): tcp\/connect \[: /.test(line) ? 'connect' : undefined,
    );
  }

  /** The proxy's user + system CPU so far (all its processes), µs (0 when /proc is not readable). */
  cpuMicros(): number {
    let ticks = 0;
    for (const pid of this.#pids()) {
      try {
        const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // exited
      }
    }
    return (ticks * 1_000_000) / this.#ticksPerSecond;
  }

  /** CPU time the whole machine spent busy so far (all processes, all cores), µs; 0 without /proc. */
  machineBusyMicros(): number {
    try {
      const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
      // user nice system idle iowait irq softirq steal: everything but idle and iowait.
      const busy = [0, 1, 2, 5, 6, 7].reduce((sum, i) => sum + (fields[i] ?? 0), 0);
      return (busy * 1_000_000) / this.#ticksPerSecond;
    } catch {
      return 0;
    }
  }

  /** Counts of tunnel and other lines appended since the last call. */
  drain(): { connects: number; requests: number } {
    let fd: number;
    try {
      fd = openSync(this.#logPath, 'r');
    } catch {
      return { connects: 0, requests: 0 };
    }
    try {
      const size = fstatSync(fd).size;
      if (size <= this.#offset) return { connects: 0, requests: 0 };
      const buffer = Buffer.alloc(size - this.#offset);
      const read = readSync(fd, buffer, 0, buffer.length, this.#offset);
      const text = buffer.subarray(0, read).toString('utf8');
      const complete = text.lastIndexOf('\n') + 1;
      this.#offset += Buffer.byteLength(text.slice(0, complete));
      let connects = 0;
      let requests = 0;
      for (const line of text.slice(0, complete).split('\n')) {
        const kind = this.#classify(line);
        if (kind === 'connect') connects++;
        else if (kind === 'request') requests++;
      }
      return { connects, requests };
    } finally {
      closeSync(fd);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A running proxy as the runner uses it. */
interface BenchProxy {
  readonly url: string;
  readonly meter: ProxyMeter;
}

interface RunContext {
  readonly origins: BenchOrigins;
  /** Squid for the HTTP-proxy clients, Dante for the SOCKS ones (`via: 'socks'`). */
  readonly proxyFor: (client: ClientName) => BenchProxy;
  readonly timeCapMs: number;
  /** Extra node flags for workers (`--cpu-prof …`). */
  readonly workerFlags: readonly string[];
}

/** Run one worker and measure around it. */
async function runJob(context: RunContext, round: number, client: ClientName, workload: WorkloadName): Promise<JobRecord> {
  const { origins } = context;
  const { url: proxyUrl, meter } = context.proxyFor(client);
  const origin = WORKLOADS[workload].scheme === 'https' ? origins.https : origins.http;
  meter.drain();
  const originBefore = origin.connections;
  const job: WorkerJob = { client, workload, origin: origin.url, proxyUrl, ca: origins.ca, timeCapMs: context.timeCapMs };
  const flags = context.workerFlags.length === 0 ? [] : [...context.workerFlags, '--cpu-prof-name', `${client}.${workload}.r${String(round)}.cpuprofile`];
  const child = spawn(process.execPath, [...flags, join(here, 'worker.js'), JSON.stringify(job)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: childEnv({ http_proxy: proxyUrl, https_proxy: proxyUrl, HTTP_PROXY: proxyUrl, HTTPS_PROXY: proxyUrl }),
  });
  // An object, so flow analysis sees the assignments made in the callbacks.
  const state: { result: WorkerResult | undefined; killed: boolean } = { result: undefined, killed: false };
  let squidCpu = 0;
  let originCpu = 0;
  let machineBusy = 0;
  let marks: { squid: number; origin: number; machine: number } | undefined;
  child.on('message', (raw) => {
    const message = raw as WorkerMessage;
    if (message.kind === 'phase') {
      const usage = process.cpuUsage();
      const now = { squid: meter.cpuMicros(), origin: usage.user + usage.system, machine: meter.machineBusyMicros() };
      if (message.phase === 'start') marks = now;
      else if (marks !== undefined) {
        squidCpu = now.squid - marks.squid;
        originCpu = now.origin - marks.origin;
        machineBusy = now.machine - marks.machine;
      }
      child.send('ack');
    } else {
      state.result = message.result;
    }
  });
  // Warm-up and timed part each have the cap; add slack for start-up and close.
  const killAfterMs = 2 * context.timeCapMs + 30_000;
  const killer = setTimeout(() => {
    state.killed = true;
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, killAfterMs);
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code); }));
  clearTimeout(killer);

  // Squid logs a CONNECT when its tunnel closes, a moment after the worker's sockets close (Dante
  // logs a tunnel when it opens; the wait then ends at once).
  const { result } = state;
  const expected = result?.proxyConnections ?? 0;
  let connects = 0;
  let requests = 0;
  let quietSince = performance.now();
  const waitUntil = performance.now() + 2_000;
  while (performance.now() < waitUntil) {
    const batch = meter.drain();
    connects += batch.connects;
    requests += batch.requests;
    if (batch.connects + batch.requests > 0) quietSince = performance.now();
    if (expected > 0 && connects >= expected) break;
    if (performance.now() - quietSince > 150) break;
    await sleep(10);
  }
  return {
    round,
    client,
    workload,
    result,
    exit: result !== undefined ? undefined : state.killed ? `killed after ${String(killAfterMs)} ms` : `exit code ${String(exitCode)}`,
    originConnections: origin.connections - originBefore,
    squidConnects: connects,
    squidRequests: requests,
    squidCpuMicros: squidCpu,
    originCpuMicros: originCpu,
    machineBusyMicros: machineBusy,
  };
}

function describeJob(record: JobRecord): string {
  const timed = record.result?.timed;
  const rate = timed === undefined ? '—' : ((timed.completed * 1000) / timed.elapsedMs).toFixed(0);
  const problem =
    record.result?.error ?? record.result?.warmup?.firstError ?? timed?.firstError ?? (timed?.timedOut === true ? 'timed out' : record.exit);
  return `${rate.padStart(7)} /s  conns ${String(record.result?.proxyConnections ?? '—').padStart(3)}  CONNECT ${String(record.squidConnects).padStart(3)}${problem === undefined ? '' : `  !! ${problem}`}`;
}

/** Run a bench script with `--json` in a clean environment and parse its last output line. */
async function runJsonChild<T>(script: string, capMs: number): Promise<T | undefined> {
  const child = spawn(process.execPath, [join(here, script), '--json'], { stdio: ['ignore', 'pipe', 'inherit'], env: childEnv({}) });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    output += chunk;
  });
  const killer = setTimeout(() => {
    if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
  }, capMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => {
    resolve(c);
  }));
  clearTimeout(killer);
  if (code !== 0) {
    console.error(`${script} failed (exit ${String(code)})`);
    return undefined;
  }
  return JSON.parse(output.trim().split('\n').pop() ?? 'null') as T;
}

function versionOf(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '?';
  } catch {
    return '?';
  }
}

function danteVersion(): string {
  for (const binary of ['danted', '/usr/sbin/danted']) {
    try {
      return execFileSync(binary, ['-v'], { encoding: 'utf8' }).split('.  ')[0]?.trim() ?? 'Dante';
    } catch {
      // try the next
    }
  }
  return 'Dante (version unknown)';
}

function squidVersion(): string {
  for (const binary of ['squid', '/usr/sbin/squid']) {
    try {
      return execFileSync(binary, ['-v'], { encoding: 'utf8' }).split('\n')[0]?.trim() ?? 'Squid';
    } catch {
      // try the next
    }
  }
  return 'Squid (version unknown)';
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '3' },
      clients: { type: 'string' },
      workloads: { type: 'string' },
      'time-cap': { type: 'string', default: String(DEFAULT_TIME_CAP_MS) },
      budget: { type: 'string', default: '480' },
      'no-decision': { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'no-overhead': { type: 'boolean', default: false },
      'no-observability': { type: 'boolean', default: false },
      socks: { type: 'boolean', default: false },
    },
  });
  const roundsPlanned = Math.max(1, Math.min(20, Number(values.rounds) || 3));
  const socksMode = values.socks;
  // Without --clients: the HTTP-proxy clients, or with --socks the direct references and the SOCKS clients.
  const directReferences: readonly ClientName[] = ['direct-undici', 'direct-undici-fetch', 'direct-node'];
  const defaultClients = CLIENT_NAMES.filter((c) => (socksMode ? CLIENTS[c].via === 'socks' || directReferences.includes(c) : CLIENTS[c].via === undefined));
  const clients = values.clients === undefined ? defaultClients : parseList(values.clients, CLIENT_NAMES, 'client');
  const needsSquid = clients.some((c) => CLIENTS[c].proxied && CLIENTS[c].via === undefined) || !socksMode;
  const needsDante = clients.some((c) => CLIENTS[c].via === 'socks') || socksMode;
  const workloads = parseList(values.workloads, WORKLOAD_NAMES, 'workload');
  const timeCapMs = Math.max(1_000, Math.min(600_000, Number(values['time-cap']) || DEFAULT_TIME_CAP_MS));
  const budgetMs = Math.max(10, Number(values.budget) || 480) * 1000;

  if (needsSquid) assertSquidAvailable();
  if (needsDante) assertDanteAvailable();
  const started = performance.now();
  const origins = await startOrigins();
  const squid = needsSquid ? await startSquid() : undefined;
  const dante = needsDante ? await startDante() : undefined;
  const workerFlags = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', join(resultsDir, 'profiles')] : [];
  const loadAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  const squidProxy = squid === undefined ? undefined : { url: squid.url, meter: ProxyMeter.forSquid(squid) };
  const danteProxy = dante === undefined ? undefined : { url: dante.socks5hUrl, meter: ProxyMeter.forDante(dante) };
  const proxyFor = (client: ClientName): BenchProxy => {
    const proxy = CLIENTS[client].via === 'socks' ? (danteProxy ?? squidProxy) : (squidProxy ?? danteProxy);
    if (proxy === undefined) throw new Error('no proxy started');
    return proxy;
  };
  const context: RunContext = { origins, proxyFor, timeCapMs, workerFlags };
  const records: JobRecord[] = [];
  const notes: string[] = [];
  let rounds = 0;
  try {
    let lastRoundMs = 0;
    for (let round = 1; round <= roundsPlanned; round++) {
      const elapsed = performance.now() - started;
      if (round > 1 && elapsed + lastRoundMs > budgetMs) {
        notes.push(`Stopped after ${String(rounds)} round(s): another would pass the ${String(budgetMs / 1000)} s budget.`);
        break;
      }
      const roundStart = performance.now();
      console.log(`\n== round ${String(round)}/${String(roundsPlanned)} ==`);
      for (const workload of workloads) {
        const scheme = WORKLOADS[workload].scheme;
        const applicable = clients.filter((c) => CLIENTS[c].schemes.includes(scheme));
        // Rotate the order every round, so no client always runs first (A B C, B C A, C A B…).
        const shift = (round - 1) % Math.max(1, applicable.length);
        const order = [...applicable.slice(shift), ...applicable.slice(0, shift)];
        for (const client of order) {
          const record = await runJob(context, round, client, workload);
          records.push(record);
          console.log(`${workload.padEnd(11)} ${client.padEnd(20)} ${describeJob(record)}`);
        }
      }
      rounds = round;
      lastRoundMs = performance.now() - roundStart;
    }
  } finally {
    await squid?.stop({ force: true });
    await dante?.stop({ force: true });
    await origins.close();
  }

  let decision: DecisionResults | undefined;
  if (!values['no-decision'] && !socksMode) {
    console.log('\n== no_proxy decision micro-benchmark ==');
    decision = await runJsonChild<DecisionResults>('decision.js', 180_000);
  }
  let overhead: OverheadFigure[] | undefined;
  if (!values['no-overhead'] && !socksMode) {
    console.log('== dispatch overhead (no proxy) ==');
    overhead = await runJsonChild<OverheadFigure[]>('overhead.js', 120_000);
  }
  let observability: { micro: MicroFigure[]; figures: ObservabilityFigure[] } | undefined;
  if (!values['no-observability'] && !socksMode) {
    console.log('== observability overhead (no proxy) ==');
    observability = await runJsonChild<{ micro: MicroFigure[]; figures: ObservabilityFigure[] }>('observability.js', 180_000);
  }

  const environment: Environment = {
    date: new Date().toISOString(),
    cpuModel: cpus()[0]?.model ?? 'unknown CPU',
    cores: availableParallelism(),
    memoryGiB: totalmem() / 1024 ** 3,
    node: process.version,
    platform: `${platform()} ${release()}`,
    versions: Object.fromEntries(
      (socksMode ? ['undici', 'socks', 'socks-proxy-agent'] : ['undici', 'https-proxy-agent', 'http-proxy-agent', 'proxy-agent', 'hpagent', 'proxy-from-env']).map(
        (name) => [name, versionOf(name)],
      ),
    ),
    squid: [squid === undefined ? undefined : squidVersion(), dante === undefined ? undefined : danteVersion()].filter((v) => v !== undefined).join('; '),
    rounds,
    roundsPlanned,
    elapsedSeconds: (performance.now() - started) / 1000,
    notes: [
      ...notes,
      `Load average at the start: ${loadAtStart}; at the end: ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}. Free memory at the end: ${(freemem() / 1024 ** 3).toFixed(1)} GiB.`,
    ],
  };
  const markdown = socksMode ? renderSocksReport(environment, records) : renderReport(environment, records, decision, overhead, observability);
  const base = socksMode ? 'socks-latest' : 'latest';
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${base}.md`), markdown);
  writeFileSync(join(resultsDir, `${base}.json`), `${JSON.stringify({ environment, records, decision, overhead, observability }, null, 1)}\n`);
  console.log(`\n${markdown}`);
  console.log(`Written to ${join(resultsDir, `${base}.md`)}`);
}

await main();
