import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';

import { createTestCertificateAuthority, type TestCertificateAuthority } from '../../src/testing/certificates.js';
import { apr1Hash, assertSquidAvailable, startSquid, type SquidInstance } from '../support/squid.js';

const TEST_TIMEOUT = 30_000;
const REQUEST_TIMEOUT = 5_000;

/** A plain HTTP origin on loopback that echoes method and URL. */
async function startOrigin(host = '127.0.0.1'): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`origin saw ${req.method ?? ''} ${req.url ?? ''}`);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/** An absolute-form request through the proxy, as a forward proxy client sends it. */
async function proxiedGet(
  proxyPort: number,
  url: string,
  headers: http.OutgoingHttpHeaders = {},
  proxyHost = '127.0.0.1',
): Promise<Reply> {
  const target = new URL(url);
  const req = http.request({
    host: proxyHost,
    port: proxyPort,
    method: 'GET',
    path: url,
    headers: { host: target.host, ...headers },
    agent: false,
    timeout: REQUEST_TIMEOUT,
  });
  req.on('timeout', () => req.destroy(new Error('request timed out')));
  req.end();
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  let body = '';
  for await (const chunk of res) body += String(chunk);
  return { status: res.statusCode ?? 0, headers: res.headers, body };
}

/** CONNECT through the proxy; resolves with the status and, on 2xx, the tunnel socket. */
async function connectTunnel(
  proxyPort: number,
  authority: string,
  headers: http.OutgoingHttpHeaders = {},
): Promise<{ status: number; socket: Socket }> {
  const req = http.request({
    host: '127.0.0.1',
    port: proxyPort,
    method: 'CONNECT',
    path: authority,
    headers: { host: authority, ...headers },
    agent: false,
    timeout: REQUEST_TIMEOUT,
  });
  req.on('timeout', () => req.destroy(new Error('CONNECT timed out')));
  req.end();
  const [res, socket] = (await once(req, 'connect')) as [http.IncomingMessage, Socket];
  return { status: res.statusCode ?? 0, socket };
}

