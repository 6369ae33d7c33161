/**
 * Header handling for dispatched requests: flattening undici's header forms and refusing a
 * caller-supplied `Proxy-Authorization`.
 * @module
 */
import type { Dispatcher } from 'undici';
import { ForbiddenHeaderError } from '../errors.js';

/** A header list as flat `[name, value]` pairs. */
export type HeaderPairs = [string, string][];

/** Flatten every header form undici accepts (object, flat array, iterable of pairs) into pairs. */
export function headerPairs(headers: Dispatcher.DispatchOptions['headers']): HeaderPairs {
  const pairs: HeaderPairs = [];
  const add = (name: string, value: string | readonly string[] | number | undefined | null): void => {
    if (value === undefined || value === null) return;
    if (typeof value === 'string' || typeof value === 'number') {
      pairs.push([name, String(value)]);
    } else {
      for (const item of value) pairs.push([name, item]);
    }
  };
  if (headers === undefined || headers === null) return pairs;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) add(String(headers[i]), headers[i + 1]);
    return pairs;
  }
  if (Symbol.iterator in headers && typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const entry of headers as Iterable<[string, string | string[] | undefined]>) add(entry[0], entry[1]);
    return pairs;
  }
  for (const [name, value] of Object.entries(headers as Record<string, string | string[] | undefined>)) add(name, value);
  return pairs;
}

/** True when the header list names `name` (case-insensitive). */
export function hasHeader(pairs: HeaderPairs, name: string): boolean {
  const lower = name.toLowerCase();
  return pairs.some(([key]) => key.toLowerCase() === lower);
}

/**
 * Refuse a request-level `Proxy-Authorization`: credentials belong to the proxy configuration, and a
 * header set per request would reach the origin on a direct route (as undici's ProxyAgent also refuses).
 */
export function refuseProxyAuthorization(headers: Dispatcher.DispatchOptions['headers']): void {
  if (headers === undefined || headers === null) return;
  if (hasHeader(headerPairs(headers), 'proxy-authorization')) {
    throw new ForbiddenHeaderError('Proxy-Authorization', 'proxy credentials come from the proxy URL, never from a request');
  }
}

/** Flatten pairs back into undici's flat array form. */
export function flatHeaders(pairs: HeaderPairs): string[] {
  const flat: string[] = [];
  for (const [name, value] of pairs) flat.push(name, value);
  return flat;
}
