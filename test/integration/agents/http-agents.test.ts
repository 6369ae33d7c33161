// The http.Agent side of createEgress, driven by node:http and node:https clients through the
// recording proxy and test origins. Real sockets on loopback only; TLS is always verified.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import * as https from 'node:https';
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';

import { createEgress, type Egress } from '../../../src/egress.js';
import type { EgressOptions } from '../../../src/config/compile.js';
import {
  BlockedDestinationError,
  EgressClosedError,
  ForbiddenHeaderError,
  InvalidUrlError,
  ProxyAuthenticationError,
  ProxyConnectError,
  ProxyTlsError,
  ProxyUnreachableError,
  isEgressError,
} from '../../../src/errors.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../../../src/policy/connection-types.js';
import { createTestCertificateAuthority } from '../../../src/testing/certificates.js';
import { createRecordingProxy, type RecordingProxy } from '../../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { isolateProxyEnv } from '../../support/env.js';

const CANARY_USER = 'canary-user';
const CANARY_PASSWORD = 'canary-pw-5521';
const CANARY_BASIC = Buffer.from(`${CANARY_USER}:${CANARY_PASSWORD}`).toString('base64');
/** The test servers live on loopback, which the default IP blocklist refuses (SPEC §8). */
const ALLOW_LOOPBACK = { ipAllowlist: ['127.0.0.0/8', '::1'] } as const;

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly headers: http.IncomingHttpHeaders;
}

/** One request through `agent`; resolves with the response or rejects with the request's 'error'. */
function send(
  client: typeof http | typeof https,
  options: https.RequestOptions,
  configure?: (req: http.ClientRequest) => void,
): Promise<Reply> {
  return new Promise<Reply>((resolve, reject) => {
    const req = client.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers });
      });
    });
    req.on('error', reject);
    configure?.(req);
    req.end();
  });
}

/** Options for a GET of `path` on `origin` (host and port from the origin, path byte-exact). */
function at(origin: TestOrigin, path: string, agent: http.Agent, extra: https.RequestOptions = {}): https.RequestOptions {
  return { host: origin.host, port: origin.port, path, agent, ...extra };
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof Error, 'rejects with an Error');
    return error;
  }
  assert.fail('expected the request to fail');
}

async function canListen(host: string): Promise<boolean> {
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, host, resolve);
    });
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

