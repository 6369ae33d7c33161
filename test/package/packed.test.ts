// The package as a homeserver installs it: `npm pack` of the built dist/, installed into a fresh
// project. Checks that the published manifest has no install-time script, that the runtime tree is
// exactly the packages dist/ imports, and, with a module hook recording every file Node loads, that
// the main entry loads nothing of the test kit (node-forge only through `matrix-egress/testing`).
// Needs dist/ (`npm run build`) and the npm registry or npm's cache for the four dependencies.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import ts from 'typescript';

const ROOT = new URL('../../../', import.meta.url).pathname;
const DIST = join(ROOT, 'dist');
const NPM_TIMEOUT_MS = 120_000;
const LIFECYCLE_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare', 'preprepare', 'postprepare', 'prepublish'];

/**
 * Registers a load hook that appends every URL Node loads to $RECORD_LOADS_FILE. Node >= 22.15 and
 * 23.5 have the in-thread `registerHooks`; Node 20 has only the off-thread `register`, whose hooks
 * module is the data: URL below. CommonJS files loaded by require() inside a CommonJS package do
 * not pass ESM hooks on Node 20, so the child also lists require.cache.
 */
const RECORDER = `
import * as nodeModule from 'node:module';
import { appendFileSync } from 'node:fs';
const out = process.env.RECORD_LOADS_FILE;
if (typeof nodeModule.registerHooks === 'function') {
  nodeModule.registerHooks({ load(url, context, nextLoad) { appendFileSync(out, url + '\\n'); return nextLoad(url, context); } });
} else {
  const hooks = 'import { appendFileSync } from "node:fs"; let out;' +
    'export function initialize(data) { out = data.out; }' +
    'export async function load(url, context, nextLoad) { appendFileSync(out, url + "\\\\n"); return nextLoad(url, context); }';
  nodeModule.register('data:text/javascript,' + encodeURIComponent(hooks), { data: { out } });
}
`;

/** Child program: import one specifier, then add the CommonJS cache to the record. */
const IMPORTER = `
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';
await import(process.argv[2]);
const cache = Object.keys(createRequire(import.meta.url).cache).map((f) => 'file://' + f);
appendFileSync(process.env.RECORD_LOADS_FILE, cache.join('\\n') + '\\n');
`;

