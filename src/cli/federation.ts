/**
 * `matrix-egress federation <server_name>`: resolve a Matrix server name step by step, as the
 * federation tester shows it (the `.well-known` request and its route, its answer, the SRV
 * answers, the targets and their routes, the TLS name and `Host`), then request
 * `/_matrix/key/v2/server` from it the way `egress.federation.fetch` does.
 * @module
 */
import { readFileSync } from 'node:fs';
import { createEgress } from '../egress.js';
import type { EgressOptions } from '../config/compile.js';
import type { FederationResolution } from '../federation/resolver.js';
import { bracketHost, parseServerName } from '../federation/server-name.js';
import type { RouteDecision } from '../policy/route.js';
import { parseCommandArgs, UsageError } from './args.js';
import { CONFIG_FLAGS, CONFIG_USAGE, configOptions } from './config-options.js';
import { EXIT, formatRows, type CliIo } from './output.js';

/** Exit codes of `federation`: 1 when discovery or the key request failed. */
export const FEDERATION_EXIT = Object.freeze({ ok: EXIT.ok, failed: 1, usage: EXIT.usage });

/** The path requested after discovery. */
export const KEY_PATH = '/_matrix/key/v2/server';

/** Help text of the command. */
export const usage = `Usage: matrix-egress federation <server_name> [--json] [--timeout <seconds>]
                                [--ca <file>] [--config <file>] [--strict-no-proxy]

Resolve a Matrix server name the way the library does for federation (Matrix
server-server API, "Resolving server names") and print each step: the
.well-known request and the route it takes (proxy or direct), its answer, the
SRV look-ups (always local: DNS cannot go through an HTTP proxy), the targets
and their routes, the TLS name (SNI) and the Host header. Then GET
${KEY_PATH} from the server and show the answer.

Arguments:
  <server_name>   e.g. example.org, example.org:8448, 1.2.3.4, [2001:db8::1]

Options:
  --timeout <seconds>   time limit of the key request (default: 10)
  --ca <file>           PEM CA certificates to trust for the servers, as the ca
                        option does (added to the system CAs)
  --json                print one JSON report instead, and nothing else
  -h, --help            show this help
${CONFIG_USAGE}

Proxy settings come from https_proxy and no_proxy (federation uses the https
proxy only), or from the configuration file. Exit status: 0 when the key request answered 200, 1 when
discovery or the request failed, 2 for a usage error.
`;

/** The JSON report. */
export interface FederationReport {
  readonly serverName: string;
  readonly ok: boolean;
  readonly resolution?: FederationResolution;
  readonly wellKnownRoute?: Pick<RouteDecision, 'route' | 'reason'>;
  readonly targetRoutes?: readonly (Pick<RouteDecision, 'route' | 'reason'> & { readonly target: string })[];
  readonly check?: { readonly path: string; readonly status?: number; readonly ms: number; readonly keyServerName?: string; readonly error?: string };
  readonly error?: { readonly code: string | undefined; readonly message: string };
}

/** Run the command. */
export function run(argv: readonly string[], io: CliIo): Promise<number> {
  return runFederation(argv, io);
}

/**
 * Run the command with extra egress options (tests inject `lookup`, `federation.resolveSrv`,
 * `ipAllowlist`).
 * @internal
 */
export async function runFederation(argv: readonly string[], io: CliIo, extra: EgressOptions = {}): Promise<number> {
  const args = parseCommandArgs(argv, {
    command: 'federation',
    flags: { json: { type: 'boolean' }, timeout: { type: 'string' }, ca: { type: 'string' }, ...CONFIG_FLAGS },
    required: ['server_name'],
  });
  if (args.help) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  const timeoutMs = parseTimeout(args.flags.timeout);
  const ca = readCa(args.flags.ca);
  const serverName = args.positionals.server_name;
  // A bad name is a usage error (exit 2), like a bad URL for the other commands.
  parseServerName(serverName);
  // The file's settings (proxies, rules, federation cache) as the homeserver sees them; `--ca`
  // and what a test injects win per key, as code options win over a file.
  const egress = createEgress({ ...configOptions(args.flags, io), ...(ca !== undefined && { ca }), ...extra });
  const json = args.flags.json === true;
  const out = (text: string): void => {
    if (!json) io.stdout.write(text);
  };
  let report: FederationReport;
  try {
    report = await investigate(egress, serverName, timeoutMs, out);
  } finally {
    await egress.close();
  }
  if (json) io.stdout.write(`${JSON.stringify(report)}\n`);
  return report.ok ? FEDERATION_EXIT.ok : FEDERATION_EXIT.failed;
}

type EgressLike = ReturnType<typeof createEgress>;

function routeOf(egress: EgressLike, url: string): Pick<RouteDecision, 'route' | 'reason'> {
  const decision = egress.route('federation', url);
  return { route: decision.route, reason: decision.reason };
}

