/**
 * One-line routing assertions over a {@link RecordingProxy} and a {@link TestOrigin}: "this went
 * through the proxy", "this went direct", "this was tunnelled", "this was forwarded byte-exact",
 * "no origin ever saw Proxy-Authorization".
 *
 * They depend on no test runner: a failed expectation throws `node:assert`'s `AssertionError`,
 * which node:test, vitest and jest all report as an assertion failure. Misuse (a wrong argument)
 * throws a `TypeError` instead, so the two never get confused.
 *
 * Failure messages list what the proxy or origin did see, one line per call, through
 * {@link describeCall}: never a header value, never credentials. A received
 * `Proxy-Authorization` shows as `authorization: present (accepted)`, `absent` and the like (got's
 * rule: strip secrets from every message, then test that they are gone).
 *
 * @module
 */
import { AssertionError } from 'node:assert';
import { isIPv6 } from 'node:net';

import type { ProxyCall, ProxyCallOutcome, RecordingProxy } from './recording-proxy.js';
import type { OriginRequest, TestOrigin } from './test-origin.js';

/**
 * Which proxy calls count, for {@link expectProxied} and {@link expectNotProxied}. Fields combine
 * with AND; an absent (or `undefined`) field matches anything.
 *
 * A {@link TestOrigin} has `host` and `port`, so it can be passed as it is:
 * `expectProxied(proxy, origin)`.
 */
export interface ProxyCallMatch {
  /**
   * Target host. Compared case-insensitively; IPv6 with or without brackets, in any spelling
   * (`[::1]`, `::1`, `0:0:0:0:0:0:0:1`).
   */
  readonly host: string;
  /** Target port (for absolute-form requests without one, 80). **Default:** any port. */
  readonly port?: number | undefined;
  /** `'CONNECT'` for tunnels, or the method of a forwarded request (case-sensitive, as on the wire). **Default:** any method. */
  readonly method?: string | undefined;
  /** Where the call ended up, e.g. `'tunnelled'` or `'rejected'`. **Default:** any outcome. */
  readonly outcome?: ProxyCallOutcome | undefined;
}

/** Which origin requests count, for {@link expectDirect}. Fields combine with AND. */
export interface OriginRequestMatch {
  /** The request target as the origin received it: exact string, or a `RegExp` tested against it. **Default:** any. */
  readonly path?: string | RegExp | undefined;
  /** HTTP method. **Default:** any. */
  readonly method?: string | undefined;
}

/** Options for {@link expectForwarded}. */
export interface ForwardedMatch {
  /** HTTP method of the forwarded request. **Default:** any method but `CONNECT`. */
  readonly method?: string | undefined;
}

/** Longest request target or path quoted in a message, in characters. */
const MAX_TARGET_CHARS = 200;
/** Most calls listed in one message; the rest are counted. */
const MAX_LISTED_CALLS = 20;
/** The token the recording proxy puts in `Via` (RFC 9110 §7.6.3) on every request it forwards. */
const RECORDING_PROXY_VIA = 'matrix-egress-recording-proxy';
/** Query parameters whose values are secrets in Matrix and common web APIs; shown as `***`. */
const SECRET_QUERY_PARAMETERS = /([?&;](?:access_token|token|password|secret)=)[^&;#]*/gi;

/** @internal Shared with the SOCKS assertions. */
export function fail(message: string, stackStartFn: (...args: never[]) => unknown): never {
  // No `actual`/`expected`: runners print those as a diff, and a ProxyCall holds a password.
  throw new AssertionError({ message, stackStartFn });
}

function checkProxy(name: string, proxy: unknown): asserts proxy is RecordingProxy {
  if (typeof proxy !== 'object' || proxy === null || typeof (proxy as Partial<RecordingProxy>).calls !== 'function') {
    throw new TypeError(`${name}: the first argument must be a recording proxy (from createRecordingProxy)`);
  }
}

function checkOrigin(name: string, origin: unknown): asserts origin is TestOrigin {
  const candidate = origin as Partial<TestOrigin> | null;
  if (
    typeof candidate !== 'object' ||
    candidate === null ||
    typeof candidate.calls !== 'function' ||
    typeof candidate.host !== 'string' ||
    typeof candidate.port !== 'number'
  ) {
    throw new TypeError(`${name}: the origin must be a test origin (from createTestOrigin)`);
  }
}

function checkString(name: string, what: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '') {
    throw new TypeError(`${name}: ${what} must be a non-empty string`);
  }
}

