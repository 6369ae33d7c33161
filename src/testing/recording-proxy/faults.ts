/**
 * Failure injection of the recording proxy: the injection types and their validation, the state
 * that counts down `times` and sleeps `delayMs`, and acting a failure out on a client socket. Not
 * tied to HTTP except for the `{ status }` failure, whose answer the caller writes.
 * @internal
 * @module
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * How the proxy misbehaves on purpose.
 *
 * - `{ status, times? }`: answer CONNECTs and forwarded requests with `status`
 *   (300–599) instead of serving them, for the next `times` calls
 *   (**Default:** every call until changed). A 407 carries `Proxy-Authenticate`.
 * - `'refuse'`: the listening socket is closed, so new connections are refused
 *   (`ECONNREFUSED`); the port number is kept and listening resumes when the
 *   failure is cleared. Connections already open keep working.
 * - `'reset'`: every new TCP connection is reset (RST) as soon as it is
 *   accepted, before TLS or HTTP; a request arriving on an already-open
 *   keep-alive connection resets that connection (on a TLS proxy it is closed
 *   without RST, since Node can only reset raw TCP sockets).
 * - `'hang'`: read the request and never answer; the connection stays open
 *   until the client gives up or the proxy is closed.
 * - `'garbage'`: answer bytes that are not HTTP, then close.
 */
export type ConnectFailure =
  | { readonly status: number; readonly times?: number }
  | 'refuse'
  | 'reset'
  | 'hang'
  | 'garbage';

/** Failure injection, set at creation with `fail` or later with `setFailure()`. */
export interface FailureInjection {
  /** What to do with CONNECTs and forwarded requests; see {@link ConnectFailure}. */
  readonly connect?: ConnectFailure;
  /**
   * Wait this many milliseconds after a request head arrives before answering
   * it (normally or with the injected failure). **Default:** `0`.
   */
  readonly delayMs?: number;
}

/** A failure that acts on one call (`'refuse'` acts on the listener instead). */
export type ActiveFailure = Exclude<ConnectFailure, 'refuse'>;

const GARBAGE = Buffer.from('\u0000\u00ff\u00feNOT-HTTP garbage \u0001\u0002\r\n\r\n', 'latin1');

/** Validate a failure injection given as option `option`; returns it unchanged. */
export function checkFailure(option: string, fail: unknown): FailureInjection | undefined {
  if (fail === undefined) {
    return undefined;
  }
  if (typeof fail !== 'object' || fail === null) {
    throw new TypeError(`Option \`${option}\`: must be an object { connect?, delayMs? }`);
  }
  for (const key of Object.keys(fail)) {
    if (key !== 'connect' && key !== 'delayMs') {
      throw new TypeError(`Option \`${option}.${key}\`: unknown option`);
    }
  }
  const { connect, delayMs } = fail as Record<string, unknown>;
  if (delayMs !== undefined && (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0)) {
    throw new TypeError(`Option \`${option}.delayMs\`: must be a non-negative number of milliseconds`);
  }
  if (connect !== undefined && connect !== 'refuse' && connect !== 'reset' && connect !== 'hang' && connect !== 'garbage') {
    if (typeof connect !== 'object' || connect === null) {
      throw new TypeError(
        `Option \`${option}.connect\`: must be { status, times? }, 'refuse', 'reset', 'hang' or 'garbage'`,
      );
    }
    const { status, times, ...rest } = connect as Record<string, unknown>;
    const unknownKey = Object.keys(rest)[0];
    if (unknownKey !== undefined) {
      throw new TypeError(`Option \`${option}.connect.${unknownKey}\`: unknown option`);
    }
    if (typeof status !== 'number' || !Number.isInteger(status) || status < 300 || status > 599) {
      throw new TypeError(`Option \`${option}.connect.status\`: must be an integer from 300 to 599`);
    }
    if (times !== undefined && (typeof times !== 'number' || !Number.isInteger(times) || times < 1)) {
      throw new TypeError(`Option \`${option}.connect.times\`: must be a positive integer`);
    }
  }
  return fail;
}

/** The injection in force: a frozen copy of the spec, and how many `{ status }` answers remain. */
export class FaultInjector {
  #spec: FailureInjection | undefined;
  #connect: ConnectFailure | undefined;
  #remaining = Number.POSITIVE_INFINITY;
  #delayMs = 0;
  readonly #sleepers = new Set<() => void>();

  /** The injection in force (a frozen copy of what was set), if any. */
  get spec(): FailureInjection | undefined {
    return this.#spec;
  }

  /** Whether the listener should be closed (`'refuse'`). */
  get refusing(): boolean {
    return this.#connect === 'refuse';
  }

  /** Whether new connections are reset on accept (`'reset'`). */
  get resetting(): boolean {
    return this.#connect === 'reset';
  }

  /** The `delayMs` in force. */
  get delayMs(): number {
    return this.#delayMs;
  }

  /** Put a validated injection in force (`undefined` clears it). */
  set(given: FailureInjection | undefined): void {
    // A frozen copy, so that mutating the caller's object later changes nothing.
    const connect = typeof given?.connect === 'object' ? Object.freeze({ ...given.connect }) : given?.connect;
    this.#spec = given === undefined ? undefined : Object.freeze({ ...given, ...(connect === undefined ? {} : { connect }) });
    this.#connect = connect;
    this.#remaining = typeof connect === 'object' ? (connect.times ?? Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY;
    this.#delayMs = this.#spec?.delayMs ?? 0;
  }

  /** Take the injected failure for one call, counting down `times`. */
  take(): ActiveFailure | undefined {
    const connect = this.#connect;
    if (connect === undefined || connect === 'refuse') {
      return undefined;
    }
    if (typeof connect === 'object') {
      if (this.#remaining <= 0) {
        return undefined;
      }
      this.#remaining -= 1;
    }
    return connect;
  }

  /** Wait `ms` (the `delayMs` of a call); {@link FaultInjector.wakeAll} ends every wait early. */
  sleep(ms: number): Promise<void> {
    if (ms <= 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  /** End every pending sleep now (on close). */
  wakeAll(): void {
    for (const wake of [...this.#sleepers]) {
      wake();
    }
  }
}

/** Act out `'reset'`, `'garbage'` or `'hang'` on a client socket. */
export function actOutOnSocket(failure: 'reset' | 'garbage' | 'hang', socket: Duplex): void {
  if (failure === 'reset') {
    resetSocket(socket);
  } else if (failure === 'garbage') {
    socket.end(GARBAGE);
  } else {
    // Never answer, but let go when the client does: a socket detached from the HTTP server after
    // CONNECT is half-open by default and would sit in CLOSE_WAIT until close().
    socket.once('end', () => {
      socket.destroy();
    });
  }
}

/** Reset a TCP connection (RST); other sockets are just destroyed. */
export function resetSocket(socket: Duplex): void {
  if (!(socket instanceof net.Socket)) {
    socket.destroy();
    return;
  }
  // resetAndDestroy() works only on raw TCP handles (Node ≥ 16.17); a TLSSocket throws, so close it instead.
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}
