/**
 * The recording side of the proxy: the call record type, and opening a record for a request head
 * in a `CallLog` (the numbering and history every kit server shares, in `../call-history.ts`).
 * @internal
 * @module
 */
import type * as http from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

import type { CallLog } from '../call-history.js';
import { plainHeaders } from '../headers.js';
import type { BasicCredentials } from './auth.js';

/**
 * Where a call ended up.
 *
 * - `'pending'`: the request head arrived and no answer has been decided yet.
 * - `'tunnelled'`: CONNECT answered 200 and the tunnel was opened.
 * - `'forwarded'`: an absolute-form request was relayed to the origin.
 * - `'rejected'`: the proxy refused it (400 bad target, 403 `allowTarget`, 407 auth).
 * - `'failed'`: the target could not be reached or broke off (502, or a cut
 *   stream), or the client left before it was answered.
 * - `'injected'`: failure injection answered it (status, hang, garbage, reset).
 */
export type ProxyCallOutcome = 'pending' | 'tunnelled' | 'forwarded' | 'rejected' | 'failed' | 'injected';

/** One request received by the recording proxy. Live: closing fields fill in later. */
export interface ProxyCall {
  /** 1-based sequence number within this proxy. */
  readonly id: number;
  /** Identifies the client connection the request came on; equal ids mean a reused connection. */
  readonly connectionId: number;
  /** `'CONNECT'` or the HTTP method of a forwarded request. */
  readonly method: string;
  /** The request target exactly as received, e.g. `'example.org:443'` or `'http://127.0.0.1:8080/a%2Fb'`. */
  readonly target: string;
  /** Target host, lowercase, IPv6 without brackets; `''` when the target could not be parsed. */
  readonly host: string;
  /** Target port (80 when an absolute-form URL has none); `0` when the target could not be parsed. */
  readonly port: number;
  /** For absolute-form requests: the origin-form target sent to the origin, byte-exact. */
  readonly path: string | undefined;
  /** HTTP version of the request line, e.g. `'1.1'`. */
  readonly httpVersion: string;
  /**
   * TLS server name (SNI) the client sent to a TLS proxy; `undefined` for a
   * plain proxy or when none was sent (RFC 6066 §3 forbids IP literals in SNI).
   */
  readonly servername: string | undefined;
  /** Received headers with lowercase names, as Node folds them (duplicates joined, some dropped). */
  readonly headers: Readonly<Record<string, string | readonly string[]>>;
  /** Received header lines, names in their original case: `[name, value, name, value, …]`. */
  readonly rawHeaders: readonly string[];
  /** Decoded `Proxy-Authorization: Basic` credentials, whether or not they were accepted. */
  readonly authorization: BasicCredentials | undefined;
  /** Whether the call passed authentication; always `true` when the proxy requires none. */
  readonly authenticated: boolean;
  /** Where the call ended up. */
  readonly outcome: ProxyCallOutcome;
  /** Status sent to the client (the origin's for forwarded requests); `undefined` if none was sent. */
  readonly statusCode: number | undefined;
  /** Error code (e.g. `'ECONNREFUSED'`) when the target could not be reached or broke off. */
  readonly errorCode: string | undefined;
  /**
   * Bytes sent towards the target: tunnel bytes (filled when the tunnel
   * closes) or the forwarded request body.
   */
  readonly bytesUp: number;
  /** Bytes received from the target: tunnel bytes or the forwarded response body. */
  readonly bytesDown: number;
  /** When the request head arrived. */
  readonly openedAt: Date;
  /** When the exchange (tunnel, response, or connection for hangs) ended. */
  readonly closedAt: Date | undefined;
}

/** The writable view of a record the proxy fills in while the call runs. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Record a new, pending call for a request head that arrived on `socket`. */
export function openProxyCall(log: CallLog<ProxyCall>, req: http.IncomingMessage, socket: Duplex): Mutable<ProxyCall> {
  const servername: unknown = (socket as Partial<TLSSocket>).servername;
  const call: Mutable<ProxyCall> = {
    id: log.nextCallId(),
    connectionId: log.connectionId(socket),
    method: req.method ?? '',
    target: req.url ?? '',
    host: '',
    port: 0,
    path: undefined,
    httpVersion: req.httpVersion,
    servername: typeof servername === 'string' ? servername : undefined,
    headers: plainHeaders(req.headers),
    rawHeaders: Object.freeze([...req.rawHeaders]),
    authorization: undefined,
    authenticated: false,
    outcome: 'pending',
    statusCode: undefined,
    errorCode: undefined,
    bytesUp: 0,
    bytesDown: 0,
    openedAt: new Date(),
    closedAt: undefined,
  };
  log.record(call);
  return call;
}

/** The `code` of an error (`'ECONNREFUSED'`), or `'ERR_UNKNOWN'`. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'ERR_UNKNOWN';
}
