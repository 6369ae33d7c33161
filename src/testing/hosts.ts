/**
 * A host map for tests: real-looking names (`matrix.example.test`) that resolve to loopback
 * addresses, without touching /etc/hosts or a DNS server.
 * @module
 */
import type { LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { checkLoopbackHost } from './listen-options.js';

/** Host names mapped to loopback addresses, e.g. `{ 'matrix.example.test': '127.0.0.1' }`. */
export type HostMap = Readonly<Record<string, string>>;

/**
 * Validate a host map: every address must be loopback (tests never reach anything else).
 * @returns A lowercase copy without trailing dots.
 * @throws TypeError naming the offending entry.
 */
export function checkHostMap(option: string, hosts: HostMap): ReadonlyMap<string, string> {
  const map = new Map<string, string>();
  for (const [name, address] of Object.entries(hosts)) {
    map.set(name.toLowerCase().replace(/\.$/, ''), checkLoopbackHost(`${option}[${JSON.stringify(name)}]`, address));
  }
  return map;
}

/**
 * A resolver with the signature of `net.connect()`'s `lookup` option (the egress's `lookup` option)
 * that answers names from `hosts` and refuses every other name with `ENOTFOUND`. IP literals pass
 * through. Records every name asked for in `calls`.
 */
export function createHostsLookup(hosts: HostMap): { readonly lookup: LookupFunction; readonly calls: string[] } {
  const map = checkHostMap('hosts', hosts);
  const calls: string[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    calls.push(hostname);
    const name = hostname.toLowerCase().replace(/\.$/, '');
    const address = isIP(name) !== 0 ? name : map.get(name);
    setImmediate(() => {
      if (address === undefined) {
        callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname }), options.all === true ? [] : '');
        return;
      }
      const answer: LookupAddress = { address, family: isIP(address) };
      if (options.all === true) callback(null, [answer]);
      else callback(null, answer.address, answer.family);
    });
  };
  return { lookup, calls };
}