/** A raw HTTP/1.1 GET written into an open tunnel; resolves with the whole response text. */
async function rawGet(socket: Socket, authority: string, path: string): Promise<string> {
  socket.setTimeout(REQUEST_TIMEOUT, () => socket.destroy(new Error('tunnel read timed out')));
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${authority}\r\nConnection: close\r\n\r\n`);
  let text = '';
  for await (const chunk of socket) text += String(chunk);
  return text;
}

function assertGone(pid: number): void {
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `Squid pid ${pid} still exists`);
}

describe('Squid test support', { timeout: 120_000 }, () => {
  let origin: Awaited<ReturnType<typeof startOrigin>>;

  before(async () => {
    assertSquidAvailable();
    origin = await startOrigin();
  });

  after(async () => {
    await origin.close();
  });

  it('matches openssl/htpasswd APR1 hashes', () => {
    // `openssl passwd -apr1 -salt abcdefgh 'p@ss word'`
    assert.equal(apr1Hash('p@ss word', 'abcdefgh'), '$apr1$abcdefgh$aJUuGLjz3OI4ylHF//t5U1');
    assert.equal(apr1Hash('', 'abcdefgh'), '$apr1$abcdefgh$L.PT565ESX4Tp2bqNs7Ie.');
  });

  describe('plain http_port', () => {
    let squid: SquidInstance;
    let startupMs = 0;

    before(async () => {
      const started = performance.now();
      squid = await startSquid({ hosts: { 'matrix.test': '127.0.0.1' } });
      startupMs = performance.now() - started;
    });

    after(async () => {
      await squid.stop();
    });

    it('forwards an absolute-form GET and logs it', { timeout: TEST_TIMEOUT }, async (t) => {
      t.diagnostic(`squid start-up ${startupMs.toFixed(0)} ms`);
      const url = `http://127.0.0.1:${origin.port}/hello?q=1`;
      const reply = await proxiedGet(squid.port, url);
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'origin saw GET /hello?q=1');
      const entry = await squid.waitForAccessLog((e) => e.method === 'GET' && e.target === url);
      assert.equal(entry.status, 200);
      assert.equal(entry.user, undefined);
      assert.equal(entry.client, '127.0.0.1');
    });

    it('tunnels CONNECT to a loopback port and logs it when the tunnel closes', { timeout: TEST_TIMEOUT }, async () => {
      const authority = `127.0.0.1:${origin.port}`;
      const { status, socket } = await connectTunnel(squid.port, authority);
      assert.equal(status, 200);
      const response = await rawGet(socket, authority, '/through-tunnel');
      assert.match(response, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(response, /origin saw GET \/through-tunnel$/);
      socket.destroy();
      const entry = await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === authority);
      assert.equal(entry.status, 200);
      assert.equal(entry.result, 'TCP_TUNNEL');
    });

    it('resolves names from its private hosts file', { timeout: TEST_TIMEOUT }, async () => {
      const reply = await proxiedGet(squid.port, `http://matrix.test:${origin.port}/named`);
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'origin saw GET /named');
    });

    it('refuses targets that are not loopback', { timeout: TEST_TIMEOUT }, async () => {
      // `.invalid` never resolves (RFC 6761), and Squid only asks 127.0.0.1 for DNS.
      const reply = await proxiedGet(squid.port, 'http://not-loopback.invalid/');
      assert.equal(reply.status, 403);
    });
  });

  describe('stock SSL_ports rule', () => {
    it('denies CONNECT to a non-443 port unless the port is added', { timeout: TEST_TIMEOUT }, async () => {
      const authority = `127.0.0.1:${origin.port}`;
      const stock = await startSquid({ stockSslPorts: true });
      const widened = await startSquid({ stockSslPorts: true, allowConnectPorts: [origin.port] });
      try {
        const denied = await connectTunnel(stock.port, authority);
        denied.socket.destroy();
        assert.equal(denied.status, 403);
        const allowed = await connectTunnel(widened.port, authority);
        allowed.socket.destroy();
        assert.equal(allowed.status, 200);
        // The stock rules leave plain-http forwarding alone.
        assert.equal((await proxiedGet(stock.port, `http://${authority}/plain`)).status, 200);
      } finally {
        await Promise.all([stock.stop({ force: true }), widened.stop({ force: true })]);
      }
    });
  });

  describe('basic auth', () => {
    const username = 'alice';
    const password = 'p@ss:w0rd %20';
    let squid: SquidInstance;

    before(async () => {
      squid = await startSquid({ auth: { username, password } });
    });

    after(async () => {
      await squid.stop({ force: true });
    });

    it('answers 407 without credentials and with a wrong password', { timeout: TEST_TIMEOUT }, async () => {
      const url = `http://127.0.0.1:${origin.port}/auth`;
      const none = await proxiedGet(squid.port, url);
      assert.equal(none.status, 407);
      assert.match(String(none.headers['proxy-authenticate']), /^Basic realm="matrix-egress-test"/);
      const wrong = await proxiedGet(squid.port, url, { 'proxy-authorization': basic(username, 'wrong') });
      assert.equal(wrong.status, 407);
      const tunnel = await connectTunnel(squid.port, `127.0.0.1:${origin.port}`, {
        'proxy-authorization': basic(username, 'wrong'),
      });
      tunnel.socket.destroy();
      assert.equal(tunnel.status, 407);
    });

    it('forwards and tunnels with the right password and logs the user', { timeout: TEST_TIMEOUT }, async () => {
      const url = `http://127.0.0.1:${origin.port}/authed`;
      const reply = await proxiedGet(squid.port, url, { 'proxy-authorization': basic(username, password) });
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'origin saw GET /authed', 'origin reached; Proxy-Authorization consumed by Squid');
      const authority = `127.0.0.1:${origin.port}`;
      const tunnel = await connectTunnel(squid.port, authority, { 'proxy-authorization': basic(username, password) });
      assert.equal(tunnel.status, 200);
      await rawGet(tunnel.socket, authority, '/');
      tunnel.socket.destroy();
      const get = await squid.waitForAccessLog((e) => e.target === url && e.status === 200);
      assert.equal(get.user, username);
      const connect = await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.status === 200);
      assert.equal(connect.user, username);
      const denied = (await squid.accessLog()).filter((e) => e.status === 407);
      assert.ok(denied.length >= 2, 'the 407s are logged too');
    });
  });

  describe('https_port', () => {
    let ca: TestCertificateAuthority;
    let squid: SquidInstance;

    before(async () => {
      ca = createTestCertificateAuthority();
      squid = await startSquid({ https: ca.issue({ hosts: ['localhost', '127.0.0.1'] }) });
    });

    after(async () => {
      await squid.stop({ force: true });
    });

    it('accepts TLS verified against the test CA and tunnels CONNECT', { timeout: TEST_TIMEOUT }, async () => {
      assert.ok(squid.httpsPort !== undefined && squid.httpsUrl === `https://127.0.0.1:${squid.httpsPort}`);
      const socket = tls.connect({ host: '127.0.0.1', port: squid.httpsPort, servername: 'localhost', ca: ca.cert });
      socket.setTimeout(REQUEST_TIMEOUT, () => socket.destroy(new Error('timed out')));
      await once(socket, 'secureConnect');
      assert.equal(socket.authorized, true);
      const authority = `127.0.0.1:${origin.port}`;
      socket.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n\r\n`);
      let head = '';
      while (!head.includes('\r\n\r\n')) {
        const [chunk] = (await once(socket, 'data')) as [Buffer];
        head += chunk.toString('latin1');
      }
      assert.match(head, /^HTTP\/1\.1 200 /);
      const response = await rawGet(socket, authority, '/over-tls-proxy');
      assert.match(response, /origin saw GET \/over-tls-proxy$/);
      socket.destroy();
      await squid.waitForAccessLog((e) => e.method === 'CONNECT' && e.target === authority && e.status === 200);
    });
  });

  describe('stop()', () => {
    it('stops gracefully by PID, keeps the final log and removes its directory', { timeout: TEST_TIMEOUT }, async (t) => {
      const squid = await startSquid();
      const authority = `127.0.0.1:${origin.port}`;
      const { status, socket } = await connectTunnel(squid.port, authority);
      assert.equal(status, 200);
      // Tunnel left open: a graceful stop closes it and logs it.
      const started = performance.now();
      await squid.stop();
      t.diagnostic(`graceful stop ${(performance.now() - started).toFixed(0)} ms`);
      socket.destroy();
      assertGone(squid.pid);
      const log = await squid.accessLog();
      assert.ok(log.some((e) => e.method === 'CONNECT' && e.target === authority), JSON.stringify(log));
      await squid.stop(); // idempotent
    });

    it('stops at once with force (IPv6 listener and target)', { timeout: TEST_TIMEOUT }, async (t) => {
      const squid = await startSquid({ ipv6: true });
      assert.equal(squid.ipv6Url, `http://[::1]:${squid.port}`);
      const origin6 = await startOrigin('::1');
      try {
        const url = `http://[::1]:${origin6.port}/v6`;
        const reply = await proxiedGet(squid.port, url, {}, '::1');
        assert.equal(reply.status, 200);
        assert.equal(reply.body, 'origin saw GET /v6');
        const entry = await squid.waitForAccessLog((e) => e.target === url);
        assert.equal(entry.client, '::1');
      } finally {
        await origin6.close();
      }
      const started = performance.now();
      await squid.stop({ force: true });
      t.diagnostic(`forced stop ${(performance.now() - started).toFixed(0)} ms`);
      assertGone(squid.pid);
    });
  });
});
