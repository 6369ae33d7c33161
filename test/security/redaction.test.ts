/**
 * Credentials never leave in text (issue 8, SPEC §7, STYLE §4). One test builds every public object
 * of an egress whose proxies carry a canary user and password — after real traffic, so the pools,
 * agents and sockets exist — provokes an error of every class in a realistic failure, captures
 * every log line, and renders all of it every way a program prints things: `message`, `stack`,
 * `String()`, `util.inspect` (hidden fields, full depth, getters) and `JSON.stringify`, following
 * `cause` chains. Then it greps the lot for the canary: the user name, the password decoded and
 * percent-encoded, and the `Proxy-Authorization` value built from them.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';

import { createEgress, type Egress } from '../../src/egress.js';
import { compileEgressConfig, configToJSON, type EgressLogger, type EgressOptions } from '../../src/config/compile.js';
import { parseProxyUrl } from '../../src/config/proxy-url.js';
import {
  BlockedDestinationError,
  EgressClosedError,
  ForbiddenHeaderError,
  HeaderInjectionError,
  InvalidUrlError,
  ProxyAuthenticationError,
  ProxyConfigError,
  ProxyConnectError,
  ProxyProtocolError,
  ProxyTlsError,
  ProxyUnreachableError,
  UnknownConnectionTypeError,
} from '../../src/errors.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../src/policy/connection-types.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import { fetchOk, withDeadline } from '../reliability/harness.js';

const CANARY_USER = 'cAnArY-uSeR-5150';
/** Holds the characters that need percent-encoding in a URL, so both spellings are checked. */
const CANARY_PASSWORD = 'cAnArY-p@ss:w/rd#8086';
const ENCODED_PASSWORD = encodeURIComponent(CANARY_PASSWORD);
const BASIC = Buffer.from(`${CANARY_USER}:${CANARY_PASSWORD}`).toString('base64');
const NEEDLES = [CANARY_USER, CANARY_PASSWORD, ENCODED_PASSWORD, 'cAnArY-p', BASIC] as const;

function withCanary(url: string): string {
  return url.replace('://', `://${CANARY_USER}:${ENCODED_PASSWORD}@`);
}

/** JSON of anything: cycles and BigInts do not stop it, and a throwing toJSON is reported as text. */
function safeJson(value: unknown): string {
  const seen = new WeakSet();
  try {
    // JSON.stringify(undefined) is undefined, whatever its declared type says.
    const text = JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return String(v);
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[Circular]';
        seen.add(v);
      }
      return v;
    }) as string | undefined;
    return text ?? '';
  } catch (error) {
    return `JSON.stringify threw: ${String(error)}`;
  }
}

/** Every way the value might be printed. */
function renderings(value: unknown): string[] {
  // Getters of node:http messages only repeat their fields, through deprecated accessors (DEP0066).
  const getters = !(value instanceof http.OutgoingMessage || value instanceof http.IncomingMessage);
  const out = [inspect(value, { showHidden: true, depth: Infinity, getters }), inspect(value), safeJson(value)];
  try {
    out.push(String(value));
  } catch (error) {
    out.push(`String() threw: ${String(error)}`);
  }
  for (let error: unknown = value, depth = 0; error instanceof Error && depth < 10; error = error.cause, depth++) {
    out.push(error.message, String(error.stack), error.toString(), safeJson(Object.getOwnPropertyNames(error).map((k) => [k, (error as unknown as Record<string, unknown>)[k]])));
  }
  return out;
}

let restoreEnv: () => void;
let authProxy: RecordingProxy;
let tlsProxy: RecordingProxy;
let httpsOrigin: TestOrigin;
let httpOrigin: TestOrigin;
const logLines: string[] = [];
const logger: EgressLogger = { warn: (message) => logLines.push(message) };
/** Egresses to destroy at the end. */
const egresses: Egress[] = [];

before(async () => {
  restoreEnv = isolateProxyEnv();
  [authProxy, tlsProxy, httpsOrigin, httpOrigin] = await Promise.all([
    createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } }),
    createRecordingProxy({ tls: true, auth: { username: CANARY_USER, password: CANARY_PASSWORD } }),
    createTestOrigin({ tls: true }),
    createTestOrigin(),
  ]);
});

after(async () => {
  await Promise.all(egresses.map((egress) => egress.destroy()));
  await Promise.all([authProxy.close(), tlsProxy.close(), httpsOrigin.close(), httpOrigin.close()]);
  restoreEnv();
});

function egressWith(options: EgressOptions): Egress {
  const egress = createEgress({ ca: httpsOrigin.ca, ipBlocklist: [], logger, connectTimeout: 1_000, ...options });
  egresses.push(egress);
  return egress;
}

