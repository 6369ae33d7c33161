// Tests of the shipped recording SOCKS5 proxy, driven by the `socks` client package and by raw
// sockets, relaying to real test origins (HTTP and TLS). Loopback only.
import assert from 'node:assert/strict';
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import { describe, test } from 'node:test';
import * as tls from 'node:tls';
import { inspect } from 'node:util';

import { SocksClient, type SocksClientOptions } from 'socks';

import {
  describeSocksCall,
  expectNoSocksCall,
  expectSocksAddress,
  expectSocksAuth,
  expectSocksName,
} from '../../src/testing/socks-assertions.js';
import { createRecordingSocksProxy, type RecordingSocksProxy } from '../../src/testing/socks-proxy.js';
import { createTestOrigin } from '../../src/testing/test-origin.js';
import { closedPort, ipv6Available, waitFor } from '../support/net.js';

const TIMEOUT = { timeout: 20_000 };
const ONION = 'matrixtestabcdefghijklmnopqrstuvwxyz234567abcdefghijklmnop.onion';

interface Via {
  readonly userId?: string;
  readonly password?: string;
  readonly timeout?: number;
}

/** Open a SOCKS5 CONNECT through `proxy` with the `socks` client: a name is sent as ATYP 3, an IP as 1 or 4. */
async function connectVia(proxy: RecordingSocksProxy, host: string, port: number, via: Via = {}): Promise<net.Socket> {
  const options: SocksClientOptions = {
    proxy: {
      host: proxy.host,
      port: proxy.port,
      type: 5,
      ...(via.userId === undefined ? {} : { userId: via.userId }),
      ...(via.password === undefined ? {} : { password: via.password }),
    },
    command: 'connect',
    destination: { host, port },
    timeout: via.timeout ?? 5_000,
  };
  const { socket } = await SocksClient.createConnection(options);
  return socket;
}

/** A minimal HTTP/1.1 GET over an established stream; resolves with the whole response text. */
function httpGet(stream: net.Socket | tls.TLSSocket, host: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('error', reject);
    stream.once('end', () => {
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    stream.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  });
}

/** Raw exchange: send `payload`, collect until the peer closes or `ms` passes. */
function raw(port: number, payload: Buffer, ms = 2_000): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect({ host: '127.0.0.1', port });
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => {
      finish(false);
    }, ms);
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      finish(true);
    });
  });
}

function portBytes(port: number): Buffer {
  const bytes = Buffer.alloc(2);
  bytes.writeUInt16BE(port);
  return bytes;
}

