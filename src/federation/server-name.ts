/**
 * Matrix server names: the grammar of the specification's appendix "Server Name"
 * (`hostname [ ":" port ]`, hostname an IPv4 literal, a bracketed IPv6 literal or a DNS name).
 * @module
 */
import { isIPv4, isIPv6 } from 'node:net';
import { domainToASCII } from 'node:url';
import { InvalidServerNameError } from '../errors.js';

/** A parsed, validated server name (or `m.server` value). */
export interface ParsedServerName {
  /** Lowercase ASCII host: a DNS name (IDN in punycode), an IPv4 literal, or an IPv6 literal without brackets. */
  readonly host: string;
  /** The explicit port, when the name has one. */
  readonly port: number | undefined;
  /** True when `host` is an IP literal. */
  readonly ip: boolean;
  /** The name in canonical text: host (IPv6 in brackets) and the port when one was given. */
  readonly text: string;
}

const DNS_NAME = /^[a-z0-9.-]{1,255}$/;
const IPV6_CHARS = /^[0-9a-f:.]{2,45}$/;
const PORT = /^[0-9]{1,5}$/;

/** `host` with brackets when it is an IPv6 literal, as URLs and `Host` headers need it. */
export function bracketHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** `host[:port]` with IPv6 in brackets. */
function hostAndPort(host: string, port: number | undefined): string {
  return port === undefined ? bracketHost(host) : `${bracketHost(host)}:${String(port)}`;
}

/**
 * Parse and validate a server name. A Unicode name is accepted and converted to punycode first
 * (Synapse does the same with IDNA names); the result must then follow the grammar.
 * @param what Names the value in error messages, e.g. `m.server`.
 * @throws {@link InvalidServerNameError} when it does not.
 */
export function parseServerName(input: unknown, what = 'server name'): ParsedServerName {
  if (typeof input !== 'string') throw new InvalidServerNameError(String(input), `a ${what} must be a string`);
  const fail = (problem: string): never => {
    throw new InvalidServerNameError(input, problem);
  };
  if (input === '') fail(`the ${what} is empty`);
  let hostText: string;
  let portText: string | undefined;
  if (input.startsWith('[')) {
    const close = input.indexOf(']');
    if (close === -1) fail('an IPv6 literal needs a closing "]"');
    hostText = input.slice(1, close);
    const rest = input.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) fail('only ":port" may follow an IPv6 literal');
      portText = rest.slice(1);
    }
    const lower = hostText.toLowerCase();
    if (!IPV6_CHARS.test(lower) || !isIPv6(lower)) fail('the text in brackets is not an IPv6 address');
    return finish(lower, true, portText, fail);
  }
  const colon = input.indexOf(':');
  if (colon !== -1) {
    if (input.indexOf(':', colon + 1) !== -1) fail('an IPv6 literal must be written in brackets');
    hostText = input.slice(0, colon);
    portText = input.slice(colon + 1);
  } else {
    hostText = input;
  }
  // eslint-disable-next-line no-control-regex -- non-ASCII text is an IDN name, converted before the grammar check
  let host = /^[\x00-\x7f]*$/.test(hostText) ? hostText.toLowerCase() : domainToASCII(hostText);
  if (host === '') fail('the host is empty or not a valid international domain name');
  if (/^[0-9]{1,3}(?:\.[0-9]{1,3}){3}$/.test(host)) {
    if (!isIPv4(host)) fail('the IPv4 literal has a part above 255');
    return finish(host, true, portText, fail);
  }
  if (!DNS_NAME.test(host)) fail('a host name may only contain letters, digits, "-" and "."');
  // A name whose last label is numeric would be read as an IPv4 address by URL parsers (`1.2.3`
  // is 1.2.0.3 to the WHATWG URL standard): refuse it rather than connect somewhere unexpected.
  host = host.replace(/\.$/, '');
  const last = host.slice(host.lastIndexOf('.') + 1);
  if (/^(?:[0-9]+|0x[0-9a-f]*)$/.test(last)) fail('the last label of a host name may not be a number');
  if (host === '' || host.split('.').some((label) => label === '')) fail('a host name may not have an empty label');
  return finish(host, false, portText, fail);
}

function finish(host: string, ip: boolean, portText: string | undefined, fail: (problem: string) => never): ParsedServerName {
  let port: number | undefined;
  if (portText !== undefined) {
    if (!PORT.test(portText)) fail('the port must be 1 to 5 digits');
    port = Number(portText);
    if (port < 1 || port > 65535) fail('the port must be from 1 to 65535');
  }
  return { host, port, ip, text: hostAndPort(host, port) };
}
