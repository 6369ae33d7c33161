/**
 * The defects of the peer proxy clients that docs/why-not-peers.md cites, each re-checked against the
 * installed versions with real clients, the test kit's recording proxy and test origins on loopback.
 * Prints one line per check: what was done, what was seen, and whether the defect reproduced.
 * Not a test: a peer fixing a defect is news, not a failure (the exit code is always 0 unless a check
 * could not run at all).
 *
 * Run: `npx tsc -p tsconfig.test.json && node build/bench/peers.js`.
 * @module
 */
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { ProxyAgent as UndiciProxyAgent, request, type Dispatcher } from 'undici';
import { HttpsProxyAgent } from 'https-proxy-agent';
import { ProxyAgent } from 'proxy-agent';
import { createEgress } from '../src/index.js';
import { createRecordingProxy, createTestOrigin, type RecordingProxy, type TestOrigin } from '../src/testing/index.js';

/** Every check ends within this, whatever the client does. */
const CHECK_DEADLINE_MS = 1_000;
/** How long the reconnect check watches a request that does not settle. */
const RETRY_WINDOW_MS = 2_000;

interface Outcome {
  readonly claim: string;
  readonly seen: string;
  readonly reproduced: boolean;
}

/** Installed version (read from node_modules: these packages do not export their package.json). */
function versionOf(name: string): string {
  const file = new URL(`../../node_modules/${name}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** One GET with a node:http(s) agent; resolves to a status or an error code. */
function agentGet(url: string, agent: http.Agent, extra: https.RequestOptions = {}): Promise<string> {
  const get = url.startsWith('https:') ? https.get : http.get;
  return new Promise((resolve) => {
    const req = get(url, { agent, ...extra, timeout: CHECK_DEADLINE_MS }, (res) => {
      res.resume();
      res.on('end', () => {
        resolve(String(res.statusCode));
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code ?? error.message);
    });
  });
}

async function undiciGet(url: string, dispatcher: Dispatcher): Promise<string> {
  try {
    const res = await request(url, { dispatcher, signal: AbortSignal.timeout(CHECK_DEADLINE_MS) });
    await res.body.dump();
    return String(res.statusCode);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? (error as Error).name;
  }
}

async function httpsProxyAgentCa(proxy: RecordingProxy, origin: TestOrigin): Promise<Outcome> {
  const ca = origin.ca ?? '';
  const inConstructor = new HttpsProxyAgent(proxy.url, { keepAlive: true, ca });
  const perRequest = new HttpsProxyAgent(proxy.url, { keepAlive: true });
  try {
    const a = await agentGet(`${origin.url}/ca-in-constructor`, inConstructor);
    const b = await agentGet(`${origin.url}/ca-per-request`, perRequest, { ca });
    return {
      claim: 'https-proxy-agent ignores the constructor `ca` for the origin',
      seen: `ca in constructor: ${a}; ca on the request: ${b}`,
      reproduced: a !== '200' && b === '200',
    };
  } finally {
    inConstructor.destroy();
    perRequest.destroy();
  }
}

async function proxyAgentKeepAliveHttp(proxy: RecordingProxy, origin: TestOrigin): Promise<Outcome> {
  const agent = new ProxyAgent({ keepAlive: true, getProxyForUrl: () => proxy.url });
  const before = proxy.history.calls().length;
  try {
    const statuses: string[] = [];
    for (let i = 0; i < 3; i++) statuses.push(await agentGet(`${origin.url}/ka-${String(i)}`, agent));
    const targets = proxy.history
      .calls()
      .slice(before)
      .map((call) => `${call.method} ${call.target}`);
    return {
      claim: 'proxy-agent with keepAlive sends origin-form requests to the proxy on a reused socket (http://)',
      seen: `statuses ${statuses.join(', ')}; request lines at the proxy: ${targets.join(' | ')}`,
      reproduced: statuses[0] === '200' && statuses.slice(1).some((s) => s !== '200'),
    };
  } finally {
    agent.destroy();
  }
}

async function undiciTunnels(proxy: RecordingProxy, origin: TestOrigin): Promise<Outcome> {
  const requests = 20;
  const ca = origin.ca ?? '';
  const agent = new UndiciProxyAgent({ uri: proxy.url, requestTls: { ca } });
  const egress = createEgress({ env: { https_proxy: proxy.url }, ca, ipAllowlist: ['127.0.0.0/8'] });
  try {
    const t0 = proxy.tunnelsOpened;
    for (let i = 0; i < requests; i++) await undiciGet(`${origin.url}/seq-${String(i)}`, agent);
    const viaUndici = proxy.tunnelsOpened - t0;
    const t1 = proxy.tunnelsOpened;
    for (let i = 0; i < requests; i++) await undiciGet(`${origin.url}/seq-${String(i)}`, egress.dispatcher('push'));
    const viaEgress = proxy.tunnelsOpened - t1;
    return {
      claim: 'undici ProxyAgent opens 2 tunnels for sequential requests',
      seen: `${String(requests)} sequential GETs: ProxyAgent ${String(viaUndici)} tunnels, matrix-egress ${String(viaEgress)}`,
      reproduced: viaUndici >= 2 * viaEgress,
    };
  } finally {
    await agent.close();
    await egress.close();
  }
}

/**
 * A "proxy" that accepts TCP and closes each connection as soon as a request head arrives, as a
 * server that does not implement CONNECT would (the reproduction of undici #3897).
 */
async function closingProxy(): Promise<{ readonly url: string; connections(): number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => socket.end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${String(port)}`,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

async function undiciRetries(origin: TestOrigin): Promise<Outcome> {
  const proxy = await closingProxy();
  const agent = new UndiciProxyAgent({ uri: proxy.url, requestTls: { ca: origin.ca ?? '' } });
  const egress = createEgress({ env: { https_proxy: proxy.url }, ca: origin.ca ?? '', ipAllowlist: ['127.0.0.0/8'] });
  let destroyed = false;
  try {
    // The abort signal does not settle this request (undici keeps reconnecting), so stop looking after
    // the window and destroy the agent, which does stop it.
    const pending = undiciGet(`${origin.url}/closed`, agent);
    const a = await Promise.race([pending, sleep(RETRY_WINDOW_MS, 'still pending')]);
    await agent.destroy();
    destroyed = true;
    await pending;
    const viaUndici = proxy.connections();
    const b = await undiciGet(`${origin.url}/closed`, egress.dispatcher('push'));
    const viaEgress = proxy.connections() - viaUndici;
    return {
      claim: 'undici ProxyAgent reconnects without bound to a proxy that closes the connection on CONNECT (undici #3897)',
      seen: `one GET with a ${String(CHECK_DEADLINE_MS)} ms abort signal, looked at after ${String(RETRY_WINDOW_MS)} ms: ProxyAgent ${a} after ${String(viaUndici)} connections; matrix-egress ${b} after ${String(viaEgress)}`,
      reproduced: viaUndici > 1,
    };
  } finally {
    if (!destroyed) await agent.destroy();
    await egress.destroy();
    await proxy.close();
  }
}

async function undiciInspect(proxy: RecordingProxy): Promise<Outcome> {
  const password = 'canary-pw-7f3a';
  const withAuth = new URL(proxy.url);
  withAuth.username = 'alice';
  withAuth.password = password;
  const basic = Buffer.from(`alice:${password}`).toString('base64');
  const agent = new UndiciProxyAgent({ uri: withAuth.href });
  const egress = createEgress({ env: { https_proxy: withAuth.href } });
  try {
    const leaks = (text: string): boolean => text.includes(password) || text.includes(basic);
    const undiciText = inspect(agent, { depth: Infinity, showHidden: true });
    const egressText = inspect(egress.dispatcher('push'), { depth: Infinity, showHidden: true });
    return {
      claim: 'undici ProxyAgent keeps the proxy credentials where util.inspect shows them',
      seen: `util.inspect(…, { depth: Infinity, showHidden: true }): ProxyAgent ${leaks(undiciText) ? 'shows' : 'hides'} them; matrix-egress dispatcher ${leaks(egressText) ? 'shows' : 'hides'} them`,
      reproduced: leaks(undiciText),
    };
  } finally {
    await agent.close();
    await egress.close();
  }
}

async function main(): Promise<void> {
  const versions = ['undici', 'https-proxy-agent', 'proxy-agent'].map((n) => `${n} ${versionOf(n)}`);
  console.log(`Node ${process.version}; ${versions.join(', ')}`);
  const proxy = await createRecordingProxy();
  const httpsOrigin = await createTestOrigin({ tls: true });
  const httpOrigin = await createTestOrigin();
  try {
    const outcomes = [
      await httpsProxyAgentCa(proxy, httpsOrigin),
      await proxyAgentKeepAliveHttp(proxy, httpOrigin),
      await undiciTunnels(proxy, httpsOrigin),
      await undiciRetries(httpsOrigin),
      await undiciInspect(proxy),
    ];
    for (const { claim, seen, reproduced } of outcomes) {
      console.log(`\n${reproduced ? 'REPRODUCED' : 'NOT REPRODUCED'}: ${claim}\n  ${seen}`);
    }
  } finally {
    await httpOrigin.close();
    await httpsOrigin.close();
    await proxy.close();
  }
}

await main();