function checkMatch(name: string, match: unknown): asserts match is ProxyCallMatch {
  if (typeof match !== 'object' || match === null) {
    throw new TypeError(`${name}: the second argument must be { host, port?, method?, outcome? } or a test origin`);
  }
  const { host, port, method } = match as Record<string, unknown>;
  checkString(name, '`host`', host);
  if (port !== undefined && (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new TypeError(`${name}: \`port\` must be an integer from 1 to 65535`);
  }
  if (method !== undefined) checkString(name, '`method`', method);
}

/**
 * Lowercase, no brackets, IPv6 in its canonical (RFC 5952) spelling so `::1` equals `0::1`.
 * @internal Shared with the SOCKS assertions.
 */
export function canonicalHost(host: string): string {
  let bare = host.toLowerCase();
  if (bare.startsWith('[') && bare.endsWith(']')) bare = bare.slice(1, -1);
  if (isIPv6(bare)) {
    try {
      return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    } catch {
      return bare;
    }
  }
  return bare;
}

function formatAuthority(host: string, port: number | undefined): string {
  const shown = host.includes(':') ? `[${host}]` : host;
  return port === undefined ? `${shown} (any port)` : `${shown}:${String(port)}`;
}

/** Quote a received target safely: userinfo and secret query values hidden, control bytes escaped, length capped. */
function safeTarget(target: string): string {
  let text = target;
  // An absolute-form target may carry userinfo (`http://user:pw@host/`); authority-form too (`user@host:443`).
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text)?.[0] ?? '';
  const rest = text.slice(scheme.length);
  const authorityEnd = scheme === '' && !rest.startsWith('/') ? rest.length : rest.search(/[/?#]|$/);
  const authority = scheme === '' && rest.startsWith('/') ? '' : rest.slice(0, authorityEnd);
  const at = authority.lastIndexOf('@');
  if (at >= 0) text = `${scheme}***@${rest.slice(at + 1)}`;
  text = text.replace(SECRET_QUERY_PARAMETERS, '$1***');
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  text = text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return text.length > MAX_TARGET_CHARS ? `${text.slice(0, MAX_TARGET_CHARS)}…` : text;
}

function hasHeader(rawHeaders: readonly string[], name: string): boolean {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) return true;
  }
  return false;
}

function headerValue(rawHeaders: readonly string[], name: string): string {
  const values: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === name) values.push(rawHeaders[i + 1] ?? '');
  }
  return values.join(', ');
}

function isProxyCall(call: ProxyCall | OriginRequest): call is ProxyCall {
  return 'target' in call;
}

/**
 * One line describing a recorded call, safe to print: the method and target (or path), the
 * outcome and status, and whether `Proxy-Authorization` was present — never its value, never any
 * other header value. Userinfo in a target and the values of `access_token`, `token`, `password`
 * and `secret` query parameters show as `***`. Used in every failure message of this module.
 *
 * @param call - A {@link ProxyCall} from a recording proxy or an {@link OriginRequest} from a test origin.
 * @returns For a proxy call, e.g. `#1 CONNECT 127.0.0.1:8448 → tunnelled 200, authorization: present (accepted)`;
 * for an origin request, e.g. `#3 GET /_matrix/key/v2/server from 127.0.0.1:53422`, with
 * `, via a proxy` and `, proxy-authorization: present` appended when they apply.
 *
 * @example
 * ```ts
 * import { describeCall } from 'matrix-egress/testing';
 *
 * for (const call of proxy.calls()) console.log(describeCall(call));
 * // #1 CONNECT 127.0.0.1:41234 → tunnelled 200, authorization: present (accepted)
 * ```
 */
export function describeCall(call: ProxyCall | OriginRequest): string {
  if (isProxyCall(call)) {
    const status = call.statusCode === undefined ? '' : ` ${String(call.statusCode)}`;
    const error = call.errorCode === undefined ? '' : ` (${call.errorCode})`;
    // Before authentication has run (outcome 'pending') `authenticated` is still false: say nothing then.
    const settled = call.outcome !== 'pending';
    const authorization =
      call.authorization === undefined
        ? settled && !call.authenticated ? 'absent (required)' : 'absent'
        : settled ? `present (${call.authenticated ? 'accepted' : 'rejected'})` : 'present';
    return `#${String(call.id)} ${call.method} ${safeTarget(call.target)} → ${call.outcome}${status}${error}, authorization: ${authorization}`;
  }
  const via = headerValue(call.rawHeaders, 'via') === '' ? '' : ', via a proxy';
  const authorization = hasHeader(call.rawHeaders, 'proxy-authorization') ? ', proxy-authorization: present' : '';
  const peer = call.remoteAddress.includes(':') ? `[${call.remoteAddress}]` : call.remoteAddress;
  return `#${String(call.id)} ${call.method} ${safeTarget(call.url)} from ${peer}:${String(call.remotePort)}${via}${authorization}`;
}

