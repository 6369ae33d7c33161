// Tests of the shipped recording proxy (and the CallHistory it exposes), driven by real clients:
// undici's ProxyAgent, node:http with absolute-form targets, and raw node:net sockets. Loopback only.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { describe, test } from 'node:test';

import { Pool, ProxyAgent, request } from 'undici';

import { createCallRecorder } from '../../src/testing/call-history.js';
import { createRecordingProxy, type RecordingProxy } from '../../src/testing/recording-proxy.js';
import { createTestOrigin, type TestOrigin } from '../../src/testing/test-origin.js';
import { closedPort, ipv6Available, waitFor } from '../support/net.js';

const TIMEOUT = { timeout: 20_000 };

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

interface RawResult {
  readonly data: Buffer;
  readonly error: NodeJS.ErrnoException | undefined;
  readonly closed: boolean;
}

/**
 * Send raw bytes to host:port and collect the answer until the peer closes, a full response head
 * arrived (when `untilHead`), or `ms` passes. Always destroys the socket before resolving.
 */
function rawExchange(
  port: number,
  payload: string,
  { host = '127.0.0.1', ms = 2_000, untilHead = false }: { host?: string; ms?: number; untilHead?: boolean } = {},
): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: NodeJS.ErrnoException | undefined;
    const socket = net.connect({ host, port });
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), error, closed });
    };
    const timer = setTimeout(() => {
      finish(false);
    }, ms);
    socket.on('connect', () => {
      socket.write(payload);
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (untilHead && Buffer.concat(chunks).includes('\r\n\r\n')) {
        finish(false);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err;
    });
    socket.on('close', () => {
      finish(true);
    });
  });
}

interface HttpResult {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: string;
}

interface ViaHttpOptions {
  readonly headers?: http.OutgoingHttpHeaders | string[];
  readonly agent?: http.Agent;
}

/** A plain node:http request to the proxy with an absolute-form (or any) target, byte-exact. */
function viaHttp(proxy: RecordingProxy, path: string, { headers = {}, agent }: ViaHttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: proxy.host, port: proxy.port, path, headers, agent: agent ?? false, timeout: 5_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', reject);
    req.end();
  });
}

function tcpHandles(): number {
  return process.getActiveResourcesInfo().filter((name) => name.startsWith('TCP')).length;
}

async function withPair(
  run: (proxy: RecordingProxy, origin: TestOrigin) => Promise<void>,
  proxyOptions: Parameters<typeof createRecordingProxy>[0] = {},
  originOptions: Parameters<typeof createTestOrigin>[0] = {},
): Promise<void> {
  const proxy = await createRecordingProxy(proxyOptions);
  const origin = await createTestOrigin(originOptions);
  try {
    await run(proxy, origin);
  } finally {
    await proxy.close();
    await origin.close();
  }
}

describe('CallHistory', () => {
  interface Row {
    readonly host: string;
    readonly method: string;
    readonly port: number;
    readonly ok: boolean;
    readonly extra?: { readonly a: number };
  }
  const rows: Row[] = [
    { host: '127.0.0.1', method: 'CONNECT', port: 443, ok: true },
    { host: 'example.org', method: 'GET', port: 80, ok: false },
    { host: '127.0.0.1', method: 'GET', port: 8080, ok: true, extra: { a: 1 } },
  ];
  const make = (): ReturnType<typeof createCallRecorder<Row>> => {
    const recorder = createCallRecorder<Row>();
    for (const row of rows) {
      recorder.record(row);
    }
    return recorder;
  };

  test('positional accessors, size and iteration', () => {
    const { history } = make();
    assert.equal(history.size, 3);
    assert.equal(history.firstCall(), rows[0]);
    assert.equal(history.lastCall(), rows[2]);
    assert.equal(history.nthCall(2), rows[1]);
    assert.equal(history.nthCall(4), undefined);
    assert.throws(() => history.nthCall(0), RangeError);
    assert.throws(() => history.nthCall(1.5), RangeError);
    assert.deepEqual([...history], rows);
    assert.notEqual(history.calls(), history.calls(), 'calls() returns a snapshot');
  });

  test('filterCalls: AND by default, OR on request, RegExp, numbers, booleans, predicates', () => {
    const { history } = make();
    assert.deepEqual(history.filterCalls({ host: '127.0.0.1', method: 'CONNECT' }), [rows[0]]);
    assert.deepEqual(history.filterCalls({ host: '127.0.0.1', method: 'CONNECT' }, { operator: 'OR' }), [rows[0], rows[2]]);
    assert.deepEqual(history.filterCalls({ host: /^example\./ }), [rows[1]]);
    assert.deepEqual(history.filterCalls({ host: /127/g }), [rows[0], rows[2]], 'a /g RegExp is not stateful');
    assert.deepEqual(history.filterCalls({ port: 8080 }), [rows[2]]);
    assert.deepEqual(history.filterCalls({ ok: false }), [rows[1]]);
    assert.deepEqual(history.filterCalls({}), rows);
    assert.deepEqual(history.filterCalls((row) => row.extra?.a === 1), [rows[2]]);
  });

  test('filterCalls rejects bad criteria even on an empty history', () => {
    const { history } = createCallRecorder<Row>();
    // @ts-expect-error -- object-valued fields are not criteria
    assert.throws(() => history.filterCalls({ extra: { a: 1 } }), TypeError);
    // @ts-expect-error -- numbers are compared with numbers (at run time a string simply never matches)
    assert.deepEqual(history.filterCalls({ port: '80' }), []);
    // @ts-expect-error -- only AND and OR
    assert.throws(() => history.filterCalls({}, { operator: 'XOR' }), TypeError);
    // @ts-expect-error -- neither an object nor a function
    assert.throws(() => history.filterCalls('host'), TypeError);
  });

  test('clear() forgets calls; the public history has no record()', () => {
    const { history } = make();
    history.clear();
    assert.equal(history.size, 0);
    assert.equal(history.lastCall(), undefined);
    assert.equal('record' in history, false);
  });
});

