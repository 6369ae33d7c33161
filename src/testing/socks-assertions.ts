/**
 * One-line assertions over a {@link RecordingSocksProxy}: "the proxy was asked for this name"
 * (socks5h, Tor), "the proxy was asked for this address" (socks5, resolved locally), "the client
 * authenticated", "the proxy saw nothing for this host".
 *
 * Like the HTTP assertions they depend on no test runner (a failed expectation throws
 * `node:assert`'s `AssertionError`, misuse a `TypeError`), and their messages list what the proxy
 * saw through {@link describeSocksCall}: never a password, never a user name.
 *
 * @module
 */
import { isIP } from 'node:net';

import { canonicalHost, fail } from './assertions.js';
import type { RecordingSocksProxy, SocksCall, SocksCallOutcome } from './socks-proxy.js';
import { socksReplyName } from './socks-wire.js';

/** Narrows {@link expectSocksName} and {@link expectSocksAddress}. Fields combine with AND. */
export interface SocksCallMatch {
  /** Destination port. **Default:** any port. */
  readonly port?: number | undefined;
  /** Where the session ended up, e.g. `'connected'`. **Default:** any outcome. */
  readonly outcome?: SocksCallOutcome | undefined;
}

/** What {@link expectSocksAuth} requires. */
export interface SocksAuthMatch {
  /** The user name the client must have sent. **Default:** any user name. */
  readonly username?: string | undefined;
  /** Whether the proxy must have accepted the credentials. **Default:** `true`. */
  readonly accepted?: boolean | undefined;
}

/** Most calls listed in one message; the rest are counted. */
const MAX_LISTED_CALLS = 20;
/** Longest name quoted in a message, in characters. */
const MAX_NAME_CHARS = 200;

const COMMANDS: Readonly<Record<number, string>> = { 1: 'CONNECT', 2: 'BIND', 3: 'UDP-ASSOCIATE' };

function quoteName(name: string): string {
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  const text = name.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return text.length > MAX_NAME_CHARS ? `${text.slice(0, MAX_NAME_CHARS)}…` : text;
}

function describeAuth(call: SocksCall): string {
  if (call.authUsed) {
    const verdict = call.outcome === 'pending' ? '' : call.authenticated ? ' (accepted)' : ' (rejected)';
    return `username/password${verdict}`;
  }
  if (call.method === 0xff) return `no acceptable method (offered ${call.methodsOffered.join(',') || 'none'})`;
  if (call.method === 0x00) return call.authOffered ? 'none (username/password offered)' : 'none';
  return 'not negotiated';
}

/**
 * One line describing a recorded SOCKS session, safe to print: the command, whether a name or an
 * address was requested and which, the outcome and reply code, and how authentication went —
 * never the password or the user name.
 *
 * @param call - A {@link SocksCall} from a recording SOCKS proxy.
 * @returns e.g. `#1 CONNECT name matrixabc.onion:8448 → connected 0 (succeeded), auth: username/password (accepted)`.
 *
 * @example
 * ```ts
 * for (const call of socks.calls()) console.log(describeSocksCall(call));
 * ```
 */
export function describeSocksCall(call: SocksCall): string {
  const request =
    call.addressType === undefined
      ? '(no request)'
      : `${COMMANDS[call.command ?? 0] ?? `command ${String(call.command)}`} ${call.addressType === 'domain' ? 'name' : 'address'} ${quoteName(call.target)}`;
  const reply = call.reply === undefined ? '' : ` ${String(call.reply)} (${socksReplyName(call.reply)})`;
  const error = call.errorCode === undefined ? '' : ` [${call.errorCode}]`;
  return `#${String(call.id)} ${request} → ${call.outcome}${reply}${error}, auth: ${describeAuth(call)}`;
}

function checkProxy(name: string, proxy: unknown): asserts proxy is RecordingSocksProxy {
  const candidate = proxy as Partial<RecordingSocksProxy> | null;
  if (typeof candidate !== 'object' || candidate === null || typeof candidate.calls !== 'function' || typeof candidate.socks5hUrl !== 'string') {
    throw new TypeError(`${name}: the first argument must be a recording SOCKS proxy (from createRecordingSocksProxy)`);
  }
}

