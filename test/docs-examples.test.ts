// The examples in docs/examples/ run as tests, as undici's test/examples.js does: every compiled
// example (build/docs/examples/*.js, from tsconfig.test.json) runs in a child process with a clean
// environment, `node --test` for examples that are node:test suites and plain `node` for scripts.
// The examples import the package by name ('matrix-egress', 'matrix-egress/testing'), which resolves
// to dist/ through package.json "exports": build dist/ first (npx tsc -p tsconfig.build.json).
// The guide must show those files as they are, so it cannot drift from code that runs.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCES = join(ROOT, 'docs', 'examples');
const COMPILED = join(ROOT, 'build', 'docs', 'examples');
const GUIDE = join(ROOT, 'docs', 'guides', 'testing-proxy-routing.md');

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runNode(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    // PATH only: no proxy variables and no NODE_TEST_CONTEXT from this runner leak into the example.
    execFile(process.execPath, [...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      const status = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ status, stdout, stderr });
    });
  });
}

function isTestSuite(source: string): boolean {
  return /\bfrom\s+['"]node:test['"]/.test(source);
}

const examples = existsSync(SOURCES)
  ? readdirSync(SOURCES)
      .filter((name) => name.endsWith('.ts') && !name.endsWith('.d.ts'))
      .sort()
  : [];

describe('docs/examples run', { timeout: 180_000 }, () => {
  it('there are examples, each compiled, and dist/ is built for the package self-reference', () => {
    assert.ok(examples.length > 0, `no examples in ${SOURCES}`);
    for (const name of examples) {
      assert.ok(existsSync(join(COMPILED, name.replace(/\.ts$/, '.js'))), `${name} is not compiled: run "npx tsc -p tsconfig.test.json"`);
    }
    for (const entry of ['dist/index.js', 'dist/testing/index.js']) {
      assert.ok(existsSync(join(ROOT, entry)), `${entry} is missing: run "npx tsc -p tsconfig.build.json" first`);
    }
  });

  for (const name of examples) {
    const file = join(COMPILED, name.replace(/\.ts$/, '.js'));
    const suite = existsSync(file) && isTestSuite(readFileSync(file, 'utf8'));
    it(`${name} (${suite ? 'node --test' : 'node'})`, async () => {
      const run = await runNode(suite ? ['--test', '--test-reporter=spec', file] : [file]);
      const shown = `--- exit ${String(run.status)}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
      assert.equal(run.status, 0, shown);
      if (suite) {
        assert.match(run.stdout, /ℹ pass [1-9]\d*\n/, shown);
        assert.match(run.stdout, /ℹ fail 0\n/, shown);
        assert.match(run.stdout, /ℹ cancelled 0\n/, shown);
      }
    });
  }
});

describe('docs/guides/testing-proxy-routing.md shows the examples as they are', () => {
  const blocks = existsSync(GUIDE)
    ? [...readFileSync(GUIDE, 'utf8').matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => (match[1] ?? '').trim())
    : [];

  for (const name of ['notifier.ts', 'testing-push-routing.ts', 'check-routing.ts', 'testing-onion-routing.ts']) {
    it(`${name} appears verbatim in the guide`, () => {
      assert.ok(blocks.length > 0, `no \`\`\`ts blocks in ${GUIDE}`);
      const source = readFileSync(join(SOURCES, name), 'utf8').trim();
      assert.ok(blocks.includes(source), `the guide's copy of docs/examples/${name} differs from the file: paste the file into the guide again`);
    });
  }
});
