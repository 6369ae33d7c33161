// The JSON configuration file (issue #12): the loader and the shipped JSON Schema agree on the key
// set and on what they refuse, every example configuration in docs/ passes both, errors name the
// file and the JSON path, CA files resolve against the file's folder, and code > file > environment.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { compileEgressConfig } from '../../../src/config/compile.js';
import { configFileKeys, loadEgressConfigFile } from '../../../src/config/config-file.js';
import { ProxyConfigError } from '../../../src/errors.js';
import { createTestCertificateAuthority } from '../../../src/testing/certificates.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const schema = JSON.parse(readFileSync(join(ROOT, 'schema', 'egress-config.schema.json'), 'utf8')) as { properties: Record<string, unknown> };
const validate = new Ajv({ allErrors: true }).compile(schema);

/** Configuration examples of the docs: docs/examples/*.json and the ```json blocks of docs/*.md that carry "$schema". */
function docExamples(): { name: string; text: string }[] {
  const examples = readdirSync(join(ROOT, 'docs', 'examples'))
    .filter((name) => name.endsWith('.json'))
    .map((name) => ({ name: `docs/examples/${name}`, text: readFileSync(join(ROOT, 'docs', 'examples', name), 'utf8') }));
  for (const page of readdirSync(join(ROOT, 'docs')).filter((name) => name.endsWith('.md'))) {
    const markdown = readFileSync(join(ROOT, 'docs', page), 'utf8');
    let n = 0;
    for (const block of markdown.matchAll(/```json\n([\s\S]*?)```/g)) {
      const text = block[1] ?? '';
      if (text.includes('"$schema"')) examples.push({ name: `docs/${page} block ${String(++n)}`, text });
    }
  }
  return examples;
}

let dir = '';
let pem = '';
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'egress-config-'));
  pem = createTestCertificateAuthority().cert;
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Write `content` as a config file in a fresh folder, with every caFile/proxyCaFile it names present. */
function writeConfig(content: unknown, name = 'egress.json'): string {
  const folder = mkdtempSync(join(dir, 'c-'));
  const text = typeof content === 'string' ? content : JSON.stringify(content);
  let data: Record<string, unknown> = {};
  try {
    data = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // Invalid JSON on purpose: nothing to prepare.
  }
  for (const key of ['caFile', 'proxyCaFile']) {
    const value = data[key];
    for (const path of Array.isArray(value) ? (value as unknown[]) : typeof value === 'string' ? [value] : []) {
      if (typeof path !== 'string' || path === '') continue;
      mkdirSync(join(folder, path, '..'), { recursive: true });
      writeFileSync(join(folder, path), pem);
    }
  }
  const file = join(folder, name);
  writeFileSync(file, text);
  return file;
}