function listCalls(calls: readonly (ProxyCall | OriginRequest)[], what: string): string {
  if (calls.length === 0) return `${what} saw no calls.`;
  const shown = calls.slice(-MAX_LISTED_CALLS);
  const omitted = calls.length - shown.length;
  const head = `${what} saw ${String(calls.length)} call${calls.length === 1 ? '' : 's'}${omitted > 0 ? ` (the last ${String(shown.length)} shown)` : ''}:`;
  return [head, ...shown.map((call) => `  ${describeCall(call)}`)].join('\n');
}

function proxyName(proxy: RecordingProxy): string {
  return typeof proxy.url === 'string' ? `the recording proxy ${proxy.url}` : 'the recording proxy';
}

/** A hint for the classic surprise: a pooled tunnel carries the request, so no new CONNECT appears. */
function poolingHint(proxy: RecordingProxy): string {
  return typeof proxy.openTunnels === 'number' && proxy.openTunnels > 0
    ? `\nNote: ${String(proxy.openTunnels)} tunnel(s) are still open. Tunnels are pooled per origin, so a request that reused one opened before the last clear() adds no CONNECT.`
    : '';
}

function describeMatch(match: ProxyCallMatch): string {
  const extras = [
    match.method === undefined ? undefined : `method ${match.method}`,
    match.outcome === undefined ? undefined : `outcome ${match.outcome}`,
  ].filter((part): part is string => part !== undefined);
  const authority = formatAuthority(canonicalHost(match.host), match.port);
  return extras.length === 0 ? authority : `${authority} (${extras.join(', ')})`;
}

function matcherFor(match: ProxyCallMatch): (call: ProxyCall) => boolean {
  const host = canonicalHost(match.host);
  return (call) =>
    canonicalHost(call.host) === host &&
    (match.port === undefined || call.port === match.port) &&
    (match.method === undefined || call.method === match.method) &&
    (match.outcome === undefined || call.outcome === match.outcome);
}

/**
 * Assert that the proxy received at least one call for a target: a CONNECT tunnel or a forwarded
 * request, whatever its outcome unless `match.outcome` says otherwise.
 *
 * "Went through the proxy" is best asserted on a fresh origin port (or after `proxy.clear()` and a
 * fresh egress): tunnels are pooled, so a second request to the same origin reuses the first
 * CONNECT and adds no call.
 *
 * @param proxy - The recording proxy the client was configured with.
 * @param match - Target host and optionally port, method and outcome; a {@link TestOrigin} works as it is.
 * @returns Every matching call, oldest first (never empty).
 * @throws AssertionError when no call matches; the message lists every call the proxy saw.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * const response = await egress.fetch('push', `${origin.url}/_matrix/push/v1/notify`, { method: 'POST', body });
 * const [connect] = expectProxied(proxy, { host: origin.host, port: origin.port, method: 'CONNECT' });
 * assert.equal(connect?.authenticated, true);
 * ```
 */
export function expectProxied(proxy: RecordingProxy, match: ProxyCallMatch): readonly ProxyCall[] {
  checkProxy('expectProxied', proxy);
  checkMatch('expectProxied', match);
  const calls = proxy.calls();
  const matching = calls.filter(matcherFor(match));
  if (matching.length === 0) {
    fail(
      `expectProxied: expected ${proxyName(proxy)} to see a call to ${describeMatch(match)}, but none matched.\n${listCalls(calls, 'The proxy')}${poolingHint(proxy)}`,
      expectProxied,
    );
  }
  return matching;
}

/**
 * Assert that the proxy received no call at all for a target host (and port, when given): no
 * CONNECT to it and no forwarded request for it.
 *
 * On its own this says nothing about whether the request was made; pair it with the origin's
 * record, or use {@link expectDirect}.
 *
 * @param proxy - The recording proxy the client was configured with.
 * @param match - Target host and optionally port (method and outcome narrow it further); a {@link TestOrigin} works as it is.
 * @throws AssertionError when some call matches; the message lists the matching calls.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('appservice', `${origin.url}/_matrix/app/v1/transactions/1`, { method: 'PUT', body: '{}' });
 * expectNotProxied(proxy, origin);
 * ```
 */
