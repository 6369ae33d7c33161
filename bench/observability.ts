/**
 * What observability costs per request (issue 16): the same sequential GETs to a loopback origin (in
 * a child process, so its CPU is not counted) through four egresses with a direct route, in rotating
 * batches within one run:
 * - baseline: an egress built without the observer (counts and publishes nothing);
 * - no subscriber: `createEgress` as shipped, counting for `egress.stats()`, nobody on the channels;
 * - subscriber: the same with a listener on every diagnostics channel (during its own batches only);
 * - prometheus: the same with `registerEgressMetrics` on a fresh prom-client Registry.
 * The figure is this process's CPU per request, median over batches. Bounded by a batch count and a
 * time cap; loopback only.
 *
 * Run: `node build/bench/observability.js` (`--json` for machine-readable output).
 * @module
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { Dispatcher } from 'undici';
import { createEgress, createUnobservedEgress, type Egress } from '../src/egress.js';
import { RoutingDispatcher, type RoutedChild } from '../src/dispatch/routing-dispatcher.js';
import { EGRESS_CHANNELS } from '../src/observability/channels.js';
import { observerOf } from '../src/observability/observer.js';
import { policyOf, route } from '../src/policy/route.js';
import { targetFromUrl } from '../src/match/target.js';
import { registerEgressMetrics } from '../src/prometheus/index.js';
import type { OriginChildReady } from './origin-child.js';
import { formatNumber, median } from './stats.js';
import { batch, viaFetch, viaRequest, type Get } from './request-loop.js';

const WARMUP = 300;
const BATCH = 100;
const MAX_ROUNDS = 30;
const TIME_CAP_MS = 90_000;
/** Dispatches per batch of the in-process measurement (no sockets). */
const MICRO_BATCH = 50_000;
const MICRO_ROUNDS = 20;

export const OBSERVABILITY_VARIANTS = ['baseline', 'no subscriber', 'subscriber', 'prometheus'] as const;
export type ObservabilityVariant = (typeof OBSERVABILITY_VARIANTS)[number];

/** One measured variant of one workload. */
export interface ObservabilityFigure {
  readonly workload: string;
  readonly variant: ObservabilityVariant;
  /** Median CPU µs per request of this process over the batches. */
  readonly cpuMicros: number;
  /** Median wall-clock µs per request. */
  readonly wallMicros: number;
  readonly batches: number;
  /** Median over rounds of (variant CPU ÷ baseline CPU of the same round) − 1: paired, so load on the machine cancels out. */
  readonly pairedOverhead: number;
}

/** The observer's own cost: ns of CPU per dispatch through a routing dispatcher whose child answers at once. */
export interface MicroFigure {
  readonly variant: ObservabilityVariant;
  readonly cpuNanos: number;
  readonly rounds: number;
}

/** What the subscriber variant's listener last received: it keeps each payload, as a real subscriber would use it. */
export let lastEvent: unknown;
const keepEvent = (message: unknown): void => {
  lastEvent = message;
};

/** Subscribe the listener to every channel; returns the unsubscription. */
function subscribeAll(): () => void {
  for (const name of Object.values(EGRESS_CHANNELS)) diagnosticsChannel.subscribe(name, keepEvent);
  return () => {
    for (const name of Object.values(EGRESS_CHANNELS)) diagnosticsChannel.unsubscribe(name, keepEvent);
  };
}