describe('createRecordingProxy: CONNECT tunnels', () => {
  test('undici ProxyAgent to an https origin: recorded CONNECT, tunnel counters and byte counts', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const dispatcher = new ProxyAgent({ uri: proxy.url, requestTls: { ca: origin.ca ?? '' } });
        try {
          const { statusCode, body } = await request(`${origin.url}/_matrix/key/v2/server`, { dispatcher });
          assert.equal(statusCode, 200);
          assert.deepEqual(await body.json(), { ok: true, method: 'GET', url: '/_matrix/key/v2/server' });
          assert.equal(proxy.openTunnels, 1);
        } finally {
          await dispatcher.close();
        }
        const call = proxy.lastCall();
        assert.ok(call);
        assert.equal(call.method, 'CONNECT');
        assert.equal(call.target, `127.0.0.1:${origin.port}`);
        assert.equal(call.host, '127.0.0.1');
        assert.equal(call.port, origin.port);
        assert.equal(call.outcome, 'tunnelled');
        assert.equal(call.statusCode, 200);
        assert.equal(call.authenticated, true);
        assert.equal(call.authorization, undefined);
        assert.equal(proxy.filterCalls({ host: '127.0.0.1', method: 'CONNECT' }).length, 1);
        await waitFor(() => call.closedAt !== undefined, 'the tunnel to close');
        assert.ok(call.bytesUp > 0 && call.bytesDown > 0, `bytes up=${call.bytesUp} down=${call.bytesDown}`);
        assert.equal(proxy.tunnelsOpened, 1);
        assert.equal(proxy.openTunnels, 0);
        assert.equal(proxy.connections, 1);
        assert.equal(origin.lastCall()?.headers['proxy-authorization'], undefined);
      },
      {},
      { tls: true },
    );
  });

  test('raw CONNECT: 200 Connection Established, bytes pass both ways, early data (head) forwarded', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const result = await rawExchange(
        proxy.port,
        `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n` +
          `GET /early%2Fdata HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      );
      const text = result.data.toString('latin1');
      assert.match(text, /^HTTP\/1\.1 200 Connection Established\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
      assert.doesNotMatch(text.split('\r\n\r\n')[0] ?? '', /content-length|transfer-encoding/i);
      assert.equal(origin.lastCall()?.url, '/early%2Fdata');
    });
  });

  test('IPv6 target [::1]:port is recorded without brackets', TIMEOUT, async (t) => {
    if (!(await ipv6Available())) {
      t.skip('no IPv6 loopback');
      return;
    }
    await withPair(
      async (proxy, origin) => {
        const result = await rawExchange(
          proxy.port,
          `CONNECT [::1]:${origin.port} HTTP/1.1\r\nHost: [::1]:${origin.port}\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
          { host: '::1' },
        );
        assert.match(result.data.toString(), /^HTTP\/1\.1 200 Connection Established/);
        const call = proxy.lastCall();
        assert.equal(call?.target, `[::1]:${origin.port}`);
        assert.equal(call.host, '::1');
        assert.equal(call.port, origin.port);
        assert.equal(proxy.url, `http://[::1]:${proxy.port}`);
      },
      { host: '::1' },
      { host: '::1' },
    );
  });

  test('CONNECT without a port, or to a closed port, is rejected / failed', TIMEOUT, async () => {
    await withPair(async (proxy) => {
      const noPort = await rawExchange(proxy.port, 'CONNECT example.org HTTP/1.1\r\nHost: example.org\r\n\r\n');
      assert.match(noPort.data.toString(), /^HTTP\/1\.1 400 /);
      assert.equal(proxy.lastCall()?.outcome, 'rejected');
      assert.equal(proxy.lastCall()?.host, '');

      const refused = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${await closedPort()} HTTP/1.1\r\n\r\n`);
      assert.match(refused.data.toString(), /^HTTP\/1\.1 502 /);
      assert.equal(proxy.lastCall()?.outcome, 'failed');
      assert.equal(proxy.lastCall()?.errorCode, 'ECONNREFUSED');
    });
  });

  test('allowTarget refuses with 403', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const result = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`);
        assert.match(result.data.toString(), /^HTTP\/1\.1 403 /);
        assert.equal(proxy.lastCall()?.outcome, 'rejected');
        assert.equal(origin.connections, 0);
      },
      { allowTarget: (_host, port) => port === 443 },
    );
  });
});

