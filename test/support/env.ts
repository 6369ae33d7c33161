// Environment isolation as undici's tests do it: the six proxy variables are removed from
// process.env for the duration of a suite and restored afterwards.
const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'no_proxy', 'NO_PROXY'] as const;

/** Remove the proxy variables from process.env; returns a function that restores them. */
export function isolateProxyEnv(): () => void {
  const saved = new Map<string, string | undefined>();
  for (const name of PROXY_VARIABLES) {
    saved.set(name, process.env[name]);
    Reflect.deleteProperty(process.env, name);
  }
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) Reflect.deleteProperty(process.env, name);
      else process.env[name] = value;
    }
  };
}
