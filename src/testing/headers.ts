/**
 * Header utilities of the kit's servers: reading raw header lines, dropping hop-by-hop fields, and
 * the frozen header record stored in call records.
 * @internal
 * @module
 */
import type { IncomingHttpHeaders } from 'node:http';

// RFC 9110 §7.6.1 hop-by-hop fields, plus Proxy-Connection (a pre-standard
// alias still sent by some clients) and Proxy-Authenticate/Authorization,
// which belong to the client–proxy hop (RFC 9110 §11.7).
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Every value of the field `name` (lowercase) in flat `[name, value, …]` raw headers, in order. */
export function headerValues(rawHeaders: readonly string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) {
      values.push(rawHeaders[i + 1] ?? '');
    }
  }
  return values;
}

/**
 * Drop hop-by-hop fields: the fixed RFC 9110 §7.6.1 list and every field
 * named in Connection. Flat `[name, value, …]` in, the same shape out.
 */
export function endToEndHeaders(rawHeaders: readonly string[], alsoDrop: readonly string[] = []): string[] {
  const drop = new Set([...HOP_BY_HOP, ...alsoDrop]);
  for (const value of headerValues(rawHeaders, 'connection')) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') {
        drop.add(name);
      }
    }
  }
  const kept: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] ?? '';
    if (!drop.has(name.toLowerCase())) {
      kept.push(name, rawHeaders[i + 1] ?? '');
    }
  }
  return kept;
}

/** `IncomingHttpHeaders` without `undefined` values, frozen. */
export function plainHeaders(headers: IncomingHttpHeaders): Record<string, string | readonly string[]> {
  const result: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) {
      result[name] = value;
    }
  }
  return Object.freeze(result);
}
