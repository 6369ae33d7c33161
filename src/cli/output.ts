/**
 * What every command shares and nothing else: the I/O contract, the exit codes and the text layout
 * helpers. It imports no other CLI module, so the arrows run one way: `main.ts` → `commands.ts` →
 * command modules → `output.ts` (before, the command modules imported `commands.ts`, which lazily
 * imports them: a cycle, issue #13).
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

/** Exit codes of the bin. */
export const EXIT = Object.freeze({
  /** The command did what was asked (`explain` reached a decision). */
  ok: 0,
  /** An unexpected error: a bug, please report it. */
  internal: 1,
  /** Bad arguments, an unknown command or type, a bad URL, or an invalid proxy variable. */
  usage: 2,
});

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
