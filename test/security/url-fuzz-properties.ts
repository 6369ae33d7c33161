/**
 * Property tests of URL handling on the request path (issue 8), beyond the parser properties of
 * test/property: random URLs, origins, paths, methods, headers and `connectTo` targets go through
 * `fetch`, the dispatcher and the `http.Agent`s of an egress to a recording proxy. Each request
 * ends — with a response, a typed error, an undici error, a fetch `TypeError` or a TLS error of the
 * origin hop — within a deadline; and nothing with CR, LF or NUL, and no `Proxy-Authorization`,
 * ever reaches an origin.
 *
 * Shared by the regular suite (url-fuzz.test.ts, hundreds of cases) and the stress run
 * (test/stress/url-fuzz.stress.ts, thousands). Loopback only: the proxy refuses every target but
 * the two test origins, before any DNS look-up, and every route goes through the proxy.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';

import { createEgress, type Egress } from '../../src/egress.js';
import { EgressError } from '../../src/errors.js';
import { PROXIED_CONNECTION_TYPES } from '../../src/policy/connection-types.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import { isUndiciError, unwrap, withDeadline } from '../reliability/harness.js';

/** How many cases each property runs. */
export interface FuzzRuns {
  readonly fetch: number;
  readonly dispatch: number;
  readonly agent: number;
  readonly connectTo: number;
  readonly route: number;
}

/** Per-request deadline: far above any legitimate answer on loopback, far below a hang. */
const DEADLINE_MS = 5_000;

const CONTROL = ['\r', '\n', '\0', '\t', ' ', '\u007f', '\u0085', '\u2028'];

function codeOf(error: Error): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : '';
}

/** An ending that is acceptable for a request: any of these, never a RangeError, a plain Error or a hang. */
function acceptable(thrown: unknown): boolean {
  if (!(thrown instanceof Error)) return false;
  const error = unwrap(thrown);
  // fetch's port blocklist (Fetch standard, "bad port"): undici reports it as a plain network error.
  if (error !== thrown && error.message === 'bad port') return true;
  if (error instanceof EgressError || isUndiciError(error)) return true;
  // fetch's own argument checks (invalid URL, bad port, forbidden header): the WHATWG TypeErrors.
  if (error.name === 'TypeError') return true;
  // The origin hop, inside a tunnel: TLS failures, or the origin closing on a wrong-scheme request.
  const code = codeOf(error);
  if (/^(ERR_SSL_|ERR_TLS_)|CERT|^ECONNRESET$|^EPIPE$/.test(code)) return true;
  // node:http's argument checks, for the agents.
  return /^ERR_(INVALID_CHAR|UNESCAPED_CHARACTERS|INVALID_HTTP_TOKEN|INVALID_ARG_TYPE|INVALID_ARG_VALUE|INVALID_URL|INVALID_PROTOCOL|SOCKET_BAD_PORT|HTTP_INVALID_HEADER_VALUE)$/.test(code);
}

function describeThrown(thrown: unknown): string {
  if (!(thrown instanceof Error)) return String(thrown);
  const error = unwrap(thrown);
  return `${error.name} ${codeOf(error)}: ${error.message}`;
}

