/**
 * One-line hints for the failures `matrix-egress check` reports: what to change, and where. Each
 * names the variable, option or proxy setting to look at; docs/troubleshooting.md has the long form.
 * @module
 */
import type { ProxyEndpoint } from '../../config/proxy-url.js';
import type { ProxyTlsReason } from '../../errors.js';
import type { Target } from '../../match/target.js';
import type { RouteDecision } from '../../policy/route.js';
import type { CertificateSummary } from './probe.js';
import { formatTimeout } from './probe.js';

/** What the hints may refer to. */
export interface HintContext {
  readonly type: string;
  readonly target: Target;
  /** `host:port` of the target, IPv6 bracketed. */
  readonly authority: string;
  readonly decision: RouteDecision;
  readonly proxyCaGiven: boolean;
  readonly caGiven: boolean;
  readonly timeoutMs: number;
}

const SQUID_PORT_ACL = 'acl SSL_ports port';

function realmText(realm: string | undefined): string {
  return realm === undefined ? '' : ` (realm "${realm}")`;
}

/** Why a direct route was taken, as a clause that can follow a semicolon. */
function whyDirect(context: HintContext): string {
  const { decision, target } = context;
  switch (decision.reasonCode) {
    case 'no-proxy-match':
      return `it goes direct because no_proxy entry "${decision.matched ?? ''}" matches; remove that entry if this host is only reachable through the proxy`;
    case 'no-proxy-configured':
      return `it goes direct because no proxy is set for ${target.scheme}:// URLs; if this network requires the proxy, set ${target.scheme === 'https' || context.type === 'federation' ? 'https_proxy' : 'http_proxy'}`;
    case 'always-direct':
      return `${context.type} connections never use a proxy`;
    case 'type-override-direct':
      return `the ${context.type} type is configured to go direct`;
    case 'proxy-rule-direct':
      return `it goes direct because proxyRules[${String(decision.rule?.index ?? 0)}] (hosts "${decision.rule?.hosts ?? ''}") sends it direct`;
    case 'proxy':
    case 'proxy-rule':
      return '';
  }
}

function withWhy(text: string, context: HintContext): string {
  const why = whyDirect(context);
  return why === '' ? `${text}.` : `${text}; ${why}.`;
}

/** A failed TCP connection to the proxy. */
export function tcpToProxyHint(endpoint: ProxyEndpoint, code: string | undefined, timeoutMs: number): string {
  switch (code) {
    case 'ECONNREFUSED':
      return `Nothing accepts connections at ${endpoint.authority}: check the host and port in ${endpoint.source} and that the proxy is running.`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_FAIL':
      return `The proxy host ${endpoint.host} does not resolve on this machine: check ${endpoint.source} and this machine's DNS.`;
    case 'ETIMEDOUT':
      return `No answer from ${endpoint.authority} within ${formatTimeout(timeoutMs)}: a firewall may drop the packets, or the host or port in ${endpoint.source} is wrong.`;
    default:
      return `The network path to ${endpoint.authority} is broken (${code ?? 'no error code'}): check routing and firewalls between this machine and the proxy.`;
  }
}

