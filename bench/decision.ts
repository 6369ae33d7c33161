/**
 * The `no_proxy` decision micro-benchmark: µs per "proxy or direct?" decision for lists of 10, 1,000
 * and 10,000 entries (domains, exact IPs, IPv4 and IPv6 CIDR ranges), hit and miss.
 *
 * What is measured, per implementation:
 * - matrix-egress `match(target)`: the compiled matcher on a pre-canonicalised target (what the
 *   routing dispatcher runs for an origin it has not seen; it then caches the answer per origin).
 * - matrix-egress `match(targetFromUrl(url))`: the same from the URL string (WHATWG parse included).
 * - matrix-egress `route()`: the public explain API (also builds the reason text).
 * - proxy-from-env `getProxyForUrl(url)`: its only API; it reads `process.env` and re-splits
 *   `no_proxy` on every call, so that cost is part of its decision.
 * - undici `EnvHttpProxyAgent#dispatch`: its matcher is private (`#shouldProxy`), so we call the
 *   public `dispatch()` with its three child dispatchers replaced by no-op stubs (through its own
 *   symbol-keyed fields). That is URL parsing + the private scan + undici's argument checks; the
 *   same call with an empty `noProxy` is printed as the baseline.
 *
 * Every loop is bounded by an iteration count and a time budget.
 * Run: `node build/bench/decision.js` (add `--json` for machine-readable output).
 * @module
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { EnvHttpProxyAgent, type Dispatcher } from 'undici';
import { getProxyForUrl } from 'proxy-from-env';
import { compileNoProxy, createEgress, targetFromUrl } from '../src/index.js';
import { formatNumber, median } from './stats.js';

/** List sizes measured. */
export const LIST_SIZES = [10, 1_000, 10_000] as const;

/** Proxy URL used in the decision benchmark; never connected to. */
const PROXY = 'http://127.0.0.1:9';

/** One decision case: a URL and whether a correct matcher sends it direct. */
interface DecisionCase {
  readonly name: string;
  readonly url: string;
  /** True when the URL matches an entry (goes direct). */
  readonly hit: boolean;
}

/** One measured figure. */
export interface DecisionFigure {
  readonly implementation: string;
  readonly entries: number;
  readonly decisionCase: string;
  readonly hit: boolean;
  /** Median µs per decision over the samples. */
  readonly microseconds: number;
  /** Whether the implementation decided as a correct matcher would (hit → direct). */
  readonly correct: boolean;
  readonly iterations: number;
}

/** All figures of one run. */
export interface DecisionResults {
  readonly figures: readonly DecisionFigure[];
  /** Baseline of the undici measurement: `dispatch()` with an empty list, µs. */
  readonly undiciEmptyListMicroseconds: number;
  /** One-off cost of preparing each list, ms (median of 3): matrix-egress `compileNoProxy`, undici's constructor. */
  readonly compileMilliseconds: readonly { readonly entries: number; readonly egress: number; readonly undici: number }[];
}

/** Median of three timed calls of `build`, ms. */
function timeBuild(build: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    build();
    times.push(performance.now() - started);
  }
  return median(times);
}

/**
 * A `no_proxy` list of `size` entries: 60 % domains (`.svc-N.example.org`, `*.tenant-N.example.com`,
 * `host-N.internal`), 20 % exact IPv4, 15 % IPv4 CIDR /24, 5 % IPv6 CIDR /48. The entries the hit
 * cases match are at the end, which is the worst case for a linear scan.
 */
export function buildNoProxyList(size: number): { readonly value: string; readonly cases: readonly DecisionCase[] } {
  const entries: string[] = [];
  for (let i = 0; entries.length < size - 3; i++) {
    const slot = i % 20;
    if (slot < 4) entries.push(`.svc-${String(i)}.example.org`);
    else if (slot < 8) entries.push(`*.tenant-${String(i)}.example.com`);
    else if (slot < 12) entries.push(`host-${String(i)}.internal`);
    else if (slot < 16) entries.push(`100.${String(64 + (i >> 16))}.${String((i >> 8) & 255)}.${String(i & 255)}`);
    else if (slot < 19) entries.push(`172.${String(16 + (i % 16))}.${String((i >> 4) & 255)}.0/24`);
    else entries.push(`2001:db8:${(i & 0xffff).toString(16)}::/48`);
  }
  // The three hit entries, last.
  entries.push('.hit.example.org', '198.51.100.77', '10.200.0.0/16');
  return {
    value: entries.join(','),
    cases: [
      { name: 'hit: domain suffix', url: 'https://matrix.hit.example.org/_matrix/push/v1/notify', hit: true },
      { name: 'hit: exact IP', url: 'https://198.51.100.77/_matrix/push/v1/notify', hit: true },
      { name: 'hit: CIDR', url: 'https://10.200.3.4/_matrix/push/v1/notify', hit: true },
      { name: 'miss: domain', url: 'https://push.example.net/_matrix/push/v1/notify', hit: false },
      { name: 'miss: IP', url: 'https://203.0.113.9/_matrix/push/v1/notify', hit: false },
    ],
  };
}