/** The error a request fails with, and the wrapper the caller sees (undici's `TypeError('fetch failed')`). */
async function failures(promise: Promise<unknown>): Promise<unknown[]> {
  try {
    const result = await withDeadline(promise, 5_000, 'a request expected to fail');
    return [new Error(`unexpectedly succeeded: ${inspect(result, { depth: 0 })}`)];
  } catch (error) {
    return [error];
  }
}

/** A node:http(s) request through an egress agent that must fail; resolves with the error. */
function agentFailure(module: typeof http | typeof https, agent: http.Agent, url: string, options: http.RequestOptions = {}): Promise<unknown> {
  return withDeadline(
    new Promise<unknown>((resolve) => {
      let req: http.ClientRequest;
      try {
        req = module.request(url, { agent, ...options }, (res) => {
          res.resume();
          resolve(new Error(`agent request answered ${String(res.statusCode)}`));
        });
      } catch (error) {
        resolve(error);
        return;
      }
      req.on('error', resolve);
      // node:http's `timeout` only reports idleness; the caller ends the request (a forwarded request
      // to a proxy that never answers has no other bound, see test/reliability/proxy-faults.test.ts).
      req.on('timeout', () => req.destroy(new Error('the caller gave up waiting')));
      req.end();
    }),
    5_000,
    `agent request to ${url}`,
  );
}

/** A plain-http request through an egress http.Agent that must answer 200; returns the request and response. */
function agentRequestOk(agent: http.Agent, url: string): Promise<{ req: http.ClientRequest; res: http.IncomingMessage }> {
  return withDeadline(
    new Promise((resolve, reject) => {
      const req = http.request(url, { agent }, (res) => {
        res.resume();
        res.on('end', () => {
          assert.equal(res.statusCode, 200);
          resolve({ req, res });
        });
      });
      req.on('error', reject);
      req.end();
    }),
    5_000,
    `agent request to ${url}`,
  );
}

/** The needles found in the renderings of `value`, with some context. */
function leaksIn(label: string, value: unknown): string[] {
  const leaks: string[] = [];
  for (const text of renderings(value)) {
    for (const needle of NEEDLES) {
      const at = text.indexOf(needle);
      if (at !== -1) leaks.push(`${label}: ${JSON.stringify(needle)} in …${text.slice(Math.max(0, at - 120), at + 60)}…`);
    }
  }
  return leaks;
}

