/**
 * One adapter per client under test, behind one interface: `get(url)` → `{ status, bytes }` and
 * `close()`. Each adapter imports its library lazily, so a worker process loads only the client it
 * measures and its peak RSS is that client's.
 *
 * Every client validates TLS with the bench CA (`ca`); none turns verification off.
 * @module
 */
import type * as http from 'node:http';
import type { Dispatcher, Response } from 'undici';
import type { EgressOptions } from '../src/index.js';
import type { GetResult } from './workloads.js';

type UndiciRequest = typeof import('undici').request;

/** What a worker gives an adapter. */
export interface ClientContext {
  /** PEM of the CA that signed the HTTPS origin. */
  readonly ca: string;
  /** `http://127.0.0.1:<port>` of Squid, or `socks5h://127.0.0.1:<port>` of Dante for SOCKS clients. */
  readonly proxyUrl: string;
  /** Scheme of the URLs this adapter will be asked for. */
  readonly scheme: 'http' | 'https';
}

/** A client under test. */
export interface BenchClient {
  get(url: string): Promise<GetResult>;
  close(): Promise<void>;
}

/** Client names, in report order. */
export const CLIENT_NAMES = [
  'direct-undici',
  'direct-undici-fetch',
  'direct-node',
  'egress-request',
  'egress-fetch',
  'egress-agent',
  'undici-proxyagent',
  'undici-env',
  'https-proxy-agent',
  'http-proxy-agent',
  'proxy-agent',
  'hpagent',
  'egress-socks-request',
  'egress-socks-fetch',
  'egress-socks-agent',
  'undici-socks5',
  'socks-proxy-agent',
] as const;
/** A client name. */
export type ClientName = (typeof CLIENT_NAMES)[number];

/** How a client is described and when it applies. */
export interface ClientSpec {
  readonly name: ClientName;
  /** Label for the report. */
  readonly label: string;
  /** Through the proxy (false: straight to the origin, a reference). */
  readonly proxied: boolean;
  /**
   * `'socks'`: through Dante, a SOCKS5 proxy (`npm run bench -- --socks`); the context's `proxyUrl`
   * is then Dante's `socks5h://` URL. **Default:** through Squid, an HTTP proxy.
   */
  readonly via?: 'socks';
  /** Schemes it is measured on. */
  readonly schemes: readonly ('http' | 'https')[];
  create(context: ClientContext): Promise<BenchClient>;
}

const BOTH = ['https', 'http'] as const;

/** Read an undici `request` answer to the end, counting bytes. */
async function undiciGet(request: UndiciRequest, url: string, dispatcher: Dispatcher): Promise<GetResult> {
  const { statusCode, body } = await request(url, { dispatcher });
  let bytes = 0;
  for await (const chunk of body) bytes += (chunk as Buffer).length;
  return { status: statusCode, bytes };
}

/** Read a fetch `Response` to the end, counting bytes. */
async function readResponse(response: Response): Promise<GetResult> {
  let bytes = 0;
  if (response.body !== null) {
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) bytes += chunk.byteLength;
  }
  return { status: response.status, bytes };
}

/** `http.get` or `https.get`. */
type NodeGet = typeof http.get;

/** The `get` of node:https or node:http, for `scheme`. */
async function nodeGetFor(scheme: 'http' | 'https'): Promise<NodeGet> {
  return scheme === 'https' ? (await import('node:https')).get : (await import('node:http')).get;
}

/** `get` with `agent` (and per-request TLS options, for agents that ignore their own), read to the end. */
function nodeGet(get: NodeGet, url: string, agent: http.Agent, tls: { readonly ca?: string } = {}): Promise<GetResult> {
  return new Promise<GetResult>((resolve, reject) => {
    const req = get(url, { agent, ...tls }, (res) => {
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      res.once('end', () => {
        resolve({ status: res.statusCode ?? 0, bytes });
      });
      res.once('error', reject);
    });
    req.once('error', reject);
  });
}

/** A client built on a node `http.Agent`. */
async function agentClient(scheme: 'http' | 'https', agent: http.Agent, tls: { readonly ca?: string } = {}): Promise<BenchClient> {
  const get = await nodeGetFor(scheme);
  return {
    get: (url) => nodeGet(get, url, agent, tls),
    close: async () => {
      agent.destroy();
    },
  };
}

/**
 * matrix-egress options for the bench: Squid from the (injected) environment, the bench CA, and
 * loopback exempted from the SSRF blocklist, which refuses IP-literal loopback URLs for `push`
 * otherwise. The blocklist check itself stays on, so its cost is measured.
 */
