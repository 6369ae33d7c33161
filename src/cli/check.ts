/**
 * `matrix-egress check [--type <type>] <url>`: make one real request the way the library would, step
 * by step (configuration, route, proxy TCP/TLS/authentication/CONNECT, origin TLS, HTTP status), and
 * say which step failed and what to change. The steps are in `check/steps.ts`, the report and its
 * rendering in `check/report.ts`, the hints in `check/hints.ts`.
 * @module
 */
import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { compileEgressConfig } from '../config/compile.js';
import { targetFromUrl } from '../match/target.js';
import { policyOf } from '../policy/route.js';
import { parseCommandArgs, UsageError } from './args.js';
import { CONFIG_FLAGS, CONFIG_USAGE, configOptions } from './config-options.js';
import { codeOf, formatTimeout } from './check/probe.js';
import { humanProgress, summary } from './check/report.js';
import { countCertificates, displayUrl, runCheck, type CaFile, type CheckInput } from './check/steps.js';
import { EXIT, type CliIo } from './output.js';

export { CHECK_STEPS } from './check/report.js';
export type { CheckReport, CheckStep, CheckStepError, CheckStepName, CheckStepStatus } from './check/report.js';

/** The connection type checked when `--type` is not given. */
export const DEFAULT_CHECK_TYPE = 'push';

/** The time limit of each step when `--timeout` is not given, in seconds. */
export const DEFAULT_CHECK_TIMEOUT_SECONDS = 10;

/** Exit codes of `check`: 1 is a failed step here (elsewhere in the bin, an unexpected error). */
export const CHECK_EXIT = Object.freeze({ ok: EXIT.ok, failed: 1, usage: EXIT.usage });

/** Help text of the command. */
export const usage = `Usage: matrix-egress check [--type <type>] <url> [--json] [--timeout <seconds>]
                           [--proxy-ca <file>] [--ca <file>] [--config <file>]
                           [--strict-no-proxy]

Make one real GET request to <url> the way the library would for a connection
of <type>, step by step, and report each step with its time: configuration
(proxy variables, redacted), route, TCP and TLS to the proxy, proxy
authentication, CONNECT (or the forwarded request for http:// URLs), TLS to the
origin, and the HTTP status. A direct route checks DNS, TCP, TLS and the HTTP
status instead. A failed step is named, with the reason and a one-line hint.

Arguments:
  <url>    an http:// or https:// URL (credentials in it are neither sent nor
           printed). Any HTTP status from the origin counts as a success.

Options:
  --type <type>         the connection type (default: ${DEFAULT_CHECK_TYPE}); see
                        "matrix-egress explain --help" for the list
  --timeout <seconds>   time limit of each step (default: ${String(DEFAULT_CHECK_TIMEOUT_SECONDS)})
  --proxy-ca <file>     PEM CA certificates to trust for an https:// proxy, as
                        the proxyCa option does (added to the system CAs)
  --ca <file>           PEM CA certificates to trust for the origin, as the ca
                        option does (added to the system CAs)
  --json                print one JSON report instead, and nothing else
${CONFIG_USAGE}
  -h, --help            show this help

NODE_EXTRA_CA_CERTS is honoured, as Node and the library honour it. Options
set in code are not known to the command; give the homeserver's configuration
file with --config so connectionTypes overrides, ipBlocklist, ipAllowlist and
CA files apply. --ca and --proxy-ca win over the file's caFile and proxyCaFile.
Progress goes to stdout while the check runs.

Exit status: 0 when every step succeeded, 1 when a step failed, 2 for a usage
or configuration error (bad argument, unknown type, bad URL, unreadable CA
file, invalid proxy variable or --config file), as explain.
`;

/** Run the command. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const args = parseCommandArgs(argv, {
    command: 'check',
    flags: {
      type: { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
      'proxy-ca': { type: 'string' },
      ca: { type: 'string' },
      ...CONFIG_FLAGS,
    },
    required: ['url'],
  });
  if (args.help) {
    io.stdout.write(usage);
    return EXIT.ok;
  }
  const type = args.flags.type ?? DEFAULT_CHECK_TYPE;
  const timeoutMs = parseTimeout(args.flags.timeout);
  // A configuration error exits 2 here, before any step, as explain does (issue #12).
  policyOf(compileEgressConfig(configOptions(args.flags, io)), type);
  const target = targetFromUrl(args.positionals.url);
  const input: CheckInput = {
    type,
    url: new URL(args.positionals.url),
    target,
    env: io.env,
    timeoutMs,
    proxyCa: readCaFile(args.flags['proxy-ca'], '--proxy-ca'),
    ca: readCaFile(args.flags.ca, '--ca'),
    configFile: args.flags.config,
    strictNoProxy: args.flags['strict-no-proxy'],
  };

  const json = args.flags.json === true;
  const heading = `Checking the ${type} connection to ${displayUrl(input.url)} (time limit per step: ${formatTimeout(timeoutMs)})`;
  const report = await runCheck(input, json ? undefined : humanProgress(io.stdout, heading));
  if (json) {
    io.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    io.stdout.write(summary(report));
  }
  return report.ok ? CHECK_EXIT.ok : CHECK_EXIT.failed;
}

function parseTimeout(value: string | undefined): number {
  if (value === undefined) return DEFAULT_CHECK_TIMEOUT_SECONDS * 1000;
  const seconds = /^[0-9]+(?:\.[0-9]+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds > 0 && seconds <= 3600)) throw new UsageError('check: --timeout must be a number of seconds from 0.001 to 3600', 'check');
  return Math.max(1, Math.round(seconds * 1000));
}

function readCaFile(path: string | undefined, flag: string): CaFile | undefined {
  if (path === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`check: cannot read the ${flag} file ${JSON.stringify(path)} (${codeOf(error) ?? 'error'})`, 'check');
  }
  const certificates = countCertificates(pem);
  if (certificates === 0) throw new UsageError(`check: the ${flag} file ${JSON.stringify(path)} holds no PEM certificate`, 'check');
  // OpenSSL skips a PEM block it cannot parse without a word; parse each one to say so.
  for (const [index, block] of (pem.match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g) ?? []).entries()) {
    try {
      new X509Certificate(block);
    } catch {
      throw new UsageError(`check: certificate ${String(index + 1)} in the ${flag} file ${JSON.stringify(path)} is not valid PEM`, 'check');
    }
  }
  return { path, pem, certificates };
}