describe('recording SOCKS proxy: CONNECT and relaying', () => {
  test('socks5h: a name from the hosts map is relayed to the local origin and recorded as a name', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ hosts: { [ONION]: '127.0.0.1' } });
    const socket = await connectVia(socks, ONION, origin.port);
    const response = await httpGet(socket, `${ONION}:${String(origin.port)}`, '/_matrix/federation/v1/version');
    assert.match(response, /^HTTP\/1\.1 200 /);
    assert.equal(origin.lastCall()?.url, '/_matrix/federation/v1/version');

    const call = expectSocksName(socks, ONION.toUpperCase(), { port: origin.port, outcome: 'connected' });
    assert.equal(call.addressType, 'domain');
    assert.equal(call.name, ONION);
    assert.equal(call.address, undefined);
    assert.equal(call.host, ONION);
    assert.equal(call.target, `${ONION}:${String(origin.port)}`);
    assert.equal(call.connectedTo, '127.0.0.1');
    assert.equal(call.reply, 0);
    assert.equal(call.command, 1);
    assert.deepEqual(call.methodsOffered, [0]);
    assert.equal(call.method, 0);
    assert.equal(call.authOffered, false);
    assert.equal(call.authUsed, false);
    assert.equal(call.authenticated, true);
    assert.ok(call.requestedAt !== undefined && call.repliedAt !== undefined);
    assert.ok(call.repliedAt >= call.requestedAt && call.requestedAt >= call.openedAt);
    await waitFor(() => call.closedAt !== undefined, 'the tunnel to close');
    assert.ok(call.bytesUp > 0 && call.bytesDown > 0);
    assert.equal(socks.tunnelsOpened, 1);
    assert.equal(socks.openTunnels, 0);
    assert.equal(socks.filterCalls({ addressType: 'domain', port: origin.port }).length, 1);
    assert.throws(() => expectSocksAddress(socks, '127.0.0.1'), /asked for a name: the client let the proxy resolve it/);
  });

  test('socks5: an IPv4 address is recorded as an address', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy();
    const socket = await connectVia(socks, '127.0.0.1', origin.port);
    assert.match(await httpGet(socket, origin.host, '/a'), /^HTTP\/1\.1 200 /);
    const call = expectSocksAddress(socks, '127.0.0.1', { port: origin.port });
    assert.equal(call.addressType, 'ipv4');
    assert.equal(call.name, undefined);
    assert.throws(() => expectSocksName(socks, 'localhost'), (error: Error) => {
      assert.equal(error.name, 'AssertionError');
      assert.match(error.message, /asked for an address, not a name/);
      assert.match(error.message, /#1 CONNECT address 127\.0\.0\.1:\d+ → connected 0 \(succeeded\), auth: none/);
      return true;
    });
  });

  test('socks5: an IPv6 address is recorded in canonical form', TIMEOUT, async (t) => {
    if (!(await ipv6Available())) {
      t.skip('no IPv6 loopback');
      return;
    }
    await using origin = await createTestOrigin({ host: '::1' });
    await using socks = await createRecordingSocksProxy({ host: '::1' });
    assert.equal(socks.socks5Url, `socks5://[::1]:${String(socks.port)}`);
    const socket = await connectVia(socks, '::1', origin.port);
    assert.match(await httpGet(socket, `[::1]:${String(origin.port)}`, '/v6'), /^HTTP\/1\.1 200 /);
    const call = expectSocksAddress(socks, '0:0:0:0:0:0:0:1', { port: origin.port });
    assert.equal(call.addressType, 'ipv6');
    assert.equal(call.target, `[::1]:${String(origin.port)}`);
  });

  test('TLS to the origin inside the tunnel validates against the origin CA with the name as SNI', TIMEOUT, async () => {
    await using origin = await createTestOrigin({ tls: true });
    await using socks = await createRecordingSocksProxy({ hosts: { 'localhost.': '127.0.0.1' } });
    const socket = await connectVia(socks, 'localhost', origin.port);
    const secure = tls.connect({ socket, servername: 'localhost', ca: origin.ca });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    assert.match(await httpGet(secure, `localhost:${String(origin.port)}`, '/tls'), /^HTTP\/1\.1 200 /);
    assert.equal(origin.lastCall()?.servername, 'localhost');
    expectSocksName(socks, 'localhost', { outcome: 'connected' });
  });

  test('bytes pipelined behind the request reach the destination', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy();
    const request = Buffer.from(`GET /early HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const payload = Buffer.concat([
      Buffer.from([5, 1, 0]),
      Buffer.from([5, 1, 0, 1, 127, 0, 0, 1]),
      portBytes(origin.port),
      request,
    ]);
    const { data } = await raw(socks.port, payload);
    assert.deepEqual([...data.subarray(0, 2)], [5, 0]);
    assert.deepEqual([...data.subarray(2, 4)], [5, 0]);
    assert.match(data.subarray(12).toString('latin1'), /^HTTP\/1\.1 200 /);
    assert.equal(origin.lastCall()?.url, '/early');
  });
});

describe('recording SOCKS proxy: refusals', () => {
  test('a name outside the hosts map gets reply 4 and no look-up; a non-loopback address gets reply 2', TIMEOUT, async () => {
    await using socks = await createRecordingSocksProxy();
    await assert.rejects(connectVia(socks, 'matrix.org', 443), /HostUnreachable/);
    assert.equal(socks.lastCall()?.reply, 4);
    assert.equal(socks.lastCall()?.outcome, 'rejected');
    assert.equal(socks.lastCall()?.connectedTo, undefined);
    // 192.0.2.0/24 is TEST-NET-1 (RFC 5737): refused by the kit before any connection attempt.
    await assert.rejects(connectVia(socks, '192.0.2.1', 443), /NotAllowed/);
    assert.equal(socks.lastCall()?.reply, 2);
    assert.equal(socks.tunnelsOpened, 0);
  });

  test('allowTarget refuses with reply 2', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ allowTarget: (_host, port) => port === 443 });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port), /NotAllowed/);
    assert.equal(socks.lastCall()?.outcome, 'rejected');
  });

  test('an unreachable destination gets reply 5 with the error code recorded', TIMEOUT, async () => {
    const port = await closedPort();
    await using socks = await createRecordingSocksProxy();
    await assert.rejects(connectVia(socks, '127.0.0.1', port), /ConnectionRefused/);
    const call = socks.lastCall();
    assert.equal(call?.reply, 5);
    assert.equal(call.outcome, 'failed');
    assert.equal(call.errorCode, 'ECONNREFUSED');
    assert.equal(call.connectedTo, '127.0.0.1');
  });

  test('raw: SOCKS4, an unknown address type and BIND are refused as the RFC says', TIMEOUT, async () => {
    await using socks = await createRecordingSocksProxy();
    const socks4 = await raw(socks.port, Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0]));
    assert.equal(socks4.data.length, 0);
    assert.equal(socks4.closed, true);
    assert.equal(socks.lastCall()?.outcome, 'rejected');
    assert.equal(socks.lastCall()?.errorCode, 'ERR_SOCKS_VERSION');
    assert.equal(socks.lastCall()?.version, 4);

    const atyp = await raw(socks.port, Buffer.from([5, 1, 0, 5, 1, 0, 9, 1, 2, 3, 4, 0, 80]));
    assert.deepEqual([...atyp.data.subarray(2, 4)], [5, 8]);
    assert.equal(socks.lastCall()?.outcome, 'rejected');

    const bind = await raw(socks.port, Buffer.concat([Buffer.from([5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1]), portBytes(80)]));
    assert.deepEqual([...bind.data.subarray(2, 4)], [5, 7]);
    assert.equal(socks.lastCall()?.command, 2);
    assert.match(describeSocksCall(socks.lastCall() ?? assert.fail()), /BIND address 127\.0\.0\.1:80 → rejected 7 \(command not supported\)/);
  });

  test('a client that leaves mid-greeting is recorded as failed', TIMEOUT, async () => {
    await using socks = await createRecordingSocksProxy();
    await raw(socks.port, Buffer.from([5, 2, 0]), 200);
    await waitFor(() => socks.lastCall()?.closedAt !== undefined, 'the session to close');
    assert.equal(socks.lastCall()?.outcome, 'failed');
    assert.equal(socks.lastCall()?.errorCode, 'ERR_SOCKS_SHORT_READ');
  });
});

describe('recording SOCKS proxy: username/password (RFC 1929)', () => {
  const credentials = { username: 'synapse', password: 'p@ss:w0rd secret' };

  test('required: the right credentials pass; the password is kept out of inspect, JSON and messages', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ auth: credentials });
    const socket = await connectVia(socks, '127.0.0.1', origin.port, { userId: 'synapse', password: credentials.password });
    assert.match(await httpGet(socket, origin.host, '/'), /^HTTP\/1\.1 200 /);
    const [call] = expectSocksAuth(socks, { username: 'synapse' });
    assert.ok(call !== undefined);
    assert.equal(call.method, 2);
    assert.equal(call.authOffered, true);
    assert.equal(call.username, 'synapse');
    assert.equal(call.password, credentials.password);
    assert.equal(socks.filterCalls({ password: credentials.password }).length, 1);
    for (const text of [inspect(call, { depth: 5 }), JSON.stringify(call), JSON.stringify({ ...call }), describeSocksCall(call)]) {
      assert.ok(!text.includes(credentials.password), text);
    }
    assert.ok(!describeSocksCall(call).includes('synapse'));
    const failure = (() => {
      try {
        expectSocksAuth(socks, { username: 'other' });
      } catch (error) {
        return error as Error;
      }
      return assert.fail('expectSocksAuth should have failed');
    })();
    assert.equal(failure.name, 'AssertionError');
    assert.ok(!failure.message.includes('synapse') && !failure.message.includes(credentials.password));
  });

  test('required: wrong credentials are refused (status 1) and no offer at all gets method 0xFF', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ auth: credentials });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port, { userId: 'synapse', password: 'wrong' }));
    assert.equal(socks.lastCall()?.outcome, 'rejected');
    assert.equal(socks.lastCall()?.authenticated, false);
    expectSocksAuth(socks, { username: 'synapse', accepted: false });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port));
    assert.equal(socks.lastCall()?.method, 0xff);
    assert.equal(socks.lastCall()?.outcome, 'rejected');
    assert.equal(socks.tunnelsOpened, 0);
    assert.equal(origin.calls().length, 0);
  });

  test('optional: a client without credentials is let in, one with credentials is checked', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ auth: async ({ username }) => Promise.resolve(username === 'ok'), authRequired: false });
    (await connectVia(socks, '127.0.0.1', origin.port)).destroy();
    assert.equal(socks.lastCall()?.method, 0);
    assert.equal(socks.lastCall()?.outcome, 'connected');
    (await connectVia(socks, '127.0.0.1', origin.port, { userId: 'ok', password: 'x' })).destroy();
    assert.equal(socks.lastCall()?.method, 2);
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port, { userId: 'nope', password: 'x' }));
    assert.equal(socks.lastCall()?.outcome, 'rejected');
  });

  test('urlWithCredentials percent-encodes; the plain URLs carry none', TIMEOUT, async () => {
    await using socks = await createRecordingSocksProxy();
    assert.equal(socks.urlWithCredentials('a b', 'p@ss'), `socks5h://a%20b:p%40ss@127.0.0.1:${String(socks.port)}`);
    assert.equal(socks.urlWithCredentials('u', 'p', 'socks5:'), `socks5://u:p@127.0.0.1:${String(socks.port)}`);
    assert.equal(socks.socks5hUrl, `socks5h://127.0.0.1:${String(socks.port)}`);
  });
});

