/**
 * Direct connections that cannot reach a blocked address (SPEC §8).
 *
 * The check runs inside the connection attempt, on the addresses the socket is then given: a
 * checking `lookup` resolves the name once, refuses when any answer is blocked, and hands net the
 * same answers to connect to. Nothing resolves the name a second time, so a DNS rebinding answer
 * between check and connect cannot happen. IP-literal hosts never reach `lookup` (net connects to
 * them as they are), so they are checked before the socket is made.
 * @module
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { buildConnector } from 'undici';
import { BlockedDestinationError } from '../errors.js';
import type { IpFilter } from './ip-filter.js';

export type { LookupFunction } from 'node:net';

/** The system resolver, as net calls it. */
const systemLookup = dnsLookup as unknown as LookupFunction;

/**
 * Throw {@link BlockedDestinationError} when `host` is an IP literal (brackets allowed) that the
 * filter refuses. Host names pass: their addresses are checked by {@link createCheckedLookup}.
 */
export function assertHostAllowed(filter: IpFilter, host: string): void {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  // net.isIP decides which hosts net connects to without a look-up; exactly those are checked here.
  if (isIP(bare) === 0) return;
  const blocked = filter.check(bare);
  if (blocked !== undefined) throw new BlockedDestinationError(bare, blocked.address, blocked.range?.entry ?? null);
}

function notFound(hostname: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname });
}

/**
 * A `lookup` for `net.connect()` and `tls.connect()` that resolves every address of the name (of
 * the family asked for), refuses the whole name with {@link BlockedDestinationError} when any of
 * them is blocked (as Synapse's `_IPBlockingResolver` does: a name that also points inside is not
 * trusted for its other answers), and otherwise answers exactly the addresses it checked.
 * @param resolve The resolver, with net's `lookup` signature. **Default:** `dns.lookup`.
 */
export function createCheckedLookup(filter: IpFilter, resolve: LookupFunction = systemLookup): LookupFunction {
  return (hostname, options, callback) => {
    let synchronous = true;
    const answer = (error: NodeJS.ErrnoException | null, answered: string | LookupAddress[], family?: number): void => {
      let addresses: LookupAddress[] = [];
      if (error === null) {
        const list = typeof answered === 'string' ? [{ address: answered, family: family ?? isIP(answered) }] : answered;
        addresses = list.map(({ address }) => ({ address, family: isIP(address) }));
      }
      const finish = (): void => {
        if (error !== null) {
          callback(error, options.all === true ? [] : '');
          return;
        }
        const first = addresses[0];
        if (first === undefined) {
          callback(notFound(hostname), options.all === true ? [] : '');
          return;
        }
        for (const { address } of addresses) {
          const blocked = filter.check(address);
          if (blocked !== undefined) {
            callback(new BlockedDestinationError(hostname, blocked.address, blocked.range?.entry ?? null), options.all === true ? [] : '');
            return;
          }
        }
        if (options.all === true) callback(null, addresses);
        else callback(null, first.address, first.family);
      };
      // net expects its callback after lookup() has returned, as dns.lookup does; a custom resolver may answer at once.
      if (synchronous) process.nextTick(finish);
      else finish();
    };
    try {
      resolve(hostname, { ...options, all: true }, answer);
    } catch (error) {
      answer(error instanceof Error ? error : new Error(String(error)), '');
    }
    synchronous = false;
  };
}

/**
 * Options to spread into `net.connect()` / `tls.connect()` for a direct connection to `host` of a
 * checked connection type. Throws {@link BlockedDestinationError} at once when `host` is a blocked
 * IP literal; for a name, the returned `lookup` fails the connection (socket `'error'`) with
 * {@link BlockedDestinationError} before any byte is sent when an address it resolves to is blocked.
 * @param resolve The resolver (the egress's `lookup` option). **Default:** `dns.lookup`.
 */
export function checkedConnectOptions(filter: IpFilter, host: string, resolve?: LookupFunction): { readonly lookup: LookupFunction } {
  assertHostAllowed(filter, host);
  return { lookup: createCheckedLookup(filter, resolve) };
}

/**
 * An undici connector (the `connect` option of a Client, Pool or Agent) whose connections are
 * checked: IP-literal origins before the socket is made, names through {@link createCheckedLookup}.
 * TLS (SNI, certificate validation) is undici's own `buildConnector` with `options`.
 */
export function createCheckedConnector(
  filter: IpFilter,
  options: buildConnector.BuildOptions,
  resolve?: LookupFunction,
): buildConnector.connector {
  const connect = buildConnector({ ...options, lookup: createCheckedLookup(filter, resolve) });
  return (target, callback) => {
    try {
      assertHostAllowed(filter, target.hostname);
    } catch (error) {
      callback(error as Error, null);
      return;
    }
    connect(target, callback);
  };
}