/** Time budget per sample and samples per figure. */
const SAMPLE_MS = 40;
const SAMPLES = 5;
const MAX_ITERATIONS_PER_SAMPLE = 1_000_000;
const BATCH = 16;

/**
 * µs per call of `decide`, median of {@link SAMPLES} samples after one warm-up sample; each sample
 * runs batches until {@link SAMPLE_MS} or {@link MAX_ITERATIONS_PER_SAMPLE}, whichever comes first.
 */
function measure(decide: () => boolean): { microseconds: number; iterations: number; lastAnswer: boolean } {
  let lastAnswer = false;
  let total = 0;
  const perSample: number[] = [];
  for (let sample = 0; sample <= SAMPLES; sample++) {
    let iterations = 0;
    const started = performance.now();
    let elapsed = 0;
    while (elapsed < SAMPLE_MS && iterations < MAX_ITERATIONS_PER_SAMPLE) {
      for (let i = 0; i < BATCH; i++) lastAnswer = decide();
      iterations += BATCH;
      elapsed = performance.now() - started;
    }
    if (sample > 0) perSample.push((elapsed * 1000) / iterations);
    total += iterations;
  }
  return { microseconds: median(perSample), iterations: total, lastAnswer };
}

/** A dispatcher stub that records nothing and answers at once. */
function stub(onPick: () => void): Dispatcher {
  return {
    dispatch() {
      onPick();
      return true;
    },
  } as unknown as Dispatcher;
}

/**
 * An EnvHttpProxyAgent whose children are stubs; `direct()` tells whether the last dispatch went to
 * the no-proxy child. Relies on undici 7's symbol-keyed fields (`Symbol(no proxy agent)` …).
 */
function undiciDecider(noProxy: string): { readonly decide: (origin: string) => boolean; readonly close: () => Promise<void> } {
  const agent = new EnvHttpProxyAgent({ httpProxy: PROXY, httpsProxy: PROXY, noProxy });
  const record = agent as unknown as Record<symbol, unknown>;
  const symbols = Object.getOwnPropertySymbols(agent);
  const find = (description: string): symbol => {
    const found = symbols.find((symbol) => symbol.description === description);
    if (found === undefined) throw new Error(`undici EnvHttpProxyAgent has no ${description} field at this version`);
    return found;
  };
  const originals = ['no proxy agent', 'http proxy agent', 'https proxy agent'].map((d) => record[find(d)] as Dispatcher);
  let direct = false;
  record[find('no proxy agent')] = stub(() => (direct = true));
  record[find('http proxy agent')] = stub(() => (direct = false));
  record[find('https proxy agent')] = stub(() => (direct = false));
  const handler = { onError(error: Error): void {
    throw error;
  } } as unknown as Dispatcher.DispatchHandler;
  return {
    decide(origin: string): boolean {
      agent.dispatch({ origin, path: '/', method: 'GET' }, handler);
      return direct;
    },
    async close(): Promise<void> {
      await Promise.all([...new Set(originals)].map((dispatcher) => dispatcher.close()));
    },
  };
}

