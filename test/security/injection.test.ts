/**
 * Hostile input (issue 8): CR, LF and NUL in proxy credentials, hosts, paths and header values are
 * refused — by our own checks (typed errors) or by undici / node:http before a byte is written —
 * and nothing of such a request reaches the proxy or the origin. Every proxy and origin record of
 * this file is checked at the end for a CR, LF or NUL that got onto the wire.
 *
 * The recording proxy only lets CONNECTs and forwarded requests through to loopback, so the names
 * used here never leave the machine.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';

import { createEgress, type Egress } from '../../src/egress.js';
import { HeaderInjectionError, InvalidUrlError, ProxyConfigError } from '../../src/errors.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../support/env.js';
import { withDeadline } from '../reliability/harness.js';

const CANARY_USER = 'cAnArY-uSeR';
const CANARY_PASSWORD = 'cAnArY-pAsS';

const BREAKS = ['\r\n', '\r', '\n', '\0'] as const;
const ENCODED_BREAKS = ['%0d%0a', '%0D%0A', '%0d', '%0a', '%00'] as const;

let restoreEnv: () => void;
let proxy: RecordingProxy;
let httpsOrigin: TestOrigin;
let httpOrigin: TestOrigin;
let egress: Egress;

before(async () => {
  restoreEnv = isolateProxyEnv();
  proxy = await createRecordingProxy({ allowTarget: (host) => host === '127.0.0.1' || host === 'localhost' });
  [httpsOrigin, httpOrigin] = await Promise.all([createTestOrigin({ tls: true }), createTestOrigin()]);
  egress = createEgress({ env: { https_proxy: proxy.url, http_proxy: proxy.url }, ca: httpsOrigin.ca, ipBlocklist: [] });
});

after(async () => {
  await egress.close();
  await Promise.all([proxy.close(), httpsOrigin.close(), httpOrigin.close()]);
  restoreEnv();
});

const visible = (text: string): string => JSON.stringify(text);

/** Run `attempt`, which must throw or reject with an error `accepted` approves, and check nothing went out. */
async function refusedBeforeTheWire(what: string, attempt: () => Promise<unknown>, accepted: (error: unknown) => boolean): Promise<void> {
  const proxyCalls = proxy.calls().length;
  const proxyConnections = proxy.connections;
  const originCalls = httpsOrigin.calls().length + httpOrigin.calls().length;
  let caught: unknown;
  let settled = false;
  try {
    const result = await withDeadline(attempt(), 5_000, what);
    settled = true;
    const status = (result as { statusCode?: unknown; status?: unknown } | null)?.statusCode ?? (result as { status?: unknown } | null)?.status;
    caught = new Error(`accepted (status ${String(status)})`);
  } catch (error) {
    caught = error;
  }
  assert.ok(!settled && accepted(caught), `${what}: unexpected ${String(caught)}${caught instanceof Error && caught.cause instanceof Error ? ` (cause ${caught.cause.message})` : ''}`);
  await sleep(5);
  assert.equal(proxy.calls().length, proxyCalls, `${what}: a request reached the proxy`);
  assert.equal(proxy.connections, proxyConnections, `${what}: a connection reached the proxy`);
  assert.equal(httpsOrigin.calls().length + httpOrigin.calls().length, originCalls, `${what}: a request reached an origin`);
}

function codeOf(error: unknown): string {
  const direct = (error as { code?: unknown } | null)?.code;
  if (typeof direct === 'string') return direct;
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause?.code;
  return typeof cause === 'string' ? cause : '';
}

const undiciInvalidArgument = (error: unknown): boolean => codeOf(error) === 'UND_ERR_INVALID_ARG';
const typeErrorOrInvalidUrl = (error: unknown): boolean =>
  error instanceof TypeError || error instanceof InvalidUrlError || (error as { cause?: unknown }).cause instanceof InvalidUrlError;

function dispatcher(): Dispatcher {
  return egress.dispatcher('push');
}

describe('credentials with CR, LF or NUL', () => {
  const values: string[] = [];
  for (const bad of [...ENCODED_BREAKS, ...BREAKS]) {
    values.push(`http://${CANARY_USER}${bad}x:${CANARY_PASSWORD}@127.0.0.1:3128`);
    values.push(`http://${CANARY_USER}:${CANARY_PASSWORD}${bad}Proxy-Authorization:%20x@127.0.0.1:3128`);
  }

  for (const value of values) {
    it(`${visible(value.replace(CANARY_PASSWORD, '…'))} → ProxyConfigError at construction, credentials not echoed`, () => {
      for (const options of [
        { env: { https_proxy: value } },
        { env: { HTTP_PROXY: value } },
        { env: {}, httpsProxy: value },
        { env: {}, httpProxy: value },
      ]) {
        let error: unknown;
        try {
          createEgress(options);
        } catch (thrown) {
          error = thrown;
        }
        assert.ok(error instanceof ProxyConfigError, `${JSON.stringify(Object.keys(options))}: ${String(error)}`);
        const text = `${error.message}\n${String(error.stack)}\n${String(error.value)}`;
        assert.ok(!text.includes(CANARY_PASSWORD) && !text.includes(CANARY_USER), `credentials echoed: ${text}`);
      }
    });
  }
});

