/**
 * A read-only history of recorded calls, shaped like undici's `MockCallHistory`
 * (`calls()`, `firstCall()`, `lastCall()`, `nthCall()`, `filterCalls()`,
 * `clear()`, iteration) so that tests read the same whether they run against
 * undici's mocks or against the real recording proxy and test origin.
 *
 * @module
 */

/**
 * What one field of a call may be compared with in {@link CallCriteria}:
 * strings match exactly or by `RegExp`; numbers and booleans match exactly.
 * Object-valued fields (headers, credentials) cannot be used as criteria; use
 * a predicate for those.
 */
export type CallFieldCriterion<V> = V extends string
  ? string | RegExp
  : V extends number
    ? number
    : V extends boolean
      ? boolean
      : never;

/**
 * A partial object of call fields, e.g. `{ host: '127.0.0.1', method: 'CONNECT' }`
 * or `{ target: /%2F/ }`. A field whose recorded value is `undefined` never
 * matches.
 */
export type CallCriteria<T> = {
  readonly [K in keyof T]?: CallFieldCriterion<NonNullable<T[K]>>;
};

/** A predicate over calls, as accepted by `Array.prototype.filter`. */
export type CallPredicate<T> = (call: T, index: number) => boolean;

/** Options for {@link CallHistory.filterCalls}. */
export interface FilterCallsOptions {
  /**
   * How the fields of an object criterion combine.
   *
   * **Default:** `'AND'`. This differs from undici's `MockCallHistory`, whose
   * default is `'OR'`: `{ host, method: 'CONNECT' }` reads as "CONNECTs to
   * host", and OR would silently widen such an assertion.
   */
  readonly operator?: 'AND' | 'OR';
}

/**
 * The calls recorded by a test server, oldest first.
 *
 * Records are live objects: a call still in progress (an open tunnel, a
 * streaming response) gains its closing fields when it ends.
 *
 * @typeParam T - The record type, e.g. `ProxyCall` or `OriginRequest`.
 */
export interface CallHistory<T> extends Iterable<T> {
  /** Number of calls recorded since creation or the last {@link CallHistory.clear}. */
  readonly size: number;
  /** A snapshot array of every recorded call, oldest first. */
  calls(): readonly T[];
  /** The oldest recorded call, or `undefined` when there is none. */
  firstCall(): T | undefined;
  /** The newest recorded call, or `undefined` when there is none. */
  lastCall(): T | undefined;
  /**
   * The `n`-th recorded call, counting from 1 as undici does.
   *
   * @throws RangeError when `n` is not a positive integer.
   */
  nthCall(n: number): T | undefined;
  /**
   * The calls matching a criteria object or a predicate, oldest first.
   *
   * @throws TypeError when the criteria are neither an object nor a function,
   * or a field's criterion is not a string, `RegExp`, number or boolean.
   */
  filterCalls(criteria: CallCriteria<T> | CallPredicate<T>, options?: FilterCallsOptions): readonly T[];
  /** Forget every recorded call. Calls still in progress are no longer tracked here. */
  clear(): void;
}

/**
 * A {@link CallHistory} together with the function that appends to it. The
 * servers keep `record` to themselves and hand out only `history`.
 *
 * @internal
 */
export interface CallRecorder<T> {
  readonly history: CallHistory<T>;
  readonly record: (call: T) => void;
}

function matchesField(actual: unknown, expected: unknown, field: string): boolean {
  if (expected instanceof RegExp) {
    // A /g or /y RegExp keeps state in lastIndex between test() calls.
    expected.lastIndex = 0;
    return typeof actual === 'string' && expected.test(actual);
  }
  if (typeof expected === 'string' || typeof expected === 'number' || typeof expected === 'boolean') {
    return actual === expected;
  }
  throw new TypeError(
    `filterCalls: criterion \`${field}\` must be a string, RegExp, number or boolean, got ${typeof expected}`,
  );
}

function buildMatcher<T>(
  criteria: CallCriteria<T>,
  operator: 'AND' | 'OR',
): ((call: T) => boolean) | undefined {
  const entries = Object.entries(criteria).filter(([, value]) => value !== undefined);
  if (entries.length === 0) {
    return undefined;
  }
  // Validate every criterion once, up front, so a bad one throws even on an empty history.
  for (const [field, expected] of entries) {
    matchesField(undefined, expected, field);
  }
  return (call: T): boolean => {
    const record = call as Record<string, unknown>;
    const test = ([field, expected]: [string, unknown]): boolean =>
      matchesField(record[field], expected, field);
    return operator === 'AND' ? entries.every(test) : entries.some(test);
  };
}

/**
 * Create an empty history and its private `record` function.
 *
 * @internal Used by the recording proxy and the test origin; not part of the
 * `matrix-egress/testing` surface.
 */
export function createCallRecorder<T extends object>(): CallRecorder<T> {
  let calls: T[] = [];

  const history: CallHistory<T> = {
    get size(): number {
      return calls.length;
    },
    calls: () => [...calls],
    firstCall: () => calls[0],
    lastCall: () => calls.at(-1),
    nthCall(n: number): T | undefined {
      if (!Number.isInteger(n) || n < 1) {
        throw new RangeError(`nthCall: n must be a positive integer (1 is the first call), got ${String(n)}`);
      }
      return calls[n - 1];
    },
    filterCalls(criteria, options = {}): readonly T[] {
      // Checked at run time too: JavaScript callers get no compile-time check.
      const operator: unknown = options.operator ?? 'AND';
      if (operator !== 'AND' && operator !== 'OR') {
        throw new TypeError(`filterCalls: options.operator must be 'AND' or 'OR', got ${String(operator)}`);
      }
      if (typeof criteria === 'function') {
        return calls.filter((call, index) => criteria(call, index));
      }
      const value: unknown = criteria;
      if (typeof value !== 'object' || value === null) {
        throw new TypeError('filterCalls: criteria must be an object of fields or a predicate function');
      }
      const matcher = buildMatcher(criteria, operator);
      return matcher === undefined ? [...calls] : calls.filter(matcher);
    },
    clear(): void {
      calls = [];
    },
    [Symbol.iterator](): Iterator<T> {
      return [...calls][Symbol.iterator]();
    },
  };

  return {
    history,
    record(call: T): void {
      calls.push(call);
    },
  };
}

/**
 * Numbers calls (from 1) and client connections, and keeps every call in {@link CallLog.history}:
 * what every kit server (recording proxy, test origin, SOCKS5 proxy) records its calls with.
 *
 * @internal Not part of the `matrix-egress/testing` surface.
 */
export class CallLog<T extends object> {
  /** The calls, in undici `MockCallHistory` shape. */
  readonly history: CallHistory<T>;
  readonly #record: (call: T) => void;
  readonly #connectionIds = new WeakMap<object, number>();
  #nextCallId = 1;
  #nextConnectionId = 1;

  constructor() {
    const recorder = createCallRecorder<T>();
    this.history = recorder.history;
    this.#record = recorder.record;
  }

  /** The next call id. */
  nextCallId(): number {
    return this.#nextCallId++;
  }

  /** The id of a client connection: the same socket always gets the same id. */
  connectionId(socket: object): number {
    let id = this.#connectionIds.get(socket);
    if (id === undefined) {
      id = this.#nextConnectionId++;
      this.#connectionIds.set(socket, id);
    }
    return id;
  }

  /** Add a call to the history. */
  record(call: T): void {
    this.#record(call);
  }
}
