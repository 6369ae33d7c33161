/**
 * SRV answers for tests of federation discovery: a `resolveSrv` function (the `federation.resolveSrv`
 * option) that answers from a table and records every name it was asked for, so a test can use
 * real-looking server names without a DNS server.
 * @module
 */
import type { ResolveSrv, SrvRecord } from '../federation/srv.js';

/** A DNS error code `dns.promises.resolveSrv` can reject with. */
export type SrvErrorCode = 'ENOTFOUND' | 'ENODATA' | 'ESERVFAIL' | 'ETIMEOUT' | 'ECONNREFUSED' | 'EREFUSED';

/** The answer for one name: records (`[{ name: '.', … }]` is "no service"), or an error. */
export type TestSrvAnswer = readonly SrvRecord[] | { readonly error: SrvErrorCode };

/** A table-driven SRV resolver. Names not in the table answer `ENOTFOUND` (NXDOMAIN). */
export interface TestSrvResolver {
  /** Pass this as `federation.resolveSrv`. */
  readonly resolveSrv: ResolveSrv;
  /** Every name asked for, in order (lowercase). */
  calls(): readonly string[];
  /** Set or replace the answer for `name` (e.g. `_matrix-fed._tcp.example.test`). */
  set(name: string, answer: TestSrvAnswer): void;
  /** Remove the answer for `name`: it answers `ENOTFOUND` again. */
  delete(name: string): void;
  /** Forget the recorded calls. */
  clear(): void;
}

/**
 * Make a table-driven `resolveSrv`.
 * @example
 * const srv = createSrvResolver({ '_matrix-fed._tcp.example.test': [{ name: 'matrix.example.test', port: 8448, priority: 0, weight: 5 }] });
 * const egress = createEgress({ federation: { resolveSrv: srv.resolveSrv } });
 */
export function createSrvResolver(answers: Readonly<Record<string, TestSrvAnswer>> = {}): TestSrvResolver {
  const table = new Map<string, TestSrvAnswer>();
  const asked: string[] = [];
  const key = (name: string): string => name.toLowerCase().replace(/\.$/, '');
  for (const [name, answer] of Object.entries(answers)) table.set(key(name), answer);
  return {
    resolveSrv: (hostname) => {
      const name = key(hostname);
      asked.push(name);
      const answer = table.get(name) ?? { error: 'ENOTFOUND' };
      if ('error' in answer) {
        const { error: code } = answer;
        return Promise.reject(Object.assign(new Error(`querySrv ${code} ${name}`), { code, syscall: 'querySrv', hostname: name }));
      }
      return Promise.resolve(answer.map((record) => ({ ...record })));
    },
    calls: () => [...asked],
    set: (name, answer) => {
      table.set(key(name), answer);
    },
    delete: (name) => {
      table.delete(key(name));
    },
    clear: () => {
      asked.length = 0;
    },
  };
}
