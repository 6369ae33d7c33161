/**
 * `GET https://<name>/.well-known/matrix/server`: one exchange, with its redirects, a bounded body,
 * strict validation, and the cache period its headers ask for (Matrix server-server API,
 * "Resolving server names", step 3).
 * @module
 */
import type { Response } from 'undici';
import { parseServerName } from './server-name.js';

/** Sends one GET on the `federation` route (the egress's `fetch`, bound to that type). */
export type WellKnownFetcher = (url: string, init: { redirect: 'manual'; signal: AbortSignal; headers: Record<string, string> }) => Promise<Response>;

/** The most bytes of a `.well-known` body read (Synapse's limit; the spec sets none). */
export const WELL_KNOWN_MAX_BODY = 50 * 1024;
/** The most redirects followed; a loop ends sooner, at the first URL seen twice. */
const WELL_KNOWN_MAX_REDIRECTS = 10;

/** The outcome of one `.well-known` exchange, before caching. */
export type WellKnownFetchResult =
  | {
      readonly ok: true;
      /** The `m.server` value, validated. */
      readonly server: string;
      /** Seconds the headers allow caching for (`0` for no-store or expired), or `undefined` when they say nothing. */
      readonly maxAge: number | undefined;
      /** Every URL requested, the first one included. */
      readonly urls: readonly string[];
      readonly status: number;
    }
  | {
      readonly ok: false;
      /** True for failures that may pass (connection, time-out, 5xx, oversized body): a still-valid earlier answer is kept. */
      readonly temporary: boolean;
      /** Why, in words (no URL query or credentials). */
      readonly error: string;
      readonly urls: readonly string[];
      readonly status: number | undefined;
    };

const REDIRECTS: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * Fetch and validate the `.well-known/matrix/server` of `host`.
 * @param timeout Milliseconds for the whole exchange, redirects and body included.
 * @param now Current time in ms (for `Expires`).
 */
export async function fetchWellKnown(fetcher: WellKnownFetcher, host: string, timeout: number, now: number): Promise<WellKnownFetchResult> {
  const urls: string[] = [];
  const signal = AbortSignal.timeout(timeout);
  let url = `https://${host.includes(':') ? `[${host}]` : host}/.well-known/matrix/server`;
  let status: number | undefined;
  const failure = (temporary: boolean, error: string): WellKnownFetchResult => ({ ok: false, temporary, error, urls, status });
  try {
    for (;;) {
      urls.push(url);
      const response = await fetcher(url, { redirect: 'manual', signal, headers: { accept: 'application/json' } });
      status = response.status;
      if (REDIRECTS.has(status)) {
        await response.body?.cancel().catch(() => undefined);
        const location = response.headers.get('location');
        if (location === null) return failure(false, `redirect ${String(status)} without a Location header`);
        let next: URL;
        try {
          next = new URL(location, url);
        } catch {
          return failure(false, 'redirect to an invalid URL');
        }
        // A downgrade to http would let anyone on the path choose where this server's traffic goes.
        if (next.protocol !== 'https:') return failure(false, 'redirect to a URL that is not https');
        next.hash = '';
        if (urls.includes(next.href)) return failure(false, 'redirect loop');
        if (urls.length > WELL_KNOWN_MAX_REDIRECTS) return failure(false, `more than ${String(WELL_KNOWN_MAX_REDIRECTS)} redirects`);
        url = next.href;
        continue;
      }
      if (status !== 200) {
        await response.body?.cancel().catch(() => undefined);
        return failure(status >= 500, `status ${String(status)}`);
      }
      const body = await readLimited(response, WELL_KNOWN_MAX_BODY);
      if (body === undefined) return failure(true, `body larger than ${String(WELL_KNOWN_MAX_BODY)} bytes`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(body.toString('utf8'));
      } catch {
        return failure(false, 'body is not valid JSON');
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return failure(false, 'body is not a JSON object');
      const server: unknown = (parsed as Record<string, unknown>)['m.server'];
      if (typeof server !== 'string') return failure(false, 'no string "m.server" in the body');
      try {
        parseServerName(server, 'm.server');
      } catch (error) {
        return failure(false, (error as Error).message);
      }
      return { ok: true, server, maxAge: maxAgeFromHeaders(response.headers, now), urls, status };
    }
  } catch (error) {
    const cause = error instanceof Error ? error.cause : undefined;
    // The IP blocklist refusing the name will refuse it next time too.
    const blocked = (cause as { code?: unknown } | undefined)?.code === 'ERR_EGRESS_BLOCKED_DESTINATION';
    return failure(!blocked, describeFetchError(error, signal));
  }
}

/** Read at most `limit` bytes; `undefined` (and the rest discarded) when the body is larger. */
async function readLimited(response: Response, limit: number): Promise<Buffer | undefined> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (response.body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > limit) {
      // Leaving the loop early cancels the stream: the rest is never downloaded.
      return undefined;
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks, size);
}

/**
 * Seconds to cache for, from `Cache-Control` then `Expires` (RFC 9111 §5.2, §5.3): `no-store` is 0,
 * a bad `Expires` date is "already expired" (RFC 9111 §5.3), no header is `undefined`.
 */
export function maxAgeFromHeaders(headers: { get(name: string): string | null }, now: number): number | undefined {
  const directives = new Map<string, string | undefined>();
  for (const part of (headers.get('cache-control') ?? '').split(',')) {
    const [key = '', value] = part.split('=', 2).map((text) => text.trim());
    if (key !== '') directives.set(key.toLowerCase(), value?.replace(/^"(.*)"$/, '$1'));
  }
  if (directives.has('no-store')) return 0;
  const maxAge = directives.get('max-age');
  if (maxAge !== undefined && /^[0-9]+$/.test(maxAge)) return Number(maxAge);
  const expires = headers.get('expires');
  if (expires !== null) {
    const at = Date.parse(expires);
    return Number.isNaN(at) ? 0 : Math.max(0, (at - now) / 1000);
  }
  return undefined;
}

function describeFetchError(error: unknown, signal: AbortSignal): string {
  if (signal.aborted) return 'timed out';
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const code = (cause as { code?: unknown } | null)?.code;
  const message = cause instanceof Error ? cause.message : String(cause);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}