describe('hosts with CR, LF or NUL', () => {
  for (const bad of ENCODED_BREAKS) {
    for (const scheme of ['https', 'http'] as const) {
      it(`fetch ${scheme}://ev${bad}il/ → invalid URL, nothing sent`, async () => {
        await refusedBeforeTheWire(`fetch host ${bad}`, () => egress.fetch('push', `${scheme}://ev${bad}il.invalid/`), typeErrorOrInvalidUrl);
      });
    }
  }

  it('a NUL in a dispatcher origin → InvalidUrlError, nothing sent', async () => {
    for (const origin of ['https://ev\0il.invalid', 'http://ev\0il.invalid:8080']) {
      await refusedBeforeTheWire(`origin ${visible(origin)}`, () => dispatcher().request({ origin, path: '/', method: 'GET' }), typeErrorOrInvalidUrl);
    }
  });

  it('raw CR/LF in a URL host are removed by the URL parser (WHATWG) before routing: never on the wire', async () => {
    // `https://ev\r\nil.invalid/` is `https://evil.invalid/` for every WHATWG parser; the proxy refuses
    // the (non-loopback) target, and what it received holds no CR or LF.
    const before = proxy.calls().length;
    for (const origin of [httpsOrigin, httpOrigin]) {
      const url = `${origin.protocol}//ev\r\nil.invalid:${String(origin.port)}/`;
      try {
        const response = await egress.fetch('push', url);
        assert.equal(response.status, 403);
        await response.body?.cancel();
      } catch (error) {
        assert.match(codeOf(error), /ERR_EGRESS_PROXY_CONNECT/);
      }
    }
    const seen = proxy.calls().slice(before);
    assert.equal(seen.length, 2);
    for (const call of seen) assert.equal(call.host, 'evil.invalid');
  });

  for (const host of ['127.0.0.1\0', '127.0.0.1\r\nX-Injected: 1', 'ev\0il.invalid']) {
    it(`connectTo.host ${visible(host)} → InvalidUrlError, nothing sent`, async () => {
      await refusedBeforeTheWire(
        'connectTo',
        () => egress.fetch('federation', 'https://localhost/', { connectTo: { host, port: httpsOrigin.port } }),
        typeErrorOrInvalidUrl,
      );
    });
  }

  it(
    // new URL() would silently turn "ev\r\nil" into "evil"; an explicit host field is refused instead.
    'connectTo.host with a bare CR/LF inside a name → InvalidUrlError, nothing sent',
    async () => {
      await refusedBeforeTheWire(
        'connectTo',
        () => egress.fetch('federation', 'https://localhost/', { connectTo: { host: 'ev\r\nil.invalid', port: httpsOrigin.port } }),
        typeErrorOrInvalidUrl,
      );
    },
  );

  for (const [name, module, agent, origin] of [
    ['https.Agent', https, () => egress.httpsAgent('push'), () => httpsOrigin],
    ['http.Agent', http, () => egress.agent('push'), () => httpOrigin],
  ] as const) {
    for (const host of ['127.0.0.1\r\nX-Injected: 1', 'ev\0il.invalid']) {
      it(`${name}: host ${visible(host)} → node:http refuses it, nothing sent`, async () => {
        await refusedBeforeTheWire(
          `${name} host`,
          () =>
            new Promise((resolve, reject) => {
              const req = module.request({ host, port: origin().port, path: '/', agent: agent() }, resolve);
              req.on('error', reject);
              req.end();
            }),
          (error) => codeOf(error) === 'ERR_INVALID_CHAR' || error instanceof HeaderInjectionError || error instanceof InvalidUrlError,
        );
      });
    }
  }
});

