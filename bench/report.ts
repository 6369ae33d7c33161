/**
 * Turns the job records of a run into medians, ratios and target checks, and renders them as
 * markdown (bench/results/latest.md).
 * @module
 */
import { CLIENTS, CLIENT_NAMES, type ClientName } from './clients.js';
import { decisionTable, LIST_SIZES, type DecisionResults } from './decision.js';
import { overheadTable, type OverheadFigure } from './overhead.js';
import { microTable, observabilityTable, type MicroFigure, type ObservabilityFigure } from './observability.js';
import { formatNumber, formatRatio, median, range } from './stats.js';
import type { WorkerResult } from './worker.js';
import { WORKLOAD_NAMES, WORKLOADS, type WorkloadName } from './workloads.js';

/** One worker run as the parent saw it. */
export interface JobRecord {
  readonly round: number;
  readonly client: ClientName;
  readonly workload: WorkloadName;
  /** `undefined` when the worker died without reporting. */
  readonly result: WorkerResult | undefined;
  /** How the worker ended, when it did not report (`exit code 1`, `killed after …`). */
  readonly exit: string | undefined;
  /** Connections the origin accepted during the job. */
  readonly originConnections: number;
  /** CONNECT lines Squid logged for the job (after the worker closed its tunnels). */
  readonly squidConnects: number;
  /** Other lines Squid logged (forwarded requests). */
  readonly squidRequests: number;
  /** Squid's CPU during the timed part, µs. */
  readonly squidCpuMicros: number;
  /** The bench process's CPU (the origin servers) during the timed part, µs. */
  readonly originCpuMicros: number;
  /** CPU the whole machine spent busy during the timed part (every process), µs. */
  readonly machineBusyMicros: number;
}

/** Cores' worth of CPU that processes other than the worker, Squid and the origins used during the timed part. */
function otherLoadCores(record: JobRecord): number {
  const timed = record.result?.timed;
  if (timed === undefined || record.machineBusyMicros === 0) return Number.NaN;
  const ours = (record.result?.cpuMicros ?? 0) + record.squidCpuMicros + record.originCpuMicros;
  return Math.max(0, record.machineBusyMicros - ours) / (timed.elapsedMs * 1000);
}

/** The machine and versions a run happened on. */
export interface Environment {
  readonly date: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly versions: Readonly<Record<string, string>>;
  readonly squid: string;
  readonly rounds: number;
  readonly roundsPlanned: number;
  readonly elapsedSeconds: number;
  readonly notes: readonly string[];
}

/** Figures of one client on one workload, over its rounds. */
export interface Summary {
  readonly client: ClientName;
  readonly workload: WorkloadName;
  readonly rounds: number;
  /** Completed requests per second (for 1 MiB downloads: MiB/s), per successful round. */
  readonly rates: readonly number[];
  readonly rate: number;
  /** Median over rounds of (rate / direct-undici's rate on the same workload in the same round). */
  readonly ratio: number;
  /** The per-round ratios behind {@link Summary.ratio}. */
  readonly ratios: readonly number[];
  readonly cpuPerRequestMicros: number;
  readonly squidCpuPerRequestMicros: number;
  /** Client + Squid + origin CPU per request: what the request cost the machine, whoever else was running. */
  readonly totalCpuPerRequestMicros: number;
  /** Highest count over the rounds. */
  readonly proxyConnections: number;
  readonly squidConnects: number;
  readonly originConnections: number;
  readonly rssMiB: number;
  readonly failures: readonly string[];
}

const isOk = (record: JobRecord): boolean =>
  record.result?.timed !== undefined && record.result.timed.failed === 0 && !record.result.timed.timedOut && record.result.error === undefined;

function failureOf(record: JobRecord): string {
  const r = record.result;
  if (r === undefined) return `round ${String(record.round)}: worker ${record.exit ?? 'ended without a result'}`;
  const why =
    r.error ??
    r.warmup?.firstError ??
    (r.warmup?.timedOut === true ? 'warm-up hit the time cap' : undefined) ??
    r.timed?.firstError ??
    (r.timed?.timedOut === true ? `timed out after ${String(r.timed.completed)} requests` : 'no result');
  return `round ${String(record.round)}: ${why}`;
}

