#!/usr/bin/env node
// Runs the compiled tests with node:test from an explicit list of *.test.js files. On Node 20 a
// directory given to `node --test` runs every .js below it, support code included, so we list files.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../build/test/', import.meta.url).pathname;
const only = process.argv.slice(2);

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...collect(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const files = collect(root).filter((f) => only.length === 0 || only.some((o) => relative(root, f).includes(o)));
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
const args = ['--test', '--test-reporter=spec', '--test-concurrency=1', '--test-timeout=120000', ...files];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