/** A failed TLS handshake with an `https://` proxy. */
export function tlsToProxyHint(
  endpoint: ProxyEndpoint,
  reason: ProxyTlsReason | undefined,
  code: string | undefined,
  certificate: CertificateSummary | undefined,
  context: HintContext,
): string {
  switch (reason) {
    case 'self-signed':
    case 'unknown-ca': {
      const which = reason === 'self-signed' ? 'the proxy certificate itself' : `the CA that signed it (${certificate?.issuer ?? 'its issuer'})`;
      const again = context.proxyCaGiven ? 'the --proxy-ca file does not contain it; ' : '';
      return `Trust ${which}: ${again}--proxy-ca FILE for this check, and for the homeserver the proxyCa option or NODE_EXTRA_CA_CERTS=FILE.`;
    }
    case 'hostname-mismatch':
      return `The proxy certificate does not name ${endpoint.host}${certificate === undefined ? '' : ` (it names ${certificate.names === '' ? certificate.subject : certificate.names})`}: write a name it lists in ${endpoint.source}, or reissue the certificate for ${endpoint.host}.`;
    case 'expired':
      return `The proxy certificate is valid only${certificate === undefined ? ' within its validity period' : ` from ${certificate.notBefore} to ${certificate.notAfter}`}: renew it on the proxy, or correct this machine's clock.`;
    case 'other':
    case undefined:
      break;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'EPROTO') {
    return `${endpoint.authority} does not speak TLS: most proxies take plain HTTP even for https:// traffic, so write http:// in ${endpoint.source}.`;
  }
  if (code === 'ETIMEDOUT') {
    return `No TLS handshake within ${formatTimeout(context.timeoutMs)}: check that ${endpoint.authority} is a TLS port; if it is a plain HTTP proxy, write http:// in ${endpoint.source}.`;
  }
  return `The TLS handshake with ${endpoint.authority} failed (${code ?? 'no error code'}): check that the port speaks TLS; if it is a plain HTTP proxy, write http:// in ${endpoint.source}.`;
}

/** A 407 from the proxy. */
export function authHint(endpoint: ProxyEndpoint, realm: string | undefined): string {
  return endpoint.hasCredentials
    ? `The proxy rejected the user name or password in ${endpoint.source}${realmText(realm)}: check both, and percent-encode @ : / in the password.`
    : `The proxy requires credentials${realmText(realm)}: put them in ${endpoint.source} as ${endpoint.protocol}//user:password@${endpoint.authority} (percent-encode @ : / in the password).`;
}

/** A non-2xx answer to CONNECT, or a forwarded request the proxy answered itself. */
export function proxyRefusalHint(endpoint: ProxyEndpoint, statusCode: number, squidError: string | undefined, context: HintContext, method: string): string {
  const { target, authority } = context;
  if (statusCode === 403) {
    if (method === 'CONNECT' && target.port !== 443) {
      const ports = target.port === 8448 ? '8448' : `${String(target.port)} (federation needs 8448)`;
      return `The proxy refuses CONNECT to port ${String(target.port)}: a stock Squid allows CONNECT only to SSL_ports (443); allow the port on the proxy: ${SQUID_PORT_ACL} 443 ${ports}.`;
    }
    return `The proxy's access rules refuse ${method} to ${authority}${squidError === undefined ? '' : ` (${squidError})`}: ask the proxy's operator to allow it (Squid: http_access, Safe_ports).`;
  }
  if (statusCode === 502 || statusCode === 503 || statusCode === 504) {
    return `The proxy could not reach ${authority}${squidError === undefined ? '' : ` (${squidError})`}: the origin is down, or the proxy cannot resolve or route to it; try it from the proxy host.`;
  }
  return `The proxy answered ${String(statusCode)} to ${method} ${authority}${squidError === undefined ? '' : ` (${squidError})`}: see the access log of ${endpoint.authority} for why.`;
}

/** The proxy never answered CONNECT or the forwarded request. */
export function noAnswerHint(endpoint: ProxyEndpoint, code: string | undefined, timeoutMs: number): string {
  if (code === 'ETIMEDOUT') {
    return `The proxy did not answer within ${formatTimeout(timeoutMs)}: it may be waiting on the origin or on DNS; see its log, or raise --timeout.`;
  }
  if (code === 'ERR_EGRESS_PROXY_PROTOCOL' || code?.startsWith('HPE_') === true) {
    return `The answer is not HTTP: check that ${endpoint.authority} is an HTTP proxy${endpoint.protocol === 'http:' ? `; if its port expects TLS, write https:// in ${endpoint.source}` : ''}.`;
  }
  return `The proxy closed the connection without answering${endpoint.protocol === 'http:' ? `: if its port expects TLS, write https:// in ${endpoint.source}; otherwise see the proxy's log` : ': see the proxy\'s log'}.`;
}

