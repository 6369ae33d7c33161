import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readProxyEnv } from '../../../src/config/env.js';

describe('readProxyEnv (SPEC §1)', () => {
  const rows: { name: string; env: Record<string, string>; expect: Record<string, [string, string] | undefined> }[] = [
    { name: 'nothing set', env: {}, expect: { httpProxy: undefined, httpsProxy: undefined, noProxy: undefined } },
    { name: 'lowercase only', env: { https_proxy: 'a:1' }, expect: { httpsProxy: ['a:1', 'https_proxy'] } },
    { name: 'uppercase only', env: { HTTPS_PROXY: 'a:1' }, expect: { httpsProxy: ['a:1', 'HTTPS_PROXY'] } },
    { name: 'lowercase wins over uppercase', env: { HTTPS_PROXY: 'up:1', https_proxy: 'low:1' }, expect: { httpsProxy: ['low:1', 'https_proxy'] } },
    { name: 'uppercase wins over mixed case', env: { Https_Proxy: 'mixed:1', HTTPS_PROXY: 'up:1' }, expect: { httpsProxy: ['up:1', 'HTTPS_PROXY'] } },
    { name: 'mixed case is read', env: { No_Proxy: 'x.com' }, expect: { noProxy: ['x.com', 'No_Proxy'] } },
    { name: 'an empty lowercase value masks uppercase', env: { http_proxy: '', HTTP_PROXY: 'up:1' }, expect: { httpProxy: ['', 'http_proxy'] } },
    { name: 'https does not fall back to http_proxy', env: { http_proxy: 'h:1' }, expect: { httpProxy: ['h:1', 'http_proxy'], httpsProxy: undefined } },
    { name: 'ALL_PROXY is not read', env: { ALL_PROXY: 'all:1', all_proxy: 'all:1' }, expect: { httpProxy: undefined, httpsProxy: undefined } },
    { name: 'httpoxy: HTTP_PROXY ignored under CGI', env: { REQUEST_METHOD: 'GET', HTTP_PROXY: 'evil:1' }, expect: { httpProxy: undefined } },
    { name: 'httpoxy: lowercase still read under CGI', env: { REQUEST_METHOD: 'GET', http_proxy: 'ok:1', HTTP_PROXY: 'evil:1' }, expect: { httpProxy: ['ok:1', 'http_proxy'] } },
    { name: 'httpoxy: HTTPS_PROXY still read under CGI', env: { REQUEST_METHOD: 'GET', HTTPS_PROXY: 'ok:1' }, expect: { httpsProxy: ['ok:1', 'HTTPS_PROXY'] } },
  ];
  for (const row of rows) {
    it(row.name, () => {
      const raw = readProxyEnv(row.env);
      for (const [key, expected] of Object.entries(row.expect)) {
        const got = raw[key as keyof typeof raw];
        assert.deepEqual(got === undefined ? undefined : [got.value, got.source], expected, `${key} from ${JSON.stringify(row.env)}`);
      }
    });
  }

  it('reads only what it is given (injected env, not process.env)', () => {
    const before = process.env.https_proxy;
    process.env.https_proxy = 'from-process:1';
    try {
      assert.equal(readProxyEnv({}).httpsProxy, undefined);
    } finally {
      if (before === undefined) delete process.env.https_proxy;
      else process.env.https_proxy = before;
    }
  });
});
