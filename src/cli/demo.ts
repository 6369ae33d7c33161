/**
 * `matrix-egress demo [--json]`: the routing of every connection type, shown rather than told.
 *
 * With no proxy variable in the environment it runs on loopback only: a recording proxy (Basic auth),
 * one origin per connection type (HTTPS with a throwaway self-signed certificate, one plain HTTP), an
 * egress pointed at them, one request per type, and a table of what the proxy saw. With proxy variables set it sends
 * nothing and explains the route each type would take, so it never surprises an operator's proxy.
 * @module
 */
import { createEgress, type Egress } from '../egress.js';
import type { EgressStats } from '../observability/stats.js';
import type { EnvRecord } from '../config/env.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES, type BuiltInConnectionType } from '../policy/connection-types.js';
// The demo is the test kit's showcase and loads only for `matrix-egress demo` (commands load lazily);
// the library entry never reaches the kit, which is what the lint rule protects.
// eslint-disable-next-line no-restricted-imports
import {
  createRecordingProxy,
  createSelfSignedCertificate,
  createTestOrigin,
  expectDirect,
  expectForwarded,
  expectNoProxyAuthorizationAtOrigin,
  expectTunnel,
  type ProxyCall,
  type RecordingProxy,
  type TestOrigin,
} from '../testing/index.js';
import { parseCommandArgs } from './args.js';
import { CONFIG_FLAGS, CONFIG_USAGE, configOptions } from './config-options.js';
import type { EgressOptions } from '../config/compile.js';
import { EXIT, formatTable, type CliIo } from './output.js';

/** Help text of the command. */
export const usage = `Usage: matrix-egress demo [--json]

Show how each connection type of a homeserver leaves: through the forward proxy
or direct.

With no proxy variable set (http_proxy, https_proxy, no_proxy in any letter
case), the demo runs entirely on loopback: it starts a recording forward proxy
that requires credentials and one origin per connection type (HTTPS with a
throwaway certificate; url_preview uses plain HTTP), points an egress at them,
sends one request per type and prints what the proxy saw. Nothing leaves the
machine, and the credentials are never printed.

With proxy variables set, or with --config, it sends no traffic at all: it
explains the route each type would take for https://matrix.org/ under that
configuration.

Options:
  --json              print one JSON object instead of the table
${CONFIG_USAGE}
  -h, --help          show this help

Exit status: 0 when every request was routed as expected (or, with proxy
variables set, when the routes were explained); 1 when a demo request failed;
2 for a bad argument or an invalid proxy variable.
`;

/** The URL routes are explained for when proxy variables are set. */
const SAMPLE_URL = 'https://matrix.org/';
/** The demo's credentials for its own proxy. Never printed: they stand for a real proxy password. */
const DEMO_USERNAME = 'demo';
const DEMO_PASSWORD = 'demo-password';
/** Per-request bound, far above what loopback needs, so a broken environment cannot hang the demo. */
const REQUEST_TIMEOUT_MS = 5_000;
const PROXY_VARIABLES = new Set(['http_proxy', 'https_proxy', 'no_proxy']);

/** The request each type sends: what a homeserver would send for it, to show realistic targets. */
interface SampleRequest {
  readonly scheme: 'https:' | 'http:';
  readonly method: string;
  readonly path: string;
  readonly body?: string;
}

const SAMPLE_REQUESTS: Readonly<Record<BuiltInConnectionType, SampleRequest>> = {
  push: { scheme: 'https:', method: 'POST', path: '/_matrix/push/v1/notify', body: '{"notification":{"devices":[]}}' },
  // The one plain-http request: previews fetch whatever URL a user posted, often http://.
  url_preview: { scheme: 'http:', method: 'GET', path: '/article' },
  phone_home: { scheme: 'https:', method: 'POST', path: '/report-usage-stats/push', body: '{}' },
  recaptcha: { scheme: 'https:', method: 'POST', path: '/recaptcha/api/siteverify', body: 'response=demo' },
  cas: { scheme: 'https:', method: 'GET', path: '/cas/proxyValidate' },
  oidc: { scheme: 'https:', method: 'GET', path: '/.well-known/openid-configuration' },
  federation: { scheme: 'https:', method: 'GET', path: '/_matrix/federation/v1/version' },
  key_fetch: { scheme: 'https:', method: 'GET', path: '/_matrix/key/v2/server' },
  key_revocation: { scheme: 'https:', method: 'GET', path: '/_matrix/identity/v2/pubkey/isvalid' },
  media: { scheme: 'https:', method: 'GET', path: '/_matrix/federation/v1/media/download/demo' },
  appservice: { scheme: 'https:', method: 'PUT', path: '/_matrix/app/v1/transactions/1', body: '{"events":[]}' },
  identity_server: { scheme: 'https:', method: 'GET', path: '/_matrix/identity/v2' },
  worker: { scheme: 'https:', method: 'POST', path: '/_synapse/replication/send_events/1', body: '{}' },
  redis: { scheme: 'https:', method: 'GET', path: '/' },
};

