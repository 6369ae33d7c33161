// Loads the JSON vector tables in test/vectors (kept as JSON so they read as data, not code).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Reads test/vectors/<name>.json from the source tree (tests run from build/test). */
export function loadVectors(name: string): unknown {
  const path = fileURLToPath(new URL(`../../../test/vectors/${name}.json`, import.meta.url));
  return JSON.parse(readFileSync(path, 'utf8'));
}