/** Run every figure. Sets `process.env` proxy variables for proxy-from-env (call it in its own process). */
export async function runDecisionBench(log: (line: string) => void = () => undefined): Promise<DecisionResults> {
  const figures: DecisionFigure[] = [];
  const record = (implementation: string, entries: number, decisionCase: DecisionCase, decide: () => boolean): void => {
    const { microseconds, iterations, lastAnswer } = measure(decide);
    const correct = lastAnswer === decisionCase.hit;
    figures.push({ implementation, entries, decisionCase: decisionCase.name, hit: decisionCase.hit, microseconds, correct, iterations });
    log(`${implementation.padEnd(34)} ${String(entries).padStart(6)} entries  ${decisionCase.name.padEnd(20)} ${formatNumber(microseconds).padStart(9)} µs${correct ? '' : '  (wrong answer)'}`);
  };

  for (const key of ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY', 'all_proxy', 'ALL_PROXY']) {
    resetEnv(key);
  }
  process.env['https_proxy'] = PROXY;
  process.env['http_proxy'] = PROXY;

  const empty = undiciDecider('');
  const baselineCase: DecisionCase = { name: 'empty list', url: 'https://push.example.net/', hit: false };
  const baseline = measure(() => empty.decide(new URL(baselineCase.url).origin));
  await empty.close();

  const compileMilliseconds: { entries: number; egress: number; undici: number }[] = [];
  for (const size of LIST_SIZES) {
    const { value, cases } = buildNoProxyList(size);
    compileMilliseconds.push({
      entries: size,
      egress: timeBuild(() => compileNoProxy(value)),
      undici: timeBuild(() => new EnvHttpProxyAgent({ httpProxy: PROXY, httpsProxy: PROXY, noProxy: value })),
    });
    const matcher = compileNoProxy(value);
    const egress = createEgress({ env: {}, httpsProxy: PROXY, httpProxy: PROXY, noProxy: value });
    process.env['no_proxy'] = value;
    const undici = undiciDecider(value);
    for (const decisionCase of cases) {
      const { url } = decisionCase;
      const origin = new URL(url).origin;
      const target = targetFromUrl(url);
      record('matrix-egress match(target)', size, decisionCase, () => matcher.match(target) !== undefined);
      record('matrix-egress match(targetFromUrl(url))', size, decisionCase, () => matcher.match(targetFromUrl(url)) !== undefined);
      record('matrix-egress route(type, url)', size, decisionCase, () => egress.route('push', url).route === 'direct');
      record('proxy-from-env getProxyForUrl(url)', size, decisionCase, () => getProxyForUrl(url) === '');
      record('undici EnvHttpProxyAgent dispatch', size, decisionCase, () => undici.decide(origin));
    }
    await undici.close();
    await egress.close();
  }
  delete process.env['no_proxy'];
  return { figures, undiciEmptyListMicroseconds: baseline.microseconds, compileMilliseconds };
}

function resetEnv(key: string): void {
  // Assigning `undefined` would store the string "undefined".
  Reflect.deleteProperty(process.env, key);
}

/** The decision figures as a markdown table: one row per implementation and case, one column per list size. */
export function decisionTable(results: DecisionResults): string {
  const implementations = [...new Set(results.figures.map((f) => f.implementation))];
  const cases = [...new Set(results.figures.map((f) => f.decisionCase))];
  const lines = [
    `| Implementation | Case | ${LIST_SIZES.map((n) => `${n.toLocaleString('en-US')} entries`).join(' | ')} |`,
    `|---|---|${LIST_SIZES.map(() => '---:').join('|')}|`,
  ];
  for (const implementation of implementations) {
    for (const decisionCase of cases) {
      const cells = LIST_SIZES.map((size) => {
        const figure = results.figures.find((f) => f.implementation === implementation && f.entries === size && f.decisionCase === decisionCase);
        if (figure === undefined) return '—';
        return `${formatNumber(figure.microseconds)} µs${figure.correct ? '' : ' ✗'}`;
      });
      lines.push(`| ${implementation} | ${decisionCase} | ${cells.join(' | ')} |`);
    }
  }
  lines.push(
    '',
    `One-off preparation of the list, ms: ${results.compileMilliseconds
      .map((c) => `${c.entries.toLocaleString('en-US')} entries: matrix-egress compileNoProxy ${formatNumber(c.egress)}, undici constructor ${formatNumber(c.undici)}`)
      .join('; ')} (proxy-from-env prepares nothing: it re-splits no_proxy on every call).`,
  );
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const results = await runDecisionBench(json ? undefined : (line) => { console.log(line); });
  if (json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
  } else {
    console.log(`\nundici EnvHttpProxyAgent dispatch with an empty list (baseline): ${formatNumber(results.undiciEmptyListMicroseconds)} µs`);
    console.log('✗ = wrong answer (CIDR ranges are not supported by string matchers)\n');
    console.log(decisionTable(results));
  }
}
