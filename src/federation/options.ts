/**
 * The `federation` option: how server discovery resolves SRV records and how much it remembers.
 * @module
 */
import { promises as dns } from 'node:dns';
import { ProxyConfigError } from '../errors.js';
import type { ResolveSrv } from './srv.js';

/** Options of `egress.federation` (the `federation` key of `createEgress` options). */
export interface FederationOptions {
  /**
   * Resolves SRV records, with the shape of `dns.promises.resolveSrv`. SRV is always resolved
   * locally, even when federation traffic goes through a proxy (DNS cannot go through an HTTP
   * proxy). A rejection counts as "no record". Code only (not in a JSON config file).
   * **Default:** `dns.promises.resolveSrv` (the system's DNS servers).
   */
  readonly resolveSrv?: ResolveSrv | undefined;
  /** Most server names, and SRV names, whose answers are remembered. **Default:** `10000`. */
  readonly cacheSize?: number | undefined;
  /** Milliseconds for one `.well-known` exchange, redirects and body included. **Default:** `10000`. */
  readonly wellKnownTimeout?: number | undefined;
}

/** The compiled `federation` option. */
export interface FederationConfig {
  /** The `resolveSrv` option, when given. */
  readonly resolveSrv: ResolveSrv | undefined;
  readonly cacheSize: number;
  readonly wellKnownTimeout: number;
}

/** The default of `federation.cacheSize`. */
const DEFAULT_FEDERATION_CACHE_SIZE = 10_000;
/** The default of `federation.wellKnownTimeout`, in milliseconds. */
const DEFAULT_WELL_KNOWN_TIMEOUT = 10_000;

const KEYS: ReadonlySet<string> = new Set(['resolveSrv', 'cacheSize', 'wellKnownTimeout']);

/** The system resolver, as the default `resolveSrv`. */
export const systemResolveSrv: ResolveSrv = (hostname) => dns.resolveSrv(hostname);

/**
 * Validate and freeze the `federation` option.
 * @throws {@link ProxyConfigError} naming the option path.
 */
export function compileFederationOptions(options: FederationOptions | undefined): FederationConfig {
  const fail = (path: string, problem: string): never => {
    throw new ProxyConfigError(`option federation${path}`, problem);
  };
  if (options === undefined) {
    return Object.freeze({ resolveSrv: undefined, cacheSize: DEFAULT_FEDERATION_CACHE_SIZE, wellKnownTimeout: DEFAULT_WELL_KNOWN_TIMEOUT });
  }
  const value: unknown = options;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('', 'must be an object');
  for (const key of Object.keys(options)) {
    if (!KEYS.has(key)) fail(`.${key}`, 'unknown option');
  }
  const resolveSrv: unknown = options.resolveSrv;
  if (resolveSrv !== undefined && typeof resolveSrv !== 'function') fail('.resolveSrv', 'must be a function with the shape of dns.promises.resolveSrv (it can only be given in code)');
  for (const key of ['cacheSize', 'wellKnownTimeout'] as const) {
    const number: unknown = options[key];
    if (number !== undefined && (typeof number !== 'number' || !Number.isInteger(number) || number <= 0)) fail(`.${key}`, 'must be a positive whole number');
  }
  return Object.freeze({
    resolveSrv: options.resolveSrv,
    cacheSize: options.cacheSize ?? DEFAULT_FEDERATION_CACHE_SIZE,
    wellKnownTimeout: options.wellKnownTimeout ?? DEFAULT_WELL_KNOWN_TIMEOUT,
  });
}
