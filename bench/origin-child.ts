/**
 * The bench origins in a process of their own, for in-process measurements whose CPU figures must
 * not include the server's work (bench/overhead.ts). Sends `{ http, https, ca }` over IPC, then
 * serves until its parent disconnects (or 10 minutes pass).
 * @module
 */
import { startOrigins } from './origin.js';

/** What the child sends once it listens. */
export interface OriginChildReady {
  readonly http: string;
  readonly https: string;
  readonly ca: string;
}

const origins = await startOrigins();
const ready: OriginChildReady = { http: origins.http.url, https: origins.https.url, ca: origins.ca };
process.send?.(ready);
const stop = (): void => {
  void origins.close().finally(() => process.exit(0));
};
process.once('disconnect', stop);
setTimeout(stop, 600_000).unref();