describe('egress http.Agents', () => {
  let restoreEnv: () => void;
  let proxy: RecordingProxy;
  let httpsOrigin: TestOrigin;
  let httpOrigin: TestOrigin;
  let egress: Egress;
  const extra: Egress[] = [];

  /** An egress closed after the suite. */
  function egressWith(options: EgressOptions): Egress {
    const made = createEgress({ ...ALLOW_LOOPBACK, ...options });
    extra.push(made);
    return made;
  }

  before(async () => {
    restoreEnv = isolateProxyEnv();
    proxy = await createRecordingProxy({ auth: { username: CANARY_USER, password: CANARY_PASSWORD } });
    httpsOrigin = await createTestOrigin({ tls: true });
    httpOrigin = await createTestOrigin();
    const withCredentials = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
    egress = createEgress({ ...ALLOW_LOOPBACK, env: { https_proxy: withCredentials, http_proxy: withCredentials }, ca: httpsOrigin.ca });
  });

  after(async () => {
    await Promise.all([egress.close(), ...extra.map((made) => made.close())]);
    await Promise.all([proxy.close(), httpsOrigin.close(), httpOrigin.close()]);
    restoreEnv();
  });

  describe('https through the proxy', () => {
    it('opens a CONNECT with credentials; the origin sees TLS and no Proxy-Authorization', async () => {
      const local = egressWith({ env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: httpsOrigin.ca });
      proxy.clear();
      httpsOrigin.clear();
      const reply = await send(https, at(httpsOrigin, '/_matrix/push/v1/notify', local.httpsAgent('push')));
      assert.equal(reply.status, 200);
      const [connect, ...others] = proxy.calls();
      assert.equal(others.length, 0, 'one call to the proxy');
      assert.equal(connect?.method, 'CONNECT');
      assert.equal(connect.target, `127.0.0.1:${String(httpsOrigin.port)}`);
      assert.equal(connect.headers.host, `127.0.0.1:${String(httpsOrigin.port)}`);
      assert.equal(connect.headers['proxy-authorization'], `Basic ${CANARY_BASIC}`);
      const seen = httpsOrigin.lastCall();
      assert.equal(seen?.url, '/_matrix/push/v1/notify');
      assert.equal(seen.headers['proxy-authorization'], undefined);
      assert.equal(seen.servername, undefined, 'no SNI for an IP literal');
    });

    it('brackets an IPv6 target in CONNECT', async (t) => {
      if (!(await canListen('::1'))) {
        t.skip('IPv6 loopback is not available');
        return;
      }
      const origin6 = await createTestOrigin({ host: '::1', tls: true });
      try {
        const local = egressWith({ env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: origin6.ca });
        proxy.clear();
        const reply = await send(https, at(origin6, '/v6', local.httpsAgent('media')));
        assert.equal(reply.status, 200);
        const connect = proxy.lastCall();
        assert.equal(connect?.method, 'CONNECT');
        assert.equal(connect.target, `[::1]:${String(origin6.port)}`);
        assert.equal(connect.headers.host, `[::1]:${String(origin6.port)}`);
        assert.equal(origin6.lastCall()?.url, '/v6');
      } finally {
        await origin6.close();
      }
    });

    it('validates an IP-literal origin against its own address, not the proxy host or "localhost"', async () => {
      // Without a servername, Node checks the certificate against the socket's host; inside a tunnel
      // that is the proxy's socket ("localhost" when the proxy is an IP literal).
      const authority = createTestCertificateAuthority({ commonName: 'IP literal test CA' });
      for (const [hosts, ok] of [[['127.0.0.1'], true], [['localhost'], false]] as const) {
        const leaf = authority.issue({ hosts });
        const server = await createTestOrigin({ tls: { cert: leaf.cert, key: leaf.key } });
        try {
          const local = egressWith({ env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: authority.cert });
          const attempt = send(https, at(server, '/ip-literal', local.httpsAgent('push')));
          if (ok) {
            assert.equal((await attempt).status, 200, `certificate for ${hosts.join()}`);
          } else {
            const error = await failure(attempt);
            assert.equal((error as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID', `certificate for ${hosts.join()}`);
          }
        } finally {
          await server.close();
        }
      }
    });

    it('sends the request target byte-exact inside the tunnel', async () => {
      httpsOrigin.clear();
      const reply = await send(https, at(httpsOrigin, '/a%2Fb/../c/%25zz/./d?x=%2F', egress.httpsAgent('media')));
      assert.equal(reply.status, 200);
      assert.equal(httpsOrigin.lastCall()?.url, '/a%2Fb/../c/%25zz/./d?x=%2F');
    });

    it('keeps the tunnel alive: sequential requests share one CONNECT', async () => {
      const local = egressWith({ env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: httpsOrigin.ca });
      const agent = local.httpsAgent('push');
      const tunnelsBefore = proxy.tunnelsOpened;
      httpsOrigin.clear();
      for (const path of ['/one', '/two', '/three']) {
        assert.equal((await send(https, at(httpsOrigin, path, agent))).status, 200);
      }
      assert.equal(proxy.tunnelsOpened - tunnelsBefore, 1);
      const connections = new Set(httpsOrigin.calls().map((call) => call.connectionId));
      assert.equal(connections.size, 1, 'the origin saw one connection');
    });

    it('federation: tunnels to the resolved host:port and validates TLS, SNI and Host for the server name', async () => {
      const authority = createTestCertificateAuthority({ commonName: 'federation test CA' });
      const leaf = authority.issue({ hosts: ['matrix.test'] });
      const server = await createTestOrigin({ tls: { cert: leaf.cert, key: leaf.key, ca: authority.cert } });
      try {
        const options = (agent: http.Agent): https.RequestOptions =>
          at(server, '/_matrix/federation/v1/version', agent, { servername: 'matrix.test', headers: { host: 'matrix.test' } });
        // no_proxy names the server name, but the connection goes to 127.0.0.1: still proxied.
        const proxyUrl = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
        const proxied = egressWith({ env: { https_proxy: proxyUrl, no_proxy: 'matrix.test' }, ca: authority.cert });
        proxy.clear();
        const reply = await send(https, options(proxied.httpsAgent('federation')));
        assert.equal(reply.status, 200);
        assert.equal(proxy.lastCall()?.target, `127.0.0.1:${String(server.port)}`);
        let seen = server.lastCall();
        assert.equal(seen?.servername, 'matrix.test');
        assert.equal(seen.headers.host, 'matrix.test');

        // no_proxy names the connect host: direct, with the same validation.
        const direct = egressWith({ env: { https_proxy: proxyUrl, no_proxy: '127.0.0.1' }, ca: authority.cert });
        proxy.clear();
        assert.equal((await send(https, options(direct.httpsAgent('federation')))).status, 200);
        assert.equal(proxy.calls().length, 0);
        seen = server.lastCall();
        assert.equal(seen?.servername, 'matrix.test');
        assert.equal(seen.headers.host, 'matrix.test');

        // Without the server name, the certificate (for matrix.test only) does not match 127.0.0.1.
        const error = await failure(send(https, at(server, '/', proxied.httpsAgent('federation'))));
        assert.equal((error as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      } finally {
        await server.close();
      }
    });

    it('fails on an origin certificate that does not validate, behind the proxy', async () => {
      const stranger = createTestCertificateAuthority({ commonName: 'untrusted origin CA' });
      const leaf = stranger.issue({ hosts: ['127.0.0.1'] });
      const server = await createTestOrigin({ tls: { cert: leaf.cert, key: leaf.key } });
      try {
        proxy.clear();
        const error = await failure(send(https, at(server, '/', egress.httpsAgent('push'))));
        assert.equal((error as NodeJS.ErrnoException).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
        assert.equal(isEgressError(error), false, 'an origin TLS failure is not blamed on the proxy');
        assert.equal(proxy.lastCall()?.method, 'CONNECT', 'the tunnel was opened');
        assert.equal(server.calls().length, 0);
      } finally {
        await server.close();
      }
    });
  });

  describe('http through the proxy', () => {
    it('forwards in absolute form, byte-exact, with Proxy-Authorization for the proxy only', async () => {
      proxy.clear();
      httpOrigin.clear();
      const path = '/a%2Fb/../c/%25zz/./d?x=%2F';
      const reply = await send(http, at(httpOrigin, path, egress.agent('url_preview')));
      assert.equal(reply.status, 200);
      const forwarded = proxy.lastCall();
      assert.equal(forwarded?.method, 'GET');
      assert.equal(forwarded.target, `http://127.0.0.1:${String(httpOrigin.port)}${path}`);
      assert.equal(forwarded.headers['proxy-authorization'], `Basic ${CANARY_BASIC}`);
      assert.equal(proxy.filterCalls({ method: 'CONNECT' }).length, 0);
      const seen = httpOrigin.lastCall();
      assert.equal(seen?.url, path);
      assert.equal(seen.headers['proxy-authorization'], undefined);
    });

    it('rewrites requests whose head is rendered early (headers as an array)', async () => {
      proxy.clear();
      const reply = await send(http, {
        host: httpOrigin.host,
        port: httpOrigin.port,
        path: '/array/../x',
        agent: egress.agent('push'),
        headers: ['Host', `127.0.0.1:${String(httpOrigin.port)}`, 'X-Test', 'yes'],
      });
      assert.equal(reply.status, 200);
      const forwarded = proxy.lastCall();
      assert.equal(forwarded?.target, `http://127.0.0.1:${String(httpOrigin.port)}/array/../x`);
      assert.equal(forwarded.authenticated, true);
      assert.equal(httpOrigin.lastCall()?.headers['x-test'], 'yes');
    });

    it('keeps the proxy connection alive and authenticates every request on it, across origins', async () => {
      const other = await createTestOrigin();
      try {
        const local = egressWith({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) } });
        const agent = local.agent('push');
        proxy.clear();
        const connectionsBefore = proxy.connections;
        for (const [origin, path] of [[httpOrigin, '/1'], [httpOrigin, '/2'], [other, '/3']] as const) {
          assert.equal((await send(http, at(origin, path, agent))).status, 200);
        }
        assert.equal(proxy.connections - connectionsBefore, 1, 'one connection to the proxy');
        const calls = proxy.calls();
        assert.equal(calls.length, 3);
        assert.ok(calls.every((call) => call.authenticated && call.connectionId === calls[0]?.connectionId));
        assert.equal(calls[2]?.target, `http://127.0.0.1:${String(other.port)}/3`);
      } finally {
        await other.close();
      }
    });

    it("a forwarded request's socket behaves as one: req.setTimeout fires, remote address is the proxy's", async () => {
      const slow = await createTestOrigin({
        handler: async (_req, res) => {
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          res.end('late');
        },
      });
      try {
        const local = egressWith({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) } });
        let remotePort: number | undefined;
        const started = Date.now();
        const error = await failure(
          new Promise((resolve, reject) => {
            const req = http.request(at(slow, '/slow', local.httpAgent('push')), resolve);
            req.on('socket', (socket) => {
              setImmediate(() => (remotePort = socket.remotePort));
            });
            req.setTimeout(100, () => req.destroy(new Error('idle timeout')));
            req.on('error', reject);
            req.end();
          }),
        );
        assert.equal(error.message, 'idle timeout');
        assert.ok(Date.now() - started < 900, 'the idle timeout fired before the origin answered');
        assert.equal(remotePort, proxy.port);
      } finally {
        await slow.close();
      }
    });

    it('fails a forwarded request on 407 with ProxyAuthenticationError, never a response', async () => {
      const local = egressWith({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, 'wrong-password') } });
      let responded = false;
      const error = await failure(
        new Promise((resolve, reject) => {
          const req = http.request(at(httpOrigin, '/secret', local.agent('push')), () => {
            responded = true;
            resolve(undefined);
          });
          req.on('error', reject);
          req.end();
        }),
      );
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
      assert.equal(error.code, 'ERR_EGRESS_PROXY_AUTH');
      assert.equal(error.realm, 'matrix-egress-test');
      assert.equal(responded, false);
      assert.ok(!error.message.includes('wrong-password'));
    });
  });

  describe('Proxy-Authorization of forwarded requests: on the wire, never in the ClientRequest', () => {
    /** A fake request line at the start of a body: it must reach the origin byte for byte. */
    const FAKE_LINE = 'GET http://x/ HTTP/1.1\r\n';
    const received: Buffer[] = [];
    let capturing: TestOrigin;

    before(async () => {
      capturing = await createTestOrigin({
        handler: (req, res) => {
          const chunks: Buffer[] = [];
          req.on('data', (chunk: Buffer) => chunks.push(chunk));
          req.on('end', () => {
            received.push(Buffer.concat(chunks));
            res.end('ok');
          });
        },
      });
    });
    after(async () => {
      await capturing.close();
    });

    /** A shape of request node:http callers produce, forwarded by the proxy. */
    interface Shape {
      readonly label: string;
      readonly method: string;
      readonly headers: http.OutgoingHttpHeaders | string[];
      /** What is sent and what the origin must receive, given the request line set for this very request. */
      readonly body: (ownLine: string) => Buffer;
      /** Writes (and ends) the request; called right after http.request() returns. */
      readonly drive: (req: http.ClientRequest, body: Buffer) => void;
    }
    const host = (): string => `127.0.0.1:${String(capturing.port)}`;
    const none = (): Buffer => Buffer.alloc(0);
    const shapes: readonly Shape[] = [
      { label: 'a GET with object headers', method: 'GET', headers: { 'X-Shape': 'object' }, body: none, drive: (req) => req.end() },
      { label: 'a GET with array headers (head rendered early)', method: 'GET', headers: ['X-Shape', 'array'], body: none, drive: (req) => req.end() },
      {
        label: 'a POST with Expect: 100-continue (head rendered and queued in the constructor, body after 100)',
        method: 'POST',
        headers: { Expect: '100-continue', 'Content-Type': 'text/plain' },
        body: () => Buffer.from(`${FAKE_LINE}after continue`),
        drive: (req, body) => {
          req.on('continue', () => req.end(body));
          req.flushHeaders();
        },
      },
      {
        label: 'a POST with array headers and Expect: 100-continue',
        method: 'POST',
        headers: ['Expect', '100-continue', 'Content-Type', 'text/plain'],
        body: (own) => Buffer.from(`${own}${FAKE_LINE}`),
        drive: (req, body) => {
          req.on('continue', () => req.end(body));
        },
      },
      {
        label: 'a POST whose string body begins with a request line (one chunk with the head, utf8)',
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: () => Buffer.from(`${FAKE_LINE}Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\r\ncafé`),
        drive: (req, body) => req.end(body.toString('utf8')),
      },
      {
        label: 'a POST whose Buffer chunks, written before a socket is bound, begin with request lines (one writev)',
        method: 'POST',
        headers: ['Content-Type', 'application/octet-stream'],
        body: (own) => Buffer.from(`${FAKE_LINE}${own}tail`),
        drive: (req, body) => {
          req.write(body.subarray(0, FAKE_LINE.length));
          req.write(body.subarray(FAKE_LINE.length));
          req.end();
        },
      },
      {
        label: 'a POST whose body, written after the head went out, begins with its own request line',
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: (own) => Buffer.from(`${own}${own}tail`),
        drive: (req, body) => {
          req.setHeader('Content-Length', body.length);
          req.flushHeaders();
          req.once('socket', () => {
            setImmediate(() => req.end(body));
          });
        },
      },
      {
        label: "a POST written from a 'socket' listener that runs first",
        method: 'POST',
        headers: { 'Content-Type': 'text/plain' },
        body: (own) => Buffer.from(`${own}from the socket event`),
        drive: (req, body) => {
          req.prependListener('socket', () => {
            req.write(body.subarray(0, 5));
            req.end(body.subarray(5));
          });
        },
      },
    ];

    /** The request line the agent sets for `path` on the capturing origin. */
    const lineOf = (method: string, path: string): string => `${method} http://${host()}${path} HTTP/1.1\r\n`;

    /** One request of `shape` to the capturing origin; the response read to its end. */
    function exchange(agent: http.Agent, path: string, shape: Shape, extraHeaders: readonly string[] = []): Promise<{ req: http.ClientRequest; res: http.IncomingMessage; body: Buffer }> {
      const body = shape.body(lineOf(shape.method, path));
      const headers = Array.isArray(shape.headers)
        ? ['Host', host(), ...shape.headers, ...extraHeaders]
        : { ...shape.headers, ...Object.fromEntries(extraHeaders.flatMap((value, i, all) => (i % 2 === 0 ? [[value, all[i + 1]]] : []))) };
      return new Promise((resolve, reject) => {
        const req = http.request({ host: capturing.host, port: capturing.port, path, method: shape.method, headers, agent }, (res) => {
          res.resume();
          res.on('error', reject);
          res.on('end', () => {
            resolve({ req, res, body });
          });
        });
        req.on('error', reject);
        shape.drive(req, body);
      });
    }

    function assertNoCredentials(label: string, value: unknown): void {
      for (const printed of [inspect(value, { showHidden: true, depth: Infinity }), inspect(value)]) {
        for (const needle of [CANARY_BASIC, CANARY_PASSWORD, CANARY_USER]) assert.ok(!printed.includes(needle), `${label} shows ${needle}`);
      }
    }

    for (const shape of shapes) {
      it(`${shape.label}: credentials reach the proxy on a fresh and a reused socket; the origin gets the body unchanged`, async () => {
        const local = egressWith({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) } });
        const agent = local.agent('push');
        proxy.clear();
        capturing.clear();
        received.length = 0;
        const connectionsBefore = proxy.connections;
        const sockets: unknown[] = [];
        const sent: Buffer[] = [];
        for (const path of ['/fresh', '/reused']) {
          const { req, res, body } = await exchange(agent, path, shape);
          sockets.push(req.socket);
          sent.push(body);
          assert.equal(res.statusCode, 200, `${path}: answered by the origin`);
          assertNoCredentials(`${path}: the request`, req);
          assertNoCredentials(`${path}: the response`, res);
          assertNoCredentials(`${path}: the socket`, req.socket);
          assert.equal(JSON.stringify((req as unknown as { _header: unknown })._header).includes(CANARY_BASIC), false);
          assert.equal(req.getHeader('proxy-authorization'), undefined);
        }
        assert.equal(sockets[0], sockets[1], 'the second request reused the socket');
        assert.equal(proxy.connections - connectionsBefore, 1, 'one connection to the proxy');
        const calls = proxy.calls();
        assert.deepEqual(
          calls.map((call) => call.target),
          ['/fresh', '/reused'].map((path) => `http://${host()}${path}`),
        );
        for (const call of calls) {
          assert.equal(call.method, shape.method);
          assert.equal(call.authenticated, true, call.target);
          assert.equal(call.connectionId, calls[0]?.connectionId);
          // Once, right after the request line.
          assert.deepEqual(call.rawHeaders.slice(0, 2), ['Proxy-Authorization', `Basic ${CANARY_BASIC}`]);
          assert.equal(call.rawHeaders.filter((name, i) => i % 2 === 0 && name.toLowerCase() === 'proxy-authorization').length, 1);
        }
        assert.deepEqual(
          capturing.calls().map((call) => [call.url, call.headers['proxy-authorization']]),
          [['/fresh', undefined], ['/reused', undefined]],
        );
        assert.deepEqual(received, sent, 'the origin got both bodies byte for byte');
      });
    }

    it('the bytes on the wire: Proxy-Authorization once after each request line, bodies untouched, one keep-alive socket', async () => {
      // A "proxy" that records the raw bytes and answers every request itself.
      const raw: Buffer[] = [];
      let connections = 0;
      const wire = http.createServer((req, res) => {
        req.resume();
        req.on('end', () => res.end('ok'));
      });
      wire.on('connection', (socket: net.Socket) => {
        connections += 1;
        socket.on('data', (chunk: Buffer) => raw.push(chunk));
      });
      await new Promise<void>((resolve) => wire.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = wire.address() as net.AddressInfo;
        const local = egressWith({ env: { http_proxy: `http://${CANARY_USER}:${CANARY_PASSWORD}@127.0.0.1:${String(port)}` } });
        const agent = local.agent('push');
        const expected: Buffer[] = [];
        for (const [i, shape] of shapes.entries()) {
          const path = `/shape-${String(i)}`;
          // Content-Length rather than chunked, so that the body is on the wire as it was written.
          const length = shape.body(lineOf(shape.method, path)).length;
          const { req, body } = await exchange(agent, path, shape, shape.method === 'POST' ? ['Content-Length', String(length)] : []);
          // The ClientRequest keeps the head node:http rendered (origin form, no credentials); the
          // ForwardingSocket rewrites its request line on the way out.
          const head = (req as unknown as { _header: string })._header;
          const originLine = `${shape.method} ${path} HTTP/1.1\r\n`;
          assert.ok(head.startsWith(originLine), head);
          assert.equal(req.path, path);
          assert.ok(!head.includes(CANARY_BASIC));
          const line = lineOf(shape.method, path);
          expected.push(Buffer.from(`${line}Proxy-Authorization: Basic ${CANARY_BASIC}\r\n${head.slice(originLine.length)}`, 'latin1'), body);
        }
        assert.equal(connections, 1, 'one connection carried every request');
        assert.equal(Buffer.concat(raw).toString('latin1'), Buffer.concat(expected).toString('latin1'));
      } finally {
        wire.closeAllConnections();
        await new Promise((resolve) => wire.close(resolve));
      }
    });

    it('util.inspect of the request, its socket and the agent shows no credentials mid-request', async () => {
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      const slow = await createTestOrigin({
        handler: async (req, res) => {
          req.resume();
          await held;
          res.end('late');
        },
      });
      try {
        const agent = egress.agent('push');
        const req = http.request({ ...at(slow, '/slow', agent), method: 'POST', headers: ['Host', `${slow.host}:${String(slow.port)}`, 'Expect', '100-continue'] });
        const answered = new Promise<http.IncomingMessage>((resolve, reject) => {
          req.on('response', resolve);
          req.on('error', reject);
        });
        req.on('continue', () => req.end(FAKE_LINE));
        req.flushHeaders();
        await Promise.race([
          (async () => {
            while (slow.calls().length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
          })(),
          answered.then((res) => assert.fail(`answered ${String(res.statusCode)} before the origin saw the request`)),
        ]);
        assertNoCredentials('the request mid-flight', req);
        assertNoCredentials('the agent mid-flight', agent);
        release();
        const res = await answered;
        res.resume();
        await new Promise((resolve) => res.on('end', resolve));
        assertNoCredentials('the response', res);
        assert.equal(proxy.lastCall()?.authenticated, true);
      } finally {
        release();
        await slow.close();
      }
    });

    it('a head that does not begin with the request line set for the proxy is refused; nothing reaches the proxy', async () => {
      const local = egressWith({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) } });
      proxy.clear();
      const error = await failure(
        send(http, at(httpOrigin, '/set', local.agent('push')), (req) => {
          // Changed after the agent rewrote it: the head would go out in origin form, without credentials.
          req.path = '/changed';
        }),
      );
      assert.ok(error instanceof InvalidUrlError, String(error));
      assert.ok(!inspect(error).includes(CANARY_BASIC));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(proxy.calls().length, 0);
    });

    it('a write on a pooled proxy socket with no request bound is refused; nothing reaches the proxy', async () => {
      const local = egressWith({ env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) } });
      const agent = local.agent('push');
      let socket: net.Socket | undefined;
      assert.equal((await send(http, at(httpOrigin, '/first', agent), (req) => req.on('socket', (s) => (socket = s)))).status, 200);
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(socket !== undefined && Object.values(agent.freeSockets).some((list) => list?.includes(socket!)), 'the socket is pooled');
      proxy.clear();
      const refused = new Promise<Error>((resolve) => socket!.once('error', resolve));
      socket.write(`GET http://${httpOrigin.host}:${String(httpOrigin.port)}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`);
      const error = await refused;
      assert.ok(error instanceof InvalidUrlError, String(error));
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(proxy.calls().length, 0);
      assert.equal(socket.destroyed, true);
    });

    it('a proxy without credentials gets no Proxy-Authorization, and the request still goes in absolute form', async () => {
      const open = await createRecordingProxy();
      try {
        const local = egressWith({ env: { http_proxy: open.url } });
        const reply = await send(http, { ...at(httpOrigin, '/open', local.httpAgent('push')), headers: ['Host', 'x', 'Expect', '100-continue'] });
        assert.equal(reply.status, 200);
        assert.equal(open.lastCall()?.headers['proxy-authorization'], undefined);
        assert.equal(open.lastCall()?.target, `http://127.0.0.1:${String(httpOrigin.port)}/open`);
      } finally {
        await open.close();
      }
    });
  });

  describe('routing per request', () => {
    it('one agent sends hosts in no_proxy direct and the others through the proxy', async () => {
      const proxyUrl = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
      const local = egressWith({
        env: { https_proxy: proxyUrl, http_proxy: proxyUrl, no_proxy: 'localhost' },
        ca: httpsOrigin.ca,
      });
      for (const [client, origin, agent] of [
        [https, httpsOrigin, local.httpsAgent('push')],
        [http, httpOrigin, local.agent('push')],
      ] as const) {
        proxy.clear();
        assert.equal((await send(client, at(origin, '/direct', agent, { host: 'localhost' }))).status, 200);
        assert.equal(proxy.calls().length, 0, 'no_proxy host: nothing reached the proxy');
        assert.equal(origin.lastCall()?.headers['proxy-authorization'], undefined);
        assert.equal((await send(client, at(origin, '/proxied', agent))).status, 200);
        assert.equal(proxy.calls().length, 1, 'other host: through the proxy');
      }
    });

    for (const type of PROXIED_CONNECTION_TYPES) {
      it(`${type} goes through the proxy: a CONNECT for https, an absolute-form request for http`, async () => {
        // A fresh egress per type: agents share pooled proxy sockets, which would hide the CONNECT.
        const proxyUrl = proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
        const local = egressWith({ env: { https_proxy: proxyUrl, http_proxy: proxyUrl }, ca: httpsOrigin.ca });
        try {
          proxy.clear();
          assert.equal((await send(https, at(httpsOrigin, `/${type}`, local.httpsAgent(type)))).status, 200);
          assert.equal((await send(http, at(httpOrigin, `/${type}`, local.agent(type)))).status, 200);
          const connect = proxy.filterCalls({ method: 'CONNECT', port: httpsOrigin.port });
          assert.equal(connect.length, 1);
          assert.equal(connect[0]?.authenticated, true);
          const forwarded = proxy.filterCalls({ method: 'GET', target: `http://${httpOrigin.host}:${String(httpOrigin.port)}/${type}` });
          assert.equal(forwarded.length, 1);
          assert.equal(forwarded[0]?.authenticated, true);
          assert.equal(httpsOrigin.lastCall()?.headers['proxy-authorization'], undefined);
          assert.equal(httpOrigin.lastCall()?.headers['proxy-authorization'], undefined);
        } finally {
          await local.close();
        }
      });
    }

    for (const type of DIRECT_CONNECTION_TYPES) {
      it(`${type} never touches the proxy`, async () => {
        const connectionsBefore = proxy.connections;
        assert.equal((await send(https, at(httpsOrigin, `/${type}`, egress.httpsAgent(type)))).status, 200);
        assert.equal((await send(http, at(httpOrigin, `/${type}`, egress.agent(type)))).status, 200);
        assert.equal(proxy.connections, connectionsBefore);
      });
    }

    it('a request for a Unix socket (socketPath) connects to it, never to the proxy', async (t) => {
      if (process.platform === 'win32') {
        t.skip('no Unix sockets');
        return;
      }
      const dir = await mkdtemp(join(tmpdir(), 'egress-agents-'));
      const path = join(dir, 'origin.sock');
      const seen: string[] = [];
      const server = http.createServer((req, res) => {
        seen.push(req.url ?? '');
        res.end('unix');
      });
      await new Promise<void>((resolve) => server.listen(path, resolve));
      try {
        const connectionsBefore = proxy.connections;
        for (const type of ['worker', 'push'] as const) {
          const reply = await send(http, { socketPath: path, path: `/${type}`, agent: egress.agent(type) });
          assert.equal(reply.body, 'unix');
        }
        assert.deepEqual(seen, ['/worker', '/push']);
        assert.equal(proxy.connections, connectionsBefore);
      } finally {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('keeps one agent per connection type and scheme (issue 16: requests are counted per type)', () => {
      assert.equal(egress.agent('push'), egress.agent('push'));
      assert.equal(egress.httpsAgent('push'), egress.httpsAgent('push'));
      assert.notEqual(egress.agent('push'), egress.agent('media'));
      assert.notEqual(egress.httpsAgent('appservice'), egress.httpsAgent('worker'));
      assert.notEqual(egress.httpsAgent('push'), egress.httpsAgent('appservice'));
      assert.notEqual(egress.httpsAgent('push'), egress.httpsAgent('federation'));
      assert.notEqual(egress.agent('push'), egress.httpsAgent('push'));
      const keepAlive = (agent: http.Agent): unknown => (agent as http.Agent & { keepAlive?: unknown }).keepAlive;
      assert.equal(keepAlive(egress.agent('push')), true);
      assert.equal(keepAlive(egress.httpsAgent('push')), true);
    });
  });

  describe('Proxy-Authorization from the caller', () => {
    const cases: readonly [string, (agent: http.Agent) => https.RequestOptions, ((req: http.ClientRequest) => void)?][] = [
      ['in headers', (agent) => ({ headers: { 'Proxy-Authorization': 'Basic c3RvbGVu' }, agent })],
      ['in array headers', (agent) => ({ headers: ['Host', 'x', 'proxy-authorization', 'Basic c3RvbGVu'], agent })],
    ];
    for (const [label, options] of cases) {
      for (const type of ['push', 'appservice'] as const) {
        it(`is refused ${label} (${type}), nothing sent`, async () => {
          proxy.clear();
          httpOrigin.clear();
          httpsOrigin.clear();
          for (const [client, origin, agent] of [
            [https, httpsOrigin, egress.httpsAgent(type)],
            [http, httpOrigin, egress.agent(type)],
          ] as const) {
            const error = await failure(send(client, { ...at(origin, '/', agent), ...options(agent) }));
            assert.ok(error instanceof ForbiddenHeaderError, String(error));
            assert.equal(error.code, 'ERR_EGRESS_FORBIDDEN_HEADER');
          }
          assert.equal(proxy.calls().length + httpOrigin.calls().length + httpsOrigin.calls().length, 0);
        });
      }
    }

    it('a request refused by the agent fails promptly (fence: node:http ClientRequest.prototype.onSocket)', async () => {
      // The agents fail a request they refuse with ClientRequest's undocumented onSocket(undefined,
      // error), as node:http's own Agent does; if a Node release drops it, say so instead of hanging.
      assert.equal(
        typeof (http.ClientRequest.prototype as unknown as { onSocket?: unknown }).onSocket,
        'function',
        'node:http no longer has ClientRequest.prototype.onSocket: src/agents/http-agents.ts needs another way to fail a refused request',
      );
      const refused = send(http, { ...at(httpOrigin, '/', egress.httpAgent('appservice')), headers: { 'Proxy-Authorization': 'Basic c3RvbGVu' } });
      const timeout = new Promise<never>((_, reject) => setTimeout(() => { reject(new Error('a refused request did not fail within 2 s')); }, 2_000).unref());
      const error = await failure(Promise.race([refused, timeout]));
      assert.ok(error instanceof ForbiddenHeaderError, String(error));
    });

    it('is refused when set after the request was created', () => {
      const req = http.request(at(httpOrigin, '/', egress.agent('appservice')));
      req.on('error', () => undefined);
      assert.throws(() => req.setHeader('proxy-authorization', 'Basic c3RvbGVu'), ForbiddenHeaderError);
      assert.throws(() => req.appendHeader('Proxy-Authorization', 'Basic c3RvbGVu'), ForbiddenHeaderError);
      req.destroy();
    });
  });

  describe('proxy failures', () => {
    it('CONNECT answered 407 → ProxyAuthenticationError', async () => {
      const local = egressWith({ env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, 'wrong-password') }, ca: httpsOrigin.ca });
      const error = await failure(send(https, at(httpsOrigin, '/', local.httpsAgent('push'))));
      assert.ok(error instanceof ProxyAuthenticationError, String(error));
      assert.equal(error.statusCode, 407);
      assert.ok(!inspect(error).includes('wrong-password'));
    });

    it('CONNECT answered 403 → ProxyConnectError with statusCode 403', async () => {
      const strict = await createRecordingProxy({ allowTarget: (_host, port) => port === 443 });
      try {
        const local = egressWith({ env: { https_proxy: strict.url }, ca: httpsOrigin.ca });
        const error = await failure(send(https, at(httpsOrigin, '/', local.httpsAgent('push'))));
        assert.ok(error instanceof ProxyConnectError, String(error));
        assert.equal(error.code, 'ERR_EGRESS_PROXY_CONNECT');
        assert.equal(error.statusCode, 403);
        assert.equal(strict.lastCall()?.outcome, 'rejected');
        assert.equal(httpsOrigin.filterCalls({ url: '/' }).length, 0);
      } finally {
        await strict.close();
      }
    });

    it('a refused proxy port → ProxyUnreachableError promptly', async () => {
      const down = await createRecordingProxy();
      await down.setFailure({ connect: 'refuse' });
      try {
        const local = egressWith({ env: { https_proxy: down.url, http_proxy: down.url }, ca: httpsOrigin.ca });
        for (const [client, origin, agent] of [
          [https, httpsOrigin, local.httpsAgent('push')],
          [http, httpOrigin, local.agent('push')],
        ] as const) {
          const started = Date.now();
          const error = await failure(send(client, at(origin, '/', agent)));
          assert.ok(error instanceof ProxyUnreachableError, String(error));
          assert.equal(error.syscallCode, 'ECONNREFUSED');
          assert.ok(Date.now() - started < 2_000, 'fails promptly');
        }
      } finally {
        await down.close();
      }
    });

    it('a proxy that resets connections → ProxyUnreachableError, one connection per request', async () => {
      const flaky = await createRecordingProxy({ fail: { connect: 'reset' } });
      try {
        const local = egressWith({ env: { https_proxy: flaky.url }, ca: httpsOrigin.ca });
        const error = await failure(send(https, at(httpsOrigin, '/', local.httpsAgent('push'))));
        assert.ok(error instanceof ProxyUnreachableError, String(error));
        assert.equal(flaky.connections, 1);
      } finally {
        await flaky.close();
      }
    });
  });

  describe('https:// proxy', () => {
    let tlsProxy: RecordingProxy;
    before(async () => {
      tlsProxy = await createRecordingProxy({ tls: true, auth: { username: CANARY_USER, password: CANARY_PASSWORD } });
    });
    after(async () => {
      await tlsProxy.close();
    });

    it('works when proxyCa trusts it, for https and http origins', async () => {
      const withCredentials = tlsProxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD);
      assert.ok(withCredentials.startsWith('https://'));
      const local = egressWith({ env: { https_proxy: withCredentials, http_proxy: withCredentials }, ca: httpsOrigin.ca, proxyCa: tlsProxy.ca });
      tlsProxy.clear();
      assert.equal((await send(https, at(httpsOrigin, '/via-tls-proxy', local.httpsAgent('push')))).status, 200);
      assert.equal((await send(http, at(httpOrigin, '/via-tls-proxy', local.agent('push')))).status, 200);
      const [connect, forward] = tlsProxy.calls();
      assert.equal(connect?.method, 'CONNECT');
      assert.equal(forward?.target, `http://127.0.0.1:${String(httpOrigin.port)}/via-tls-proxy`);
      assert.ok(tlsProxy.calls().every((call) => call.authenticated));
    });

    it('fails with ProxyTlsError when its CA is not trusted', async () => {
      const local = egressWith({ env: { https_proxy: tlsProxy.url, http_proxy: tlsProxy.url }, ca: httpsOrigin.ca });
      for (const [client, origin, agent] of [
        [https, httpsOrigin, local.httpsAgent('push')],
        [http, httpOrigin, local.agent('push')],
      ] as const) {
        const error = await failure(send(client, at(origin, '/', agent)));
        assert.ok(error instanceof ProxyTlsError, String(error));
        assert.ok(error.reason === 'unknown-ca' || error.reason === 'self-signed', error.reason);
      }
    });
  });

  describe('IP blocklist (SPEC §8)', () => {
    it('refuses an IP-literal origin of a checked type before anything is sent, even through the proxy', async () => {
      const strict = egressWith({ ipAllowlist: [], env: { https_proxy: proxy.url, http_proxy: proxy.url }, ca: httpsOrigin.ca });
      proxy.clear();
      httpOrigin.clear();
      for (const [client, origin, agent] of [
        [https, httpsOrigin, strict.httpsAgent('push')],
        [http, httpOrigin, strict.agent('media')],
      ] as const) {
        const error = await failure(send(client, at(origin, '/', agent)));
        assert.ok(error instanceof BlockedDestinationError, String(error));
        assert.equal(error.address, '127.0.0.1');
      }
      assert.equal(proxy.calls().length + httpOrigin.calls().length, 0);
    });

    it('refuses a name that resolves to a blocked address on a direct route, not on a proxied one', async () => {
      const strict = egressWith({ ipAllowlist: [], env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD), no_proxy: 'localhost' } });
      httpOrigin.clear();
      const error = await failure(send(http, at(httpOrigin, '/', strict.agent('push'), { host: 'localhost' })));
      assert.ok(error instanceof BlockedDestinationError, String(error));
      assert.equal(httpOrigin.calls().length, 0);
      // The proxy resolves names it is sent: nothing to check locally.
      const proxied = egressWith({ ipAllowlist: [], env: { http_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) } });
      assert.equal((await send(http, at(httpOrigin, '/', proxied.agent('push'), { host: 'localhost' }))).status, 200);
    });

    it('leaves unchecked types alone', async () => {
      const strict = egressWith({ ipAllowlist: [], env: {}, ca: httpsOrigin.ca });
      assert.equal((await send(https, at(httpsOrigin, '/', strict.httpsAgent('phone_home')))).status, 200);
      assert.equal((await send(http, at(httpOrigin, '/', strict.agent('worker')))).status, 200);
    });
  });

  describe('secrets and lifecycle', () => {
    it('util.inspect of the agents shows no credentials, even mid-request at full depth', async () => {
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      const slow = await createTestOrigin({
        handler: async (_req, res) => {
          await held;
          res.end('late');
        },
      });
      try {
        const agent = egress.agent('push');
        const pending = send(http, at(slow, '/slow', agent));
        while (slow.calls().length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
        for (const printed of [
          inspect(agent, { depth: Infinity, showHidden: true }),
          inspect(egress.httpsAgent('push'), { depth: Infinity, showHidden: true }),
        ]) {
          assert.ok(!printed.includes(CANARY_PASSWORD), printed);
          assert.ok(!printed.includes(CANARY_BASIC), printed);
        }
        assert.match(inspect(agent), /proxy: 'http:\/\/127\.0\.0\.1:\d+'/);
        release();
        assert.equal((await pending).body, 'late');
      } finally {
        release();
        await slow.close();
      }
    });

    it('close() destroys the sockets; the agents then refuse requests; close() is idempotent', async () => {
      const local = createEgress({ ...ALLOW_LOOPBACK, env: { https_proxy: proxy.urlWithCredentials(CANARY_USER, CANARY_PASSWORD) }, ca: httpsOrigin.ca });
      const agent = local.httpsAgent('push');
      const openBefore = proxy.openTunnels;
      assert.equal((await send(https, at(httpsOrigin, '/', agent))).status, 200);
      assert.equal(Object.keys(agent.freeSockets).length, 1, 'one kept-alive socket');
      await local.close();
      await local.close();
      assert.equal(Object.keys(agent.freeSockets).length, 0);
      const deadline = Date.now() + 2_000;
      while (proxy.openTunnels > openBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(proxy.openTunnels, openBefore, 'the tunnel was closed');
      const error = await failure(send(https, at(httpsOrigin, '/', agent)));
      assert.ok(error instanceof EgressClosedError, String(error));
      assert.throws(() => local.httpsAgent('push'), EgressClosedError);
    });
  });
});
