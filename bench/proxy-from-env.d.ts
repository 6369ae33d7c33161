// proxy-from-env 2.x ships no types; this is its one export, as read in node_modules/proxy-from-env/index.js.
declare module 'proxy-from-env' {
  /** The proxy URL for `url` from `*_proxy`/`no_proxy` in `process.env`, or `''` to go direct. */
  export function getProxyForUrl(url: string | URL): string;
}
