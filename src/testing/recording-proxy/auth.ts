/**
 * Proxy authentication of the recording proxy: Basic credentials (RFC 7617) parsed from
 * `Proxy-Authorization`, checked against fixed credentials in constant time or by a custom check,
 * and the `Proxy-Authenticate` challenge of a 407. The checks take no HTTP objects beyond the
 * request handed to a custom authenticator, so a SOCKS5 proxy (RFC 1929) can reuse them.
 * @internal
 * @module
 */
import { Buffer } from 'node:buffer';
import { createHash, timingSafeEqual } from 'node:crypto';
import type * as http from 'node:http';

import { headerValues } from '../headers.js';

/** A user name and password, as carried by `Proxy-Authorization: Basic` (RFC 7617). */
export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

/**
 * A custom authentication check. Receives the decoded Basic credentials
 * (`undefined` when the header is missing, malformed, repeated or not Basic)
 * and the request head. A throw or rejection counts as "not authenticated".
 */
export type ProxyAuthenticator = (
  credentials: BasicCredentials | undefined,
  request: http.IncomingMessage,
) => boolean | Promise<boolean>;

/** The realm of the 407 challenge unless the `realm` option says otherwise. */
export const DEFAULT_REALM = 'matrix-egress-test';

/** Validate the `realm` option. */
export function checkRealm(realm: unknown): string | null {
  // The realm is a quoted-string (RFC 9110 §11.2); refuse what would need escaping or split the header.
  if (realm === null || (typeof realm === 'string' && /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/.test(realm))) {
    return realm;
  }
  throw new TypeError('Option `realm`: must be null or printable ASCII without `"` or `\\`');
}

/** Validate the `auth` option and return a copy (so later mutation of the caller's object changes nothing). */
export function checkAuth(auth: unknown): BasicCredentials | ProxyAuthenticator {
  if (typeof auth === 'function') {
    return auth as ProxyAuthenticator;
  }
  if (typeof auth === 'object' && auth !== null) {
    const { username, password } = auth as Record<string, unknown>;
    // RFC 7617 §2: the user-id cannot contain a colon.
    if (typeof username === 'string' && !username.includes(':') && typeof password === 'string') {
      return { username, password };
    }
  }
  throw new TypeError('Option `auth`: must be { username, password } strings (username without ":") or a function');
}

/** The `Proxy-Authenticate` value of a 407: `Basic realm="…"`, or a bare `Basic` for `realm: null`. */
export function basicChallenge(realm: string | null): string {
  return realm === null ? 'Basic' : `Basic realm="${realm}"`;
}

/** The decoded `Proxy-Authorization: Basic` credentials of a request head, if exactly one well-formed one was sent. */
export function proxyAuthorization(rawHeaders: readonly string[]): BasicCredentials | undefined {
  // Proxy-Authorization is a singleton field (RFC 9110 §5.3): a repeated one is ambiguous, so it counts as none.
  const values = headerValues(rawHeaders, 'proxy-authorization');
  return values.length === 1 && values[0] !== undefined ? parseBasic(values[0]) : undefined;
}

/**
 * Whether `credentials` pass `auth`: always when `auth` is undefined; by constant-time comparison
 * with fixed credentials; or when a custom check answers exactly `true` (a throw or rejection fails).
 */
export async function verifyCredentials<R>(
  auth: BasicCredentials | ((credentials: BasicCredentials | undefined, request: R) => unknown) | undefined,
  credentials: BasicCredentials | undefined,
  request: R,
): Promise<boolean> {
  if (auth === undefined) {
    return true;
  }
  if (typeof auth === 'function') {
    try {
      // A JS caller's authenticator may return a truthy non-boolean; only `true` admits.
      const verdict: unknown = await auth(credentials, request);
      return verdict === true;
    } catch {
      return false;
    }
  }
  if (credentials === undefined) {
    return false;
  }
  // Both comparisons always run (no short-circuit) so timing reveals nothing about which part was wrong.
  const userOk = sameSecret(credentials.username, auth.username);
  const passwordOk = sameSecret(credentials.password, auth.password);
  return userOk && passwordOk;
}

/** Decode `Basic <token68>` (RFC 7617); scheme names are case-insensitive (RFC 9110 §11.1). */
function parseBasic(value: string): BasicCredentials | undefined {
  const match = /^basic +([A-Za-z0-9+/]+={0,2}) *$/i.exec(value);
  const token = match?.[1];
  if (token === undefined) {
    return undefined;
  }
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) {
    return undefined;
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Compare digests so the time taken depends on neither the length nor the content of the secret. */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}