/** Register the fuzz suite with `runs` cases per property. */
export function urlFuzzSuite(runs: FuzzRuns): void {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;
  /** Every route goes through the proxy: IP literals are not blocklisted here (they are in `checked`). */
  let open: Egress;
  /** The default IP blocklist: IP-literal URLs fail with BlockedDestinationError before any byte. */
  let checked: Egress;

  before(async () => {
    restoreEnv = isolateProxyEnv();
    [httpsOrigin, httpOrigin] = await Promise.all([createTestOrigin({ tls: true }), createTestOrigin()]);
    const allowed = new Set([httpsOrigin.port, httpOrigin.port]);
    proxy = await createRecordingProxy({ allowTarget: (host, port) => (host === '127.0.0.1' || host === 'localhost') && allowed.has(port) });
    const env = { https_proxy: proxy.url, http_proxy: proxy.url };
    open = createEgress({ env, ca: httpsOrigin.ca, ipBlocklist: [], connectTimeout: 2_000, logger: { warn: () => undefined } });
    checked = createEgress({ env, ca: httpsOrigin.ca, connectTimeout: 2_000, logger: { warn: () => undefined } });
  });

  after(async () => {
    await Promise.all([open.destroy(), checked.destroy()]);
    await Promise.all([proxy.close(), httpsOrigin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  // --- arbitraries ---------------------------------------------------------------------------
  const scheme = fc.constantFrom('http', 'https');
  const hostChar = fc.constantFrom(...'abcxyz019.-_:[]%@'.split(''), ...CONTROL, 'ü', 'ß', '\u3002', 'xn--');
  // Weighted so that about half the cases reach an origin, with the odd host name or port mixed in.
  const host = (): fc.Arbitrary<string> =>
    fc.oneof(
      { arbitrary: fc.constantFrom('127.0.0.1', 'localhost'), weight: 6 },
      fc.constantFrom(
        '127.0.0.1',
        'localhost',
        'LocalHost.',
        '[::1]',
        '[::ffff:127.0.0.1]',
        '127.1',
        '0x7f.0.0.1',
        '2130706433',
        '[0:0:0:0:0:0:0:1]',
        'xn--nxasmq6b.example',
        'bücher.example',
        'a..b.example',
        '-a-.example',
        '%6c%6f%63%61%6c%68%6f%73%74',
        '[fe80::1%25eth0]',
        '999.1.1.1',
        'exa mple.example',
        '',
      ),
      fc.domain(),
      fc.ipV4(),
      fc.ipV6().map((v6) => `[${v6}]`),
      fc.string({ unit: hostChar, minLength: 1, maxLength: 16 }),
    );
  const port = (): fc.Arbitrary<string> =>
    fc.oneof(
      fc.constant(''),
      { arbitrary: fc.constantFrom(String(httpsOrigin.port), String(httpOrigin.port)), weight: 6 },
      fc.integer({ min: 0, max: 70_000 }).map(String),
      fc.constantFrom('x', '-1', '080', ' 1'),
    );
  interface Authority {
    readonly scheme: string;
    readonly host: string;
    readonly port: string;
  }
  /** Mostly a live origin (right scheme for its port), else any scheme, host and port. */
  const authority = (): fc.Arbitrary<Authority> =>
    fc.oneof(
      {
        arbitrary: fc
          .tuple(fc.constantFrom(['https', String(httpsOrigin.port)], ['http', String(httpOrigin.port)]), fc.constantFrom('localhost', '127.0.0.1', 'LOCALHOST'))
          .map(([[s, p], h]) => ({ scheme: s, host: h, port: p })),
        weight: 2,
      },
      fc.tuple(scheme, host(), port()).map(([s, h, p]) => ({ scheme: s, host: h, port: p })),
    );
  const originOf = (a: Authority): string => `${a.scheme}://${a.host}${a.port === '' ? '' : `:${a.port}`}`;
  const pathChar = fc.constantFrom(...'/abc%2F.?#@:;=&+~!$\'()*,[]\\'.split(''), '..', '%25', '%00', '%0d%0a', ...CONTROL, 'é', '\ud83d\ude00', '\ud800');
  const safePathChar = fc.constantFrom(...'/abc%2F.?#@:;=&+~!$\'()*,[]'.split(''), '..', '%25', '%00', '%0d%0a', 'é');
  const path = fc.oneof({ arbitrary: fc.string({ unit: safePathChar, maxLength: 24 }), weight: 3 }, fc.string({ unit: pathChar, maxLength: 24 }));
  const type = fc.constantFrom(...PROXIED_CONNECTION_TYPES);
  const egressArb = fc.constantFrom('open', 'checked');
  const method = fc.constantFrom('GET', 'GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE', 'get', 'X-CUSTOM', 'G ET', 'CONNECT', '');
  const headerName = fc.oneof(
    fc.constantFrom('x-a', 'host', 'Proxy-Authorization', 'connection', 'transfer-encoding', 'content-length', 'upgrade', 'x-b\r\n', ''),
    fc.string({ unit: fc.constantFrom(...'abz-_:'.split(''), ...CONTROL), minLength: 1, maxLength: 8 }),
  );
  const headerValue = fc.string({ unit: fc.constantFrom(...'abz09 ,;=/'.split(''), ...CONTROL, 'é'), maxLength: 12 });
  const headers = fc.oneof({ arbitrary: fc.constant({}), weight: 2 }, fc.dictionary(headerName, headerValue, { maxKeys: 3 }));

  function egressOf(which: string): Egress {
    return which === 'open' ? open : checked;
  }

  /** Run one request to its end; throws (failing the property) on an unacceptable ending or a hang. */
  async function settle(what: string, run: () => Promise<unknown>): Promise<void> {
    try {
      await withDeadline(run(), DEADLINE_MS, what);
    } catch (thrown) {
      if (thrown instanceof Error && thrown.message.includes('(a hang)')) throw thrown;
      assert.ok(acceptable(thrown), `${what}: ${describeThrown(thrown)}`);
    }
  }

  describe('URL handling under random input: an ending within the deadline, typed or from undici', () => {
    it(`fetch: random scheme, host, port and path (${String(runs.fetch)} cases)`, async () => {
      await fc.assert(
        fc.asyncProperty(egressArb, type, authority(), path, async (which, t, a, pathname) => {
          const url = `${originOf(a)}/${pathname}`;
          await settle(`fetch ${JSON.stringify(url)}`, async () => {
            const response = await egressOf(which).fetch(t, url);
            await response.arrayBuffer();
          });
        }),
        { numRuns: runs.fetch },
      );
    });

    it(`dispatcher.request: random origin, path, method and headers (${String(runs.dispatch)} cases)`, async () => {
      await fc.assert(
        fc.asyncProperty(egressArb, type, authority(), fc.boolean(), path, method, headers, async (which, t, a, slash, raw, m, hs) => {
          const origin = originOf(a);
          const requestPath = slash ? `/${raw}` : raw;
          await settle(`dispatch ${m} ${JSON.stringify(origin)} ${JSON.stringify(requestPath)} ${JSON.stringify(hs)}`, async () => {
            const response = await egressOf(which).dispatcher(t).request({ origin, path: requestPath, method: m, headers: hs });
            await response.body.dump();
          });
        }),
        { numRuns: runs.dispatch },
      );
    });

    it(`http.Agent / https.Agent: random host, port, path and headers (${String(runs.agent)} cases)`, async () => {
      await fc.assert(
        fc.asyncProperty(egressArb, type, authority(), path, headers, async (which, t, { scheme: s, host: h, port: p }, raw, hs) => {
          const egress = egressOf(which);
          const agent = s === 'https' ? egress.httpsAgent(t) : egress.agent(t);
          const module = s === 'https' ? https : http;
          await settle(`agent ${s} ${JSON.stringify(h)}:${p} ${JSON.stringify(raw)}`, () =>
            new Promise<void>((resolve, reject) => {
              const req = module.request({ host: h.replace(/^\[(.*)\]$/, '$1'), port: p === '' ? undefined : p, path: `/${raw}`, headers: hs, agent, ca: httpsOrigin.ca }, (res) => {
                res.resume();
                res.on('end', resolve);
                res.on('error', reject);
              });
              req.on('error', reject);
              req.end();
            }),
          );
        }),
        { numRuns: runs.agent },
      );
    });

    it(`fetch with connectTo: random target host and port (${String(runs.connectTo)} cases)`, async () => {
      await fc.assert(
        fc.asyncProperty(egressArb, scheme, host(), fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.constantFrom(httpsOrigin.port, httpOrigin.port)), async (which, s, h, p) => {
          await settle(`connectTo ${JSON.stringify(h)}:${String(p)}`, async () => {
            const response = await egressOf(which).fetch('federation', `${s}://localhost/_matrix/key/v2/server`, { connectTo: { host: h, port: p } });
            await response.arrayBuffer();
          });
        }),
        { numRuns: runs.connectTo },
      );
    });

    it(`route(): any type name and any string (${String(runs.route)} cases)`, () => {
      const anyType = fc.oneof(type, fc.string({ maxLength: 12 }));
      // fc.webUrl() is covered by test/property and costs ~5 ms a case to generate; these are cheap.
      const anyUrl = fc.oneof(fc.string({ maxLength: 40 }), fc.tuple(authority(), path).map(([a, x]) => `${originOf(a)}/${x}`));
      fc.assert(
        fc.property(anyType, anyUrl, (t, url) => {
          try {
            const decision = open.route(t, url);
            assert.equal(decision.type, t);
          } catch (error) {
            assert.ok(error instanceof EgressError, `route(${JSON.stringify(t)}, ${JSON.stringify(url)}): ${String(error)}`);
          }
        }),
        { numRuns: runs.route },
      );
    });

    it('what reached the proxy and the origins: no CR, LF or NUL, no Proxy-Authorization at an origin', (t) => {
      t.diagnostic(`the proxy saw ${String(proxy.calls().length)} requests; the origins ${String(httpsOrigin.calls().length + httpOrigin.calls().length)}`);
      const clean = (text: string): boolean => !/[\r\n\0]/.test(text);
      for (const call of proxy.calls()) {
        assert.ok(clean(call.target) && call.rawHeaders.every(clean), `proxy saw ${JSON.stringify(call.target)}`);
      }
      for (const call of [...httpsOrigin.calls(), ...httpOrigin.calls()]) {
        assert.ok(clean(call.url) && call.rawHeaders.every(clean), `origin saw ${JSON.stringify(call.url)}`);
        assert.equal(call.headers['proxy-authorization'], undefined, `Proxy-Authorization reached the origin: ${call.url}`);
      }
      assert.ok(proxy.calls().length > 0, 'no request reached the proxy: the properties tested nothing');
    });
  });
}
