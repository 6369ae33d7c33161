/**
 * Redaction of secret-bearing text. Anything that might hold proxy credentials passes through here
 * before it reaches an error message, a log line or a JSON document.
 * @module
 */

const SCHEME_PREFIX = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * Replace the userinfo of a URL-like string with `***`, whether or not the string parses.
 *
 * A URL with a scheme that parses keeps everything but its credentials, so an `@` in a path or query
 * (a Matrix user ID) stays readable. Anything else is redacted from the scheme (or the start) to the
 * last `@`, so a password holding an unencoded `/`, `#` or `@` is still hidden; over-redacting is
 * the safe failure.
 */
export function redactUrl(value: string): string {
  const prefix = SCHEME_PREFIX.exec(value)?.[0] ?? '';
  if (prefix !== '' && URL.canParse(value)) {
    const url = new URL(value);
    if (url.username === '' && url.password === '' && !value.slice(prefix.length).split(/[/?#]/, 1)[0]?.includes('@')) return value;
    if (url.username !== '' || url.password !== '') {
      return `${url.protocol}//***@${url.host}${url.pathname}${url.search}${url.hash}`;
    }
  }
  const rest = value.slice(prefix.length);
  const at = rest.lastIndexOf('@');
  if (at === -1) return value;
  return `${prefix}***@${rest.slice(at + 1)}`;
}

/** True when the string contains a C0 control character, DEL, or a space (never valid in proxy URLs or header values we build). */
export function hasControlOrSpace(value: string): boolean {
  // eslint-disable-next-line no-control-regex -- the point is to find control characters
  return /[\u0000-\u0020\u007f]/.test(value);
}

/** True when the string contains CR, LF or NUL: the characters that split or truncate an HTTP head. */
export function hasHeaderBreak(value: string): boolean {
  return /[\r\n\0]/.test(value);
}