export function expectNotProxied(proxy: RecordingProxy, match: ProxyCallMatch): void {
  checkProxy('expectNotProxied', proxy);
  checkMatch('expectNotProxied', match);
  const matching = proxy.calls().filter(matcherFor(match));
  if (matching.length > 0) {
    fail(
      `expectNotProxied: expected ${proxyName(proxy)} to see no call to ${describeMatch(match)}, but it saw ${String(matching.length)}.\n${listCalls(matching, 'The proxy')}`,
      expectNotProxied,
    );
  }
}

/**
 * Assert that a request reached the origin directly: the origin recorded a request matching
 * `match`, none of the matching requests came through a recording proxy (no `Via` added by one),
 * and `proxy` saw no call for the origin's address (its `host` or `localhost`, on its port).
 *
 * @param origin - The test origin the request was sent to.
 * @param proxy - The recording proxy the client was configured with (and should have bypassed).
 * @param match - Which origin requests count. **Default:** any request.
 * @returns The newest matching origin request.
 * @throws AssertionError when the origin saw no matching request (the message lists what it saw),
 * or the proxy saw a call for the origin (the message lists those calls).
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('appservice', `${origin.url}/_matrix/app/v1/ping`, { method: 'POST', body: '{}' });
 * const request = expectDirect(origin, proxy, { method: 'POST', path: '/_matrix/app/v1/ping' });
 * assert.equal(request.remoteAddress, '127.0.0.1');
 * ```
 */
export function expectDirect(origin: TestOrigin, proxy: RecordingProxy, match: OriginRequestMatch = {}): OriginRequest {
  checkOrigin('expectDirect', origin);
  checkProxy('expectDirect', proxy);
  // Checked at run time too: JavaScript callers get no compile-time check.
  const given: unknown = match;
  if (typeof given !== 'object' || given === null) {
    throw new TypeError('expectDirect: the third argument must be { path?, method? }');
  }
  const { path, method } = match;
  if (path !== undefined && typeof path !== 'string' && !(path instanceof RegExp)) {
    throw new TypeError('expectDirect: `path` must be a string or a RegExp');
  }
  const wanted = [method, path === undefined ? undefined : typeof path === 'string' ? safeTarget(path) : String(path)]
    .filter((part): part is string => part !== undefined)
    .join(' ');
  const requests = origin.calls();
  const matching = requests.filter((request) => {
    if (method !== undefined && request.method !== method) return false;
    if (path === undefined) return true;
    if (typeof path === 'string') return request.url === path;
    path.lastIndex = 0;
    return path.test(request.url);
  });
  const originName = `the origin ${origin.url}`;
  const newest = matching.at(-1);
  if (newest === undefined) {
    fail(
      `expectDirect: expected ${originName} to receive ${wanted === '' ? 'a request' : `a request ${wanted}`}, but none matched.\n${listCalls(requests, 'The origin')}`,
      expectDirect,
    );
  }
  const proxied = matching.filter((request) => headerValue(request.rawHeaders, 'via').includes(RECORDING_PROXY_VIA));
  if (proxied.length > 0) {
    fail(
      `expectDirect: ${originName} received the request through a recording proxy (it carries the proxy's Via header).\n${listCalls(proxied, 'The origin')}`,
      expectDirect,
    );
  }
  const port = origin.port;
  const hosts = new Set([canonicalHost(origin.host), 'localhost']);
  const viaProxy = proxy.calls().filter((call) => call.port === port && hosts.has(canonicalHost(call.host)));
  if (viaProxy.length > 0) {
    fail(
      `expectDirect: expected no call to ${formatAuthority(canonicalHost(origin.host), port)} at ${proxyName(proxy)}, but it saw ${String(viaProxy.length)}: the request may have gone through it.\n${listCalls(viaProxy, 'The proxy')}`,
      expectDirect,
    );
  }
  return newest;
}

/**
 * Assert that the proxy opened a CONNECT tunnel to `authority`: a `CONNECT` whose request target
 * is exactly `authority` (byte-exact, so `[::1]:443` and not `::1:443`) and whose outcome is
 * `'tunnelled'`. To assert on a refused CONNECT, use
 * `expectProxied(proxy, { host, port, method: 'CONNECT', outcome: 'rejected' })`.
 *
 * @param proxy - The recording proxy the client was configured with.
 * @param authority - `host:port`, IPv6 in brackets, e.g. `` `127.0.0.1:${origin.port}` `` or `'[::1]:8448'`.
 * @returns The newest matching CONNECT call.
 * @throws AssertionError when no tunnel to `authority` was opened; the message lists every call the proxy saw.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('federation', `${origin.url}/_matrix/federation/v1/version`);
 * const connect = expectTunnel(proxy, `127.0.0.1:${String(origin.port)}`);
 * assert.equal(connect.headers.host, `127.0.0.1:${String(origin.port)}`);
 * ```
 */
