/**
 * The proxy's own short answers (400, 403, 407, 502, injected statuses): on the raw socket of a
 * CONNECT, or on the `ServerResponse` of a forwarded request.
 * @internal
 * @module
 */
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import type { Duplex } from 'node:stream';

function statusBody(status: number): string {
  return `${String(status)} ${http.STATUS_CODES[status] ?? 'Unknown'}\n`;
}

/** Write a complete response on a raw socket (the CONNECT path) and close it. */
export function endWithRawResponse(socket: Duplex, status: number, extraHeaders: readonly string[] = []): void {
  const body = statusBody(status);
  let head = `HTTP/1.1 ${String(status)} ${http.STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (const line of extraHeaders) {
    head += `${line}\r\n`;
  }
  head += `Content-Type: text/plain\r\nContent-Length: ${String(Buffer.byteLength(body))}\r\nConnection: close\r\n\r\n`;
  socket.end(head + body);
}

/** Answer a forwarded request with `status`; a 407 carries the `Proxy-Authenticate` value `challenge`. */
export function respondStatus(res: http.ServerResponse, status: number, challenge: string): void {
  const body = statusBody(status);
  const headers: string[] = ['Content-Type', 'text/plain', 'Content-Length', String(Buffer.byteLength(body))];
  if (status === 407) {
    // RFC 9110 §15.5.8: a 407 MUST carry a Proxy-Authenticate challenge.
    headers.push('Proxy-Authenticate', challenge);
  }
  res.writeHead(status, headers);
  res.end(body);
}