/** Run every workload over the four variants; the origins run in a child process. */
export async function runObservabilityBench(log: (line: string) => void = () => undefined): Promise<ObservabilityFigure[]> {
  const child = fork(fileURLToPath(new URL('origin-child.js', import.meta.url)), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [ready] = (await once(child, 'message')) as [OriginChildReady];
  // Direct route (no proxy configured); `push` keeps its SSRF check, with loopback allowed.
  const options = { env: {}, ca: ready.ca, ipAllowlist: ['127.0.0.0/8'] };
  const egresses: Record<ObservabilityVariant, Egress> = {
    baseline: createUnobservedEgress(options),
    'no subscriber': createEgress(options),
    subscriber: createEgress(options),
    prometheus: createEgress(options),
  };
  const registry = new Registry();
  const metrics = registerEgressMetrics(egresses.prometheus, registry);
  const figures: ObservabilityFigure[] = [];
  const deadline = performance.now() + TIME_CAP_MS;
  const workloads: readonly { name: string; url: string; get: (egress: Egress) => Get }[] = [
    { name: 'http request', url: `${ready.http}/small`, get: (egress) => viaRequest(egress.dispatcher('push')) },
    { name: 'https request', url: `${ready.https}/small`, get: (egress) => viaRequest(egress.dispatcher('push')) },
    { name: 'http fetch', url: `${ready.http}/small`, get: (egress) => viaFetch((url) => egress.fetch('push', url)) },
  ];
  try {
    for (const workload of workloads) {
      const samples = new Map<ObservabilityVariant, { cpu: number; wall: number }[]>(OBSERVABILITY_VARIANTS.map((v) => [v, []]));
      const run = async (variant: ObservabilityVariant, count: number): Promise<{ cpu: number; wall: number }> => {
        const unsubscribe = variant === 'subscriber' ? subscribeAll() : undefined;
        try {
          return await batch(workload.get(egresses[variant]), workload.url, count);
        } finally {
          unsubscribe?.();
        }
      };
      for (const variant of OBSERVABILITY_VARIANTS) await run(variant, WARMUP);
      for (let round = 0; round < MAX_ROUNDS && performance.now() < deadline; round++) {
        // Rotate the order so that no variant always follows the same one.
        for (let i = 0; i < OBSERVABILITY_VARIANTS.length; i++) {
          const variant = OBSERVABILITY_VARIANTS[(round + i) % OBSERVABILITY_VARIANTS.length]!;
          samples.get(variant)?.push(await run(variant, BATCH));
        }
      }
      const base = samples.get('baseline') ?? [];
      for (const variant of OBSERVABILITY_VARIANTS) {
        const s = samples.get(variant) ?? [];
        const figure: ObservabilityFigure = {
          workload: workload.name,
          variant,
          cpuMicros: median(s.map((x) => x.cpu)),
          wallMicros: median(s.map((x) => x.wall)),
          batches: s.length,
          pairedOverhead: median(s.map((x, i) => x.cpu / (base[i]?.cpu ?? x.cpu) - 1)),
        };
        figures.push(figure);
        log(`${workload.name.padEnd(14)} ${variant.padEnd(14)} CPU ${formatNumber(figure.cpuMicros).padStart(6)} µs/req  wall ${formatNumber(figure.wallMicros).padStart(6)} µs/req`);
      }
    }
    // The collectors work after all that traffic: one scrape, as a sanity check of the variant.
    const scrape = await registry.metrics();
    if (!scrape.includes('matrix_egress_requests_total{type="push",route="direct",outcome="2xx"}')) throw new Error('the prometheus variant counted nothing');
  } finally {
    metrics.unregister();
    await Promise.all(Object.values(egresses).map((egress) => egress.close()));
    child.disconnect();
  }
  return figures;
}

/** `+0.4 %` */
function formatPercent(fraction: number): string {
  const percent = fraction * 100;
  return `${percent >= 0 ? '+' : '−'}${Math.abs(percent).toFixed(1)} %`;
}

/** A dispatcher whose every request gets a 200 with no body at once: no socket, no parser. */
class AnswerAtOnce extends Dispatcher {
  override dispatch(_options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const controller = { aborted: false, paused: false, reason: null, abort: () => undefined, pause: () => undefined, resume: () => undefined };
    handler.onRequestStart?.(controller, {});
    handler.onResponseStart?.(controller, 200, {}, 'OK');
    handler.onResponseEnd?.(controller, {});
    return true;
  }
}

const NOOP_HANDLER: Dispatcher.DispatchHandler = {
  onRequestStart: () => undefined,
  onResponseStart: () => undefined,
  onResponseData: () => undefined,
  onResponseEnd: () => undefined,
  onResponseError: () => undefined,
};

/**
 * The per-request cost of observation alone, in process: a routing dispatcher with the route
 * already decided and a child that answers at once, with and without the observer. Low noise,
 * because nothing but our code runs.
 */
export function runMicroBench(): MicroFigure[] {
  const egress = createEgress({ env: {} });
  const promEgress = createEgress({ env: {} });
  const registry = new Registry();
  const metrics = registerEgressMetrics(promEgress, registry);
  const url = 'https://push.example/_matrix/push/v1/notify';
  const routed: RoutedChild = { dispatcher: new AnswerAtOnce(), decision: route(egress.config, 'push', url), target: targetFromUrl(url) };
  const selector = { closed: false, childFor: () => routed };
  const policy = policyOf(egress.config, 'push');
  const dispatchers: Record<ObservabilityVariant, Dispatcher> = {
    baseline: new RoutingDispatcher(policy, selector),
    'no subscriber': new RoutingDispatcher(policy, selector, observerOf(egress)),
    subscriber: new RoutingDispatcher(policy, selector, observerOf(egress)),
    prometheus: new RoutingDispatcher(policy, selector, observerOf(promEgress)),
  };
  const options: Dispatcher.DispatchOptions = { origin: 'https://push.example', path: '/_matrix/push/v1/notify', method: 'POST', headers: {} };
  const samples = new Map<ObservabilityVariant, number[]>(OBSERVABILITY_VARIANTS.map((v) => [v, []]));
  const time = (variant: ObservabilityVariant, count: number): number => {
    const unsubscribe = variant === 'subscriber' ? subscribeAll() : undefined;
    const dispatcher = dispatchers[variant];
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < count; i++) dispatcher.dispatch(options, NOOP_HANDLER);
    const cpu = process.cpuUsage(cpu0);
    unsubscribe?.();
    return ((cpu.user + cpu.system) * 1000) / count;
  };
  for (const variant of OBSERVABILITY_VARIANTS) time(variant, MICRO_BATCH);
  for (let round = 0; round < MICRO_ROUNDS; round++) {
    for (let i = 0; i < OBSERVABILITY_VARIANTS.length; i++) {
      const variant = OBSERVABILITY_VARIANTS[(round + i) % OBSERVABILITY_VARIANTS.length]!;
      samples.get(variant)?.push(time(variant, MICRO_BATCH));
    }
  }
  metrics.unregister();
  void egress.close();
  void promEgress.close();
  return OBSERVABILITY_VARIANTS.map((variant) => ({ variant, cpuNanos: median(samples.get(variant) ?? []), rounds: MICRO_ROUNDS }));
}

