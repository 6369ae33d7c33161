import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LookupAddress, LookupOptions } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { assertHostAllowed, checkedConnectOptions, createCheckedLookup } from '../../../src/ssrf/connect.js';
import { IpFilter } from '../../../src/ssrf/ip-filter.js';
import { compileIpRanges } from '../../../src/ssrf/ip-set.js';
import { DEFAULT_IP_BLOCKLIST } from '../../../src/ssrf/default-blocklist.js';
import { BlockedDestinationError } from '../../../src/errors.js';

const filter = new IpFilter(compileIpRanges(DEFAULT_IP_BLOCKLIST, 'ipBlocklist'), compileIpRanges(['127.0.0.1'], 'ipAllowlist'));

/** A resolver answering from a table, recording what it was asked. */
function fakeResolver(table: Record<string, LookupAddress[]>, calls: { hostname: string; options: LookupOptions }[] = []): LookupFunction {
  return (hostname, options, callback) => {
    calls.push({ hostname, options });
    const answer = table[hostname];
    if (answer === undefined) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      return;
    }
    const family = options.family === 4 || options.family === 6 ? options.family : 0;
    const matching = family === 0 ? answer : answer.filter((a) => a.family === family);
    if (options.all === true) callback(null, matching);
    else callback(null, matching[0]?.address ?? '', matching[0]?.family);
  };
}

interface Outcome {
  error: NodeJS.ErrnoException | null;
  address: string | LookupAddress[];
  family: number | undefined;
}

function run(lookup: LookupFunction, hostname: string, options: LookupOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    lookup(hostname, options, (error, address, family) => {
      resolve({ error, address, family });
    });
  });
}

const TABLE: Record<string, LookupAddress[]> = {
  'public.test': [
    { address: '93.184.216.34', family: 4 },
    { address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 },
  ],
  'internal.test': [{ address: '10.0.0.7', family: 4 }],
  'mixed.test': [
    { address: '93.184.216.34', family: 4 },
    { address: '::1', family: 6 },
  ],
  'allowed.test': [{ address: '127.0.0.1', family: 4 }],
  'mapped.test': [{ address: '::ffff:169.254.169.254', family: 6 }],
  'compat.test': [{ address: '::127.0.0.2', family: 6 }],
  'empty.test': [],
  'junk.test': [{ address: 'not-an-address', family: 4 }],
};