const ALL_TYPES: readonly BuiltInConnectionType[] = [...PROXIED_CONNECTION_TYPES, ...DIRECT_CONNECTION_TYPES];

/** One row of the live demo, as printed in `--json`. */
export interface DemoResult {
  readonly type: string;
  readonly method: string;
  /** The URL requested (a loopback origin; never carries credentials). */
  readonly url: string;
  /** The route the egress decided. */
  readonly route: 'proxy' | 'direct';
  /** What the proxy received for this type's origin, e.g. `CONNECT 127.0.0.1:40001`; empty when nothing. */
  readonly proxySaw: readonly string[];
  /** The status the origin answered, or `null` when the request failed. */
  readonly status: number | null;
  /** The error name and code when the request failed, otherwise `null`. */
  readonly error: string | null;
}

/** The `--json` document of the live demo. */
export interface DemoLiveJson {
  readonly mode: 'live';
  readonly trafficSent: true;
  /** The recording proxy, without credentials. */
  readonly proxy: string;
  readonly ok: boolean;
  readonly results: readonly DemoResult[];
  /** What went wrong, one message per problem (assertion messages of the test kit; no credentials). */
  readonly problems: readonly string[];
  /** `egress.stats()` after the run: the counters a homeserver would export (no credential, host or path). */
  readonly stats: EgressStats;
}

/** The `--json` document when proxy variables are set. */
export interface DemoExplainJson {
  readonly mode: 'explain';
  readonly trafficSent: false;
  /** The proxy variables found, by name (their values are never printed). */
  readonly variables: readonly string[];
  readonly url: string;
  readonly routes: readonly {
    readonly type: string;
    readonly route: 'proxy' | 'direct';
    readonly proxy: string | null;
    readonly reason: string;
    readonly matched: string | null;
  }[];
}

/** Run the command. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const args = parseCommandArgs(argv, { command: 'demo', flags: { json: { type: 'boolean' }, ...CONFIG_FLAGS }, required: [] });
  if (args.help) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  const json = args.flags.json === true;
  const variables = proxyVariables(io.env);
  const options = configOptions(args.flags, io);
  return variables.length > 0 || args.flags.config !== undefined ? explain(variables, io, json, options) : live(io, json);
}

/** The names of the proxy variables present in `env`, in any letter case (an empty value counts: it disables). */
function proxyVariables(env: EnvRecord): string[] {
  return Object.keys(env)
    .filter((name) => PROXY_VARIABLES.has(name.toLowerCase()) && env[name] !== undefined)
    .sort();
}

async function explain(variables: readonly string[], io: CliIo, json: boolean, options: EgressOptions): Promise<number> {
  // Invalid variables throw ProxyConfigError here, which the dispatcher prints on one line (exit 2).
  const egress = createEgress(options);
  try {
    const routes = ALL_TYPES.map((type) => {
      const decision = egress.route(type, SAMPLE_URL);
      return {
        type,
        route: decision.route,
        proxy: decision.proxy?.url ?? null,
        reason: decision.reason,
        matched: decision.matched,
      };
    });
    if (json) {
      const document: DemoExplainJson = { mode: 'explain', trafficSent: false, variables, url: SAMPLE_URL, routes };
      io.stdout.write(`${JSON.stringify(document)}\n`);
      return EXIT.ok;
    }
    const table = formatTable(
      ['type', 'route', 'proxy', 'reason'],
      routes.map((row) => [row.type, row.route, row.proxy ?? '-', row.reason]),
    );
    io.stdout.write(
      `${variables.length > 0 ? `Proxy variables are set (${variables.join(', ')})` : 'A configuration file is given'}: the demo sends no traffic.\n` +
        `The route each connection type would take to ${SAMPLE_URL} with these settings:\n\n` +
        `${table}\n` +
        'No traffic was sent. For another URL run "matrix-egress explain <type> <url>"; to watch real\n' +
        'requests on loopback, run "matrix-egress demo" with http_proxy, https_proxy and no_proxy unset.\n',
    );
    return EXIT.ok;
  } finally {
    await egress.close();
  }
}