describe('createRecordingProxy: absolute-form forwarding', () => {
  test('the target path reaches the origin byte-exact and is recorded as received', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const target = `http://127.0.0.1:${origin.port}/a%2Fb/../c%25/./d?x=%2F&y=..#`.slice(0, -1);
      const res = await viaHttp(proxy, target);
      assert.equal(res.status, 200);
      assert.equal(origin.lastCall()?.url, '/a%2Fb/../c%25/./d?x=%2F&y=..');
      const call = proxy.lastCall();
      assert.equal(call?.target, target);
      assert.equal(call.path, '/a%2Fb/../c%25/./d?x=%2F&y=..');
      assert.equal(call.outcome, 'forwarded');
      assert.equal(call.method, 'GET');
      assert.equal(call.host, '127.0.0.1');
      assert.equal(call.port, origin.port);
      assert.equal(call.statusCode, 200);
      assert.ok(call.bytesDown > 0);
      // RFC 9112 §3.2.2: Host comes from the target, not from what the client sent.
      assert.equal(origin.lastCall()?.headers.host, `127.0.0.1:${origin.port}`);
    });
  });

  test('an empty path becomes "/"; a query-only target keeps its query', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      await viaHttp(proxy, `http://127.0.0.1:${origin.port}`);
      assert.equal(origin.lastCall()?.url, '/');
      await viaHttp(proxy, `http://127.0.0.1:${origin.port}?q=1`);
      assert.equal(origin.lastCall()?.url, '/?q=1');
    });
  });

  test('hop-by-hop fields are removed both ways; Proxy-Authorization never reaches the origin', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        // Raw bytes: node:http refuses to send a Trailer field without chunked coding.
        const result = await rawExchange(
          proxy.port,
          [
            `GET http://127.0.0.1:${origin.port}/hop HTTP/1.1`,
            'Host: ignored.example',
            'Connection: close, X-Drop-Me',
            'X-Drop-Me: 1',
            'Keep-Alive: timeout=5',
            'Proxy-Connection: keep-alive',
            `Proxy-Authorization: ${basic('user', 'secret')}`,
            'TE: trailers',
            'Trailer: X-T',
            'Upgrade: h2c',
            'X-Keep: yes',
            '',
            '',
          ].join('\r\n'),
        );
        const [head = '', body] = result.data.toString('latin1').split('\r\n\r\n');
        assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
        assert.equal(body, 'ok');
        const seen = origin.lastCall();
        assert.ok(seen);
        for (const name of ['x-drop-me', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade']) {
          assert.equal(seen.headers[name], undefined, `${name} reached the origin`);
        }
        assert.equal(seen.headers['x-keep'], 'yes');
        assert.equal(seen.headers.host, `127.0.0.1:${origin.port}`);
        assert.match(String(seen.headers.via), /matrix-egress-recording-proxy/);
        // The proxy saw and recorded everything, credentials included (decoded).
        const call = proxy.lastCall();
        assert.equal(call?.headers['proxy-authorization'], basic('user', 'secret'));
        assert.deepEqual(call.authorization, { username: 'user', password: 'secret' });
        assert.deepEqual(call.rawHeaders.slice(0, 2), ['Host', 'ignored.example']);
        // And the origin's hop-by-hop response fields stop at the proxy.
        assert.doesNotMatch(head, /x-hop-response|proxy-authenticate|origin-keep-alive/i);
        assert.match(head, /\r\nX-End-To-End: kept\r\n/);
      },
      {},
      {
        handler: (_req, res) => {
          res.writeHead(200, [
            'Connection', 'X-Hop-Response, Origin-Keep-Alive',
            'X-Hop-Response', 'secret',
            'Origin-Keep-Alive', '1',
            'Proxy-Authenticate', 'Basic realm="origin"',
            'X-End-To-End', 'kept',
            'Content-Length', '2',
          ]);
          res.end('ok');
        },
      },
    );
  });

  test('Upgrade is stripped (hop-by-hop) and the request is still forwarded', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const res = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/up`, {
        headers: { Connection: 'Upgrade', Upgrade: 'h2c' },
      });
      assert.equal(res.status, 200);
      assert.equal(origin.lastCall()?.headers.upgrade, undefined);
    });
  });

  test('request and response bodies are relayed and counted', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const body = 'x'.repeat(10_000);
        const res = await new Promise<HttpResult>((resolve, reject) => {
          const req = http.request(
            { host: proxy.host, port: proxy.port, method: 'PUT', path: `http://127.0.0.1:${origin.port}/put`, agent: false },
            (r) => {
              const chunks: Buffer[] = [];
              r.on('data', (c: Buffer) => chunks.push(c));
              r.on('end', () => {
                resolve({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks).toString() });
              });
            },
          );
          req.on('error', reject);
          req.end(body);
        });
        assert.equal(res.status, 201);
        assert.equal(res.body, 'got 10000');
        await waitFor(() => proxy.lastCall()?.closedAt !== undefined, 'the exchange to close');
        assert.equal(proxy.lastCall()?.bytesUp, 10_000);
        assert.equal(proxy.lastCall()?.bytesDown, 'got 10000'.length);
      },
      {},
      {
        handler: (req, res) => {
          let n = 0;
          req.on('data', (c: Buffer) => (n += c.length));
          req.on('end', () => {
            res.writeHead(201);
            res.end(`got ${n}`);
          });
        },
      },
    );
  });

  test('keep-alive: sequential forwarded requests share one client connection', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const path of ['/one', '/two', '/three']) {
          assert.equal((await viaHttp(proxy, `${origin.url}${path}`, { agent })).status, 200);
        }
      } finally {
        agent.destroy();
      }
      const calls = proxy.filterCalls({ outcome: 'forwarded' });
      assert.deepEqual(calls.map((call) => call.target), ['/one', '/two', '/three'].map((p) => `${origin.url}${p}`));
      assert.equal(new Set(calls.map((call) => call.connectionId)).size, 1);
      assert.equal(proxy.connections, 1);
    });
  });

  test('undici ProxyAgent with proxyTunnel: false forwards absolute-form and reuses connections', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const dispatcher = new ProxyAgent({ uri: proxy.url, proxyTunnel: false });
      try {
        for (const path of ['/1', '/2', '/3', '/4']) {
          const { statusCode, body } = await request(`${origin.url}${path}`, { dispatcher });
          assert.equal(statusCode, 200);
          await body.dump();
        }
      } finally {
        await dispatcher.close();
      }
      assert.equal(proxy.filterCalls({ outcome: 'forwarded', method: 'GET' }).length, 4);
      assert.equal(proxy.filterCalls({ method: 'CONNECT' }).length, 0);
      // undici's Pool opens a second socket for the second sequential request, then reuses both.
      assert.ok(proxy.connections < 4, `${proxy.connections} connections for 4 requests`);
    });
  });

  test('origin-form, https:// absolute-form and userinfo targets get 400', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      for (const target of ['/x', `https://127.0.0.1:${origin.port}/`, `http://u:p@127.0.0.1:${origin.port}/`]) {
        const res = await viaHttp(proxy, target);
        assert.equal(res.status, 400, target);
        assert.equal(proxy.lastCall()?.outcome, 'rejected');
        assert.equal(proxy.lastCall()?.target, target);
      }
      assert.equal(origin.history.size, 0);
    });
  });

  test('an unreachable origin gives 502 with outcome failed', TIMEOUT, async () => {
    const port = await closedPort();
    await withPair(async (proxy) => {
      const res = await viaHttp(proxy, `http://127.0.0.1:${port}/`);
      assert.equal(res.status, 502);
      assert.equal(proxy.lastCall()?.outcome, 'failed');
      assert.equal(proxy.lastCall()?.errorCode, 'ECONNREFUSED');
    });
  });
});