describe('configuration file: schema and loader agree', () => {
  it('on the set of keys', () => {
    assert.deepEqual(Object.keys(schema.properties).sort(), [...configFileKeys()].sort());
  });

  const examples = docExamples();
  it('the docs hold configuration examples', () => {
    assert.ok(examples.length >= 3, examples.map((e) => e.name).join(', '));
  });
  for (const example of examples) {
    it(`${example.name} validates against the schema and loads`, () => {
      const data: unknown = JSON.parse(example.text);
      assert.equal(validate(data), true, JSON.stringify(validate.errors));
      const options = loadEgressConfigFile(writeConfig(example.text));
      compileEgressConfig({ ...options, env: {} });
    });
  }

  const invalid: { name: string; config: unknown; path: string }[] = [
    { name: 'unknown top-level key', config: { proxy: 'http://p:3128' }, path: 'proxy' },
    { name: 'code-only key env', config: { env: {} }, path: 'env' },
    { name: 'inline ca', config: { ca: '-----BEGIN CERTIFICATE-----' }, path: 'ca' },
    { name: 'the testing switch', config: { useInsecureSslClientJustForTestingDoNotUse: true }, path: 'useInsecureSslClientJustForTestingDoNotUse' },
    { name: 'httpsProxy number', config: { httpsProxy: 3128 }, path: 'httpsProxy' },
    { name: 'strictNoProxy string', config: { strictNoProxy: 'true' }, path: 'strictNoProxy' },
    { name: 'bad route', config: { connectionTypes: { push: { route: 'socks' } } }, path: 'connectionTypes.push.route' },
    { name: 'unknown type key', config: { connectionTypes: { push: { proxy: 'x' } } }, path: 'connectionTypes.push.proxy' },
    { name: 'bad type name', config: { connectionTypes: { 'Push-Gw': { route: 'proxy' } } }, path: 'connectionTypes.Push-Gw' },
    { name: 'zero timeout', config: { connectTimeout: 0 }, path: 'connectTimeout' },
    { name: 'fractional timeout', config: { headersTimeout: 1.5 }, path: 'headersTimeout' },
    { name: 'blocklist not a list', config: { ipBlocklist: '10.0.0.0/8' }, path: 'ipBlocklist' },
    { name: 'blocklist item not a string', config: { ipAllowlist: [10] }, path: 'ipAllowlist[0]' },
    { name: 'caFile empty list', config: { caFile: [] }, path: 'caFile' },
    { name: 'caFile number', config: { proxyCaFile: [7] }, path: 'proxyCaFile[0]' },
    { name: 'proxyRules not a list', config: { proxyRules: { hosts: '*.onion' } }, path: 'proxyRules' },
    { name: 'rule without proxy', config: { proxyRules: [{ hosts: '*.onion' }] }, path: 'proxyRules[0].proxy' },
    { name: 'rule with a socks4 proxy', config: { proxyRules: [{ hosts: '*.onion', proxy: 'socks4://127.0.0.1:9050' }] }, path: 'proxyRules[0].proxy' },
    { name: 'rule with an unknown key', config: { proxyRules: [{ hosts: 'a', proxy: null, via: 'tor' }] }, path: 'proxyRules[0].via' },
    { name: 'rule with inline ca', config: { proxyRules: [{ hosts: 'a', proxy: null, ca: '-----BEGIN CERTIFICATE-----' }] }, path: 'proxyRules[0].ca' },
    { name: 'rule caFile empty list', config: { proxyRules: [{ hosts: 'a', proxy: null, caFile: [] }] }, path: 'proxyRules[0].caFile' },
  ];
  for (const row of invalid) {
    it(`both refuse: ${row.name} (at ${row.path})`, () => {
      assert.equal(validate(row.config), false, `the schema accepted ${JSON.stringify(row.config)}`);
      const file = writeConfig(row.config);
      assert.throws(
        () => loadEgressConfigFile(file),
        (error: unknown) => {
          assert.ok(error instanceof ProxyConfigError, String(error));
          assert.ok(error.message.startsWith(`config file ${file} at ${row.path}`), error.message);
          return true;
        },
      );
    });
  }
});