/** Medians per client and workload. */
function summarize(records: readonly JobRecord[]): Summary[] {
  const summaries: Summary[] = [];
  const rateOf = (record: JobRecord): number => {
    const timed = record.result?.timed;
    return timed === undefined ? Number.NaN : (timed.completed * 1000) / timed.elapsedMs;
  };
  for (const workload of WORKLOAD_NAMES) {
    // Paired by round: both ran minutes apart at most, under the same background load.
    const direct = new Map(records.filter((r) => r.client === 'direct-undici' && r.workload === workload && isOk(r)).map((r) => [r.round, rateOf(r)]));
    for (const client of CLIENT_NAMES) {
      const mine = records.filter((r) => r.client === client && r.workload === workload);
      if (mine.length === 0) continue;
      const ok = mine.filter(isOk);
      const rates = ok.map(rateOf);
      const ratios = ok.map((r) => rateOf(r) / (direct.get(r.round) ?? Number.NaN)).filter(Number.isFinite);
      const perRequest = (pick: (r: JobRecord) => number): number =>
        median(ok.map((r) => pick(r) / Math.max(1, r.result?.timed?.completed ?? 1)));
      const rate = median(rates);
      summaries.push({
        client,
        workload,
        rounds: mine.length,
        rates,
        rate,
        ratio: median(ratios),
        ratios,
        cpuPerRequestMicros: perRequest((r) => r.result?.cpuMicros ?? 0),
        squidCpuPerRequestMicros: perRequest((r) => r.squidCpuMicros),
        totalCpuPerRequestMicros: perRequest((r) => (r.result?.cpuMicros ?? 0) + r.squidCpuMicros + r.originCpuMicros),
        proxyConnections: Math.max(0, ...mine.map((r) => r.result?.proxyConnections ?? 0)),
        squidConnects: Math.max(0, ...mine.map((r) => r.squidConnects)),
        originConnections: Math.max(0, ...mine.map((r) => r.originConnections)),
        rssMiB: median(ok.map((r) => (r.result?.maxRssKiB ?? 0) / 1024)),
        failures: mine.filter((r) => !isOk(r)).map(failureOf),
      });
    }
  }
  return summaries;
}