describe('createRecordingProxy: authentication', () => {
  const auth = { username: 'alice', password: 'p@ss:w0rd' };

  test('right credentials pass on CONNECT and on forwarded requests; the origin never sees them', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const token = basic(auth.username, auth.password);
        for (const proxyTunnel of [true, false]) {
          const dispatcher = new ProxyAgent({ uri: proxy.url, token, proxyTunnel });
          try {
            const { statusCode, body } = await request(`${origin.url}/auth`, { dispatcher });
            assert.equal(statusCode, 200);
            await body.dump();
          } finally {
            await dispatcher.close();
          }
        }
        assert.deepEqual(
          proxy.calls().map((call) => [call.method, call.authenticated, call.outcome]),
          [
            ['CONNECT', true, 'tunnelled'],
            ['GET', true, 'forwarded'],
          ],
        );
        assert.deepEqual(proxy.lastCall()?.authorization, auth);
        assert.equal(origin.history.size, 2);
        for (const seen of origin.calls()) {
          assert.equal(seen.headers['proxy-authorization'], undefined);
          assert.ok(!seen.rawHeaders.some((h) => h.toLowerCase() === 'proxy-authorization'));
        }
      },
      { auth },
    );
  });

  test('wrong or missing credentials get 407 with the default realm', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const missing = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`);
        assert.match(missing.data.toString(), /^HTTP\/1\.1 407 Proxy Authentication Required\r\n/);
        assert.match(missing.data.toString(), /\r\nProxy-Authenticate: Basic realm="matrix-egress-test"\r\n/);
        assert.equal(proxy.lastCall()?.authorization, undefined);
        assert.equal(proxy.lastCall()?.authenticated, false);
        assert.equal(proxy.lastCall()?.outcome, 'rejected');
        assert.equal(proxy.lastCall()?.statusCode, 407);

        const wrong = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`, {
          headers: { 'Proxy-Authorization': basic('alice', 'nope') },
        });
        assert.equal(wrong.status, 407);
        assert.equal(wrong.headers['proxy-authenticate'], 'Basic realm="matrix-egress-test"');
        assert.deepEqual(proxy.lastCall()?.authorization, { username: 'alice', password: 'nope' });
        assert.equal(proxy.lastCall()?.authenticated, false);

        // Proxy-Authorization is a singleton: two of them (even one right) do not authenticate.
        const doubled = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`, {
          headers: [
            'Host', `127.0.0.1:${origin.port}`,
            'Proxy-Authorization', basic(auth.username, auth.password),
            'Proxy-Authorization', basic('mallory', 'x'),
          ],
        });
        assert.equal(doubled.status, 407);

        const dispatcher = new ProxyAgent({ uri: proxy.url, token: basic('alice', 'bad') });
        try {
          await assert.rejects(request(`${origin.url}/`, { dispatcher }), /407/);
        } finally {
          await dispatcher.close();
        }
        assert.equal(origin.history.size, 0);
      },
      { auth },
    );
  });

  test('custom realm, and realm: null sends a bare Basic challenge', TIMEOUT, async () => {
    for (const [realm, expected] of [
      ['homeserver egress', 'Basic realm="homeserver egress"'],
      [null, 'Basic'],
    ] as const) {
      await withPair(
        async (proxy, origin) => {
          const res = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`);
          assert.equal(res.status, 407);
          assert.equal(res.headers['proxy-authenticate'], expected);
        },
        { auth, realm },
      );
    }
  });

  test('a custom authenticator decides; a throwing one denies', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const ok = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`, {
          headers: { 'Proxy-Authorization': basic('bob', 'x') },
        });
        assert.equal(ok.status, 200);
        const no = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`, {
          headers: { 'Proxy-Authorization': basic('eve', 'x') },
        });
        assert.equal(no.status, 407);
        const boom = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`, {
          headers: { 'Proxy-Authorization': basic('boom', 'x') },
        });
        assert.equal(boom.status, 407);
      },
      {
        auth: async (credentials) => {
          if (credentials?.username === 'boom') {
            throw new Error('authenticator failure');
          }
          return credentials?.username === 'bob';
        },
      },
    );
  });

  test('urlWithCredentials percent-encodes; url never carries credentials', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        assert.equal(proxy.url, `http://127.0.0.1:${proxy.port}`);
        const withCreds = proxy.urlWithCredentials(auth.username, auth.password);
        assert.equal(withCreds, `http://alice:p%40ss%3Aw0rd@127.0.0.1:${proxy.port}`);
        const dispatcher = new ProxyAgent({ uri: withCreds });
        try {
          const { statusCode, body } = await request(`${origin.url}/`, { dispatcher });
          assert.equal(statusCode, 200);
          await body.dump();
        } finally {
          await dispatcher.close();
        }
        assert.deepEqual(proxy.lastCall()?.authorization, auth);
      },
      { auth },
    );
  });
});