describe('configuration file: loading', () => {
  it('names the file for unreadable, non-JSON and non-object files, and the JSON path for bad values', () => {
    assert.throws(() => loadEgressConfigFile(join(dir, 'missing.json')), /^ProxyConfigError: config file .*missing\.json: cannot be read \(ENOENT\)/);
    assert.throws(() => loadEgressConfigFile(writeConfig('{"httpsProxy": ')), /config file .*egress\.json: is not valid JSON/);
    assert.throws(() => loadEgressConfigFile(writeConfig('[]')), /config file .*: must hold a JSON object/);
    assert.throws(
      () => loadEgressConfigFile(writeConfig({ httpsProxy: 'http://alice:s3cret@proxy:3128/path' })),
      (error: unknown) => error instanceof ProxyConfigError && /at httpsProxy \(/.test(error.message) && !/alice|s3cret/.test(error.message + String(error.stack)),
    );
    assert.throws(() => loadEgressConfigFile(writeConfig({ noProxy: '2.3.4', strictNoProxy: true })), /at noProxy entry 1 \("2\.3\.4"\): an incomplete IPv4/);
    assert.throws(() => loadEgressConfigFile(writeConfig({ ipBlocklist: ['10.0.0.0/8', 'nope'] })), /at ipBlocklist\[1\]/);
  });

  it('reads a proxy rule\'s caFile into its ca, relative to the file', () => {
    const folder = mkdtempSync(join(dir, 'rules-'));
    mkdirSync(join(folder, 'certs'));
    writeFileSync(join(folder, 'certs', 'onion-ca.pem'), pem);
    const file = join(folder, 'egress.json');
    writeFileSync(file, JSON.stringify({ proxyRules: [{ hosts: '*.onion', proxy: 'socks5h://127.0.0.1:9050', caFile: 'certs/onion-ca.pem' }, { hosts: 'x.example', proxy: null }] }));
    const options = loadEgressConfigFile(file);
    assert.deepEqual(options.proxyRules, [{ hosts: '*.onion', proxy: 'socks5h://127.0.0.1:9050', ca: [pem] }, { hosts: 'x.example', proxy: null }]);
    const config = compileEgressConfig({ ...options, env: {} });
    assert.equal(config.proxyRules[0]?.ca?.length, 1);
    writeFileSync(file, JSON.stringify({ proxyRules: [{ hosts: '*.onion', proxy: null, caFile: 'certs/missing.pem' }] }));
    assert.throws(() => loadEgressConfigFile(file), /at proxyRules\[0\]\.caFile: cannot read .*missing\.pem \(ENOENT\)/);
    writeFileSync(file, JSON.stringify({ proxyRules: [{ hosts: '10.0.0.0/33', proxy: null }] }));
    assert.throws(() => loadEgressConfigFile(file), /at proxyRules\[0\]\.hosts entry 1/);
  });

  it('reads caFile and proxyCaFile relative to the file, as one path or a list', () => {
    const options = loadEgressConfigFile(writeConfig({ caFile: 'a/ca.pem', proxyCaFile: ['p1.pem', 'sub/p2.pem'] }));
    assert.deepEqual(options.ca, [pem]);
    assert.deepEqual(options.proxyCa, [pem, pem]);
    const file = writeConfig({});
    writeFileSync(join(file, '..', 'not-pem.pem'), 'hello');
    writeFileSync(file, JSON.stringify({ caFile: 'not-pem.pem' }));
    assert.throws(() => loadEgressConfigFile(file), /at caFile: .*not-pem\.pem is not a PEM certificate file/);
    writeFileSync(file, JSON.stringify({ proxyCaFile: ['missing.pem'] }));
    assert.throws(() => loadEgressConfigFile(file), /at proxyCaFile\[0\]: cannot read .*missing\.pem \(ENOENT\)/);
  });

  it('skipped no_proxy entries do not warn while loading, only when the egress is built', () => {
    const file = writeConfig({ noProxy: 'localhost,2.3.4' });
    const options = loadEgressConfigFile(file);
    const lines: string[] = [];
    const config = compileEgressConfig({ configFile: file, env: {}, logger: { warn: (m) => lines.push(m) } });
    assert.equal(options.noProxy, 'localhost,2.3.4');
    assert.equal(lines.length, 1);
    assert.equal(config.noProxy.skipped.length, 1);
  });
});

describe('configuration file: precedence', () => {
  it('code wins per key over the file, the file wins over the environment', () => {
    const file = writeConfig({ httpsProxy: 'http://file-proxy:3128', httpProxy: 'http://file-proxy:3128', noProxy: 'file.example', connectTimeout: 1234 });
    const env = { https_proxy: 'http://env-proxy:3128', http_proxy: 'http://env-proxy:3128', no_proxy: 'env.example' };
    const config = compileEgressConfig({ configFile: file, env, httpProxy: 'http://code-proxy:3128', connectTimeout: undefined });
    assert.equal(config.httpsProxy?.host, 'file-proxy');
    assert.equal(config.sources.httpsProxy, `config file ${file} at httpsProxy`);
    assert.equal(config.sources.httpProxy, 'option httpProxy');
    assert.equal(config.httpProxy?.host, 'code-proxy');
    assert.deepEqual(config.noProxy.rules.map((r) => r.entry), ['file.example']);
    assert.equal(config.connectTimeout, 1234);
    const withoutFile = compileEgressConfig({ env });
    assert.equal(withoutFile.httpsProxy?.host, 'env-proxy');
  });

  it('a file that disables a proxy with null wins over the variable', () => {
    const file = writeConfig({ httpsProxy: null });
    assert.equal(compileEgressConfig({ configFile: file, env: { https_proxy: 'http://env-proxy:3128' } }).httpsProxy, undefined);
  });

  it('refuses a configFile that is not a path', () => {
    assert.throws(() => compileEgressConfig({ configFile: '' }), /option configFile: must be the path/);
  });
});

describe('configuration file: packaging', () => {
  it('the schema ships and is exported as matrix-egress/config.schema.json', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[]; exports: Record<string, unknown> };
    assert.ok(pkg.files.includes('schema'));
    assert.equal(pkg.exports['./config.schema.json'], './schema/egress-config.schema.json');
  });
});