function workloadTable(workload: WorkloadName, summaries: readonly Summary[], proxy: 'Squid' | 'Dante' = 'Squid'): string {
  const w = WORKLOADS[workload];
  const unit = w.path === '/1mib' ? 'MiB/s' : 'req/s';
  // Dante's log counts SOCKS CONNECTs that opened a tunnel; Squid's access log counts HTTP CONNECTs.
  const tunnels = proxy === 'Squid' ? 'proxy conns / CONNECTs' : 'proxy conns / SOCKS tunnels';
  const lines = [
    `### ${w.title}`,
    '',
    `| Client | ${unit} (median) | min–max | × direct | client CPU µs/req | ${proxy} CPU µs/req | total CPU µs/req | ${tunnels} | origin conns | peak RSS MiB | failures |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const s of summaries.filter((x) => x.workload === workload)) {
    const spec = CLIENTS[s.client];
    const [low, high] = range(s.rates);
    const conns = spec.proxied ? `${String(s.proxyConnections)} / ${String(s.squidConnects)}` : '—';
    lines.push(
      `| ${spec.label} | ${formatNumber(s.rate)} | ${formatNumber(low)}–${formatNumber(high)} | ${formatRatio(s.ratio)} | ` +
        `${formatNumber(s.cpuPerRequestMicros)} | ${spec.proxied ? formatNumber(s.squidCpuPerRequestMicros) : '—'} | ${formatNumber(s.totalCpuPerRequestMicros)} | ${conns} | ` +
        `${String(s.originConnections)} | ${formatNumber(s.rssMiB)} | ${s.failures.length === 0 ? '' : s.failures.join('; ').replaceAll('|', '\\|')} |`,
    );
  }
  return lines.join('\n');
}

/** One target line: met, missed or not measured. */
interface TargetLine {
  readonly target: string;
  readonly figure: string;
  /** `met`, `missed` or `not measured`, with a note when the rounds disagree. */
  readonly verdict: string;
}

const EGRESS_CLIENTS = ['egress-request', 'egress-fetch', 'egress-agent'] as const;

/** Evaluate the targets (figures, not assertions). */
function evaluateTargets(summaries: readonly Summary[], decision: DecisionResults | undefined): TargetLine[] {
  const lines: TargetLine[] = [];
  const find = (client: ClientName, workload: WorkloadName): Summary | undefined =>
    summaries.find((s) => s.client === client && s.workload === workload && s.rates.length > 0);
  const verdict = (ok: boolean | undefined, noisy = false): TargetLine['verdict'] =>
    ok === undefined ? 'not measured' : `${ok ? 'met' : 'missed'}${noisy ? ' (within round-to-round spread)' : ''}`;
  /** True when some rounds fall on each side of `limit`. */
  const spans = (values: readonly number[], limit: number): boolean => values.some((v) => v >= limit) && values.some((v) => v < limit);

  for (const [workload, floor] of [['https-seq', 0.95], ['https-c32', 0.9]] as const) {
    for (const client of EGRESS_CLIENTS) {
      const s = find(client, workload);
      lines.push({
        target: `${CLIENTS[client].label}, ${workload}: ≥ ${floor.toFixed(2)}× direct`,
        figure: s === undefined ? '—' : `${formatRatio(s.ratio)} (rounds: ${s.ratios.map(formatRatio).join(', ')})`,
        verdict: verdict(s === undefined || !Number.isFinite(s.ratio) ? undefined : s.ratio >= floor, s !== undefined && spans(s.ratios, floor)),
      });
    }
  }
  for (const workload of ['https-seq', 'https-c32', 'https-1mib'] as const) {
    const rivals = (['undici-proxyagent', 'hpagent'] as const).map((c) => find(c, workload));
    for (const client of EGRESS_CLIENTS) {
      const s = find(client, workload);
      const best = Math.max(...rivals.map((r) => r?.rate ?? Number.NaN));
      const figure =
        s === undefined
          ? '—'
          : rivals.map((r, i) => `${formatRatio(s.rate / (r?.rate ?? Number.NaN))} of ${i === 0 ? 'ProxyAgent' : 'hpagent'}`).join(', ');
      const [low, high] = range(s?.rates ?? []);
      const overlap = rivals.some((r) => r !== undefined && r.rates.some((x) => x >= low && x <= high));
      lines.push({
        target: `${CLIENTS[client].label}, ${workload}: not below undici ProxyAgent or hpagent`,
        figure,
        verdict: verdict(s === undefined || !Number.isFinite(best) ? undefined : s.rate >= best, overlap && s !== undefined && s.rate < best),
      });
    }
  }
  for (const workload of ['https-seq', 'https-c32', 'https-1mib', 'http-seq', 'http-c32'] as const) {
    const limit = WORKLOADS[workload].concurrency;
    for (const client of EGRESS_CLIENTS) {
      const s = find(client, workload);
      const pa = find('undici-proxyagent', workload);
      lines.push({
        target: `${CLIENTS[client].label}, ${workload}: proxy connections ≤ concurrency (${String(limit)})`,
        figure: s === undefined ? '—' : `${String(s.proxyConnections)} (undici ProxyAgent: ${pa === undefined ? '—' : String(pa.proxyConnections)})`,
        verdict: verdict(s === undefined ? undefined : s.proxyConnections <= limit),
      });
    }
  }
  if (decision !== undefined) {
    const largest = LIST_SIZES[LIST_SIZES.length - 1] ?? 10_000;
    for (const implementation of ['matrix-egress match(target)', 'matrix-egress match(targetFromUrl(url))']) {
      const figures = decision.figures.filter((f) => f.implementation === implementation && f.entries === largest);
      const worst = Math.max(...figures.map((f) => f.microseconds));
      lines.push({
        target: `no_proxy decision ≤ 2 µs at ${largest.toLocaleString('en-US')} entries, hit or miss: ${implementation}`,
        figure: `worst case ${formatNumber(worst)} µs`,
        verdict: verdict(figures.length === 0 ? undefined : worst <= 2),
      });
    }
  }
  for (const workload of ['https-seq', 'https-c32', 'https-1mib'] as const) {
    const pa = find('undici-proxyagent', workload);
    for (const client of EGRESS_CLIENTS) {
      const s = find(client, workload);
      lines.push({
        target: `${CLIENTS[client].label}, ${workload}: peak RSS ≤ undici ProxyAgent's`,
        figure: s === undefined || pa === undefined ? '—' : `${formatNumber(s.rssMiB)} MiB vs ${formatNumber(pa.rssMiB)} MiB`,
        verdict: verdict(s === undefined || pa === undefined ? undefined : s.rssMiB <= pa.rssMiB),
      });
    }
  }
  return lines;
}