describe('createRecordingProxy: failure injection', () => {
  test('{ status, times } answers the next N calls, then serves normally', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const dispatcher = new ProxyAgent({ uri: proxy.url });
        try {
          await assert.rejects(request(`${origin.url}/`, { dispatcher }), /502/);
          const { statusCode, body } = await request(`${origin.url}/`, { dispatcher });
          assert.equal(statusCode, 200);
          await body.dump();
        } finally {
          await dispatcher.close();
        }
        assert.deepEqual(
          proxy.calls().map((call) => [call.outcome, call.statusCode]),
          [
            ['injected', 502],
            ['tunnelled', 200],
          ],
        );
      },
      { fail: { connect: { status: 502, times: 1 } } },
    );
  });

  test('injected statuses apply to forwarded requests; an injected 407 carries a challenge', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      await proxy.setFailure({ connect: { status: 403 } });
      assert.equal((await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`)).status, 403);
      assert.equal((await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`)).status, 403);
      await proxy.setFailure({ connect: { status: 407 } });
      const res = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`);
      assert.equal(res.status, 407);
      assert.equal(res.headers['proxy-authenticate'], 'Basic realm="matrix-egress-test"');
      const raw = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`);
      assert.match(raw.data.toString(), /^HTTP\/1\.1 407 [^\r]*\r\n(?:[^\r]+\r\n)*Proxy-Authenticate: Basic realm=/);
      await proxy.setFailure(undefined);
      assert.equal((await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`)).status, 200);
      assert.equal(origin.history.size, 1);
      assert.equal(proxy.filterCalls({ outcome: 'injected' }).length, 4);
    });
  });

  test("'reset' resets connections on accept: the client sees ECONNRESET, no call is recorded", TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const raw = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`);
        assert.equal(raw.error?.code, 'ECONNRESET');
        assert.equal(raw.data.length, 0);
        const dispatcher = new ProxyAgent({ uri: proxy.url });
        try {
          await assert.rejects(request(`${origin.url}/`, { dispatcher }), (error: Error) => {
            assert.match(`${error.message} ${String((error as NodeJS.ErrnoException).code)}`, /ECONNRESET|other side closed|socket/i);
            return true;
          });
        } finally {
          await dispatcher.close();
        }
        assert.equal(proxy.history.size, 0);
        assert.ok(proxy.connections >= 2);
      },
      { fail: { connect: 'reset' } },
    );
  });

  test("'reset' also hits a request on an already-open keep-alive connection", TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        assert.equal((await viaHttp(proxy, `${origin.url}/1`, { agent })).status, 200);
        await proxy.setFailure({ connect: 'reset' });
        await assert.rejects(viaHttp(proxy, `${origin.url}/2`, { agent }), /ECONNRESET|socket hang up/);
      } finally {
        agent.destroy();
      }
      assert.equal(proxy.lastCall()?.outcome, 'injected');
      assert.equal(proxy.lastCall()?.target, `${origin.url}/2`);
      assert.equal(proxy.connections, 1);
    });
  });

  test("'refuse' closes the port (ECONNREFUSED) and clearing it listens again on the same port", TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const port = proxy.port;
      await proxy.setFailure({ connect: 'refuse' });
      const raw = await rawExchange(port, 'CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n');
      assert.equal(raw.error?.code, 'ECONNREFUSED');
      const dispatcher = new ProxyAgent({ uri: proxy.url });
      try {
        await assert.rejects(request(`${origin.url}/`, { dispatcher }), (error: Error) => {
          assert.match(`${error.message} ${String((error as NodeJS.ErrnoException).code)}`, /ECONNREFUSED/);
          return true;
        });
        await proxy.setFailure(undefined);
        assert.equal(proxy.port, port);
        const { statusCode, body } = await request(`${origin.url}/`, { dispatcher });
        assert.equal(statusCode, 200);
        await body.dump();
      } finally {
        await dispatcher.close();
      }
      assert.equal(proxy.connections, 1);
    });
  });

  test("'refuse' given at creation still reserves a port", TIMEOUT, async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'refuse' } });
    try {
      assert.ok(proxy.port > 0);
      assert.equal((await rawExchange(proxy.port, '')).error?.code, 'ECONNREFUSED');
      assert.deepEqual(proxy.failure, { connect: 'refuse' });
    } finally {
      await proxy.close();
    }
  });

  test("'hang' lets go of a connection the client has closed (no CLOSE_WAIT until close())", TIMEOUT, async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
    try {
      const socket = net.connect(proxy.port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      socket.write('CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n');
      await waitFor(() => proxy.calls()[0]?.outcome === 'injected', 'the CONNECT to be recorded');
      assert.equal(proxy.calls()[0]?.closedAt, undefined);
      socket.end();
      await waitFor(() => proxy.calls()[0]?.closedAt !== undefined, 'the proxy to close its end');
      socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test("'hang' never answers, the call is recorded, and close() releases the client", TIMEOUT, async () => {
    const proxy = await createRecordingProxy({ fail: { connect: 'hang' } });
    const origin = await createTestOrigin();
    try {
      const pending = rawExchange(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`, { ms: 10_000 });
      await waitFor(() => proxy.history.size === 1, 'the CONNECT to be recorded');
      assert.equal(proxy.calls()[0]?.outcome, 'injected');
      // undici does not apply the request's signal to the CONNECT exchange (v7.30): only the
      // proxy client's headersTimeout bounds a hanging proxy, so set a short one here.
      const dispatcher = new ProxyAgent({
        uri: proxy.url,
        clientFactory: (url, options) => new Pool(url, { ...options, headersTimeout: 300 }),
      });
      try {
        await assert.rejects(request(`${origin.url}/`, { dispatcher }), /timeout/i);
      } finally {
        await dispatcher.destroy();
      }
      assert.equal(proxy.calls()[0]?.outcome, 'injected');
      assert.equal(proxy.calls()[0]?.statusCode, undefined);
      const started = Date.now();
      await proxy.close();
      const result = await pending;
      assert.equal(result.closed, true, 'close() ended the hanging connection');
      assert.equal(result.data.length, 0);
      assert.ok(Date.now() - started < 2_000);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test("'garbage' answers bytes that are not HTTP", TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const raw = await rawExchange(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`);
        assert.ok(raw.data.length > 0);
        assert.doesNotMatch(raw.data.toString('latin1'), /^HTTP\//);
        const dispatcher = new ProxyAgent({ uri: proxy.url });
        try {
          await assert.rejects(request(`${origin.url}/`, { dispatcher }));
        } finally {
          await dispatcher.close();
        }
        await assert.rejects(viaHttp(proxy, `http://127.0.0.1:${origin.port}/`), /parse|HPE_|socket hang up/i);
        assert.deepEqual(new Set(proxy.calls().map((call) => call.outcome)), new Set(['injected']));
        assert.equal(origin.connections, 0);
      },
      { fail: { connect: 'garbage' } },
    );
  });

  test('delayMs delays the answer', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const started = Date.now();
        const res = await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`);
        assert.equal(res.status, 200);
        assert.ok(Date.now() - started >= 240, `answered after ${Date.now() - started} ms`);
        await proxy.setFailure({ connect: { status: 503 }, delayMs: 250 });
        const again = Date.now();
        assert.equal((await viaHttp(proxy, `http://127.0.0.1:${origin.port}/`)).status, 503);
        assert.ok(Date.now() - again >= 240);
      },
      { fail: { delayMs: 250 } },
    );
  });

  test('the injection is copied: mutating the object later changes nothing', TIMEOUT, async () => {
    await withPair(async (proxy, origin) => {
      const fail = { connect: { status: 503, times: 2 } };
      await proxy.setFailure(fail);
      fail.connect.status = 200;
      fail.connect.times = 100;
      assert.deepEqual(proxy.failure, { connect: { status: 503, times: 2 } });
      assert.equal((await viaHttp(proxy, `${origin.url}/`)).status, 503);
      assert.equal((await viaHttp(proxy, `${origin.url}/`)).status, 503);
      assert.equal((await viaHttp(proxy, `${origin.url}/`)).status, 200);
    });
  });

  test('a client that leaves during the delay is recorded as failed and never reaches the origin', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        // A reset, not a FIN: with a half-close the tunnel may legitimately still be wanted.
        const client = net.connect({ host: proxy.host, port: proxy.port });
        client.on('error', () => undefined);
        client.write(`CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\n`);
        await waitFor(() => proxy.history.size === 1, 'the CONNECT to be recorded');
        client.resetAndDestroy();
        await waitFor(() => proxy.lastCall()?.outcome === 'failed', 'the call to be marked failed');
        assert.ok(proxy.lastCall()?.closedAt);
        assert.equal(origin.connections, 0);
      },
      { fail: { delayMs: 400 } },
    );
  });

  test('invalid injections are refused with TypeError', TIMEOUT, async () => {
    await withPair(async (proxy) => {
      // @ts-expect-error -- not a failure kind
      await assert.rejects(proxy.setFailure({ connect: 'explode' }), TypeError);
      await assert.rejects(proxy.setFailure({ connect: { status: 200 } }), TypeError);
      await assert.rejects(proxy.setFailure({ connect: { status: 502, times: 0 } }), TypeError);
      await assert.rejects(proxy.setFailure({ delayMs: -1 }), TypeError);
      // @ts-expect-error -- unknown key
      await assert.rejects(proxy.setFailure({ conect: 'reset' }), TypeError);
      assert.equal(proxy.failure, undefined);
    });
  });
});