/** The in-process figures as a markdown table. */
export function microTable(figures: readonly MicroFigure[]): string {
  const base = figures.find((f) => f.variant === 'baseline')?.cpuNanos ?? 0;
  const lines = ['| Variant | CPU ns per dispatch | added by observation |', '|---|---:|---:|'];
  for (const figure of figures) {
    lines.push(`| ${figure.variant} | ${formatNumber(figure.cpuNanos)} | ${figure.variant === 'baseline' ? '–' : `${formatNumber(figure.cpuNanos - base)} ns`} |`);
  }
  return lines.join('\n');
}

/** The figures as a markdown table: CPU per request of each variant, and its difference to the baseline. */
export function observabilityTable(figures: readonly ObservabilityFigure[]): string {
  const lines = [
    '| Workload | baseline CPU µs/req | no subscriber (paired Δ) | subscriber on every channel (paired Δ) | prometheus collectors (paired Δ) |',
    '|---|---:|---:|---:|---:|',
  ];
  for (const workload of [...new Set(figures.map((f) => f.workload))]) {
    const of = (variant: ObservabilityVariant): ObservabilityFigure | undefined => figures.find((f) => f.workload === workload && f.variant === variant);
    const base = of('baseline');
    if (base === undefined) continue;
    const cell = (variant: ObservabilityVariant): string => {
      const figure = of(variant);
      return figure === undefined ? '–' : `${formatNumber(figure.cpuMicros)} (${formatPercent(figure.pairedOverhead)})`;
    };
    lines.push(`| ${workload} | ${formatNumber(base.cpuMicros)} | ${cell('no subscriber')} | ${cell('subscriber')} | ${cell('prometheus')} |`);
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const micro = runMicroBench();
  const figures = await runObservabilityBench(json ? undefined : (line) => { console.log(line); });
  process.stdout.write(json ? `${JSON.stringify({ micro, figures })}\n` : `\n${microTable(micro)}\n\n${observabilityTable(figures)}\n`);
}
