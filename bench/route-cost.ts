/**
 * The cost of one route decision against the cost of parsing its URL, in the same run: for each
 * kind of host (name, IPv4 literal, IPv6 literal, IPv4-mapped IPv6), µs per `new URL(url)` and per
 * `egress.route(type, url)` (which parses the URL itself), the difference and the ratio. Issue #12
 * asks that IP-literal URLs cost at most URL parse + 1 µs.
 *
 * Every loop is bounded by an iteration count and a time budget.
 * Run: `node build/bench/route-cost.js` (add `--json` for machine-readable output).
 * @module
 */
import { pathToFileURL } from 'node:url';
import { createEgress } from '../src/index.js';
import { buildNoProxyList } from './decision.js';
import { formatNumber, median } from './stats.js';

/** Proxy URL; never connected to. */
const PROXY = 'http://127.0.0.1:9';

/** One measured case. */
export interface RouteCostFigure {
  readonly entries: number;
  readonly case: string;
  readonly url: string;
  /** µs per `new URL(url)`. */
  readonly urlParse: number;
  /** µs per `egress.route('push', url)`. */
  readonly route: number;
  /** Median of the per-round differences `route - urlParse`, µs. */
  readonly overhead: number;
  /** `route / urlParse`. */
  readonly ratio: number;
}

const CASES: readonly { readonly name: string; readonly url: string }[] = [
  { name: 'host name, miss', url: 'https://push.example.net/_matrix/push/v1/notify' },
  { name: 'host name, hit', url: 'https://matrix.hit.example.org/_matrix/push/v1/notify' },
  { name: 'IPv4 literal, miss', url: 'https://203.0.113.9/_matrix/push/v1/notify' },
  { name: 'IPv4 literal, exact hit', url: 'https://198.51.100.77/_matrix/push/v1/notify' },
  { name: 'IPv4 literal, CIDR hit', url: 'https://10.200.3.4:8448/_matrix/push/v1/notify' },
  { name: 'IPv6 literal, miss', url: 'https://[2001:db8:ffff::1]/_matrix/push/v1/notify' },
  { name: 'IPv6 literal, CIDR hit', url: 'https://[2001:db8:13::5]/_matrix/push/v1/notify' },
  { name: 'IPv4-mapped IPv6', url: 'https://[::ffff:203.0.113.9]/_matrix/push/v1/notify' },
];

/** Rounds per case; each round times both calls back to back, so load drift hits both alike. */
const ROUNDS = 15;
const ITERATIONS_PER_ROUND = 20_000;
const WARM_UP = 20_000;

/** µs per call of `run` over `iterations` calls. */
function timeCalls(run: () => unknown, iterations: number): number {
  let sink: unknown;
  const started = performance.now();
  for (let i = 0; i < iterations; i++) sink = run();
  const elapsed = performance.now() - started;
  if (sink === undefined) throw new Error('nothing measured');
  return (elapsed * 1000) / iterations;
}

/**
 * Medians over {@link ROUNDS} rounds of `new URL(url)` and `decide()`, timed back to back in each
 * round, and the median of the per-round differences.
 */
function measurePair(url: string, decide: () => unknown): { urlParse: number; route: number; overhead: number } {
  timeCalls(() => new URL(url), WARM_UP);
  timeCalls(decide, WARM_UP);
  const parses: number[] = [];
  const routes: number[] = [];
  const differences: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const parse = timeCalls(() => new URL(url), ITERATIONS_PER_ROUND);
    const route = timeCalls(decide, ITERATIONS_PER_ROUND);
    parses.push(parse);
    routes.push(route);
    differences.push(route - parse);
  }
  return { urlParse: median(parses), route: median(routes), overhead: median(differences) };
}

/** Measure every case against no_proxy lists of 10 and 1,000 entries. */
export async function runRouteCostBench(log: (line: string) => void = () => undefined): Promise<RouteCostFigure[]> {
  const figures: RouteCostFigure[] = [];
  for (const entries of [10, 1_000]) {
    // buildNoProxyList's hit entries are .hit.example.org, 198.51.100.77 and 10.200.0.0/16; add an IPv6 range.
    const noProxy = `${buildNoProxyList(entries).value},2001:db8:13::/48`;
    const egress = createEgress({ env: {}, httpsProxy: PROXY, httpProxy: PROXY, noProxy });
    for (const { name, url } of CASES) {
      const { urlParse, route, overhead } = measurePair(url, () => egress.route('push', url));
      const figure = { entries, case: name, url, urlParse, route, overhead, ratio: route / urlParse };
      figures.push(figure);
      log(`${String(entries).padStart(5)} entries  ${name.padEnd(24)} new URL ${formatNumber(urlParse).padStart(6)} µs  route ${formatNumber(route).padStart(6)} µs  +${formatNumber(figure.overhead)} µs  ×${figure.ratio.toFixed(2)}`);
    }
    await egress.close();
  }
  return figures;
}

/** The figures as a markdown table. */
export function routeCostTable(figures: readonly RouteCostFigure[]): string {
  const lines = ['| no_proxy entries | Case | `new URL()` | `egress.route()` | route − parse | route ÷ parse |', '|---:|---|---:|---:|---:|---:|'];
  for (const f of figures) {
    lines.push(`| ${f.entries.toLocaleString('en-US')} | ${f.case} | ${formatNumber(f.urlParse)} µs | ${formatNumber(f.route)} µs | ${formatNumber(f.overhead)} µs | ${f.ratio.toFixed(2)} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const figures = await runRouteCostBench(json ? undefined : (line) => { console.log(line); });
  if (json) process.stdout.write(`${JSON.stringify(figures)}\n`);
  else console.log(`\n${routeCostTable(figures)}`);
}