async function investigate(egress: EgressLike, serverName: string, timeoutMs: number, out: (text: string) => void): Promise<FederationReport> {
  out(`Resolving the Matrix server name ${JSON.stringify(serverName)} (server-server API, "Resolving server names")\n\n`);
  let resolution: FederationResolution;
  try {
    resolution = await egress.federation.resolve(serverName);
  } catch (error) {
    const failure = describeError(error);
    out(formatRows([['discovery', `FAILED: ${failure.message}`]]));
    return { serverName, ok: false, error: failure };
  }
  const rows: [string, string][] = [];
  let wellKnownRoute: Pick<RouteDecision, 'route' | 'reason'> | undefined;
  const wk = resolution.wellKnown;
  if (wk === undefined) {
    rows.push(['server name', `${resolution.serverName} (${resolution.source === 'ip-literal' ? 'an IP literal' : 'has a port'}: no .well-known, no SRV)`]);
  } else {
    const first = wk.urls[0] ?? '';
    wellKnownRoute = routeOf(egress, first);
    rows.push(['.well-known', `GET ${first}${wk.fromCache ? ' (cached)' : ''}`]);
    rows.push(['  route', `${wellKnownRoute.route}: ${wellKnownRoute.reason}`]);
    for (const url of wk.urls.slice(1)) rows.push(['  redirect', url]);
    rows.push(['  answer', wk.server !== null ? `${String(wk.status)}, m.server ${JSON.stringify(wk.server)}` : `not used: ${wk.error ?? 'invalid'}`]);
  }
  for (const lookup of resolution.srv) {
    const found = lookup.records.map((r) => `${r.name}:${String(r.port)} (priority ${String(r.priority)}, weight ${String(r.weight)})`).join('\n');
    const outcome = lookup.outcome === 'found' ? found : lookup.outcome === 'failed' ? `look-up failed (${lookup.error ?? 'error'}): counted as no record` : 'no record';
    rows.push([`SRV ${lookup.name}`, `${outcome}${lookup.fromCache ? ' (cached)' : ''}`]);
  }
  const targetRoutes = resolution.targets.map((target) => {
    const text = `${bracketHost(target.host)}:${String(target.port)}`;
    return { target: text, ...routeOf(egress, `https://${text}/`) };
  });
  rows.push(['decided by', resolution.source]);
  rows.push(['targets', targetRoutes.map((t) => `${t.target}  ${t.route}: ${t.reason}`).join('\n')]);
  rows.push(['TLS name (SNI)', resolution.tlsServerName]);
  rows.push(['Host', resolution.hostHeader]);
  out(formatRows(rows));

  out(`\nChecking GET ${KEY_PATH}\n\n`);
  const started = performance.now();
  try {
    const response = await egress.federation.fetch(serverName, KEY_PATH, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await response.text();
    const ms = Math.round(performance.now() - started);
    let keyServerName: string | undefined;
    try {
      const body = JSON.parse(text) as { server_name?: unknown };
      if (typeof body.server_name === 'string') keyServerName = body.server_name;
    } catch {
      // Not JSON: reported as no server_name below.
    }
    const ok = response.status === 200;
    const checkRows: [string, string][] = [['status', `${String(response.status)} in ${String(ms)} ms`]];
    checkRows.push(['server_name', keyServerName === undefined ? '(none in the answer)' : `${keyServerName}${keyServerName === resolution.serverName ? '' : ` (differs from ${resolution.serverName})`}`]);
    out(formatRows(checkRows));
    return {
      serverName,
      ok,
      resolution,
      ...(wellKnownRoute !== undefined && { wellKnownRoute }),
      targetRoutes,
      check: { path: KEY_PATH, status: response.status, ms, ...(keyServerName !== undefined && { keyServerName }) },
    };
  } catch (error) {
    const ms = Math.round(performance.now() - started);
    const failure = describeError(error);
    out(formatRows([['request', `FAILED after ${String(ms)} ms: ${failure.message}`]]));
    return {
      serverName,
      ok: false,
      resolution,
      ...(wellKnownRoute !== undefined && { wellKnownRoute }),
      targetRoutes,
      check: { path: KEY_PATH, ms, error: failure.message },
      error: failure,
    };
  }
}

/** The innermost error of a fetch failure, with its code (credential-free: our errors redact). */
function describeError(error: unknown): { code: string | undefined; message: string } {
  const inner = error instanceof TypeError && error.cause instanceof Error ? error.cause : error;
  const code = (inner as { code?: unknown } | null)?.code;
  const message = inner instanceof Error ? inner.message : String(inner);
  return { code: typeof code === 'string' ? code : undefined, message: typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message };
}

function parseTimeout(value: string | undefined): number {
  if (value === undefined) return 10_000;
  const seconds = /^[0-9]+(?:\.[0-9]+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds > 0 && seconds <= 3600)) throw new UsageError('federation: --timeout must be a number of seconds from 0.001 to 3600', 'federation');
  return Math.max(1, Math.round(seconds * 1000));
}

function readCa(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`federation: cannot read the --ca file ${JSON.stringify(path)} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, 'federation');
  }
}
