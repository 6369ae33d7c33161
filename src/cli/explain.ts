/**
 * `matrix-egress explain <type> <url> [--json]`: the route of one connection and why.
 * @module
 */
import { compileEgressConfig } from '../config/compile.js';
import { DIRECT_CONNECTION_TYPES, PROXIED_CONNECTION_TYPES } from '../policy/connection-types.js';
import { route, type RouteDecision } from '../policy/route.js';
import { redactUrl } from '../redact.js';
import { parseCommandArgs } from './args.js';
import { EXIT, formatRows, type CliIo } from './output.js';

/** A comma-separated list, wrapped to 80 columns with `indent` before every line. */
function wrap(words: readonly string[], indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const [i, word] of words.entries()) {
    const piece = i === words.length - 1 ? word : `${word},`;
    if (line !== '' && indent.length + line.length + 1 + piece.length > 80) {
      lines.push(indent + line);
      line = piece;
    } else {
      line = line === '' ? piece : `${line} ${piece}`;
    }
  }
  lines.push(indent + line);
  return lines.join('\n');
}

/** Help text of the command. */
export const usage = `Usage: matrix-egress explain <type> <url> [--json]

Show whether a connection of <type> to <url> goes through the forward proxy or
direct, which proxy it uses, and why. The proxy settings are read from the
environment: http_proxy, https_proxy and no_proxy, in any letter case.

Arguments:
  <type>   a connection type. Proxied by default:
${wrap(PROXIED_CONNECTION_TYPES, '             ')}
           Always direct:
${wrap(DIRECT_CONNECTION_TYPES, '             ')}
  <url>    an http:// or https:// URL (credentials in it are never printed)

Options:
  --json       print one JSON object:
               {"type", "url", "route", "proxy", "reason", "matched"}
  -h, --help   show this help

Exit status: 0 when a decision was made (proxy or direct); 2 for a bad
argument, an unknown type, a bad URL or an invalid proxy variable.
`;

/** The `--json` document. Exactly these keys, in this order. */
export interface ExplainJson {
  readonly type: string;
  /** The URL as parsed, with any user name and password replaced by `***`. */
  readonly url: string;
  readonly route: 'proxy' | 'direct';
  /** `scheme://host:port` of the proxy, never with credentials; `null` when direct. */
  readonly proxy: string | null;
  readonly reason: string;
  /** The `no_proxy` entry, as written, that sent the connection direct; otherwise `null`. */
  readonly matched: string | null;
}

/** Run the command. Library errors (bad type, URL or proxy variable) propagate to the dispatcher. */
export function run(argv: readonly string[], io: CliIo): number {
  const args = parseCommandArgs(argv, { command: 'explain', flags: { json: { type: 'boolean' } }, required: ['type', 'url'] });
  if (args.help) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  const { type, url } = args.positionals;
  const config = compileEgressConfig({ env: io.env });
  const decision = route(config, type, url);
  const json = toJson(decision, displayUrl(url));

  if (args.flags.json === true) {
    io.stdout.write(`${JSON.stringify(json)}\n`);
    return EXIT.ok;
  }

  const proxy = decision.proxy;
  const via =
    proxy === null
      ? 'none (direct)'
      : `${proxy.url} (from ${proxy.source}${proxy.hasCredentials ? ', with credentials' : ''})`;
  const matched = decision.matched === null ? 'none' : `${decision.matched} (from ${config.sources.noProxy ?? 'no_proxy'})`;
  io.stdout.write(
    formatRows([
      ['type', json.type],
      ['url', json.url],
      ['route', json.route],
      ['proxy', via],
      ['reason', json.reason],
      ['matched', matched],
    ]),
  );
  return EXIT.ok;
}

function toJson(decision: RouteDecision, url: string): ExplainJson {
  return {
    type: decision.type,
    url,
    route: decision.route,
    proxy: decision.proxy?.url ?? null,
    reason: decision.reason,
    matched: decision.matched,
  };
}

/**
 * The URL as routed (WHATWG-parsed, so IDN hosts show in punycode) with its userinfo replaced by
 * `***`. We cut the userinfo out of the parsed URL rather than run `redactUrl` on the text: that
 * treats everything before the last `@` as userinfo, which turns a Matrix user ID in a query
 * (`?user_id=@alice:example.org`) into a misleading `https://***@alice:example.org`.
 */
function displayUrl(input: string): string {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    return redactUrl(input);
  }
  if (url.username === '' && url.password === '') return url.href;
  url.username = '';
  url.password = '';
  return url.href.replace('//', '//***@');
}