export function expectTunnel(proxy: RecordingProxy, authority: string): ProxyCall {
  checkProxy('expectTunnel', proxy);
  checkString('expectTunnel', 'the authority', authority);
  const calls = proxy.calls();
  const newest = calls.filter((call) => call.method === 'CONNECT' && call.target === authority && call.outcome === 'tunnelled').at(-1);
  if (newest === undefined) {
    fail(
      `expectTunnel: expected ${proxyName(proxy)} to open a tunnel for CONNECT ${safeTarget(authority)}, but it did not.\n${listCalls(calls, 'The proxy')}${poolingHint(proxy)}`,
      expectTunnel,
    );
  }
  return newest;
}

/**
 * Assert that the proxy forwarded an absolute-form request for `url`: a non-CONNECT call whose
 * request target is exactly `url` (byte-exact: no dot-segment removal, no `%2F` decoding) and
 * whose outcome is `'forwarded'` (the origin answered and the answer was relayed).
 *
 * @param proxy - The recording proxy the client was configured with.
 * @param url - The absolute `http://` URL expected as the request target; a `URL` is compared by its `href`.
 * @param match - Optionally the method. **Default:** any method but `CONNECT`.
 * @returns The newest matching call.
 * @throws AssertionError when no such request was forwarded; the message lists every call the proxy saw.
 * @throws TypeError when an argument is not what it should be.
 *
 * @example
 * ```ts
 * await egress.fetch('url_preview', `${origin.url}/article?id=7`);
 * const call = expectForwarded(proxy, `${origin.url}/article?id=7`, { method: 'GET' });
 * assert.equal(call.path, '/article?id=7');
 * ```
 */
export function expectForwarded(proxy: RecordingProxy, url: string | URL, match: ForwardedMatch = {}): ProxyCall {
  checkProxy('expectForwarded', proxy);
  const target = url instanceof URL ? url.href : url;
  checkString('expectForwarded', 'the URL', target);
  const given: unknown = match;
  if (typeof given !== 'object' || given === null) {
    throw new TypeError('expectForwarded: the third argument must be { method? }');
  }
  const { method } = match;
  if (method !== undefined) checkString('expectForwarded', '`method`', method);
  const calls = proxy.calls();
  const newest = calls
    .filter(
      (call) =>
        call.method !== 'CONNECT' &&
        (method === undefined || call.method === method) &&
        call.target === target &&
        call.outcome === 'forwarded',
    )
    .at(-1);
  if (newest === undefined) {
    fail(
      `expectForwarded: expected ${proxyName(proxy)} to forward ${method ?? 'a request'} ${safeTarget(target)}, but it did not.\n${listCalls(calls, 'The proxy')}`,
      expectForwarded,
    );
  }
  return newest;
}

/**
 * Assert that no request the origin received carried a `Proxy-Authorization` header: the proxy
 * credentials stayed on the client–proxy hop (RFC 9110 §11.7.2) whether the request was tunnelled,
 * forwarded or direct. Passes when the origin received nothing.
 *
 * @param origin - The test origin to check (its whole history since the last `clear()`).
 * @throws AssertionError naming each offending request (method, path, peer) — never the header's value.
 * @throws TypeError when the argument is not a test origin.
 *
 * @example
 * ```ts
 * await egress.fetch('url_preview', `${httpOrigin.url}/page`);
 * await egress.fetch('push', `${httpsOrigin.url}/_matrix/push/v1/notify`, { method: 'POST', body: '{}' });
 * expectNoProxyAuthorizationAtOrigin(httpOrigin);
 * expectNoProxyAuthorizationAtOrigin(httpsOrigin);
 * ```
 */
export function expectNoProxyAuthorizationAtOrigin(origin: TestOrigin): void {
  checkOrigin('expectNoProxyAuthorizationAtOrigin', origin);
  const leaked = origin.calls().filter((request) => hasHeader(request.rawHeaders, 'proxy-authorization'));
  if (leaked.length > 0) {
    fail(
      `expectNoProxyAuthorizationAtOrigin: ${String(leaked.length)} request(s) to the origin ${origin.url} carried Proxy-Authorization (value not shown).\n${listCalls(leaked, 'The origin')}`,
      expectNoProxyAuthorizationAtOrigin,
    );
  }
}
