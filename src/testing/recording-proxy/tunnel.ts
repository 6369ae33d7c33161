/**
 * A byte tunnel from a client socket to a target (what CONNECT opens; a SOCKS5 CONNECT opens the
 * same). The protocol-specific answers (200 Connection Established, 502) are the caller's, through
 * {@link TunnelHooks}; the tunnel fills in the record's outcome, error code, byte counts and close time.
 * @internal
 * @module
 */
import type { Buffer } from 'node:buffer';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

import { errorCode, type ProxyCallOutcome } from './calls.js';
import type { HostPort } from './targets.js';

/** The fields of a call record a tunnel fills in. */
export interface TunnelRecord {
  outcome: ProxyCallOutcome;
  errorCode: string | undefined;
  bytesUp: number;
  bytesDown: number;
  closedAt: Date | undefined;
}

/** What the caller does at each stage of a tunnel. */
export interface TunnelHooks {
  /** Track a socket so the server's close() destroys it. */
  track(socket: Duplex): void;
  /** The target accepted the connection: answer the client (before any tunnelled byte is relayed). */
  established(): void;
  /** The target could not be reached: answer the client and close. */
  unreachable(): void;
  /** Both sides of an established tunnel have closed. */
  closed(): void;
}

/** Connect to `target` and, once connected, relay bytes both ways (`head` first, upstream). */
export function openTunnel(record: TunnelRecord, client: Duplex, head: Buffer, target: HostPort, hooks: TunnelHooks): void {
  const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
  hooks.track(upstream);
  let established = false;
  upstream.on('error', (error) => {
    record.errorCode ??= errorCode(error);
    if (!established) {
      record.outcome = 'failed';
      hooks.unreachable();
    } else {
      client.destroy();
    }
  });
  client.once('close', () => {
    upstream.destroy();
    if (!established) {
      record.outcome = 'failed';
    }
  });
  upstream.once('connect', () => {
    established = true;
    record.outcome = 'tunnelled';
    let open = 2;
    const closeOne = (): void => {
      open -= 1;
      if (open === 0) {
        record.bytesUp = upstream.bytesWritten;
        record.bytesDown = upstream.bytesRead;
        record.closedAt = new Date();
        hooks.closed();
      }
    };
    client.once('close', closeOne);
    upstream.once('close', closeOne);
    client.on('error', () => upstream.destroy());
    hooks.established();
    if (head.length > 0) {
      upstream.write(head);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
}