/** The date, machine and versions lines that open a report. */
function runLines(environment: Environment): string[] {
  const versions = Object.entries(environment.versions)
    .map(([name, version]) => `${name} ${version}`)
    .join(', ');
  return [
    `- Date: ${environment.date}; ${String(environment.rounds)} interleaved round(s)` +
      (environment.rounds < environment.roundsPlanned ? ` of ${String(environment.roundsPlanned)} planned (time budget)` : '') +
      `; ${formatNumber(environment.elapsedSeconds)} s in all.`,
    `- Machine: ${environment.cpuModel}, ${String(environment.cores)} cores, ${formatNumber(environment.memoryGiB)} GiB RAM, ${environment.platform}.`,
    `- Node ${environment.node}; ${versions}; ${environment.squid}.`,
  ];
}

/** The whole report as markdown. */
export function renderReport(
  environment: Environment,
  records: readonly JobRecord[],
  decision: DecisionResults | undefined,
  overhead: readonly OverheadFigure[] | undefined,
  observability?: { readonly micro: readonly MicroFigure[]; readonly figures: readonly ObservabilityFigure[] },
): string {
  const summaries = summarize(records);
  const workloads = WORKLOAD_NAMES.filter((w) => summaries.some((s) => s.workload === w));
  const measuredWorkloads = new Set(records.map((r) => r.workload));
  const targets = evaluateTargets(summaries, decision).filter(
    (t) => t.verdict !== 'not measured' || WORKLOAD_NAMES.some((w) => measuredWorkloads.has(w) && t.target.includes(`, ${w}:`)),
  );
  const others = records.map(otherLoadCores).filter(Number.isFinite);
  const [, othersMax] = range(others);
  const parts = [
    '# matrix-egress benchmark results',
    '',
    ...runLines(environment),
    '- Origins, Squid and clients all on loopback on this machine, so they share its cores.',
    '- Each cell is the median over rounds; every client runs each workload in its own process (peak RSS is that process\'s `maxRSS`).',
    '- "proxy conns" = TCP connections the client opened to Squid (counted in the client); "CONNECTs" = CONNECT lines in Squid\'s access log; both include the warm-up.',
    '- CPU columns cover the timed part only: the client process, Squid (from /proc), and the origins (the bench process); "total" is their sum. Squid CPU comes in 10 ms ticks.',
    '- "× direct" pairs each round with the direct undici run of the same round; fetch clients are better compared with the direct fetch row.',
    ...(others.length === 0
      ? []
      : [
          `- Background load: other processes on the machine used a median ${formatNumber(median(others), 2)} cores (max ${formatNumber(othersMax, 2)}) during the timed parts (from /proc/stat, less the worker's, Squid's and the origins' own CPU).`,
        ]),
    ...environment.notes.map((note) => `- ${note}`),
    '',
    '## Throughput',
    '',
    ...workloads.flatMap((w) => [workloadTable(w, summaries), '']),
    '## Targets (figures, not assertions)',
    '',
    '| Target | Figure | Verdict |',
    '|---|---|---|',
    ...targets.map((t) => `| ${t.target} | ${t.figure} | ${t.verdict} |`),
    '',
  ];
  if (decision !== undefined) {
    parts.push(
      '## no_proxy decision, µs per decision (median)',
      '',
      `undici EnvHttpProxyAgent: public \`dispatch()\` with its child dispatchers stubbed out (URL parse + private scan + argument checks); with an empty list it takes ${formatNumber(decision.undiciEmptyListMicroseconds)} µs. ✗ = wrong answer (string matchers do not support CIDR).`,
      '',
      decisionTable(decision),
      '',
    );
  }
  if (overhead !== undefined) {
    parts.push(
      '## Dispatch overhead without a proxy (CPU of the client process per request, median of alternating batches)',
      '',
      'Sequential GETs of the small body to a loopback origin in another process; matrix-egress routes them direct (no proxy configured), through its routing dispatcher, decision cache, SSRF check and lean pool.',
      '',
      overheadTable(overhead),
      '',
    );
  }
  if (observability !== undefined) {
    parts.push(
      '## Observability overhead (issue 16): CPU of the client process',
      '',
      'In process, a routing dispatcher whose child answers at once (nothing but our code runs):',
      '',
      microTable(observability.micro),
      '',
      'End to end, sequential GETs routed direct to a loopback origin in another process; Δ is the median over rounds of each variant against the baseline batch of the same round:',
      '',
      observabilityTable(observability.figures),
      '',
    );
  }
  return parts.join('\n');
}

