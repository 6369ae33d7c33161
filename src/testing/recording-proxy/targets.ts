/**
 * Request targets a proxy receives: authority-form `host:port` (CONNECT, and what a SOCKS5
 * request names) and absolute-form `http://…` URLs, parsed strictly and without touching the path.
 * @internal
 * @module
 */
import * as net from 'node:net';

/** A target host (lowercase, IPv6 without brackets) and port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** An absolute-form target: its authority as sent and the origin-form path to send on. */
export interface AbsoluteTarget extends HostPort {
  readonly authority: string;
  readonly path: string;
}

/**
 * Parse `host:port`, `[v6]:port` or (with a default port) a bare host.
 * Hosts are restricted to what a URI reg-name or IP literal can be once
 * percent-decoding is ruled out (RFC 3986 §3.2.2).
 */
export function parseHostPort(text: string, defaultPort: number | undefined): HostPort | undefined {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) {
      return undefined;
    }
    host = text.slice(1, end);
    const after = text.slice(end + 1);
    if (after !== '' && !after.startsWith(':')) {
      return undefined;
    }
    portText = after === '' ? undefined : after.slice(1);
    if (!net.isIPv6(host) || host.includes('%')) {
      return undefined;
    }
  } else {
    const colon = text.lastIndexOf(':');
    host = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (!/^[A-Za-z0-9._~-]+$/.test(host)) {
      return undefined;
    }
  }
  let port: number;
  if (portText === undefined || portText === '') {
    if (defaultPort === undefined) {
      return undefined;
    }
    port = defaultPort;
  } else {
    if (!/^\d{1,5}$/.test(portText)) {
      return undefined;
    }
    port = Number(portText);
  }
  if (port < 1 || port > 65535) {
    return undefined;
  }
  return { host: host.toLowerCase(), port };
}

/**
 * Split an absolute-form target (RFC 9112 §3.2.2) into authority and path
 * without touching the path: no percent-decoding and no dot-segment removal,
 * because Matrix federation signatures cover the URI as sent.
 */
export function parseAbsoluteForm(target: string): AbsoluteTarget | undefined {
  const match = /^http:\/\/([^/?#]*)(.*)$/is.exec(target);
  const authority = match?.[1];
  const rest = match?.[2];
  if (authority === undefined || rest === undefined || authority.includes('@')) {
    return undefined;
  }
  const hostPort = parseHostPort(authority, 80);
  if (hostPort === undefined) {
    return undefined;
  }
  // RFC 9112 §3.2.1: an empty path is sent as "/".
  const path = rest === '' ? '/' : rest.startsWith('?') ? `/${rest}` : rest;
  return { ...hostPort, authority, path };
}
