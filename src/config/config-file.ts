/**
 * The JSON configuration file: what environment variables cannot hold (connection type overrides, IP
 * lists, CA file paths, timeouts), shared by the homeserver and the CLI so `explain`, `env` and `check`
 * see exactly what the homeserver sees. Its schema ships as `matrix-egress/config.schema.json`.
 *
 * The file's keys are the data-valued keys of {@link EgressOptions}, validated by the same code as the
 * options (so a key added to the options is a key of the file), plus `$schema` and the file-only keys
 * of {@link FILE_ONLY_KEYS}. Errors name the file and the JSON path of the bad value.
 * @module
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ProxyConfigError } from '../errors.js';
import { compileEgressConfig, OPTION_KEYS, type EgressOptions } from './compile.js';

/**
 * Option keys a file cannot set: functions and process-level inputs (`env`, `logger`, `lookup`), the
 * file reference itself, inline certificates (a file names CA files instead), and the testing switch
 * that turns off TLS verification (a configuration file that ships must never be able to do that).
 */
const CODE_ONLY_KEYS: ReadonlySet<string> = new Set(['env', 'logger', 'lookup', 'configFile', 'ca', 'proxyCa', 'useInsecureSslClientJustForTestingDoNotUse']);

/**
 * Keys only a file has, each read into an option. `caFile`/`proxyCaFile`: a path or a list of paths to
 * PEM files, relative to the folder of the configuration file.
 */
const FILE_ONLY_KEYS = { caFile: 'ca', proxyCaFile: 'proxyCa' } as const satisfies Record<string, keyof EgressOptions>;

/** Every key a configuration file may hold, `$schema` included. */
export function configFileKeys(): readonly string[] {
  return ['$schema', ...[...OPTION_KEYS].filter((key) => !CODE_ONLY_KEYS.has(key)), ...Object.keys(FILE_ONLY_KEYS)];
}

const SILENT = { warn: (): void => undefined };

/**
 * Read and validate a JSON configuration file and return the options it holds (CA files read into
 * `ca` / `proxyCa`). Synchronous: it runs once at start-up, before the first request.
 * @param path The file; relative paths are resolved against the working directory.
 * @throws {@link ProxyConfigError} when the file cannot be read, is not JSON, has an unknown key or a
 * bad value, naming the file and the JSON path (`connectionTypes.push.route`).
 */
export function loadEgressConfigFile(path: string): EgressOptions {
  if (typeof path !== 'string' || path.length === 0) {
    throw new ProxyConfigError('option configFile', 'must be the path of a JSON configuration file');
  }
  const file = resolve(path);
  const at = (jsonPath: string): string => `config file ${file}${jsonPath === '' ? '' : ` at ${jsonPath}`}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ProxyConfigError(at(''), `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`, undefined, { cause: error });
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ProxyConfigError(at(''), `is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ProxyConfigError(at(''), 'must hold a JSON object');

  const allowed = new Set(configFileKeys());
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    if (!allowed.has(key)) {
      const hint = CODE_ONLY_KEYS.has(key) ? 'can only be given in code' : 'unknown key';
      throw new ProxyConfigError(at(key), key === 'ca' || key === 'proxyCa' ? `${hint}; name PEM files in ${key}File` : hint);
    }
    if (key === '$schema') continue;
    if (key in FILE_ONLY_KEYS) {
      options[FILE_ONLY_KEYS[key as keyof typeof FILE_ONLY_KEYS]] = readCaFiles(value, key, dirname(file), at);
      continue;
    }
    options[key] = value;
  }
  // One validator for options and files: compile what the file says against an empty environment
  // and re-address any error from the option path to the file and its JSON path.
  try {
    compileEgressConfig({ ...(options as EgressOptions), env: {}, logger: SILENT });
  } catch (error) {
    if (error instanceof ProxyConfigError && error.source.startsWith('option ')) {
      const jsonPath = error.source.slice('option '.length).replace(/^ca\b/, 'caFile').replace(/^proxyCa\b/, 'proxyCaFile');
      const prefix = `${error.source}${error.value === undefined ? '' : ` (${JSON.stringify(error.value)})`}: `;
      const problem = error.message.slice(prefix.length);
      throw new ProxyConfigError(at(jsonPath), problem, error.value, { cause: error });
    }
    throw error;
  }
  return Object.freeze(options);
}

function readCaFiles(value: unknown, key: string, folder: string, at: (jsonPath: string) => string): string[] {
  const paths: unknown[] = Array.isArray(value) ? value : [value];
  const single = !Array.isArray(value);
  if (paths.length === 0) throw new ProxyConfigError(at(key), 'must name at least one PEM file');
  return paths.map((item, i) => {
    const jsonPath = single ? key : `${key}[${String(i)}]`;
    if (typeof item !== 'string' || item.length === 0) throw new ProxyConfigError(at(jsonPath), 'must be the path of a PEM file (or a list of them)');
    const caPath = resolve(folder, item);
    let pem: string;
    try {
      pem = readFileSync(caPath, 'utf8');
    } catch (error) {
      throw new ProxyConfigError(at(jsonPath), `cannot read ${caPath} (${(error as NodeJS.ErrnoException).code ?? 'error'})`, undefined, { cause: error });
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ProxyConfigError(at(jsonPath), `${caPath} is not a PEM certificate file (no "-----BEGIN CERTIFICATE-----" line)`);
    }
    return pem;
  });
}

/**
 * Options of a configuration file under options given in code: code wins per key, and a key given
 * in code as `undefined` counts as not given. `sourceOf(key)` names where a key's value came from,
 * for messages and `config.sources` (`config file /etc/egress.json at httpsProxy` or `option httpsProxy`).
 */
export function mergeConfigFile(options: EgressOptions & { readonly configFile: string }): {
  options: EgressOptions;
  sourceOf: (key: string) => string;
} {
  const fromFile = loadEgressConfigFile(options.configFile);
  const merged: Record<string, unknown> = { ...fromFile };
  const fileKeys = new Set(Object.keys(fromFile));
  for (const [key, value] of Object.entries(options)) {
    if (key !== 'configFile' && value !== undefined) {
      merged[key] = value;
      fileKeys.delete(key);
    }
  }
  const file = resolve(options.configFile);
  return {
    options: merged,
    sourceOf: (key) => (fileKeys.has(key) ? `config file ${file} at ${key}` : `option ${key}`),
  };
}