/** A failed TLS handshake with the origin, direct or inside the tunnel. */
export function tlsToOriginHint(
  reason: ProxyTlsReason | undefined,
  code: string | undefined,
  certificate: CertificateSummary | undefined,
  context: HintContext,
): string {
  const throughProxy = context.decision.route === 'proxy';
  switch (reason) {
    case 'self-signed':
    case 'unknown-ca': {
      const inspecting = throughProxy ? '; behind a TLS-inspecting proxy that is the proxy\'s CA' : '';
      const again = context.caGiven ? 'the --ca file does not contain it; ' : '';
      return `The origin certificate is not trusted (issuer ${certificate?.issuer ?? 'unknown'}): ${again}pass the CA that signed it with --ca FILE for this check, and for the homeserver the ca option or NODE_EXTRA_CA_CERTS=FILE${inspecting}.`;
    }
    case 'hostname-mismatch':
      return `The origin certificate does not name ${context.target.host}${certificate === undefined ? '' : ` (it names ${certificate.names === '' ? certificate.subject : certificate.names})`}: use the host name it was issued for.`;
    case 'expired':
      return `The origin certificate is valid only${certificate === undefined ? ' within its validity period' : ` from ${certificate.notBefore} to ${certificate.notAfter}`}: the origin must renew it, or this machine's clock is wrong.`;
    case 'other':
    case undefined:
      break;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || code === 'EPROTO') {
    return `${context.authority} does not speak TLS: if it serves plain HTTP, use an http:// URL.`;
  }
  if (code === 'ETIMEDOUT') {
    return `No TLS handshake with ${context.authority} within ${formatTimeout(context.timeoutMs)}: check that the port serves HTTPS.`;
  }
  return `The TLS handshake with ${context.authority} failed (${code ?? 'no error code'})${throughProxy ? ': the proxy or the origin closed the connection' : ''}; check that the port serves HTTPS.`;
}

/** The origin's name did not resolve (direct route). */
export function dnsHint(code: string | undefined, context: HintContext): string {
  const what = code === 'ETIMEDOUT' || code === 'EAI_AGAIN' ? `The resolver did not answer for ${context.target.host}` : `${context.target.host} does not resolve on this machine`;
  return withWhy(what, context);
}

/** No TCP connection to the origin (direct route). */
export function tcpToOriginHint(code: string | undefined, context: HintContext): string {
  switch (code) {
    case 'ECONNREFUSED':
      return withWhy(`Nothing accepts connections at ${context.authority}`, context);
    case 'ETIMEDOUT':
      return withWhy(`No answer from ${context.authority} within ${formatTimeout(context.timeoutMs)}: direct connections may be blocked by a firewall`, context);
    default:
      return withWhy(`No route to ${context.authority} (${code ?? 'no error code'})`, context);
  }
}

/** The connection was made but the HTTP exchange failed. */
export function httpHint(code: string | undefined, context: HintContext): string {
  if (code === 'ETIMEDOUT') {
    return `${context.authority} accepted the connection but sent no response within ${formatTimeout(context.timeoutMs)}: it is slow or not an HTTP server; raise --timeout to tell.`;
  }
  if (code?.startsWith('HPE_') === true) {
    return `The answer from ${context.authority} is not HTTP/1.x: check that the URL's scheme and port are right.`;
  }
  return `${context.authority} closed the connection without answering (${code ?? 'no error code'}): check that the URL's scheme and port are right.`;
}

/** The destination is in the IP blocklist. */
export function blockedHint(address: string, range: string | undefined, context: HintContext): string {
  return `${address} is in the IP blocklist${range === undefined ? '' : ` (${range})`} that ${context.type} connections are checked against: if the homeserver must reach it, add it to the ipAllowlist option; --type oidc checks the rest of the path without the blocklist.`;
}