describe('createRecordingProxy: TLS proxy', () => {
  test('an https:// proxy is trusted through its ca, and fails verification without it', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        assert.equal(proxy.protocol, 'https:');
        assert.equal(proxy.url, `https://127.0.0.1:${proxy.port}`);
        assert.match(proxy.ca ?? '', /BEGIN CERTIFICATE/);
        // undici 7 passes the proxy's host as TLS servername, and Node 26 refuses an IP address
        // there (ERR_INVALID_ARG_VALUE); the kit's certificate also names localhost, so send that.
        const dispatcher = new ProxyAgent({
          uri: proxy.url,
          proxyTls: { ca: proxy.ca ?? '', servername: 'localhost' },
          requestTls: { ca: origin.ca ?? '' },
        });
        try {
          const { statusCode, body } = await request(`${origin.url}/tls`, { dispatcher });
          assert.equal(statusCode, 200);
          await body.dump();
        } finally {
          await dispatcher.close();
        }
        assert.equal(proxy.lastCall()?.outcome, 'tunnelled');
        assert.equal(origin.lastCall()?.url, '/tls');

        const untrusting = new ProxyAgent({ uri: proxy.url, proxyTls: { servername: 'localhost' }, requestTls: { ca: origin.ca ?? '' } });
        try {
          await assert.rejects(request(`${origin.url}/`, { dispatcher: untrusting }), (error: Error) => {
            assert.match(String((error as NodeJS.ErrnoException).code), /SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY/);
            return true;
          });
        } finally {
          await untrusting.close();
        }
        assert.equal(proxy.history.size, 1, 'the untrusting client never got to send a CONNECT');
      },
      { tls: true },
      { tls: true },
    );
  });

  test('a TLS proxy forwards absolute-form http requests', TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        // undici only forwards (proxyTunnel: false) through http:// proxies, so use node:https.
        const status = await new Promise<number>((resolve, reject) => {
          const req = https.request(
            {
              host: proxy.host,
              port: proxy.port,
              path: `${origin.url}/plain%2F..`,
              ca: proxy.ca ?? '',
              servername: 'localhost',
              agent: false,
              timeout: 5_000,
            },
            (res) => {
              res.resume();
              res.on('end', () => {
                resolve(res.statusCode ?? 0);
              });
            },
          );
          req.on('timeout', () => req.destroy(new Error('client timeout')));
          req.on('error', reject);
          req.end();
        });
        assert.equal(status, 200);
        assert.equal(proxy.lastCall()?.outcome, 'forwarded');
        assert.equal(proxy.lastCall()?.servername, 'localhost');
        assert.equal(proxy.lastCall()?.target, `${origin.url}/plain%2F..`);
        assert.equal(origin.lastCall()?.url, '/plain%2F..');
      },
      { tls: true },
    );
  });

  test("'reset' on a TLS proxy closes the connection before the handshake", TIMEOUT, async () => {
    await withPair(
      async (proxy, origin) => {
        const dispatcher = new ProxyAgent({ uri: proxy.url, proxyTls: { ca: proxy.ca ?? '' } });
        try {
          await assert.rejects(request(`${origin.url}/`, { dispatcher }));
        } finally {
          await dispatcher.close();
        }
        assert.equal(proxy.history.size, 0);
      },
      { tls: true, fail: { connect: 'reset' } },
    );
  });
});

