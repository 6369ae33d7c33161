/**
 * Relaying an absolute-form `http://` request to its origin, as a forward proxy does: the target
 * path byte-exact, hop-by-hop fields and `Proxy-Authorization` removed, `Host` set from the target,
 * `Via` added; the call record gets the status and body byte counts.
 * @internal
 * @module
 */
import type { Buffer } from 'node:buffer';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';

import { endToEndHeaders } from '../headers.js';
import { errorCode, type Mutable, type ProxyCall } from './calls.js';
import type { AbsoluteTarget } from './targets.js';

/** The `Via` value the proxy adds to forwarded requests and responses (RFC 9110 §7.6.3). */
const VIA = '1.1 matrix-egress-recording-proxy';

/** What forwarding needs from the server it runs in. */
export interface ForwardContext {
  /** The agent for connections to origins (kept alive, destroyed on close). */
  readonly agent: http.Agent;
  /** Track a socket so the server's close() destroys it. */
  track(socket: Duplex): void;
  /** Answer the client with the proxy's own status (400, 502). */
  respond(res: http.ServerResponse, status: number): void;
}

/** Send `req` on to `target` and pipe the origin's answer back to `res`. */
export function forwardRequest(
  context: ForwardContext,
  call: Mutable<ProxyCall>,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: AbsoluteTarget,
): void {
  // RFC 9112 §3.2.2: a proxy replaces Host with the authority of the absolute-form target.
  // RFC 9110 §7.6.3: a proxy MUST add Via.
  const headers = ['Host', target.authority, ...endToEndHeaders(req.rawHeaders, ['host']), 'Via', VIA];
  let upstreamRequest: http.ClientRequest;
  try {
    upstreamRequest = http.request({
      host: target.host,
      port: target.port,
      method: call.method,
      path: target.path,
      headers,
      setHost: false,
      agent: context.agent,
    });
  } catch (error) {
    call.outcome = 'rejected';
    call.statusCode = 400;
    call.errorCode = errorCode(error);
    context.respond(res, 400);
    return;
  }
  upstreamRequest.on('socket', (upstreamSocket) => {
    context.track(upstreamSocket);
  });
  upstreamRequest.on('response', (upstreamResponse) => {
    const status = upstreamResponse.statusCode ?? 502;
    call.outcome = 'forwarded';
    call.statusCode = status;
    res.writeHead(status, upstreamResponse.statusMessage, [...endToEndHeaders(upstreamResponse.rawHeaders), 'Via', VIA]);
    upstreamResponse.on('data', (chunk: Buffer) => {
      call.bytesDown += chunk.length;
    });
    upstreamResponse.on('error', (error) => {
      call.outcome = 'failed';
      call.errorCode ??= errorCode(error);
      res.destroy();
    });
    upstreamResponse.pipe(res);
  });
  upstreamRequest.on('error', (error) => {
    call.errorCode ??= errorCode(error);
    call.outcome = 'failed';
    // The client may already be gone (its close destroys this request); never write to a dead response.
    if (res.headersSent || res.destroyed) {
      res.destroy();
    } else {
      call.statusCode = 502;
      context.respond(res, 502);
    }
  });
  res.once('close', () => {
    if (!res.writableFinished) {
      upstreamRequest.destroy();
    }
  });
  req.on('data', (chunk: Buffer) => {
    call.bytesUp += chunk.length;
  });
  req.pipe(upstreamRequest);
}