describe('credentials never appear in text', () => {
  it('in no message, stack, log line, inspect or JSON of any public object or error', async () => {
    const collected: [label: string, value: unknown][] = [];
    const add = (label: string, value: unknown): void => {
      collected.push([label, value]);
    };
    const httpsUrl = withCanary(authProxy.url);

    // --- a working egress, after traffic on every path ---------------------------------------
    const egress = egressWith({ env: { https_proxy: httpsUrl, HTTP_PROXY: httpsUrl, no_proxy: 'localhost' }, connectionTypes: { custom_type: { route: 'proxy' } } });
    await fetchOk(egress, 'push', `${httpsOrigin.url}/fetch`);
    await fetchOk(egress, 'push', `${httpOrigin.url}/fetch`);
    const viaDispatcher = await egress.dispatcher('media').request({ origin: httpOrigin.url, path: '/dispatcher', method: 'GET' });
    await viaDispatcher.body.text();
    add('dispatcher response', viaDispatcher);
    // node:https through a tunnel: the request head goes to the origin and holds no proxy credentials.
    // (A plain-http request forwarded by egress.agent(): see the test below.)
    await withDeadline(
      new Promise<void>((resolve, reject) => {
        const req = https.request(`${httpsOrigin.url}/agent`, { agent: egress.httpsAgent('push'), ca: httpsOrigin.ca }, (res) => {
          add('https.Agent response', res);
          res.resume();
          res.on('end', resolve);
        });
        req.on('error', reject);
        req.end();
        add('https.Agent request', req);
      }),
      5_000,
      'https agent request',
    );
    await agentRequestOk(egress.agent('push'), `${httpOrigin.url}/agent`);
    add('egress', egress);
    add('egress.config', egress.config);
    add('configToJSON', configToJSON(egress.config));
    add('config.httpsProxy', egress.config.httpsProxy);
    add('config.httpProxy', egress.config.httpProxy);
    add('config.sources', egress.config.sources);
    add('config.connectionTypes', egress.config.connectionTypes);
    add('config.noProxy', egress.config.noProxy);
    for (const type of [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES, 'custom_type']) {
      add(`dispatcher ${type}`, egress.dispatcher(type));
      add(`agent ${type}`, egress.agent(type));
      add(`httpsAgent ${type}`, egress.httpsAgent(type));
      for (const url of [httpsOrigin.url, httpOrigin.url, 'https://localhost/', 'http://[::1]:8080/x']) add(`route ${type} ${url}`, egress.route(type, url));
    }
    add('compileEgressConfig', compileEgressConfig({ env: { https_proxy: httpsUrl, http_proxy: httpsUrl } }));
    add('parseProxyUrl', parseProxyUrl(httpsUrl, 'https_proxy'));
    add('parseProxyUrl https', parseProxyUrl(withCanary(tlsProxy.url), 'https_proxy'));
    // Read from process.env, as a homeserver would.
    process.env['https_proxy'] = httpsUrl;
    try {
      add('egress from process.env', egressWith({ env: undefined }));
    } finally {
      Reflect.deleteProperty(process.env, 'https_proxy');
    }

    // --- an error of every class, from realistic failures ------------------------------------
    const thrown = (label: string, run: () => unknown): void => {
      try {
        run();
        add(label, new Error(`${label}: did not throw`));
      } catch (error) {
        add(label, error);
      }
    };
    thrown('ProxyConfigError bad port', () => createEgress({ env: { https_proxy: `${httpsUrl.replace(/:\d+$/, '')}:99999` } }));
    thrown('ProxyConfigError socks', () => createEgress({ env: { https_proxy: httpsUrl.replace('http://', 'socks4://') } }));
    thrown('ProxyConfigError path', () => createEgress({ env: { http_proxy: `${httpsUrl}/path?q#f` } }));
    thrown('ProxyConfigError option', () => createEgress({ env: {}, httpsProxy: `${httpsUrl} ` }));
    thrown('ProxyConfigError no_proxy', () => createEgress({ env: { https_proxy: httpsUrl, no_proxy: '10.0.0.0/33' } }));
    thrown('ProxyConfigError unencoded', () => createEgress({ env: { https_proxy: `http://${CANARY_USER}:${CANARY_PASSWORD}@proxy:3128` } }));
    thrown('ProxyConfigError bad percent', () => createEgress({ env: { https_proxy: `http://${CANARY_USER}:${ENCODED_PASSWORD}%zz@proxy:3128` } }));
    thrown('InvalidUrlError route', () => egress.route('push', `ftp://${CANARY_USER}:${ENCODED_PASSWORD}@example.org/`));
    thrown('InvalidUrlError unparsable', () => egress.route('push', 'http://[oops/'));
    thrown('UnknownConnectionTypeError', () => egress.dispatcher('no_such_type'));
    thrown('HeaderInjectionError (constructed: no public path reaches it with CR/LF)', () => {
      throw new HeaderInjectionError('The CONNECT target');
    });

    const origin = `${httpsOrigin.url}/`;
    for (const error of await failures(egress.fetch('push', origin, { headers: { 'Proxy-Authorization': `Basic ${BASIC}` } }))) add('ForbiddenHeaderError', error);
    const wrongPassword = egressWith({ env: { https_proxy: authProxy.url.replace('://', `://${CANARY_USER}:wrong-${ENCODED_PASSWORD}@`), http_proxy: authProxy.url.replace('://', `://${CANARY_USER}:x@`) } });
    for (const error of await failures(wrongPassword.fetch('push', origin))) add('ProxyAuthenticationError CONNECT', error);
    for (const error of await failures(wrongPassword.fetch('push', `${httpOrigin.url}/`))) add('ProxyAuthenticationError forwarded', error);

    const rejecting = await createRecordingProxy({ fail: { connect: { status: 403 } } });
    const garbage = await createRecordingProxy({ fail: { connect: 'garbage' } });
    const resetting = await createRecordingProxy({ fail: { connect: 'reset' } });
    const hanging = await createRecordingProxy({ fail: { connect: 'hang' } });
    const closed = await createRecordingProxy();
    const closedUrl = closed.url;
    await closed.close();
    try {
      for (const [label, proxyUrl, klass] of [
        ['ProxyConnectError', rejecting.url, ProxyConnectError],
        ['ProxyProtocolError', garbage.url, ProxyProtocolError],
        ['ProxyUnreachableError reset', resetting.url, ProxyUnreachableError],
        ['ProxyUnreachableError timeout', hanging.url, ProxyUnreachableError],
        ['ProxyUnreachableError refused', closedUrl, ProxyUnreachableError],
        ['ProxyTlsError', withCanary(tlsProxy.url), ProxyTlsError],
      ] as const) {
        const failing = egressWith({ env: { https_proxy: withCanary(proxyUrl), http_proxy: withCanary(proxyUrl) }, connectTimeout: 300 });
        const [error] = await failures(failing.fetch('push', origin));
        assert.ok(error instanceof Error && error.cause instanceof klass, `${label}: ${String(error)} / ${String((error as Error).cause)}`);
        add(label, error);
        for (const e of await failures(failing.fetch('push', `${httpOrigin.url}/`, { signal: AbortSignal.timeout(500) }))) add(`${label} (forwarded)`, e);
        add(`${label} via https.Agent`, await agentFailure(https, failing.httpsAgent('push'), origin));
        add(`${label} via http.Agent`, await agentFailure(http, failing.agent('push'), `${httpOrigin.url}/`, { timeout: 500 }));
        add(`${label} egress`, failing);
        add(`${label} dispatcher`, failing.dispatcher('push'));
      }
    } finally {
      await Promise.all([rejecting.close(), garbage.close(), resetting.close(), hanging.close()]);
    }

    const blocking = egressWith({ env: { https_proxy: httpsUrl }, ipBlocklist: undefined });
    for (const error of await failures(blocking.fetch('push', origin))) add('BlockedDestinationError', error);
    add('BlockedDestinationError via agent', await agentFailure(https, blocking.httpsAgent('push'), origin));
    const untrustedOrigin = egressWith({ env: { https_proxy: httpsUrl }, ca: undefined });
    for (const error of await failures(untrustedOrigin.fetch('push', origin))) add('origin TLS error', error);
    add('HeaderInjection via agent (space in host)', await agentFailure(http, egress.agent('push'), `http://localhost:${String(httpOrigin.port)}/`, { host: 'ev il.invalid' }));
    const insecure = egressWith({ env: { https_proxy: httpsUrl }, useInsecureSslClientJustForTestingDoNotUse: true });
    add('insecure egress', insecure);
    const closedEgress = egressWith({ env: { https_proxy: httpsUrl } });
    await closedEgress.close();
    thrown('EgressClosedError', () => closedEgress.dispatcher('push'));
    for (const error of await failures(closedEgress.fetch('push', origin))) add('EgressClosedError fetch', error);

    // Every class was produced by the failures above.
    const errorClasses = [
      ProxyConfigError,
      InvalidUrlError,
      UnknownConnectionTypeError,
      ProxyConnectError,
      ProxyAuthenticationError,
      ProxyTlsError,
      ProxyUnreachableError,
      ProxyProtocolError,
      BlockedDestinationError,
      HeaderInjectionError,
      ForbiddenHeaderError,
      EgressClosedError,
    ];
    const causes = collected.flatMap(([, value]) => {
      const chain: unknown[] = [];
      for (let v: unknown = value, i = 0; v instanceof Error && i < 5; v = v.cause, i++) chain.push(v);
      return chain;
    });
    for (const klass of errorClasses) assert.ok(causes.some((value) => value instanceof klass), `no ${klass.name} was produced`);

    // --- log lines ---------------------------------------------------------------------------
    assert.ok(logLines.length > 0, 'the insecure switch logs a warning');
    for (const line of logLines) add('log line', line);

    // --- the grep ----------------------------------------------------------------------------
    // The grep itself finds what it looks for.
    for (const needle of NEEDLES) assert.ok(leaksIn('self-check', { nested: [needle] }).length > 0, needle);
    const leaks = collected.flatMap(([label, value]) => leaksIn(label, value));
    assert.deepEqual(leaks, [], `credentials leaked:\n${leaks.join('\n')}`);
    assert.ok(collected.length > 100, `only ${String(collected.length)} values were checked`);
  });

  it(
    'a plain-http request forwarded by egress.agent() does not carry the credentials where inspect prints them',
    async () => {
      const egress = egressWith({ env: { http_proxy: withCanary(authProxy.url) } });
      const { req, res } = await agentRequestOk(egress.agent('push'), `${httpOrigin.url}/agent`);
      assert.deepEqual([...leaksIn('request', req), ...leaksIn('response', res)], []);
    },
  );

  it(
    'an unparsable request URL with userinfo: InvalidUrlError keeps no unredacted copy (cause.input)',
    () => {
      const egress = egressWith({ env: {} });
      let error: unknown;
      try {
        egress.route('push', `http://${CANARY_USER}:${ENCODED_PASSWORD}@[oops/`);
      } catch (thrown) {
        error = thrown;
      }
      assert.ok(error instanceof InvalidUrlError);
      assert.deepEqual(leaksIn('InvalidUrlError', error), []);
    },
  );
});
