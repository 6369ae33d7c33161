/**
 * Small helpers for the egress-through-Squid integration tests: who opened a connection an origin
 * saw (Squid or this process), waiting on Squid's access log, and unwrapping fetch errors.
 *
 * Linux only (reads /proc), like the Squid the tests run.
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

import type { AccessLogEntry, SquidInstance } from './squid.js';
import { tcpRows } from './proc-net.js';

/** The part of a recorded origin request these helpers need. */
interface PeerOf {
  readonly remotePort: number;
}

/** What a request rejected with, for the Squid tests (see ./failures.ts). */
export { failureOf, fetchError } from './failures.js';

/**
 * The socket inode of the TCP connection whose local port is `localPort` and remote port is
 * `remotePort`, from /proc/net/tcp{,6}. Only established connections carry an inode.
 */
function socketInode(localPort: number, remotePort: number): string | undefined {
  return tcpRows().find((row) => row.inode !== '0' && row.localPort === localPort && row.remotePort === remotePort)?.inode;
}

function holdsSocket(pid: number, inode: string): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${String(pid)}/fd`);
  } catch {
    return false;
  }
  const wanted = `socket:[${inode}]`;
  return fds.some((fd) => {
    try {
      return readlinkSync(`/proc/${String(pid)}/fd/${fd}`) === wanted;
    } catch {
      return false;
    }
  });
}

/**
 * Which of `pids` holds the client end of the connection an origin listening on `originPort`
 * received `call` on. The connection must still be open (call this before closing the egress).
 * Loopback addresses cannot tell Squid from us — both connect from 127.0.0.1 — the owning process can.
 */
function peerProcess(call: PeerOf, originPort: number, pids: readonly number[]): number | undefined {
  const inode = socketInode(call.remotePort, originPort);
  if (inode === undefined) return undefined;
  return pids.find((pid) => holdsSocket(pid, inode));
}

/** Assert that the origin's peer for `call` is the Squid process (the request came through Squid). */
export function assertCameFromSquid(call: PeerOf | undefined, originPort: number, squid: SquidInstance): void {
  assert.ok(call !== undefined, 'the origin saw no request');
  const owner = peerProcess(call, originPort, [squid.pid, process.pid]);
  assert.equal(owner, squid.pid, `the connection from port ${String(call.remotePort)} is not Squid's (owner: ${String(owner)})`);
}

/** Assert that the origin's peer for `call` is this test process (a direct connection). */
export function assertCameDirect(call: PeerOf | undefined, originPort: number, squid: SquidInstance): void {
  assert.ok(call !== undefined, 'the origin saw no request');
  const owner = peerProcess(call, originPort, [squid.pid, process.pid]);
  assert.equal(owner, process.pid, `the connection from port ${String(call.remotePort)} is not ours (owner: ${String(owner)})`);
}

/** Access-log entries about the origin on `port` of 127.0.0.1: CONNECTs to it and requests forwarded to it. */
export function aboutOrigin(port: number): (entry: AccessLogEntry) => boolean {
  const authority = `127.0.0.1:${String(port)}`;
  return (entry) => entry.target === authority || entry.target.startsWith(`http://${authority}/`);
}

let barrierCount = 0;

/**
 * Make sure Squid has logged everything that ended before now: send Squid a request it denies at
 * once (an unknown host name, refused before any DNS look-up) and wait for its log line. A tunnel
 * closed before the barrier was sent is processed first by Squid's event loop, so its CONNECT line
 * is in the log by then. Returns the whole log.
 */
export async function settledLog(squid: SquidInstance): Promise<AccessLogEntry[]> {
  const marker = `barrier-${String(process.pid)}-${String(++barrierCount)}.invalid`;
  await new Promise<void>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: squid.port, path: `http://${marker}/`, headers: { host: marker }, agent: false });
    req.on('response', (res) => {
      res.resume();
      res.on('end', resolve);
    });
    req.on('error', reject);
    req.end();
  });
  await squid.waitForAccessLog((entry) => entry.target.includes(marker));
  return squid.accessLog();
}

/** Poll the access log until `predicate` matches at least `count` entries; returns those entries. */
export async function waitForEntries(
  squid: SquidInstance,
  predicate: (entry: AccessLogEntry) => boolean,
  count: number,
  timeoutMs = 5_000,
): Promise<AccessLogEntry[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const found = (await squid.accessLog()).filter(predicate);
    if (found.length >= count) return found;
    if (Date.now() > until) {
      throw new Error(`wanted ${String(count)} access-log entries, found ${String(found.length)}: ${JSON.stringify(await squid.accessLog())}`);
    }
    await sleep(20);
  }
}

/** Assert that no request recorded by any of `origins` carried a Proxy-Authorization header. */
export function assertNoProxyAuthorization(...origins: readonly { calls(): readonly { readonly rawHeaders: readonly string[] }[] }[]): void {
  for (const origin of origins) {
    for (const call of origin.calls()) {
      const names = call.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase());
      assert.ok(!names.includes('proxy-authorization'), `an origin received Proxy-Authorization: ${JSON.stringify(call.rawHeaders)}`);
    }
  }
}