describe('paths with CR, LF, NUL or other bytes a request line cannot hold', () => {
  const badPaths = ['/a\r\nX-Injected: 1', '/a\rb', '/a\nb', '/a\0b', '/a b', '/a\tb'];
  for (const origin of ['https', 'http'] as const) {
    it(`${origin}: dispatcher.request refuses each (undici InvalidArgumentError), nothing sent`, async () => {
      for (const path of badPaths) {
        const base = origin === 'https' ? httpsOrigin.url : httpOrigin.url;
        await refusedBeforeTheWire(`path ${visible(path)}`, () => dispatcher().request({ origin: base, path, method: 'GET' }), undiciInvalidArgument);
      }
    });
  }

  it('fetch: raw CR/LF are removed by the URL parser and %0d%0a stays encoded, byte-exact', async () => {
    for (const origin of [httpsOrigin, httpOrigin]) {
      const raw = await egress.fetch('push', `${origin.url}/a\r\nX-Injected:%201`);
      await raw.arrayBuffer();
      assert.equal(origin.lastCall()?.url, '/aX-Injected:%201');
      const encoded = await egress.fetch('push', `${origin.url}/a%0d%0aX-Injected:%201`);
      await encoded.arrayBuffer();
      assert.equal(origin.lastCall()?.url, '/a%0d%0aX-Injected:%201');
      assert.equal(origin.lastCall()?.headers['x-injected'], undefined);
    }
  });

  for (const [name, module, agent, origin] of [
    ['https.Agent', https, () => egress.httpsAgent('push'), () => httpsOrigin],
    ['http.Agent', http, () => egress.agent('push'), () => httpOrigin],
  ] as const) {
    it(`${name}: a path with CR/LF → node:http refuses it, nothing sent`, async () => {
      await refusedBeforeTheWire(
        `${name} path`,
        () =>
          new Promise((resolve, reject) => {
            const req = module.request({ host: '127.0.0.1', port: origin().port, path: '/a\r\nX-Injected: 1', agent: agent() }, resolve);
            req.on('error', reject);
            req.end();
          }),
        (error) => codeOf(error) === 'ERR_UNESCAPED_CHARACTERS',
      );
    });
  }

  it('http.Agent: a forwarded path that does not start with "/" → InvalidUrlError, nothing sent', async () => {
    for (const path of [`@127.0.0.1:${String(httpOrigin.port)}/x`, '.evil.invalid/', ':1/x', 'x']) {
      await refusedBeforeTheWire(
        `agent path ${visible(path)}`,
        () =>
          new Promise((resolve, reject) => {
            const req = http.request({ host: 'localhost', port: httpOrigin.port, path, agent: egress.agent('push') }, resolve);
            req.on('error', reject);
            req.end();
          }),
        (error) => error instanceof InvalidUrlError,
      );
    }
  });

  it(
    // The absolute-form target is origin + path: "@127.0.0.1:port/x" or ".evil.example/" would send the
    // proxy to another host than the one routed and checked (blocklist, no_proxy).
    'dispatcher, forwarded http: a path that does not start with "/" is refused, nothing sent',
    async () => {
      for (const path of [`@127.0.0.1:${String(httpOrigin.port)}/x`, '.evil.invalid/', `:${String(httpOrigin.port)}/x`, 'x']) {
        await refusedBeforeTheWire(
          `forwarded path ${visible(path)}`,
          () => dispatcher().request({ origin: 'http://localhost', path, method: 'GET' }),
          (error) => undiciInvalidArgument(error) || error instanceof InvalidUrlError,
        );
      }
    },
  );
});

describe('header names and values with CR, LF or NUL', () => {
  const badHeaders: readonly Record<string, string>[] = [
    { 'x-a': 'b\r\nX-Injected: 1' },
    { 'x-a': 'b\nc' },
    { 'x-a': 'b\rc' },
    { 'x-a': 'b\0c' },
    { 'x-a\r\nX-Injected': 'b' },
    { host: 'localhost\r\nX-Injected: 1' },
  ];
  for (const scheme of ['https', 'http'] as const) {
    it(`${scheme}: dispatcher.request and fetch refuse each, nothing sent`, async () => {
      const base = scheme === 'https' ? httpsOrigin.url : httpOrigin.url;
      for (const headers of badHeaders) {
        await refusedBeforeTheWire(`dispatcher headers ${visible(JSON.stringify(headers))}`, () => dispatcher().request({ origin: base, path: '/', method: 'GET', headers }), (error) =>
          undiciInvalidArgument(error) || error instanceof HeaderInjectionError,
        );
        await refusedBeforeTheWire(`fetch headers ${visible(JSON.stringify(headers))}`, () => egress.fetch('push', `${base}/`, { headers }), (error) => error instanceof TypeError);
      }
    });
  }

  for (const [name, module, agent, origin] of [
    ['https.Agent', https, () => egress.httpsAgent('push'), () => httpsOrigin],
    ['http.Agent', http, () => egress.agent('push'), () => httpOrigin],
  ] as const) {
    it(`${name}: node:http refuses each, nothing sent`, async () => {
      for (const headers of badHeaders) {
        await refusedBeforeTheWire(
          `${name} headers ${visible(JSON.stringify(headers))}`,
          () =>
            new Promise((resolve, reject) => {
              const req = module.request({ host: '127.0.0.1', port: origin().port, path: '/', headers, agent: agent() }, resolve);
              req.on('error', reject);
              req.end();
            }),
          (error) => ['ERR_INVALID_CHAR', 'ERR_INVALID_HTTP_TOKEN'].includes(codeOf(error)),
        );
      }
    });
  }
});

describe('the wire', () => {
  it('no CR, LF or NUL reached the proxy or an origin in any request of this file', () => {
    const clean = (text: string): boolean => !/[\r\n\0]/.test(text);
    for (const call of proxy.calls()) {
      assert.ok(clean(call.target) && call.rawHeaders.every(clean), `proxy call ${visible(call.target)} ${visible(call.rawHeaders.join('|'))}`);
    }
    for (const call of [...httpsOrigin.calls(), ...httpOrigin.calls()]) {
      assert.ok(clean(call.url) && call.rawHeaders.every(clean), `origin call ${visible(call.url)}`);
    }
    assert.ok(proxy.calls().length > 0 && httpsOrigin.calls().length + httpOrigin.calls().length > 0, 'the checks above saw traffic');
  });
});