/** SOCKS5 clients, in report order. */
const SOCKS_CLIENTS = CLIENT_NAMES.filter((name) => CLIENTS[name].via === 'socks');

/**
 * The report of a `--socks` run: the same throughput tables, through Dante instead of Squid, and the
 * tunnel check (one tunnel per request in flight).
 */
export function renderSocksReport(environment: Environment, records: readonly JobRecord[]): string {
  const summaries = summarize(records);
  const workloads = WORKLOAD_NAMES.filter((w) => summaries.some((s) => s.workload === w));
  const others = records.map(otherLoadCores).filter(Number.isFinite);
  const [, othersMax] = range(others);
  const tunnelLines = workloads.flatMap((workload) =>
    summaries
      .filter((s) => s.workload === workload && SOCKS_CLIENTS.includes(s.client))
      .map((s) => {
        const limit = WORKLOADS[workload].concurrency;
        return `| ${CLIENTS[s.client].label}, ${workload} | ≤ ${String(limit)} | ${String(s.proxyConnections)} / ${String(s.squidConnects)} | ${s.squidConnects <= limit ? 'met' : 'missed'} |`;
      }),
  );
  return [
    '# matrix-egress SOCKS5 benchmark results',
    '',
    ...runLines(environment),
    '- Origins, Dante (no authentication, names resolved from its own hosts file) and clients all on loopback on this machine, so they share its cores.',
    '- Each cell is the median over rounds; every client runs each workload in its own process. Every SOCKS client sends the name (socks5h), as a Tor route would.',
    '- "proxy conns" = TCP connections the client opened to Dante (counted in the client); "SOCKS tunnels" = `pass … tcp/connect [` lines in Dante\'s log; both include the warm-up.',
    '- Dante CPU is the sum over its mother and child processes (from /proc, 10 ms ticks).',
    ...(others.length === 0
      ? []
      : [`- Background load: other processes used a median ${formatNumber(median(others), 2)} cores (max ${formatNumber(othersMax, 2)}) during the timed parts.`]),
    ...environment.notes.map((note) => `- ${note}`),
    '',
    '## Throughput through Dante',
    '',
    ...workloads.flatMap((w) => [workloadTable(w, summaries, 'Dante'), '']),
    '## Tunnels ≤ requests in flight',
    '',
    '| Client, workload | limit | proxy conns / SOCKS tunnels (max over rounds) | verdict |',
    '|---|---:|---:|---|',
    ...tunnelLines,
    '',
  ].join('\n');
}