describe('recording SOCKS proxy: failure injection', () => {
  test('{ reply, times } answers that reply code, then serves normally', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ fail: { connect: { reply: 0x05, times: 1 } } });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port), /ConnectionRefused/);
    assert.equal(socks.lastCall()?.outcome, 'injected');
    assert.equal(socks.lastCall()?.reply, 5);
    (await connectVia(socks, '127.0.0.1', origin.port)).destroy();
    assert.equal(socks.lastCall()?.outcome, 'connected');
  });

  test("'refuse' closes the port and reopens it on the same number", TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy();
    const port = socks.port;
    await socks.setFailure({ connect: 'refuse' });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port), /ECONNREFUSED/);
    await socks.setFailure(undefined);
    assert.equal(socks.port, port);
    (await connectVia(socks, '127.0.0.1', origin.port)).destroy();
    assert.equal(socks.calls().length, 1);
  });

  test("'reset', 'garbage' and 'hang' at the greeting; 'hang' at the request", TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ fail: { connect: 'reset' } });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port), /ECONNRESET|Socket closed/);
    // Reset on accept, before any byte: counted as a connection, recorded as no call (as the HTTP proxy does).
    assert.equal(socks.connections, 1);
    assert.equal(socks.calls().length, 0);
    await socks.setFailure({ connect: 'reset', stage: 'request' });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port), /ECONNRESET|Socket closed/);
    assert.equal(socks.lastCall()?.outcome, 'injected');
    assert.equal(socks.lastCall()?.port, origin.port);

    await socks.setFailure({ connect: 'garbage' });
    const garbage = await raw(socks.port, Buffer.from([5, 1, 0]));
    assert.ok(garbage.data.length > 0 && garbage.data[0] !== 5, 'the answer is not SOCKS5');
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port));

    await socks.setFailure({ connect: 'hang' });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port, { timeout: 300 }), /timed out|Timed out|timeout/i);
    await socks.setFailure({ connect: 'hang', stage: 'request' });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port, { timeout: 300 }), /timed out|Timed out|timeout/i);
    const call = socks.lastCall();
    assert.equal(call?.outcome, 'injected');
    assert.equal(call.method, 0);
    assert.equal(call.port, origin.port);
    assert.equal(call.reply, undefined);
    await waitFor(() => call.closedAt !== undefined, 'the hung session to be let go');
  });

  test("auth injection: 'reject' refuses good credentials, 'no-acceptable-method' answers 0xFF", TIMEOUT, async () => {
    const credentials = { username: 'u', password: 'p' };
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ auth: credentials, fail: { auth: 'reject' } });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port, { userId: 'u', password: 'p' }));
    assert.equal(socks.lastCall()?.outcome, 'injected');
    assert.equal(socks.lastCall()?.authUsed, true);
    await socks.setFailure({ auth: 'no-acceptable-method' });
    await assert.rejects(connectVia(socks, '127.0.0.1', origin.port, { userId: 'u', password: 'p' }));
    assert.equal(socks.lastCall()?.method, 0xff);
    assert.equal(socks.lastCall()?.authUsed, false);
  });

  test('delayMs holds the reply back', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy({ fail: { delayMs: 150 } });
    const started = Date.now();
    (await connectVia(socks, '127.0.0.1', origin.port)).destroy();
    assert.ok(Date.now() - started >= 140);
    const call = socks.lastCall();
    assert.ok(call?.repliedAt !== undefined && call.requestedAt !== undefined);
    assert.ok(call.repliedAt.getTime() - call.requestedAt.getTime() >= 140);
  });

  test('close() ends open tunnels and hung sessions', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    const socks = await createRecordingSocksProxy();
    const socket = await connectVia(socks, '127.0.0.1', origin.port);
    assert.equal(socks.openTunnels, 1);
    const closed = new Promise((resolve) => {
      socket.once('close', resolve);
    });
    await socks.close();
    await closed;
    assert.equal(socks.openTunnels, 0);
    await socks.close(); // idempotent
  });
});

