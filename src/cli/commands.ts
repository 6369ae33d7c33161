/**
 * The command table of the `matrix-egress` bin and the contract every command implements.
 *
 * To add a command, write `src/cli/<name>.ts` exporting `usage` and `run(argv, io)` (see
 * {@link CommandModule}) and add one entry to {@link COMMANDS}. Modules load lazily, so a command
 * costs nothing until it is invoked and `main.ts` never changes.
 * @module
 */
import type { EnvRecord } from '../config/env.js';

/** Somewhere text can be written: `process.stdout`, or a collector in tests. */
export interface CliOutput {
  write(text: string): unknown;
}

/**
 * Everything a command reads from or writes to the outside world. Injected, so a command runs
 * in-process in tests with a fake environment and captured output.
 */
export interface CliIo {
  readonly stdout: CliOutput;
  readonly stderr: CliOutput;
  /** The environment the proxy variables are read from (`process.env` in the bin). */
  readonly env: EnvRecord;
}

/**
 * What a command module exports. `run` returns the exit code; it throws a `UsageError` (from
 * `args.ts`) for bad arguments and lets library errors (`EgressError`) propagate: the dispatcher
 * turns both into a one-line message on stderr and exit code {@link EXIT}.usage.
 */
export interface CommandModule {
  /** Full help text, printed for `matrix-egress <name> --help` and `matrix-egress help <name>`. */
  readonly usage: string;
  run(argv: readonly string[], io: CliIo): number | Promise<number>;
}

/** One row of the command table. */
export interface CommandEntry {
  /** Arguments as shown in the top-level help, e.g. `<type> <url> [--json]`. */
  readonly synopsis: string;
  /** One line for the top-level help. */
  readonly summary: string;
  load(): Promise<CommandModule>;
}

/** Exit codes of the bin. */
export const EXIT = Object.freeze({
  /** The command did what was asked (`explain` reached a decision). */
  ok: 0,
  /** An unexpected error: a bug, please report it. */
  internal: 1,
  /** Bad arguments, an unknown command or type, a bad URL, or an invalid proxy variable. */
  usage: 2,
});

/** Every command, in the order the help lists them. One entry per command. */
export const COMMANDS: ReadonlyMap<string, CommandEntry> = new Map<string, CommandEntry>([
  [
    'explain',
    {
      synopsis: '<type> <url> [--json]',
      summary: 'Show the route of one connection (proxy or direct) and why',
      load: () => import('./explain.js'),
    },
  ],
  [
    'env',
    {
      synopsis: '[--json]',
      summary: 'Show the proxy settings and where each one came from',
      load: () => import('./env.js'),
    },
  ],
  [
    'check',
    {
      synopsis: '[--type <type>] <url> [--json]',
      summary: 'Make one real request, step by step, and show which step fails',
      load: () => import('./check.js'),
    },
  ],
  ['demo', { synopsis: '[--json]', summary: 'Show the route of every connection type, live on loopback', load: () => import('./demo.js') }],
]);

/**
 * Lay out label/value rows with the values aligned in one column. A value with several lines keeps
 * its continuation lines under the first.
 */
export function formatRows(rows: readonly (readonly [label: string, value: string])[]): string {
  const width = Math.max(0, ...rows.map(([label]) => label.length)) + 2;
  return rows
    .map(([label, value]) => label.padEnd(width) + value.split('\n').join(`\n${' '.repeat(width)}`))
    .map((line) => `${line.trimEnd()}\n`)
    .join('');
}

/** Lay out a table with a header row; every column but the last is padded to its widest cell. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all
    .map((row) =>
      row
        .map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd((widths[column] ?? 0) + 2)))
        .join('')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}
