/**
 * Read the proxy variables from an environment record. Pure: the record is injected and only read here.
 * @module
 */

/** An environment record, such as `process.env`. */
export type EnvRecord = Readonly<Record<string, string | undefined>>;

/** One raw value and the exact variable name it was read from. */
export interface RawEnvValue {
  /** The value as found, untrimmed. An empty string means "disabled". */
  readonly value: string;
  /** The variable it came from, in its own letter case, e.g. `HTTPS_PROXY`. */
  readonly source: string;
}

/** The three proxy variables as raw strings; a key is absent when no variable of that name is set. */
export interface RawProxyEnv {
  readonly httpProxy?: RawEnvValue;
  readonly httpsProxy?: RawEnvValue;
  readonly noProxy?: RawEnvValue;
}

/**
 * Find one variable in any letter case. Exact lowercase wins over UPPERCASE, which wins over other
 * casings (the first in sorted order, so the choice is deterministic). An empty lowercase value
 * still wins: it is how an operator disables an inherited uppercase one.
 */
function pick(env: EnvRecord, lower: string, ignoreUppercase: boolean): RawEnvValue | undefined {
  const exact = env[lower];
  if (exact !== undefined) return { value: exact, source: lower };
  const upper = lower.toUpperCase();
  if (!ignoreUppercase) {
    const upperValue = env[upper];
    if (upperValue !== undefined) return { value: upperValue, source: upper };
  }
  const others = Object.keys(env)
    .filter((key) => key.toLowerCase() === lower && key !== lower && key !== upper)
    .sort();
  for (const key of others) {
    const value = env[key];
    if (value !== undefined) return { value, source: key };
  }
  return undefined;
}

/**
 * Read `http_proxy`, `https_proxy` and `no_proxy` (any letter case) from `env`.
 *
 * - When `REQUEST_METHOD` is set (a CGI context), `HTTP_PROXY` in upper case is ignored: a client can
 *   set it through a `Proxy:` request header (httpoxy, CVE-2016-5385). Lowercase `http_proxy` still counts.
 * - `https_proxy` never falls back to `http_proxy`, and `ALL_PROXY` is not read (SPEC §1).
 */
export function readProxyEnv(env: EnvRecord = process.env): RawProxyEnv {
  const cgi = env.REQUEST_METHOD !== undefined;
  const httpProxy = pick(env, 'http_proxy', cgi);
  const httpsProxy = pick(env, 'https_proxy', false);
  const noProxy = pick(env, 'no_proxy', false);
  return {
    ...(httpProxy && { httpProxy }),
    ...(httpsProxy && { httpsProxy }),
    ...(noProxy && { noProxy }),
  };
}
