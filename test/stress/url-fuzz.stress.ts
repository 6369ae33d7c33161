/**
 * URL handling under random input, stress size (`npm run test:stress`): ten times the cases of
 * test/security/url-fuzz.test.ts, same properties (test/security/url-fuzz-properties.ts).
 */
import { urlFuzzSuite } from '../security/url-fuzz-properties.js';

urlFuzzSuite({ fetch: 1_500, dispatch: 2_000, agent: 1_000, connectTo: 600, route: 30_000 });
