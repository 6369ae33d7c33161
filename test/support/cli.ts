// Runs the built bin (dist/cli/main.js) as a user would. Every child gets an explicit environment
// (PATH plus the variables under test): the parent's proxy variables never leak in.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The built bin. */
const BIN = fileURLToPath(new URL('../../../dist/cli/main.js', import.meta.url));

/** Exit status and output of one run. */
export interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Run the bin synchronously with `args` and an environment of PATH plus `env`. */
export function runBin(args: readonly string[], env: Record<string, string> = {}): Run {
  assert.ok(existsSync(BIN), `${BIN} is missing: run "npm run build" first`);
  const result = spawnSync(process.execPath, [BIN, ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