describe('recording SOCKS proxy: options and assertions misuse', () => {
  test('invalid options are TypeErrors naming the option', async () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ nope: 1 }, /Option `nope`: unknown option/],
      [{ host: '0.0.0.0' }, /Option `host`: must be a loopback/],
      [{ hosts: { 'x.onion': '10.0.0.1' } }, /Option `hosts.x.onion`: must be a loopback/],
      [{ hosts: { 'bad name': '127.0.0.1' } }, /Option `hosts`/],
      [{ auth: { username: '', password: 'p' } }, /Option `auth`/],
      [{ authRequired: 'yes' }, /Option `authRequired`/],
      [{ fail: { connect: { reply: 0 } } }, /Option `fail.connect.reply`/],
      [{ fail: { connect: 'explode' } }, /Option `fail.connect`/],
      [{ fail: { stage: 'later' } }, /Option `fail.stage`/],
      [{ fail: { delayMs: -1 } }, /Option `fail.delayMs`/],
      [{ fail: { other: 1 } }, /Option `fail.other`/],
    ];
    for (const [options, message] of bad) {
      await assert.rejects(createRecordingSocksProxy(options), (error: Error) => error instanceof TypeError && message.test(error.message));
    }
  });

  test('assertions refuse wrong arguments with TypeErrors, and expectNoSocksCall lists offenders', TIMEOUT, async () => {
    await using origin = await createTestOrigin();
    await using socks = await createRecordingSocksProxy();
    assert.throws(() => expectSocksName({} as RecordingSocksProxy, 'x'), TypeError);
    assert.throws(() => expectSocksAddress(socks, 'not-an-ip'), TypeError);
    assert.throws(() => expectSocksName(socks, 'x', { port: 0 }), TypeError);
    expectNoSocksCall(socks);
    (await connectVia(socks, '127.0.0.1', origin.port)).destroy();
    expectNoSocksCall(socks, 'matrix.org');
    assert.throws(() => { expectNoSocksCall(socks, '127.0.0.1'); }, /saw 1\.\n.*#1 CONNECT address 127\.0\.0\.1/s);
  });
});
