/**
 * Issue 16: prom-client is an optional peer dependency, so the main entry must never load it; only
 * `matrix-egress/prometheus` does. Checked at run time (a resolve hook that fails on `prom-client`
 * while the entry is imported) and on the compiled module graph.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

const srcDir = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');

/** Every bare specifier imported (statically or dynamically) by the modules reachable from `entry`. */
function bareImports(entry: string): Set<string> {
  const bare = new Set<string>();
  const seen = new Set<string>();
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    for (const match of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"]([^'"]+)['"]/g)) {
      const specifier = match[1]!;
      if (specifier.startsWith('.')) queue.push(resolve(dirname(file), specifier));
      else bare.add(specifier);
    }
  }
  return bare;
}

describe('prom-client stays optional', () => {
  it('the main entry and the test kit never import prom-client; the prometheus subpath does', () => {
    assert.ok(!bareImports(resolve(srcDir, 'index.js')).has('prom-client'));
    assert.ok(!bareImports(resolve(srcDir, 'testing', 'index.js')).has('prom-client'));
    assert.ok(bareImports(resolve(srcDir, 'prometheus', 'index.js')).has('prom-client'));
  });

  it('importing the main entry never resolves prom-client (resolve hook)', () => {
    const hook = 'export async function resolve(specifier, context, next) { if (specifier === "prom-client") throw new Error("prom-client was loaded"); return next(specifier, context); }';
    const script = [
      "import { register } from 'node:module';",
      `register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`,
      `const egress = await import(${JSON.stringify(pathToFileURL(resolve(srcDir, 'index.js')).href)});`,
      "const e = egress.createEgress({ env: {} }); console.log(typeof e.stats().types.push); await e.close();",
      `await import(${JSON.stringify(pathToFileURL(resolve(srcDir, 'prometheus', 'index.js')).href)}).then(() => console.log('loaded'), (error) => console.log(String(error.message)));`,
    ].join('\n');
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    // The entry works without prom-client; the subpath, and only it, asks for it.
    assert.deepEqual(out.trim().split('\n'), ['object', 'prom-client was loaded']);
  });
});
