#!/usr/bin/env node
// Runs the long tests (build/test/stress/*.stress.js) with node:test, one file at a time. They are
// named *.stress.js, not *.test.js, so that scripts/run-tests.mjs (the regular suite) never runs
// them. --expose-gc lets them measure memory after a full collection. Mirrors run-tests.mjs.
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../build/test/stress/', import.meta.url).pathname;
const only = process.argv.slice(2);

if (!existsSync(root)) {
  console.error('run-stress: build/test/stress is missing; run `npm run build:test` first');
  process.exit(1);
}
const files = readdirSync(root)
  .filter((name) => name.endsWith('.stress.js'))
  .sort()
  .map((name) => join(root, name))
  .filter((f) => only.length === 0 || only.some((o) => relative(root, f).includes(o)));
if (files.length === 0) {
  console.error('run-stress: no stress files matched');
  process.exit(1);
}
// Each file bounds its own runs; this is the backstop for a hang (5 minutes per test).
const args = ['--expose-gc', '--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=300000', ...files];
const started = Date.now();
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
console.log(`run-stress: ${String(files.length)} file(s) in ${String(Math.round((Date.now() - started) / 1000))} s`);
process.exit(result.status ?? 1);
