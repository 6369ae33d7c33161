// Tests of test/support/dante.ts: a real danted on loopback with our own config, with and without
// username auth (users from nss_wrapper files), names resolved from our own hosts file, log
// parsing, and stop by PID (children included). Driven by the `socks` client package.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import type * as net from 'node:net';
import { after, before, describe, test } from 'node:test';
import * as tls from 'node:tls';

import { SocksClient } from 'socks';

import { createTestOrigin, type TestOrigin } from '../../../src/testing/test-origin.js';
import { assertDanteAvailable, childProcesses, startDante, type DanteInstance } from '../../support/dante.js';
import { closedPort, ipv6Available } from '../../support/net.js';

const TIMEOUT = { timeout: 30_000 };
const ONION = 'matrixdantetest.onion';
const CREDENTIALS = { username: 'egress-test', password: 'p@ss w0rd:x' };

interface Via {
  readonly userId?: string;
  readonly password?: string;
}

async function connectVia(dante: DanteInstance, host: string, port: number, via: Via = {}, proxyHost = '127.0.0.1'): Promise<net.Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: proxyHost, port: dante.port, type: 5, ...via },
    command: 'connect',
    destination: { host, port },
    timeout: 5_000,
  });
  return socket;
}

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

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('Dante support: no authentication', () => {
  let dante: DanteInstance;
  let origin: TestOrigin;

  before(async () => {
    assertDanteAvailable();
    origin = await createTestOrigin();
    dante = await startDante({ hosts: { [ONION]: '127.0.0.1' } });
  });

  after(async () => {
    await dante.stop();
    await origin.close();
  });

  test('relays a CONNECT by name (socks5h) resolved from our hosts file, and logs the tunnel', TIMEOUT, async () => {
    const before = await dante.tunnelsOpened();
    const socket = await connectVia(dante, ONION, origin.port);
    assert.match(await httpGet(socket, `${ONION}:${String(origin.port)}`, '/by-name'), /^HTTP\/1\.1 200 /);
    assert.equal(origin.lastCall()?.url, '/by-name');
    await dante.waitForLog((entry) => entry.operation === 'tcp/connect' && entry.phase === 'close' && entry.detail.includes(`127.0.0.1.${String(origin.port)}`));
    assert.equal(await dante.tunnelsOpened(), before + 1);
    const open = (await dante.log()).find((entry) => entry.operation === 'tcp/connect' && entry.phase === 'open');
    assert.equal(open?.verdict, 'pass');
    assert.equal(open.user, undefined);
  });

  test('relays a CONNECT by address (socks5) and TLS inside it validates', TIMEOUT, async () => {
    await using tlsOrigin = await createTestOrigin({ tls: true });
    const socket = await connectVia(dante, '127.0.0.1', tlsOrigin.port);
    const secure = tls.connect({ socket, servername: 'localhost', ca: tlsOrigin.ca });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    assert.match(await httpGet(secure, `localhost:${String(tlsOrigin.port)}`, '/tls'), /^HTTP\/1\.1 200 /);
    assert.equal(tlsOrigin.lastCall()?.servername, 'localhost');
  });

  test('refuses what our config does not allow: unknown names, non-loopback addresses; reports refused ports', TIMEOUT, async () => {
    await assert.rejects(connectVia(dante, 'unknown.onion', 443), /HostUnreachable|GeneralFailure/);
    // TEST-NET-1 (RFC 5737): refused by the rules before any connection attempt.
    await assert.rejects(connectVia(dante, '192.0.2.1', 443), /NotAllowed/);
    await assert.rejects(connectVia(dante, '127.0.0.1', await closedPort()), /ConnectionRefused/);
    await dante.waitForLog((entry) => entry.verdict === 'block' && entry.detail.includes('192.0.2.1'));
  });
});

describe('Dante support: username authentication', () => {
  let origin: TestOrigin;

  before(async () => {
    assertDanteAvailable();
    origin = await createTestOrigin();
  });

  after(async () => {
    await origin.close();
  });

  test('required: the instance user passes, a wrong password and no credentials are refused', TIMEOUT, async () => {
    const dante = await startDante({ auth: CREDENTIALS });
    try {
      const socket = await connectVia(dante, '127.0.0.1', origin.port, { userId: CREDENTIALS.username, password: CREDENTIALS.password });
      assert.match(await httpGet(socket, origin.host, '/authed'), /^HTTP\/1\.1 200 /);
      const open = await dante.waitForLog((entry) => entry.operation === 'tcp/connect' && entry.phase === 'open');
      assert.equal(open.user, CREDENTIALS.username);
      await assert.rejects(connectVia(dante, '127.0.0.1', origin.port, { userId: CREDENTIALS.username, password: 'wrong' }));
      await assert.rejects(connectVia(dante, '127.0.0.1', origin.port));
      // System accounts are not in the instance's password database.
      await assert.rejects(connectVia(dante, '127.0.0.1', origin.port, { userId: 'root', password: 'x' }));
      assert.equal(await dante.tunnelsOpened(), 1);
      assert.ok(!(await dante.rawLog()).includes(CREDENTIALS.password));
    } finally {
      await dante.stop();
    }
  });

  test('optional: clients without credentials pass too', TIMEOUT, async () => {
    const dante = await startDante({ auth: CREDENTIALS, authOptional: true });
    try {
      (await connectVia(dante, '127.0.0.1', origin.port)).destroy();
      (await connectVia(dante, '127.0.0.1', origin.port, { userId: CREDENTIALS.username, password: CREDENTIALS.password })).destroy();
      await assert.rejects(connectVia(dante, '127.0.0.1', origin.port, { userId: CREDENTIALS.username, password: 'wrong' }));
    } finally {
      await dante.stop();
    }
  });

  test('bad auth options are refused before anything starts', async () => {
    await assert.rejects(startDante({ auth: { username: 'Bad User', password: 'x' } }), TypeError);
    await assert.rejects(startDante({ auth: { username: 'ok', password: 'a\nb' } }), TypeError);
  });
});

describe('Dante support: lifecycle', () => {
  test('stop() ends danted and its children by PID and removes the directory; force too', TIMEOUT, async () => {
    for (const force of [false, true]) {
      const dante = await startDante();
      const children = childProcesses(dante.pid);
      assert.ok(children.length > 0, 'danted forks negotiate/request/io children');
      await dante.stop({ force });
      assert.equal(alive(dante.pid), false);
      assert.deepEqual(children.filter(alive), []);
      assert.equal(existsSync(dante.dir), false);
      await dante.stop();
    }
  });

  test('ipv6: listens on [::1] and relays to ::1', TIMEOUT, async (t) => {
    if (!(await ipv6Available())) {
      t.skip('no IPv6 loopback');
      return;
    }
    await using origin = await createTestOrigin({ host: '::1' });
    const dante = await startDante({ ipv6: true });
    try {
      assert.equal(dante.ipv6Url, `socks5://[::1]:${String(dante.port)}`);
      const socket = await connectVia(dante, '::1', origin.port, {}, '::1');
      assert.match(await httpGet(socket, `[::1]:${String(origin.port)}`, '/v6'), /^HTTP\/1\.1 200 /);
    } finally {
      await dante.stop();
    }
  });
});
