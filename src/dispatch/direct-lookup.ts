/**
 * The resolver of direct connections: one rule for every client surface (dispatchers, `fetch` and
 * its redirects, the `http.Agent`s) and every connection type. Issue #17: the `lookup` option used to
 * reach only the types checked against the IP blocklist, so split-horizon names of an appservice or
 * identity server went to the system resolver. Whether a type is checked decides whether the answers
 * are checked, never which resolver answers. New direct paths (SOCKS5 with local resolution,
 * federation) call {@link directLookup} too.
 * @module
 */
import type { LookupFunction } from 'node:net';
import type { EgressConfig } from '../config/compile.js';
import { createCheckedLookup } from '../ssrf/connect.js';

/**
 * The `lookup` for a direct connection: the egress's `lookup` option (`undefined` means Node's
 * `dns.lookup`), wrapped so that every answer is checked against the IP blocklist when `checked`
 * (the type's `ipBlocklist`) is true and the blocklist is not empty.
 * @param config The compiled configuration (`lookup` and `ipFilter` are read).
 * @param checked Whether the connection type is checked against the IP blocklist.
 */
export function directLookup(config: Pick<EgressConfig, 'lookup' | 'ipFilter'>, checked: boolean): LookupFunction | undefined {
  const { ipFilter, lookup } = config;
  return checked && !ipFilter.isOff ? createCheckedLookup(ipFilter, lookup) : lookup;
}