describe('createRecordingProxy: lifecycle and options', () => {
  test('close() destroys open tunnels and hanging calls, is idempotent, and leaves no TCP handles', TIMEOUT, async () => {
    const before = tcpHandles();
    const proxy = await createRecordingProxy();
    const origin = await createTestOrigin({ handler: () => undefined }); // never answers
    const tunnel = rawExchange(
      proxy.port,
      `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n`,
      { ms: 10_000 },
    );
    const forwarded = viaHttp(proxy, `http://127.0.0.1:${origin.port}/slow`).catch((error: unknown) => error);
    await waitFor(() => proxy.openTunnels === 1 && origin.history.size === 2, 'a tunnel and a forwarded request');
    const first = proxy.close();
    assert.equal(proxy.close(), first, 'close() returns the same promise');
    await first;
    assert.equal((await tunnel).closed, true);
    assert.ok((await forwarded) instanceof Error);
    assert.equal(proxy.openTunnels, 0);
    await origin.close();
    await waitFor(() => tcpHandles() <= before, `TCP handles back to ${before} (now ${tcpHandles()})`);
    await proxy[Symbol.asyncDispose]();
  });

  test('await using closes the proxy', TIMEOUT, async () => {
    let port: number;
    {
      await using proxy = await createRecordingProxy();
      port = proxy.port;
    }
    assert.equal((await rawExchange(port, '')).error?.code, 'ECONNREFUSED');
  });

  test('options are validated and named in errors', TIMEOUT, async () => {
    await assert.rejects(createRecordingProxy({ host: '0.0.0.0' }), /Option `host`: must be a loopback/);
    await assert.rejects(createRecordingProxy({ host: '10.0.0.1' }), TypeError);
    await assert.rejects(createRecordingProxy({ port: 70_000 }), /Option `port`/);
    // @ts-expect-error -- unknown option
    await assert.rejects(createRecordingProxy({ server: {} }), /Option `server`: unknown option/);
    await assert.rejects(createRecordingProxy({ realm: 'a"b' }), /Option `realm`/);
    await assert.rejects(createRecordingProxy({ auth: { username: 'a:b', password: '' } }), /Option `auth`/);
    await assert.rejects(createRecordingProxy({ fail: { connect: { status: 99 } } }), /Option `fail.connect.status`/);
    // @ts-expect-error -- cert and key are required
    await assert.rejects(createRecordingProxy({ tls: { cert: 'x' } }), /Option `tls`/);
  });
});