function egressOptions(ca: string, proxyUrl: string): EgressOptions {
  return { env: { https_proxy: proxyUrl, http_proxy: proxyUrl }, ca, ipAllowlist: ['127.0.0.0/8'] };
}

/** The URL with the `socks5:` scheme: undici's Socks5ProxyAgent refuses `socks5h:` (it always sends the name). */
function socks5Scheme(proxyUrl: string): string {
  return proxyUrl.replace(/^socks5h:/, 'socks5:');
}

/** matrix-egress's dispatcher with undici `request`; the proxy (HTTP or SOCKS) comes from `proxyUrl`. */
const createEgressRequest: ClientSpec['create'] = async ({ ca, proxyUrl }) => {
  const [{ createEgress }, { request }] = await Promise.all([import('../src/index.js'), import('undici')]);
  const egress = createEgress(egressOptions(ca, proxyUrl));
  const dispatcher = egress.dispatcher('push');
  return { get: (url) => undiciGet(request, url, dispatcher), close: () => egress.close() };
};

/** matrix-egress's `fetch`. */
const createEgressFetch: ClientSpec['create'] = async ({ ca, proxyUrl }) => {
  const { createEgress } = await import('../src/index.js');
  const egress = createEgress(egressOptions(ca, proxyUrl));
  return { get: async (url) => readResponse(await egress.fetch('push', url)), close: () => egress.close() };
};

/** matrix-egress's `http.Agent` / `https.Agent` with `http.get` / `https.get`. */
const createEgressAgent: ClientSpec['create'] = async ({ ca, proxyUrl, scheme }) => {
  const { createEgress } = await import('../src/index.js');
  const egress = createEgress(egressOptions(ca, proxyUrl));
  const agent = scheme === 'https' ? egress.httpsAgent('push') : egress.agent('push');
  const get = await nodeGetFor(scheme);
  return { get: (url) => nodeGet(get, url, agent), close: () => egress.close() };
};