describe('createCheckedLookup', () => {
  it('asks the resolver for every address, and answers all of them when asked for all', async () => {
    const calls: { hostname: string; options: LookupOptions }[] = [];
    const lookup = createCheckedLookup(filter, fakeResolver(TABLE, calls));
    const outcome = await run(lookup, 'public.test', { all: true, hints: 32 });
    assert.equal(outcome.error, null);
    assert.deepEqual(outcome.address, TABLE['public.test']);
    assert.deepEqual(calls, [{ hostname: 'public.test', options: { all: true, hints: 32 } }]);
  });

  it('answers the first checked address when net asks for one', async () => {
    const calls: { hostname: string; options: LookupOptions }[] = [];
    const outcome = await run(createCheckedLookup(filter, fakeResolver(TABLE, calls)), 'public.test', { family: 6 });
    assert.deepEqual(outcome, { error: null, address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 });
    assert.equal(calls[0]?.options.all, true);
    assert.equal(calls[0].options.family, 6);
  });

  const refused: [hostname: string, address: string][] = [
    ['internal.test', '10.0.0.7'],
    ['mixed.test', '::1'],
    ['mapped.test', '169.254.169.254'],
    ['compat.test', '::7f00:2'],
    ['junk.test', 'not-an-address'],
  ];
  for (const [hostname, address] of refused) {
    for (const all of [true, false]) {
      it(`name=${hostname} all=${String(all)}: refused with BlockedDestinationError naming ${address}`, async () => {
        const outcome = await run(createCheckedLookup(filter, fakeResolver(TABLE)), hostname, { all });
        assert.ok(outcome.error instanceof BlockedDestinationError, String(outcome.error));
        assert.equal(outcome.error.code, 'ERR_EGRESS_BLOCKED_DESTINATION');
        assert.equal(outcome.error.host, hostname);
        assert.equal(outcome.error.address, address);
      });
    }
  }

  it('any blocked answer refuses the name, whatever its position (Synapse does the same)', async () => {
    const reversed = { 'mixed.test': [...(TABLE['mixed.test'] ?? [])].reverse() };
    const outcome = await run(createCheckedLookup(filter, fakeResolver(reversed)), 'mixed.test', { all: false });
    assert.ok(outcome.error instanceof BlockedDestinationError);
  });

  it('checks only the family net asked for: a blocked answer of the other family is never connected to', async () => {
    const outcome = await run(createCheckedLookup(filter, fakeResolver(TABLE)), 'mixed.test', { family: 4, all: true });
    assert.equal(outcome.error, null);
    assert.deepEqual(outcome.address, [{ address: '93.184.216.34', family: 4 }]);
  });

  it('an allowlisted address inside a blocked range passes', async () => {
    const outcome = await run(createCheckedLookup(filter, fakeResolver(TABLE)), 'allowed.test', { all: true });
    assert.deepEqual(outcome.address, [{ address: '127.0.0.1', family: 4 }]);
  });

  it('passes resolver errors through, and treats an empty answer as ENOTFOUND', async () => {
    const missing = await run(createCheckedLookup(filter, fakeResolver(TABLE)), 'nowhere.test', { all: true });
    assert.equal(missing.error?.code, 'ENOTFOUND');
    const empty = await run(createCheckedLookup(filter, fakeResolver(TABLE)), 'empty.test', { all: false });
    assert.equal(empty.error?.code, 'ENOTFOUND');
  });

  it('accepts a resolver that ignores all:true and answers one address', async () => {
    const single: LookupFunction = (_hostname, _options, callback) => {
      callback(null, '10.1.1.1', 4);
    };
    const outcome = await run(createCheckedLookup(filter, single), 'single.test', { all: true });
    assert.ok(outcome.error instanceof BlockedDestinationError);
  });

  it('a resolver that throws fails the look-up instead of throwing into net', async () => {
    const throwing: LookupFunction = () => {
      throw new Error('resolver exploded');
    };
    const outcome = await run(createCheckedLookup(filter, throwing), 'x.test', { all: true });
    assert.equal(outcome.error?.message, 'resolver exploded');
  });

  it('answers after lookup() has returned, even when the resolver answers synchronously', () => {
    let answered = false;
    createCheckedLookup(filter, fakeResolver(TABLE))('public.test', { all: true }, () => {
      answered = true;
    });
    assert.equal(answered, false);
  });
});

describe('assertHostAllowed and checkedConnectOptions', () => {
  const rows: [host: string, blocked: boolean][] = [
    ['127.0.0.1', false],
    ['127.0.0.2', true],
    ['[::1]', true],
    ['::1', true],
    ['::ffff:127.0.0.2', true],
    ['::ffff:7f00:1', false],
    ['8.8.8.8', false],
    ['fe80::1%lo', true],
    // Names are left to the checked lookup.
    ['localhost', false],
    ['example.com', false],
  ];
  for (const [host, blocked] of rows) {
    it(`host=${JSON.stringify(host)} → ${blocked ? 'BlockedDestinationError' : 'passes'}`, () => {
      if (blocked) assert.throws(() => checkedConnectOptions(filter, host), BlockedDestinationError);
      else assert.equal(typeof checkedConnectOptions(filter, host).lookup, 'function');
      assert.equal(throwsBlocked(() => { assertHostAllowed(filter, host); }), blocked);
    });
  }
});

function throwsBlocked(fn: () => void): boolean {
  try {
    fn();
    return false;
  } catch (error) {
    if (error instanceof BlockedDestinationError) return true;
    throw error;
  }
}
