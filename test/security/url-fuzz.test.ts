/**
 * URL handling under random input, regular-suite size: a few hundred requests through fetch, the
 * dispatcher, the http(s).Agents and `connectTo`, and a few thousand route decisions. The
 * properties live in url-fuzz-properties.ts; test/stress/url-fuzz.stress.ts runs ten times more.
 */
import { urlFuzzSuite } from './url-fuzz-properties.js';

urlFuzzSuite({ fetch: 150, dispatch: 200, agent: 100, connectTo: 60, route: 3_000 });
