// Tests of the shipped test origin: HTTP and HTTPS on loopback, byte-exact request recording,
// custom handlers, certificate failure cases and clean shutdown. Real clients only (undici, node:http(s)).
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { describe, test } from 'node:test';

import { Agent, Client, request } from 'undici';

import { createSelfSignedCertificate, createTestCertificateAuthority } from '../../src/testing/certificates.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { ipv6Available, waitFor } from '../support/net.js';

const TIMEOUT = { timeout: 20_000 };

function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name.startsWith('TCP')).length;
}

interface Answer {
  readonly status: number;
  readonly body: string;
}

/** node:http(s) GET with a byte-exact path; TLS options are passed through (never verification off). */
function get(
  origin: TestOrigin,
  path: string,
  tls: { readonly ca?: string; readonly servername?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = { host: origin.host, port: origin.port, path, agent: false, timeout: 5_000 };
    const onResponse = (res: http.IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() });
      });
      res.on('error', reject);
    };
    const req =
      origin.protocol === 'https:'
        ? https.request({ ...options, ...tls }, onResponse)
        : http.request(options, onResponse);
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('createTestOrigin: plain HTTP', () => {
  test('the default handler answers JSON and every request is recorded', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    assert.equal(origin.url, `http://127.0.0.1:${origin.port}`);
    assert.equal(origin.protocol, 'http:');
    assert.equal(origin.ca, undefined);
    const { statusCode, headers, body } = await request(`${origin.url}/_matrix/federation/v1/version?x=1`, {
      headers: { 'x-test': 'yes' },
    });
    assert.equal(statusCode, 200);
    assert.equal(headers['content-type'], 'application/json');
    assert.deepEqual(await body.json(), { ok: true, method: 'GET', url: '/_matrix/federation/v1/version?x=1' });
    const call = origin.lastCall();
    assert.ok(call);
    assert.equal(call.id, 1);
    assert.equal(call.method, 'GET');
    assert.equal(call.url, '/_matrix/federation/v1/version?x=1');
    assert.equal(call.headers['x-test'], 'yes');
    assert.equal(call.headers.host, `127.0.0.1:${origin.port}`);
    assert.ok(call.rawHeaders.includes('x-test'));
    assert.equal(call.remoteAddress, '127.0.0.1');
    assert.ok(call.remotePort > 0);
    assert.equal(call.servername, undefined);
    assert.equal(call.httpVersion, '1.1');
    assert.ok(call.receivedAt instanceof Date);
  });

  test('the request target is recorded byte-exact (no %2F decoding, no dot-segment removal)', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    const path = '/a%2Fb/../c%25/./d?x=%2F&y=..';
    const answer = await get(origin, path);
    assert.equal(answer.status, 200);
    assert.equal(origin.lastCall()?.url, path);
    assert.equal((JSON.parse(answer.body) as { url: string }).url, path);
    assert.deepEqual(origin.filterCalls({ url: /%2F/ }).map((call) => call.url), [path]);
  });

  test('request bodies are drained and keep-alive connections are reused', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    const client = new Client(origin.url);
    try {
      for (const n of [1, 2, 3]) {
        const { statusCode, body } = await client.request({ path: `/post/${n}`, method: 'POST', body: 'x'.repeat(n * 1000) });
        assert.equal(statusCode, 200);
        await body.dump();
      }
    } finally {
      await client.close();
    }
    assert.equal(origin.connections, 1);
    assert.equal(new Set(origin.calls().map((call) => call.connectionId)).size, 1);
    assert.equal(origin.filterCalls({ method: 'POST' }).length, 3);
    assert.equal(origin.history.nthCall(2)?.url, '/post/2');
  });

  test('a custom handler answers; a throwing or rejecting one becomes a 500', TIMEOUT, async () => {
    await using origin = await createTestOrigin({
      handler: async (req, res, call) => {
        if (req.url === '/throw') {
          throw new Error('sync-looking failure');
        }
        if (req.url === '/reject') {
          await Promise.reject(new Error('async failure'));
        }
        res.writeHead(418, { 'x-call-id': String(call.id) });
        res.end('teapot');
      },
    });
    const ok = await get(origin, '/brew');
    assert.deepEqual(ok, { status: 418, body: 'teapot' });
    assert.equal((await get(origin, '/throw')).status, 500);
    assert.equal((await get(origin, '/reject')).status, 500);
    assert.equal(origin.history.size, 3);
    origin.clear();
    assert.equal(origin.history.size, 0);
  });

  test('an IPv6 loopback origin has a bracketed URL', TIMEOUT, async (t) => {
    if (!(await ipv6Available())) {
      t.skip('no IPv6 loopback');
      return;
    }
    await using origin = await createTestOrigin({ host: '::1' });
    assert.equal(origin.host, '::1');
    assert.equal(origin.url, `http://[::1]:${origin.port}`);
    const { statusCode, body } = await request(`${origin.url}/v6`);
    assert.equal(statusCode, 200);
    await body.dump();
    assert.equal(origin.lastCall()?.remoteAddress, '::1');
  });
});