function checkMatch(name: string, match: unknown): asserts match is SocksCallMatch {
  if (typeof match !== 'object' || match === null) throw new TypeError(`${name}: the match must be { port?, outcome? }`);
  const { port } = match as Record<string, unknown>;
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new TypeError(`${name}: \`port\` must be an integer from 1 to 65535`);
  }
}

function listCalls(calls: readonly SocksCall[]): string {
  if (calls.length === 0) return 'The SOCKS proxy saw no sessions.';
  const shown = calls.slice(-MAX_LISTED_CALLS);
  const omitted = calls.length - shown.length;
  const head = `The SOCKS proxy saw ${String(calls.length)} session${calls.length === 1 ? '' : 's'}${omitted > 0 ? ` (the last ${String(shown.length)} shown)` : ''}:`;
  return [head, ...shown.map((call) => `  ${describeSocksCall(call)}`)].join('\n');
}

function narrows(match: SocksCallMatch): (call: SocksCall) => boolean {
  return (call) => (match.port === undefined || call.port === match.port) && (match.outcome === undefined || call.outcome === match.outcome);
}

function describeNarrowing(match: SocksCallMatch): string {
  const parts = [
    match.port === undefined ? undefined : `port ${String(match.port)}`,
    match.outcome === undefined ? undefined : `outcome ${match.outcome}`,
  ].filter((part): part is string => part !== undefined);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}

function sameName(a: string, b: string): boolean {
  const strip = (name: string): string => name.toLowerCase().replace(/\.$/, '');
  return strip(a) === strip(b);
}

/**
 * Assert that a client asked the proxy for a destination by name (ATYP 3, as `socks5h://` clients
 * and Tor expect): the proxy resolved it, the client did not.
 *
 * @param proxy - The recording SOCKS proxy the client was configured with.
 * @param name - The host name, compared case-insensitively (one trailing dot ignored).
 * @param match - Optionally the port and outcome.
 * @returns The newest matching session.
 * @throws AssertionError when no session asked for that name; the message lists every session and
 * says so when the destination was asked for by address instead (the client resolved it locally).
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('federation', `https://matrixabc.onion:${origin.port}/_matrix/federation/v1/version`);
 * const call = expectSocksName(socks, 'matrixabc.onion', { port: origin.port, outcome: 'connected' });
 * ```
 */
export function expectSocksName(proxy: RecordingSocksProxy, name: string, match: SocksCallMatch = {}): SocksCall {
  checkProxy('expectSocksName', proxy);
  if (typeof name !== 'string' || name === '') throw new TypeError('expectSocksName: the name must be a non-empty string');
  checkMatch('expectSocksName', match);
  const calls = proxy.calls();
  const newest = calls.filter((call) => call.addressType === 'domain' && call.name !== undefined && sameName(call.name, name) && narrows(match)(call)).at(-1);
  if (newest === undefined) {
    const byAddress = calls.some((call) => call.addressType === 'ipv4' || call.addressType === 'ipv6');
    const hint = byAddress
      ? '\nNote: some sessions asked for an address, not a name: the client resolved names itself (socks5:// rather than socks5h://?).'
      : '';
    fail(
      `expectSocksName: expected ${proxy.socks5hUrl} to be asked for the name ${quoteName(name)}${describeNarrowing(match)}, but no session matched.\n${listCalls(calls)}${hint}`,
      expectSocksName,
    );
  }
  return newest;
}

/**
 * Assert that a client asked the proxy for a destination by address (ATYP 1 or 4, as `socks5://`
 * clients do after resolving the name themselves).
 *
 * @param proxy - The recording SOCKS proxy the client was configured with.
 * @param address - An IPv4 or IPv6 literal, any spelling (`::1`, `[::1]`, `0:0:0:0:0:0:0:1`).
 * @param match - Optionally the port and outcome.
 * @returns The newest matching session.
 * @throws AssertionError when no session asked for that address; the message lists every session.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('push', `https://localhost:${origin.port}/_matrix/push/v1/notify`, { method: 'POST', body: '{}' });
 * expectSocksAddress(socks, '127.0.0.1', { port: origin.port });
 * ```
 */
