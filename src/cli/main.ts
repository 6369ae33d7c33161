#!/usr/bin/env node
/**
 * The `matrix-egress` bin: dispatches to the commands of `commands.ts` and turns their errors into
 * one line on stderr and an exit code. Commands are added in `commands.ts`, not here.
 * @module
 */
import { readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isEgressError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { UsageError } from './args.js';
import { COMMANDS } from './commands.js';
import { EXIT, type CliIo } from './output.js';

const PROGRAM = 'matrix-egress';

/** The top-level help text, built from the command table. */
export function usage(): string {
  const rows = [...COMMANDS].map(([name, entry]) => [`${name} ${entry.synopsis}`, entry.summary] as const);
  rows.push(['help [<command>]', 'Show this help, or the help of one command']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const commands = rows.map(([left, right]) => `  ${left.padEnd(width)}${right}`).join('\n');
  return `Usage: ${PROGRAM} <command> [<args>]
       ${PROGRAM} --help | --version

Decide, per outbound connection of a Matrix homeserver, whether it goes through
the forward proxy or direct. Proxy settings come from the environment:
http_proxy, https_proxy and no_proxy, in any letter case (lowercase wins).

Commands:
${commands}

Options:
  -h, --help   Show this help (or "${PROGRAM} <command> --help")
  --version    Print the version

Exit status: 0 on success, 2 for a usage or configuration error (one line on
stderr), 1 for an unexpected error.
`;
}

/**
 * Run the command line `argv` (without the node and script paths) and return the exit code.
 * Never throws and never exits the process: usable in-process with an injected {@link CliIo}.
 */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    return report(error, io);
  }
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    io.stderr.write(usage());
    return EXIT.usage;
  }
  if (first === '--help' || first === '-h' || first === 'help') return help(rest, io);
  if (first === '--version') {
    if (rest.length > 0) throw new UsageError('--version takes no arguments');
    io.stdout.write(`${readVersion()}\n`);
    return EXIT.ok;
  }
  if (first.startsWith('-')) {
    // Name the flag only: `--password=…` or `-p…` may carry a secret.
    const flag = first.startsWith('--') ? first.replace(/=.*$/s, '') : first.slice(0, 2);
    throw new UsageError(`unknown option ${flag}; options go after the command`);
  }
  const entry = COMMANDS.get(first);
  if (entry === undefined) throw unknownCommand(first);
  const command = await entry.load();
  return await command.run(rest, io);
}

async function help(rest: readonly string[], io: CliIo): Promise<number> {
  const [name, extra] = rest;
  if (extra !== undefined) throw new UsageError('help takes at most one command name');
  if (name === undefined) {
    io.stdout.write(usage());
    return EXIT.ok;
  }
  const entry = COMMANDS.get(name);
  if (entry === undefined) throw unknownCommand(name);
  io.stdout.write((await entry.load()).usage);
  return EXIT.ok;
}

function unknownCommand(name: string): UsageError {
  // A misplaced URL can land here; redact it like any other.
  return new UsageError(`unknown command ${JSON.stringify(redactUrl(name))}; commands: ${[...COMMANDS.keys(), 'help'].join(', ')}`);
}

function report(error: unknown, io: CliIo): number {
  if (error instanceof UsageError) {
    const hint = error.command === undefined ? `${PROGRAM} --help` : `${PROGRAM} ${error.command} --help`;
    io.stderr.write(`${PROGRAM}: ${oneLine(error.message)} (see ${hint})\n`);
    return EXIT.usage;
  }
  if (isEgressError(error)) {
    // Library messages are built from redacted values (SPEC §7): safe to print as they are.
    io.stderr.write(`${PROGRAM}: ${oneLine(error.message)}\n`);
    return EXIT.usage;
  }
  // Not ours to vouch for: hide anything shaped like URL userinfo before printing.
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  io.stderr.write(`${PROGRAM}: unexpected error, please report it: ${oneLine(text).replace(/[^\s/@]*@/g, '***@')}\n`);
  return EXIT.internal;
}

function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}

/** The version from the package's own package.json, found by walking up from this file (dist/ or build/). */
function readVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === PROGRAM && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('package.json of matrix-egress not found');
    dir = parent;
  }
}

/** True when this file is the script node was started with (directly or through the npm bin symlink). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // `| head` closing the pipe early is not an error worth a stack trace.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
  process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
}