interface Stage {
  readonly proxy: RecordingProxy;
  readonly origins: ReadonlyMap<BuiltInConnectionType, TestOrigin>;
  readonly egress: Egress;
}

async function live(io: CliIo, json: boolean): Promise<number> {
  const started: { proxy?: RecordingProxy; origins: TestOrigin[]; egress?: Egress } = { origins: [] };
  try {
    const stage = await setUp(started);
    const results = await Promise.all(ALL_TYPES.map((type) => send(stage, type)));
    // Close the egress first: it ends the tunnels, so the proxy's records are complete.
    await stage.egress.close();
    const problems = verify(stage, results);
    const ok = problems.length === 0;
    const stats = stage.egress.stats();
    if (json) {
      const document: DemoLiveJson = { mode: 'live', trafficSent: true, proxy: stage.proxy.url, ok, results, problems, stats };
      io.stdout.write(`${JSON.stringify(document)}\n`);
    } else {
      io.stdout.write(describeLive(stage, results, problems) + describeStats(stats));
    }
    return ok ? EXIT.ok : EXIT.internal;
  } finally {
    await started.egress?.destroy();
    await Promise.all([started.proxy?.close(), ...started.origins.map((origin) => origin.close())]);
  }
}

/** Start everything; each part is recorded in `started` as soon as it exists, so it is closed whatever fails next. */
async function setUp(started: { proxy?: RecordingProxy; origins: TestOrigin[]; egress?: Egress }): Promise<Stage> {
  // One self-signed certificate, trusted as its own CA, for every HTTPS origin: RSA key generation is
  // the slow part of starting up (up to a second per key on a small machine), so there is only one key.
  const certificate = createSelfSignedCertificate({ hosts: ['127.0.0.1', 'localhost'] });
  started.proxy = await createRecordingProxy({ auth: { username: DEMO_USERNAME, password: DEMO_PASSWORD } });
  const origins = new Map<BuiltInConnectionType, TestOrigin>();
  await Promise.all(
    ALL_TYPES.map(async (type) => {
      const tls = SAMPLE_REQUESTS[type].scheme === 'https:' ? { tls: { ...certificate, ca: certificate.cert } } : {};
      const origin = await createTestOrigin(tls);
      started.origins.push(origin);
      origins.set(type, origin);
    }),
  );
  const proxyUrl = started.proxy.urlWithCredentials(DEMO_USERNAME, DEMO_PASSWORD);
  started.egress = createEgress({
    env: { https_proxy: proxyUrl, http_proxy: proxyUrl, no_proxy: '' },
    ca: certificate.cert,
    // The SSRF guard blocks loopback IP literals (SPEC §8); the demo's origins live there on purpose.
    ipAllowlist: ['127.0.0.1/32'],
    connectTimeout: 2_000,
  });
  return { proxy: started.proxy, origins, egress: started.egress };
}

function originOf(stage: Stage, type: BuiltInConnectionType): TestOrigin {
  const origin = stage.origins.get(type);
  if (origin === undefined) throw new Error(`no origin for ${type}`);
  return origin;
}