/** Every client, by name. */
export const CLIENTS: Readonly<Record<ClientName, ClientSpec>> = {
  'direct-undici': {
    name: 'direct-undici',
    label: 'undici Agent, direct (the limit)',
    proxied: false,
    schemes: BOTH,
    async create({ ca }) {
      const { Agent, request } = await import('undici');
      const agent = new Agent({ connect: { ca } });
      return { get: (url) => undiciGet(request, url, agent), close: () => agent.close() };
    },
  },
  'direct-undici-fetch': {
    name: 'direct-undici-fetch',
    label: 'undici fetch + Agent, direct (reference for fetch)',
    proxied: false,
    schemes: BOTH,
    async create({ ca }) {
      const { Agent, fetch } = await import('undici');
      const dispatcher = new Agent({ connect: { ca } });
      return { get: async (url) => readResponse(await fetch(url, { dispatcher })), close: () => dispatcher.close() };
    },
  },
  'direct-node': {
    name: 'direct-node',
    label: 'node:https/http keep-alive Agent, direct (reference for http.Agent clients)',
    proxied: false,
    schemes: BOTH,
    async create({ ca, scheme }) {
      if (scheme === 'https') {
        const https = await import('node:https');
        return agentClient(scheme, new https.Agent({ keepAlive: true, ca }));
      }
      const http = await import('node:http');
      return agentClient(scheme, new http.Agent({ keepAlive: true }));
    },
  },
  'egress-request': {
    name: 'egress-request',
    label: 'matrix-egress dispatcher + undici request',
    proxied: true,
    schemes: BOTH,
    create: createEgressRequest,
  },
  'egress-fetch': {
    name: 'egress-fetch',
    label: 'matrix-egress fetch',
    proxied: true,
    schemes: BOTH,
    create: createEgressFetch,
  },
  'egress-agent': {
    name: 'egress-agent',
    label: 'matrix-egress http.Agent (https.get / http.get)',
    proxied: true,
    schemes: BOTH,
    create: createEgressAgent,
  },
  'undici-proxyagent': {
    name: 'undici-proxyagent',
    label: 'undici ProxyAgent',
    proxied: true,
    schemes: BOTH,
    async create({ ca, proxyUrl }) {
      const { ProxyAgent, request } = await import('undici');
      const agent = new ProxyAgent({ uri: proxyUrl, requestTls: { ca } });
      return { get: (url) => undiciGet(request, url, agent), close: () => agent.close() };
    },
  },
  'undici-env': {
    name: 'undici-env',
    label: 'undici EnvHttpProxyAgent (proxy from env)',
    proxied: true,
    schemes: BOTH,
    async create({ ca }) {
      const { EnvHttpProxyAgent, request } = await import('undici');
      // `requestTls` reaches the ProxyAgents (origin TLS in the tunnel); `connect` the direct Agent.
      const agent = new EnvHttpProxyAgent({ connect: { ca }, requestTls: { ca } });
      return { get: (url) => undiciGet(request, url, agent), close: () => agent.close() };
    },
  },
  'https-proxy-agent': {
    name: 'https-proxy-agent',
    label: 'https-proxy-agent (keepAlive)',
    proxied: true,
    schemes: ['https'],
    async create({ ca, proxyUrl, scheme }) {
      const { HttpsProxyAgent } = await import('https-proxy-agent');
      // Its constructor's `ca` reaches only the proxy connection (it resets `this.options`); origin
      // TLS options must come with each request, as its README shows.
      return agentClient(scheme, new HttpsProxyAgent(proxyUrl, { keepAlive: true }), { ca });
    },
  },
  'http-proxy-agent': {
    name: 'http-proxy-agent',
    label: 'http-proxy-agent (keepAlive)',
    proxied: true,
    schemes: ['http'],
    async create({ proxyUrl, scheme }) {
      const { HttpProxyAgent } = await import('http-proxy-agent');
      return agentClient(scheme, new HttpProxyAgent(proxyUrl, { keepAlive: true }));
    },
  },
  'proxy-agent': {
    name: 'proxy-agent',
    label: 'proxy-agent (keepAlive, proxy from env)',
    proxied: true,
    schemes: BOTH,
    async create({ ca, scheme }) {
      const { ProxyAgent } = await import('proxy-agent');
      return agentClient(scheme, new ProxyAgent({ keepAlive: true, ca }));
    },
  },
  hpagent: {
    name: 'hpagent',
    label: 'hpagent (keepAlive)',
    proxied: true,
    schemes: BOTH,
    async create({ ca, proxyUrl, scheme }) {
      const { HttpProxyAgent, HttpsProxyAgent } = await import('hpagent');
      return agentClient(
        scheme,
        scheme === 'https' ? new HttpsProxyAgent({ proxy: proxyUrl, keepAlive: true, ca }) : new HttpProxyAgent({ proxy: proxyUrl, keepAlive: true }),
      );
    },
  },
  // SOCKS5 through Dante: every client sends the name (socks5h), as a Tor route would.
  'egress-socks-request': {
    name: 'egress-socks-request',
    label: 'matrix-egress dispatcher + undici request, SOCKS5h',
    proxied: true,
    via: 'socks',
    schemes: BOTH,
    create: createEgressRequest,
  },
  'egress-socks-fetch': {
    name: 'egress-socks-fetch',
    label: 'matrix-egress fetch, SOCKS5h',
    proxied: true,
    via: 'socks',
    schemes: BOTH,
    create: createEgressFetch,
  },
  'egress-socks-agent': {
    name: 'egress-socks-agent',
    label: 'matrix-egress http.Agent, SOCKS5h',
    proxied: true,
    via: 'socks',
    schemes: BOTH,
    create: createEgressAgent,
  },
  'undici-socks5': {
    name: 'undici-socks5',
    label: 'undici Socks5ProxyAgent (experimental in undici 7)',
    proxied: true,
    via: 'socks',
    schemes: BOTH,
    async create({ ca, proxyUrl }) {
      const { Socks5ProxyAgent, request } = await import('undici');
      // The runtime reads `requestTls` for origin TLS (lib/dispatcher/socks5-proxy-agent.js); undici 7.30's types omit it.
      const options: NonNullable<ConstructorParameters<typeof Socks5ProxyAgent>[1]> & { readonly requestTls: { readonly ca: string } } = { requestTls: { ca } };
      const agent = new Socks5ProxyAgent(socks5Scheme(proxyUrl), options);
      return { get: (url) => undiciGet(request, url, agent), close: () => agent.close() };
    },
  },
  'socks-proxy-agent': {
    name: 'socks-proxy-agent',
    label: 'socks-proxy-agent (keepAlive), SOCKS5h',
    proxied: true,
    via: 'socks',
    schemes: BOTH,
    async create({ ca, proxyUrl, scheme }) {
      const { SocksProxyAgent } = await import('socks-proxy-agent');
      // As with https-proxy-agent, origin TLS options come with each request.
      return agentClient(scheme, new SocksProxyAgent(proxyUrl, { keepAlive: true }), { ca });
    },
  },
};