function npm(args: readonly string[], cwd: string): string {
  return execFileSync('npm', [...args], { cwd, encoding: 'utf8', timeout: NPM_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Bare package names imported by the JavaScript files under `dir` (static and dynamic imports). */
function importedPackages(dir: string): Set<string> {
  const names = new Set<string>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.js')) continue;
    const source = readFileSync(join(entry.parentPath, entry.name), 'utf8');
    for (const { fileName } of ts.preProcessFile(source, true, true).importedFiles) {
      if (fileName.startsWith('.') || fileName.startsWith('node:')) continue;
      const parts = fileName.split('/');
      const name = fileName.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? fileName);
      if (name !== 'matrix-egress') names.add(name); // the CLI imports its own test kit by name
    }
  }
  return names;
}

interface LsNode {
  /** Absent for a package npm lists without installing it (an optional peer nobody installed). */
  readonly version?: string;
  readonly dependencies?: Record<string, LsNode>;
}

/** The installed packages of the tree. */
function treeNames(node: LsNode, into = new Set<string>()): Set<string> {
  for (const [name, child] of Object.entries(node.dependencies ?? {})) {
    if (child.version === undefined) continue;
    into.add(name);
    treeNames(child, into);
  }
  return into;
}

/** Package names (under node_modules) of the files a fresh Node loads for `import(specifier)`. */
function loadedPackages(project: string, specifier: string): { packages: Set<string>; urls: string[] } {
  const record = join(project, `loads-${specifier.replaceAll('/', '_')}.txt`);
  writeFileSync(record, '');
  execFileSync(process.execPath, ['--import', './recorder.mjs', 'importer.mjs', specifier], {
    cwd: project,
    env: { ...process.env, RECORD_LOADS_FILE: record },
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const urls = readFileSync(record, 'utf8').split('\n').filter((u) => u !== '');
  const packages = new Set<string>();
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  return { packages, urls };
}

describe('the packed package, installed into a fresh project', { timeout: 4 * NPM_TIMEOUT_MS }, () => {
  let work: string;
  let project: string;
  let manifest: {
    scripts?: Record<string, string>;
    dependencies?: Record<string, string>;
    peerDependencies?: Record<string, string>;
    peerDependenciesMeta?: Record<string, { optional?: boolean }>;
  };

  before(() => {
    assert.ok(existsSync(join(DIST, 'index.js')), 'dist/ is missing: run `npm run build` first');
    work = mkdtempSync(join(tmpdir(), 'matrix-egress-packed-'));
    const [packed] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT)) as { filename: string }[];
    assert.ok(packed !== undefined);
    project = join(work, 'consumer');
    mkdirSync(project);
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }));
    // --ignore-scripts: the manifest check below proves there are none; this keeps a regression from running.
    npm(['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', join(work, packed.filename)], project);
    manifest = JSON.parse(readFileSync(join(project, 'node_modules', 'matrix-egress', 'package.json'), 'utf8')) as typeof manifest;
    writeFileSync(join(project, 'recorder.mjs'), RECORDER);
    writeFileSync(join(project, 'importer.mjs'), IMPORTER);
  });

  after(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it('has no install-time lifecycle script in the published manifest', () => {
    const present = LIFECYCLE_SCRIPTS.filter((name) => manifest.scripts?.[name] !== undefined);
    assert.deepEqual(present, []);
  });

  it('declares exactly the packages dist/ imports, and installs nothing else', () => {
    const all = [...importedPackages(join(project, 'node_modules', 'matrix-egress', 'dist'))].sort();
    // An optional peer (prom-client, imported only by matrix-egress/prometheus, #16) is the
    // homeserver's to install: declared as a peer, never as a dependency, and not installed here.
    const optionalPeers = Object.entries(manifest.peerDependenciesMeta ?? {})
      .filter(([, meta]) => meta.optional === true)
      .map(([name]) => name);
    for (const name of optionalPeers) assert.ok(manifest.peerDependencies?.[name] !== undefined, `${name} is optional but not a peer dependency`);
    assert.deepEqual(optionalPeers.filter((name) => !all.includes(name)), [], 'an optional peer that dist/ does not import');
    const imported = all.filter((name) => !optionalPeers.includes(name));
    assert.deepEqual(Object.keys(manifest.dependencies ?? {}).sort(), imported);
    const ls = JSON.parse(npm(['ls', '--omit=dev', '--all', '--json'], project)) as LsNode;
    const runtime = [...treeNames(ls)].filter((name) => name !== 'matrix-egress').sort();
    assert.deepEqual(runtime, imported);
  });

  it('loads nothing of the test kit for the main entry, and node-forge only for matrix-egress/testing', () => {
    const main = loadedPackages(project, 'matrix-egress');
    assert.ok(main.urls.some((u) => u.includes('/matrix-egress/dist/index.js')), 'the recorder saw the main entry');
    assert.deepEqual([...main.packages].sort(), ['agent-base', 'ipaddr.js', 'matrix-egress', 'undici']);
    assert.deepEqual(
      main.urls.filter((u) => u.includes('/matrix-egress/dist/testing/')),
      [],
    );

    // The same recorder does see node-forge when the test kit is imported: the check above can fail.
    const kit = loadedPackages(project, 'matrix-egress/testing');
    assert.ok(kit.packages.has('node-forge'), [...kit.packages].join(', '));
    assert.ok(kit.urls.some((u) => u.includes('/matrix-egress/dist/testing/index.js')));
  });
});