export function expectSocksAddress(proxy: RecordingSocksProxy, address: string, match: SocksCallMatch = {}): SocksCall {
  checkProxy('expectSocksAddress', proxy);
  const wanted = typeof address === 'string' ? canonicalHost(address) : '';
  if (isIP(wanted) === 0) throw new TypeError('expectSocksAddress: the address must be an IPv4 or IPv6 literal');
  checkMatch('expectSocksAddress', match);
  const calls = proxy.calls();
  const newest = calls
    .filter((call) => call.address !== undefined && canonicalHost(call.address) === wanted && narrows(match)(call))
    .at(-1);
  if (newest === undefined) {
    const byName = calls.some((call) => call.addressType === 'domain');
    const hint = byName ? '\nNote: some sessions asked for a name: the client let the proxy resolve it (socks5h://).' : '';
    fail(
      `expectSocksAddress: expected ${proxy.socks5Url} to be asked for the address ${wanted}${describeNarrowing(match)}, but no session matched.\n${listCalls(calls)}${hint}`,
      expectSocksAddress,
    );
  }
  return newest;
}

/**
 * Assert that at least one session authenticated with RFC 1929 username/password (with the given
 * user name, when one is given), and that the proxy accepted the credentials (or refused them,
 * with `accepted: false`).
 *
 * The user name is compared but never printed.
 *
 * @param proxy - The recording SOCKS proxy the client was configured with.
 * @param match - Optionally the user name and the verdict. **Default:** any user, accepted.
 * @returns Every matching session, oldest first (never empty).
 * @throws AssertionError when none matched; the message lists every session without credentials.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * expectSocksAuth(socks, { username: 'synapse' });
 * ```
 */
export function expectSocksAuth(proxy: RecordingSocksProxy, match: SocksAuthMatch = {}): readonly SocksCall[] {
  checkProxy('expectSocksAuth', proxy);
  if (typeof match !== 'object' || (match as unknown) === null) {
    throw new TypeError('expectSocksAuth: the match must be { username?, accepted? }');
  }
  const { username, accepted = true } = match;
  if (username !== undefined && typeof username !== 'string') throw new TypeError('expectSocksAuth: `username` must be a string');
  if (typeof accepted !== 'boolean') throw new TypeError('expectSocksAuth: `accepted` must be a boolean');
  const calls = proxy.calls();
  const matching = calls.filter(
    (call) => call.authUsed && call.authenticated === accepted && (username === undefined || call.username === username),
  );
  if (matching.length === 0) {
    const who = username === undefined ? '' : ' as the expected user (name not shown)';
    fail(
      `expectSocksAuth: expected a session to authenticate with username/password${who} and be ${accepted ? 'accepted' : 'refused'}, but none did.\n${listCalls(calls)}`,
      expectSocksAuth,
    );
  }
  return matching;
}

/**
 * Assert that the proxy saw no session for a destination (by name or by address), or no session
 * at all when `host` is omitted: "everything else keeps its route".
 *
 * @param proxy - The recording SOCKS proxy.
 * @param host - A name or IP literal. **Default:** any destination, and sessions without a request.
 * @throws AssertionError listing the offending sessions.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('federation', `${origin.url}/_matrix/federation/v1/version`);
 * expectNoSocksCall(socks, origin.host);
 * ```
 */
export function expectNoSocksCall(proxy: RecordingSocksProxy, host?: string): void {
  checkProxy('expectNoSocksCall', proxy);
  if (host !== undefined && (typeof host !== 'string' || host === '')) {
    throw new TypeError('expectNoSocksCall: the host must be a non-empty string when given');
  }
  const wanted = host === undefined ? undefined : canonicalHost(host).replace(/\.$/, '');
  const matching = proxy
    .calls()
    .filter((call) => wanted === undefined || canonicalHost(call.host).replace(/\.$/, '') === wanted);
  if (matching.length > 0) {
    fail(
      `expectNoSocksCall: expected ${proxy.socks5hUrl} to see no session${wanted === undefined ? '' : ` for ${quoteName(wanted)}`}, but it saw ${String(matching.length)}.\n${listCalls(matching)}`,
      expectNoSocksCall,
    );
  }
}