describe('createTestOrigin: HTTPS', () => {
  test('tls: true serves a leaf for localhost/127.0.0.1/::1 signed by the exposed ca', TIMEOUT, async () => {
    await using origin = await createTestOrigin({ tls: true });
    assert.equal(origin.protocol, 'https:');
    assert.equal(origin.url, `https://127.0.0.1:${origin.port}`);
    assert.match(origin.ca ?? '', /BEGIN CERTIFICATE/);
    const dispatcher = new Agent({ connect: { ca: origin.ca ?? '' } });
    try {
      const { statusCode, body } = await request(`${origin.url}/secure`, { dispatcher });
      assert.equal(statusCode, 200);
      await body.dump();
    } finally {
      await dispatcher.close();
    }
    // SNI is recorded when the client sends one (never for an IP literal, RFC 6066 §3).
    const named = await get(origin, '/sni', { ca: origin.ca ?? '', servername: 'localhost' });
    assert.equal(named.status, 200);
    assert.equal(origin.lastCall()?.servername, 'localhost');
  });

  test('without the ca the certificate is not trusted', TIMEOUT, async () => {
    await using origin = await createTestOrigin({ tls: true });
    await assert.rejects(get(origin, '/'), (error: NodeJS.ErrnoException) => {
      assert.match(String(error.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED/);
      return true;
    });
    assert.equal(origin.history.size, 0);
  });

  test('tls: { cert, key } serves expired, wrong-name and self-signed certificates', TIMEOUT, async () => {
    const authority = createTestCertificateAuthority();
    const day = 24 * 60 * 60 * 1000;
    const cases = [
      {
        name: 'expired',
        material: authority.issue({
          hosts: ['localhost', '127.0.0.1'],
          notBefore: new Date(Date.now() - 3 * day),
          notAfter: new Date(Date.now() - day),
        }),
        code: 'CERT_HAS_EXPIRED',
      },
      { name: 'wrong name', material: authority.issue({ hosts: ['other.example'] }), code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
      {
        name: 'self-signed',
        material: createSelfSignedCertificate({ hosts: ['localhost', '127.0.0.1'] }),
        code: 'DEPTH_ZERO_SELF_SIGNED_CERT',
      },
    ];
    for (const { name, material, code } of cases) {
      await using origin = await createTestOrigin({ tls: { ...material, ca: authority.cert } });
      assert.equal(origin.ca, authority.cert);
      await assert.rejects(get(origin, '/', { ca: authority.cert }), (error: NodeJS.ErrnoException) => {
        assert.equal(error.code, code, name);
        return true;
      });
      assert.equal(origin.history.size, 0, name);
    }
  });
});

describe('createTestOrigin: lifecycle and options', () => {
  test('close() is idempotent, ends kept-alive connections at once and leaves no TCP handles', TIMEOUT, async () => {
    const before = tcpHandles();
    const origin = await createTestOrigin({ tls: true });
    const dispatcher = new Agent({ connect: { ca: origin.ca ?? '' }, keepAliveTimeout: 60_000 });
    const { body } = await request(`${origin.url}/keep`, { dispatcher });
    await body.dump();
    const hanging = net.connect({ host: origin.host, port: origin.port }); // mid-handshake, never speaks
    hanging.on('error', () => undefined);
    await waitFor(() => origin.connections === 2, 'both connections to be accepted');
    const started = Date.now();
    const first = origin.close();
    assert.equal(origin.close(), first);
    await first;
    assert.ok(Date.now() - started < 2_000, 'close() did not wait for keep-alive timeouts');
    await dispatcher.close();
    await waitFor(() => hanging.destroyed || hanging.closed, 'the raw connection to be closed by the server');
    hanging.destroy();
    await waitFor(() => tcpHandles() <= before, `TCP handles back to ${before} (now ${tcpHandles()})`);
    const late = new Agent({ connect: { ca: origin.ca ?? '' } });
    try {
      await assert.rejects(request(`${origin.url}/after`, { dispatcher: late }), { code: 'ECONNREFUSED' });
    } finally {
      await late.close();
    }
  });

  test('options are validated and named in errors', TIMEOUT, async () => {
    await assert.rejects(createTestOrigin({ host: '0.0.0.0' }), /Option `host`: must be a loopback/);
    await assert.rejects(createTestOrigin({ host: 'localhost' }), /Option `host`/);
    await assert.rejects(createTestOrigin({ port: -1 }), /Option `port`/);
    // @ts-expect-error -- unknown option
    await assert.rejects(createTestOrigin({ handlr: () => undefined }), /Option `handlr`: unknown option/);
    // @ts-expect-error -- key is required
    await assert.rejects(createTestOrigin({ tls: { cert: 'x' } }), /Option `tls`/);
    // @ts-expect-error -- handler must be a function
    await assert.rejects(createTestOrigin({ handler: 'nope' }), /Option `handler`/);
  });
});
