/**
 * Dispatch overhead: what matrix-egress's own layers (routing dispatcher, per-origin decision cache,
 * SSRF check, lean pool) cost per request, with no proxy in the way. The same sequential GETs go
 * straight to a loopback origin (in a child process, so its CPU is not counted) through undici's
 * Agent and through an egress dispatcher whose route is direct, in alternating batches; the figure
 * is this process's CPU per request. Bounded by a batch count and a time cap.
 *
 * Run: `node build/bench/overhead.js` (`--json` for machine-readable output).
 * @module
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Agent, fetch } from 'undici';
import { createEgress } from '../src/index.js';
import type { OriginChildReady } from './origin-child.js';
import { formatNumber, formatRatio, median } from './stats.js';
import { batch, viaFetch, viaRequest, type Get } from './request-loop.js';

const WARMUP = 300;
const BATCH = 400;
const MAX_BATCHES = 8;
const TIME_CAP_MS = 45_000;

/** One measured pair member. */
export interface OverheadFigure {
  readonly scheme: 'http' | 'https';
  readonly api: 'request' | 'fetch';
  readonly client: 'undici Agent' | 'matrix-egress';
  /** Median CPU µs per request of this process over the batches. */
  readonly cpuMicros: number;
  /** Median wall-clock µs per request. */
  readonly wallMicros: number;
  readonly batches: number;
}

/** Run the pairs; the origins run in a child process. */
export async function runOverheadBench(log: (line: string) => void = () => undefined): Promise<OverheadFigure[]> {
  const child = fork(fileURLToPath(new URL('origin-child.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [ready] = (await once(child, 'message')) as [OriginChildReady];
  const agent = new Agent({ connect: { ca: ready.ca } });
  // Direct route (no proxy configured); `push` keeps its SSRF check, with loopback allowed.
  const egress = createEgress({ env: {}, ca: ready.ca, ipAllowlist: ['127.0.0.0/8'] });
  const figures: OverheadFigure[] = [];
  const deadline = performance.now() + TIME_CAP_MS;
  try {
    for (const scheme of ['http', 'https'] as const) {
      const url = `${scheme === 'https' ? ready.https : ready.http}/small`;
      for (const api of ['request', 'fetch'] as const) {
        const pair: Record<OverheadFigure['client'], Get> =
          api === 'request'
            ? { 'undici Agent': viaRequest(agent), 'matrix-egress': viaRequest(egress.dispatcher('push')) }
            : {
                'undici Agent': viaFetch((u) => fetch(u, { dispatcher: agent })),
                'matrix-egress': viaFetch((u) => egress.fetch('push', u)),
              };
        const samples: Record<OverheadFigure['client'], { cpu: number; wall: number }[]> = { 'undici Agent': [], 'matrix-egress': [] };
        for (const get of Object.values(pair)) await batch(get, url, WARMUP);
        for (let i = 0; i < MAX_BATCHES && performance.now() < deadline; i++) {
          // Alternate which goes first, so neither always follows the other.
          const order: readonly OverheadFigure['client'][] = i % 2 === 0 ? ['undici Agent', 'matrix-egress'] : ['matrix-egress', 'undici Agent'];
          for (const client of order) samples[client].push(await batch(pair[client], url, BATCH));
        }
        for (const client of ['undici Agent', 'matrix-egress'] as const) {
          const s = samples[client];
          const figure: OverheadFigure = {
            scheme,
            api,
            client,
            cpuMicros: median(s.map((x) => x.cpu)),
            wallMicros: median(s.map((x) => x.wall)),
            batches: s.length,
          };
          figures.push(figure);
          log(`${scheme.padEnd(5)} ${api.padEnd(7)} ${client.padEnd(13)} CPU ${formatNumber(figure.cpuMicros).padStart(6)} µs/req  wall ${formatNumber(figure.wallMicros).padStart(6)} µs/req`);
        }
      }
    }
  } finally {
    await agent.close();
    await egress.close();
    child.disconnect();
  }
  return figures;
}

/** The overhead figures as a markdown table. */
export function overheadTable(figures: readonly OverheadFigure[]): string {
  const lines = [
    '| Scheme | API | undici Agent CPU µs/req | matrix-egress CPU µs/req | egress ÷ undici (CPU) | undici wall µs/req | egress wall µs/req |',
    '|---|---|---:|---:|---:|---:|---:|',
  ];
  for (const scheme of ['http', 'https'] as const) {
    for (const api of ['request', 'fetch'] as const) {
      const u = figures.find((f) => f.scheme === scheme && f.api === api && f.client === 'undici Agent');
      const e = figures.find((f) => f.scheme === scheme && f.api === api && f.client === 'matrix-egress');
      if (u === undefined || e === undefined) continue;
      lines.push(
        `| ${scheme} | ${api} | ${formatNumber(u.cpuMicros)} | ${formatNumber(e.cpuMicros)} | ${formatRatio(e.cpuMicros / u.cpuMicros)} | ${formatNumber(u.wallMicros)} | ${formatNumber(e.wallMicros)} |`,
      );
    }
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const figures = await runOverheadBench(json ? undefined : (line) => { console.log(line); });
  process.stdout.write(json ? `${JSON.stringify(figures)}\n` : `\n${overheadTable(figures)}\n`);
}
