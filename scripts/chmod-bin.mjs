// tsc does not keep the executable bit; `npx matrix-egress` inside this repository runs the bin
// file directly, so mark it executable after every build (npm does this only for installed packages).
import { chmodSync } from 'node:fs';

chmodSync(new URL('../dist/cli/main.js', import.meta.url), 0o755);
