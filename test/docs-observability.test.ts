// The observability guide shows docs/examples/observability.ts as it is (the example itself runs in
// test/docs-examples.test.ts), so the guide cannot drift from code that runs.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

it('docs/guides/observability.md shows docs/examples/observability.ts verbatim', () => {
  const guide = readFileSync(join(ROOT, 'docs', 'guides', 'observability.md'), 'utf8');
  const blocks = [...guide.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => (match[1] ?? '').trim());
  const source = readFileSync(join(ROOT, 'docs', 'examples', 'observability.ts'), 'utf8').trim();
  assert.ok(blocks.includes(source), 'the guide differs from docs/examples/observability.ts: paste the file into the guide again');
});
