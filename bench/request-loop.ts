/**
 * The request loop the in-process benchmarks share: one GET at a time, body read, status checked,
 * and the CPU and wall time of a batch divided per request.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { request, type Dispatcher, type Response as UndiciResponse } from 'undici';

/** One GET of `url`, body read; throws unless the status is 200. */
export type Get = (url: string) => Promise<void>;

/** A {@link Get} through undici's `request` with `dispatcher`. */
export const viaRequest =
  (dispatcher: Dispatcher): Get =>
  async (url) => {
    const { statusCode, body } = await request(url, { dispatcher });
    await body.arrayBuffer();
    if (statusCode !== 200) throw new Error(`status ${String(statusCode)}`);
  };

/** A {@link Get} through a `fetch`-shaped function. */
export const viaFetch =
  (go: (url: string) => Promise<UndiciResponse>): Get =>
  async (url) => {
    const response = await go(url);
    await response.arrayBuffer();
    if (response.status !== 200) throw new Error(`status ${String(response.status)}`);
  };

/** Run `count` sequential GETs; CPU µs (user + system, this process) and wall µs per request. */
export async function batch(get: Get, url: string, count: number): Promise<{ cpu: number; wall: number }> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  for (let i = 0; i < count; i++) await get(url);
  const cpu = process.cpuUsage(cpu0);
  return { cpu: (cpu.user + cpu.system) / count, wall: ((performance.now() - started) * 1000) / count };
}
