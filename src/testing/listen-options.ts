/**
 * Options every kit server shares (the recording proxy, the test origin): a loopback listen
 * address, a port, and TLS material, validated with the option named in the message.
 * @internal
 * @module
 */
import * as net from 'node:net';

import { createTestCertificateAuthority } from './certificates.js';

/** PEM material for a TLS listener. */
export interface TlsMaterial {
  /** Server certificate chain, PEM. */
  readonly cert: string;
  /** Private key for `cert`, PEM. */
  readonly key: string;
  /** The CA that clients should trust; exposed as `ca` on the server object. */
  readonly ca?: string;
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Validate a loopback listen address and return it without brackets. */
export function checkLoopbackHost(option: string, host: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = net.isIP(bare);
  if (family === 0 || !LOOPBACK.check(bare, family === 4 ? 'ipv4' : 'ipv6')) {
    throw new TypeError(`Option \`${option}\`: must be a loopback IP literal (127.0.0.0/8 or ::1), got ${JSON.stringify(host)}`);
  }
  return bare;
}

/** Validate a listen port (0 is an ephemeral port). */
export function checkPort(option: string, port: unknown): number {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new TypeError(`Option \`${option}\`: must be an integer from 0 to 65535`);
  }
  return port;
}

/** Validate `{ cert, key, ca? }` PEM strings and return a copy. */
export function checkTlsMaterial(option: string, tls: unknown): TlsMaterial {
  if (typeof tls !== 'object' || tls === null) {
    throw new TypeError(`Option \`${option}\`: must be \`true\` or { cert, key, ca? } PEM strings`);
  }
  const { cert, key, ca } = tls as Record<string, unknown>;
  if (typeof cert !== 'string' || typeof key !== 'string' || (ca !== undefined && typeof ca !== 'string')) {
    throw new TypeError(`Option \`${option}\`: cert and key must be PEM strings, and ca a PEM string when given`);
  }
  return ca === undefined ? { cert, key } : { cert, key, ca };
}

/** `http://127.0.0.1:1234` or `https://[::1]:1234`. */
export function formatOrigin(protocol: 'http:' | 'https:', host: string, port: number): string {
  return `${protocol}//${net.isIPv6(host) ? `[${host}]` : host}:${String(port)}`;
}

/** A throwaway CA and a leaf for `localhost`, `127.0.0.1` and `::1`, for `tls: true`. */
export function throwawayTlsMaterial(commonName: string, extraHosts: readonly string[] = []): Required<TlsMaterial> {
  const authority = createTestCertificateAuthority({ commonName });
  const leaf = authority.issue({ hosts: ['localhost', '127.0.0.1', '::1', ...extraHosts] });
  return { cert: leaf.cert, key: leaf.key, ca: authority.cert };
}