async function send(stage: Stage, type: BuiltInConnectionType): Promise<DemoResult> {
  const sample = SAMPLE_REQUESTS[type];
  const origin = originOf(stage, type);
  const url = `${origin.url}${sample.path}`;
  const route = stage.egress.route(type, url).route;
  const base = { type, method: sample.method, url, route };
  try {
    const response = await stage.egress.fetch(type, url, {
      method: sample.method,
      ...(sample.body === undefined ? {} : { body: sample.body }),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    await response.arrayBuffer();
    return { ...base, proxySaw: [], status: response.status, error: null };
  } catch (error) {
    return { ...base, proxySaw: [], status: null, error: describeError(error) };
  }
}

/** `Name (CODE)` of a failed request; undici wraps dispatcher errors in `TypeError: fetch failed`. */
function describeError(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  if (!(cause instanceof Error)) return 'error';
  const code = (cause as { code?: unknown }).code;
  return typeof code === 'string' ? `${cause.name} (${code})` : cause.name;
}

/** The calls for one origin, as `CONNECT host:port` or `METHOD absolute-url`: never headers or credentials. */
function sawFor(proxy: RecordingProxy, origin: TestOrigin): string[] {
  return proxy
    .calls()
    .filter((call: ProxyCall) => call.port === origin.port && call.host === origin.host)
    .map((call) => `${call.method} ${call.target}`);
}

/** Check every row with the kit's own assertions; their messages never carry credentials. */
function verify(stage: Stage, results: DemoResult[]): string[] {
  const problems: string[] = [];
  const check = (what: () => unknown): void => {
    try {
      what();
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  };
  for (const [index, result] of results.entries()) {
    const type = ALL_TYPES[index];
    if (type === undefined) continue;
    const origin = originOf(stage, type);
    results[index] = { ...result, proxySaw: sawFor(stage.proxy, origin) };
    if (result.error !== null) {
      problems.push(`${type}: the request failed: ${result.error}`);
      continue;
    }
    if (result.route === 'direct') {
      check(() => expectDirect(origin, stage.proxy));
    } else if (origin.protocol === 'https:') {
      check(() => {
        const call = expectTunnel(stage.proxy, `${origin.host}:${String(origin.port)}`);
        if (!call.authenticated) throw new Error(`${type}: the CONNECT did not carry the proxy credentials`);
      });
    } else {
      check(() => {
        const call = expectForwarded(stage.proxy, result.url, { method: result.method });
        if (!call.authenticated) throw new Error(`${type}: the forwarded request did not carry the proxy credentials`);
      });
    }
    check(() => {
      expectNoProxyAuthorizationAtOrigin(origin);
    });
  }
  return problems;
}

function describeLive(stage: Stage, results: readonly DemoResult[], problems: readonly string[]): string {
  const rows = results.map((result) => [
    result.type,
    result.route,
    result.proxySaw.length === 0 ? 'nothing' : result.proxySaw.join(', '),
    result.status === null ? `failed: ${result.error ?? 'error'}` : String(result.status),
  ]);
  const proxied = results.filter((result) => result.route === 'proxy').length;
  const direct = results.length - proxied;
  const intro =
    'matrix-egress demo: one request per connection type, on loopback only (no proxy variables are set).\n\n' +
    `  proxy    ${stage.proxy.url}, a recording forward proxy that requires Basic auth\n` +
    '  origins  one per type on 127.0.0.1, HTTPS with a throwaway certificate (url_preview: plain HTTP)\n' +
    '  egress   https_proxy and http_proxy = that proxy with credentials (not shown), no_proxy empty\n\n';
  const table = formatTable(['type', 'route', 'proxy saw', 'origin'], rows);
  const outro =
    problems.length === 0
      ? `\n${String(proxied)} proxied types went through the proxy (CONNECT for https, an absolute-form request\n` +
        `for http), each with the proxy credentials; ${String(direct)} direct types never touched it. No origin\n` +
        'received Proxy-Authorization. Everything is closed; nothing left this machine.\n'
      : `\n${String(problems.length)} problem(s):\n${problems.map((problem) => `- ${problem.split('\n').join('\n  ')}`).join('\n')}\n`;
  return intro + table + outro;
}

/** `3 × 2xx, 1 × error` */
function countsText(counts: Readonly<Record<string, number | undefined>>): string {
  const parts = Object.entries(counts)
    .filter((entry): entry is [string, number] => entry[1] !== undefined && entry[1] > 0)
    .map(([name, count]) => `${String(count)} × ${name}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

/** What `egress.stats()` counted during the run: totals per route, tunnels and pooled connections. */
function describeStats(stats: EgressStats): string {
  const lines: string[] = [];
  for (const route of ['proxy', 'direct', 'none'] as const) {
    const outcomes: Record<string, number> = {};
    let requests = 0;
    for (const byRoute of Object.values(stats.types)) {
      requests += byRoute[route].requests;
      for (const [outcome, count] of Object.entries(byRoute[route].outcomes)) outcomes[outcome] = (outcomes[outcome] ?? 0) + count;
    }
    if (requests > 0 || route !== 'none') lines.push(`  route ${route.padEnd(7)} ${String(requests)} requests (${countsText(outcomes)})`);
  }
  const { tunnels } = stats;
  lines.push(`  tunnels       ${String(tunnels.opened)} opened, ${String(tunnels.closed)} closed, ${String(tunnels.open)} open, ${String(tunnels.failed)} failed`);
  return (
    '\nWhat egress.stats() counted (per type in --json; matrix-egress/prometheus exports the same counters):\n' +
    `${lines.join('\n')}\n`
  );
}
