// Type tests of the configuration file and the tolerant no_proxy API (issue #12): checked by
// `npm run typecheck`, never executed.
import { expectTypeOf } from 'expect-type';
import {
  compileNoProxy,
  createEgress,
  loadEgressConfigFile,
  type EgressOptions,
  type NoProxyCompileOptions,
  type NoProxyRule,
  type NoProxySkippedEntry,
} from '../../src/index.js';

expectTypeOf(loadEgressConfigFile).parameters.toEqualTypeOf<[path: string]>();
expectTypeOf(loadEgressConfigFile('/etc/matrix-egress.json')).toEqualTypeOf<EgressOptions>();
createEgress({ configFile: '/etc/matrix-egress.json', strictNoProxy: true, logger: console });
createEgress({ ...loadEgressConfigFile('/etc/matrix-egress.json'), httpsProxy: null });
// @ts-expect-error -- configFile is a path
createEgress({ configFile: 1 });
// @ts-expect-error -- strictNoProxy is a boolean
createEgress({ strictNoProxy: 'yes' });

const matcher = compileNoProxy('10.*,2.3.4', 'NO_PROXY', { strict: false });
expectTypeOf(matcher.skipped).toEqualTypeOf<readonly NoProxySkippedEntry[]>();
expectTypeOf(matcher.warnings).toEqualTypeOf<readonly string[]>();
expectTypeOf<NoProxySkippedEntry['position']>().toBeNumber();
expectTypeOf<NoProxyCompileOptions>().toEqualTypeOf<{ readonly strict?: boolean | undefined }>();
expectTypeOf<NoProxyRule['kind']>().toEqualTypeOf<'all' | 'domain' | 'ip' | 'cidr' | 'glob' | 'local'>();
declare const rule: NoProxyRule;
if (rule.kind === 'glob') expectTypeOf(rule.pattern).toBeString();
