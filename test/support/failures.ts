// Awaiting requests that must fail: undici's fetch wraps dispatcher errors in TypeError('fetch failed').
import assert from 'node:assert/strict';

/** What a failed request threw, and the error behind it (the `cause` of fetch's TypeError). */
export interface Failure {
  readonly thrown: unknown;
  readonly error: Error;
}

/** Await a request that must fail. */
export async function failureOf(promise: Promise<unknown>): Promise<Failure> {
  try {
    await promise;
  } catch (thrown) {
    const err = thrown instanceof Error ? thrown : new Error(String(thrown));
    return { thrown, error: err.cause instanceof Error ? err.cause : err };
  }
  assert.fail('expected the request to fail');
}

/** The error a failed fetch carries (see {@link failureOf}). */
export async function fetchError(promise: Promise<unknown>): Promise<Error> {
  return (await failureOf(promise)).error;
}
