/**
 * A per-origin connection pool that opens no more connections than requests in flight.
 *
 * undici's Pool marks a client busy until the client's `drain` event, which fires a microtask after
 * the response completes; a caller that awaits the body and sends the next request at once finds no
 * free client and opens a second connection. Through a proxy each connection is a CONNECT tunnel and
 * a TLS handshake, so sequential traffic costs twice the tunnels. We track completion ourselves (at
 * the end of the response, before the caller sees it) and hand the request to that client; undici's
 * client queues it for the microtask until its socket is free.
 * @module
 */
import { Client, DecoratorHandler, type Dispatcher, type buildConnector } from 'undici';
import { PromiseDispatcher } from './base-dispatcher.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import { failDispatch } from './handler-errors.js';

interface CompletionHooks extends Dispatcher.DispatchHandler {
  onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void;
  onResponseError(controller: Dispatcher.DispatchController, error: Error): void;
  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void;
}
// undici's DecoratorHandler adapts both handler generations; its type declaration lists no methods.
const Decorator = DecoratorHandler as unknown as new (handler: Dispatcher.DispatchHandler) => CompletionHooks;

/** Calls `done` exactly once, when the response has ended, failed or been upgraded. */
class CompletionTracker extends Decorator {
  #done: (() => void) | undefined;
  constructor(handler: Dispatcher.DispatchHandler, done: () => void) {
    super(handler);
    this.#done = done;
  }
  #finish(): void {
    const done = this.#done;
    this.#done = undefined;
    done?.();
  }
  override onResponseEnd(controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#finish();
    super.onResponseEnd(controller, trailers);
  }
  override onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.#finish();
    super.onResponseError(controller, error);
  }
  override onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders, socket: Duplex): void {
    this.#finish();
    super.onRequestUpgrade(controller, statusCode, headers, socket);
  }
}

interface PooledClient {
  readonly client: Client;
  inFlight: number;
}

/** Options shared by every connection of a {@link LeanAgent}. */
export interface LeanAgentOptions {
  /** undici connector (function) or connect options (object). */
  readonly connect: buildConnector.connector | buildConnector.BuildOptions;
  /** Milliseconds to wait for response headers. */
  readonly headersTimeout: number;
}

/** Connections to one origin, one request at a time each (no pipelining). */
class LeanPool {
  readonly #origin: string;
  readonly #options: LeanAgentOptions;
  readonly #clients: PooledClient[] = [];
  readonly #onEmpty: () => void;

  constructor(origin: string, options: LeanAgentOptions, onEmpty: () => void) {
    this.#origin = origin;
    this.#options = options;
    this.#onEmpty = onEmpty;
  }

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    let entry = this.#clients.find((candidate) => candidate.inFlight === 0 && !candidate.client.closed && !candidate.client.destroyed);
    if (entry === undefined) entry = this.#add();
    const pooled = entry;
    pooled.inFlight++;
    pooled.client.dispatch(
      options,
      new CompletionTracker(handler, () => {
        pooled.inFlight--;
      }),
    );
    return true;
  }

  #add(): PooledClient {
    const client = new Client(this.#origin, { connect: this.#options.connect, headersTimeout: this.#options.headersTimeout });
    const entry: PooledClient = { client, inFlight: 0 };
    // An idle client whose connection has gone holds nothing worth keeping: drop it, and the
    // whole pool when it was the last, so thousands of federation origins do not accumulate.
    const release = (): void => {
      if (entry.inFlight > 0) return;
      const index = this.#clients.indexOf(entry);
      if (index === -1) return;
      this.#clients.splice(index, 1);
      void client.close().catch(() => undefined);
      if (this.#clients.length === 0) this.#onEmpty();
    };
    client.on('disconnect', release);
    client.on('connectionError', release);
    this.#clients.push(entry);
    return entry;
  }

  get size(): number {
    return this.#clients.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map(({ client }) => client.close()));
  }

  async destroy(error: Error | null): Promise<void> {
    await Promise.all(this.#clients.map(({ client }) => client.destroy(error)));
  }
}

/** An Agent of {@link LeanPool}s, one per origin. */
export class LeanAgent extends PromiseDispatcher {
  readonly #options: LeanAgentOptions;
  readonly #pools = new Map<string, LeanPool>();
  #closing = false;

  constructor(options: LeanAgentOptions) {
    super();
    this.#options = options;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    try {
      if (this.#closing) throw new Error('The connection pool is closed');
      const origin = new URL(String(options.origin)).origin;
      let pool = this.#pools.get(origin);
      if (pool === undefined) {
        const created: LeanPool = new LeanPool(origin, this.#options, () => {
          if (this.#pools.get(origin) === created) this.#pools.delete(origin);
        });
        pool = created;
        this.#pools.set(origin, pool);
      }
      return pool.dispatch(options, handler);
    } catch (error) {
      return failDispatch(handler, error);
    }
  }

  /** Connections (open or reconnectable) across all origins. */
  get connections(): number {
    let total = 0;
    for (const pool of this.#pools.values()) total += pool.size;
    return total;
  }

  protected override async closeNow(): Promise<void> {
    this.#closing = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.close()));
  }

  protected override async destroyNow(error: Error | null): Promise<void> {
    this.#closing = true;
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.destroy(error)));
  }
}
