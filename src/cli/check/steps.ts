/**
 * The steps of `matrix-egress check`, in the library's order: configuration, route, then either the
 * proxy hop (TCP, TLS, authentication, CONNECT or a forwarded request) and the origin inside it, or a
 * direct connection (DNS, IP blocklist, TCP, TLS). Each reuses the library's own decisions
 * (`compileEgressConfig`, `route`, `tlsSettingsFor`, `sendConnect`, the IP filter) and its typed errors.
 * @module
 */
import type { LookupAddress } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { compileEgressConfig, type EgressConfig } from '../../config/compile.js';
import { readProxyEnv, type EnvRecord, type RawEnvValue } from '../../config/env.js';
import type { ProxyEndpoint } from '../../config/proxy-url.js';
import { classifyTlsError, proxyTlsErrorFrom, ruleOriginTls, tlsSettingsFor, type TlsSettings } from '../../dispatch/tls.js';
import { authorityOf, sendConnect, unreachable, type ProxyConnection } from '../../dispatch/tunnel.js';
import {
  BlockedDestinationError,
  ProxyAuthenticationError,
  ProxyConfigError,
  ProxyConnectError,
  ProxyTlsError,
  ProxyUnreachableError,
  isEgressError,
} from '../../errors.js';
import type { Target } from '../../match/target.js';
import { policyOf, route, type RouteDecision } from '../../policy/route.js';
import {
  authHint,
  blockedHint,
  dnsHint,
  httpHint,
  noAnswerHint,
  proxyRefusalHint,
  tcpToOriginHint,
  tcpToProxyHint,
  tlsToOriginHint,
  tlsToProxyHint,
  type HintContext,
} from './hints.js';
import {
  codeOf,
  connectTcp,
  fixedLookup,
  formatTimeout,
  getHead,
  handshake,
  HandshakeError,
  resolveAll,
  tapAnswerHead,
  type HttpAnswer,
} from './probe.js';
import { certificateInfo, elapsed, fail, Recorder, Stop, stepError, type CheckReport, type Progress, type StepOutcome } from './report.js';
import { socksBlocklistSkipReason, socksDestinationStep, socksExchangeSteps, socksPlan } from './socks-steps.js';

const USER_AGENT = 'matrix-egress-check';

/** What to check, from the command line. */
export interface CheckInput {
  readonly type: string;
  readonly url: URL;
  readonly target: Target;
  readonly env: EnvRecord;
  readonly timeoutMs: number;
  readonly proxyCa: CaFile | undefined;
  readonly ca: CaFile | undefined;
  /** `--config`: the JSON configuration file, read as the homeserver reads it. */
  readonly configFile?: string | undefined;
  /** `--strict-no-proxy`. */
  readonly strictNoProxy?: boolean | undefined;
}

/** A CA file given on the command line. */
export interface CaFile {
  readonly path: string;
  readonly pem: string;
  readonly certificates: number;
}

/** How many PEM certificates `pem` holds. */
export function countCertificates(pem: string): number {
  return pem.split('-----BEGIN CERTIFICATE-----').length - 1;
}

/**
 * The URL as parsed, userinfo replaced by `***` (as `explain` shows it: cut from the parsed URL, so a
 * Matrix ID in the query stays readable).
 */
export function displayUrl(url: URL): string {
  if (url.username === '' && url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href.replace('//', '//***@');
}

/** Run every step for `input` and return the report. Never throws for a failed step. */
export async function runCheck(input: CheckInput, progress: Progress | undefined): Promise<CheckReport> {
  const recorder = new Recorder(progress);
  const sockets = new Set<Socket>();
  const started = performance.now();
  let decision: RouteDecision | undefined;
  try {
    const config = await recorder.step('configuration', () => configurationStep(input));
    decision = await recorder.step('route', () => {
      const decided = route(config, input.type, input.url);
      const proxy = decided.proxy;
      return {
        value: decided,
        detail: proxy === null ? `direct: ${decided.reason}` : `through ${proxy.url}${proxy.hasCredentials ? ' (with credentials)' : ''}: ${decided.reason}`,
      };
    });
    const context: HintContext = {
      type: input.type,
      target: input.target,
      authority: authorityOf({ hostname: input.target.host, port: input.target.port }),
      decision,
      proxyCaGiven: input.proxyCa !== undefined,
      caGiven: input.ca !== undefined,
      timeoutMs: input.timeoutMs,
    };
    const settings = tlsSettingsFor(config, input.env);
    // A proxy rule's own `ca` is trusted for its routes, as the library does (src/egress.ts).
    const ruleCa = decision.rule === null ? undefined : config.proxyRules[decision.rule.index]?.ca;
    const tls = ruleCa === undefined ? settings : { proxy: settings.proxy, origin: ruleOriginTls(config, ruleCa, input.env) };
    if (decision.proxy === null) await direct(recorder, input, config, tls, context, sockets);
    else await proxied(recorder, input, config, decision.proxy, tls, context, sockets);
  } catch (error) {
    if (!(error instanceof Stop)) throw error;
  } finally {
    for (const socket of sockets) socket.destroy();
  }
  recorder.finish();
  const failed = recorder.failed;
  return {
    ok: failed === undefined,
    type: input.type,
    url: displayUrl(input.url),
    route: decision?.route ?? null,
    proxy: decision?.proxy?.url ?? null,
    timeoutMs: input.timeoutMs,
    ms: elapsed(started),
    failedStep: failed?.name ?? null,
    hint: failed?.error?.hint ?? null,
    steps: recorder.steps,
  };
}

function describeProxy(endpoint: ProxyEndpoint | undefined, chosen: RawEnvValue | undefined): string {
  if (endpoint !== undefined) return `${endpoint.url} (from ${endpoint.source}${endpoint.hasCredentials ? ', with credentials' : ''})`;
  return chosen === undefined ? 'not set' : `disabled (${chosen.source} is empty)`;
}

function describeCaFile(file: CaFile): string {
  return `${file.path} (${String(file.certificates)} certificate${file.certificates === 1 ? '' : 's'})`;
}

function describeExtraCaCerts(path: string | undefined): string {
  if (path === undefined || path === '') return 'not set';
  try {
    const certificates = countCertificates(readFileSync(path, 'utf8'));
    return `${path} (${String(certificates)} certificate${certificates === 1 ? '' : 's'})`;
  } catch (error) {
    return `${path} (unreadable: ${codeOf(error) ?? 'error'}; Node ignores it)`;
  }
}

function configurationStep(input: CheckInput): StepOutcome<EgressConfig> {
  // Only variable names and emptiness are read from the raw values, never their text.
  const raw = readProxyEnv(input.env);
  let config: EgressConfig;
  try {
    config = compileEgressConfig({
      env: input.env,
      ...(input.configFile !== undefined && { configFile: input.configFile }),
      ...(input.strictNoProxy === true && { strictNoProxy: true }),
      logger: { warn: () => undefined },
      connectTimeout: input.timeoutMs,
      ...(input.proxyCa !== undefined && { proxyCa: input.proxyCa.pem }),
      ...(input.ca !== undefined && { ca: input.ca.pem }),
    });
  } catch (error) {
    if (!(error instanceof ProxyConfigError)) throw error;
    throw fail(`${error.source} is invalid`, {
      code: error.code,
      message: error.message,
      hint: `Fix ${error.source}: the message says which part is wrong; the homeserver refuses to start with this value too.`,
    });
  }
  const noProxy =
    config.noProxy.rules.length === 0
      ? raw.noProxy !== undefined && raw.noProxy.value === '' ? `none (${raw.noProxy.source} is empty)` : 'none'
      : `${config.noProxy.rules.map((rule) => rule.entry).join(', ')} (from ${config.sources.noProxy ?? 'no_proxy'})`;
  const info: Record<string, string> = {
    http_proxy: describeProxy(config.httpProxy, raw.httpProxy),
    https_proxy: describeProxy(config.httpsProxy, raw.httpsProxy),
    no_proxy: noProxy,
    ...(config.noProxy.skipped.length > 0 && { 'no_proxy skipped': config.noProxy.warnings.join('; ') }),
    ...(input.configFile !== undefined && { '--config': input.configFile }),
    NODE_EXTRA_CA_CERTS: describeExtraCaCerts(input.env.NODE_EXTRA_CA_CERTS),
  };
  if (input.proxyCa !== undefined) info['--proxy-ca'] = describeCaFile(input.proxyCa);
  if (input.ca !== undefined) info['--ca'] = describeCaFile(input.ca);
  const read = [raw.httpProxy?.source, raw.httpsProxy?.source, raw.noProxy?.source].filter((name) => name !== undefined);
  return {
    value: config,
    detail: read.length === 0 ? 'no proxy variables are set' : `read ${read.join(', ')}`,
    info,
  };
}

/** The IP blocklist of SPEC §8 for `addresses`, when the type is checked. */
function blocklistStep(
  recorder: Recorder,
  input: CheckInput,
  config: EgressConfig,
  addresses: readonly string[],
  context: HintContext,
): Promise<void> {
  return recorder.step('IP blocklist', () => {
    for (const address of addresses) {
      const blocked = config.ipFilter.check(address);
      if (blocked !== undefined) {
        const error = new BlockedDestinationError(input.target.host, blocked.address);
        const range = blocked.range?.entry;
        throw fail(`${blocked.address} is blocklisted${range === undefined ? '' : ` (${range})`}`, {
          code: error.code,
          message: error.message,
          hint: blockedHint(blocked.address, range, context),
        });
      }
    }
    return { value: undefined, detail: `${addresses.join(', ')} ${addresses.length === 1 ? 'is' : 'are'} not blocklisted` };
  });
}

async function proxied(
  recorder: Recorder,
  input: CheckInput,
  config: EgressConfig,
  endpoint: ProxyEndpoint,
  tls: TlsSettings,
  context: HintContext,
  sockets: Set<Socket>,
): Promise<HttpAnswer | undefined> {
  const { target } = input;
  const secure = target.scheme === 'https';
  recorder.plan = endpoint.isSocks
    ? socksPlan(endpoint, secure)
    : [
        'configuration',
        'route',
        'IP blocklist',
        'TCP to proxy',
        'TLS to proxy',
        'proxy authentication',
        ...(secure ? (['CONNECT', 'TLS to origin'] as const) : (['forwarded request'] as const)),
        'HTTP status',
      ];
  // SPEC §9: socks5:// resolves here and the blocklist applies to the answer, as on a direct route.
  const socksAddresses = endpoint.isSocks ? await socksDestinationStep(recorder, endpoint, context, input.timeoutMs) : undefined;
  const policy = policyOf(config, input.type);
  const socksSkip = endpoint.isSocks ? socksBlocklistSkipReason(endpoint, context) : undefined;
  if (!policy.ipBlocklist) recorder.skip('IP blocklist', `${input.type} connections are not checked against the IP blocklist`);
  else if (socksSkip !== undefined) recorder.skip('IP blocklist', socksSkip);
  else if (socksAddresses !== undefined) await blocklistStep(recorder, input, config, socksAddresses, context);
  else if (target.ip === undefined) recorder.skip('IP blocklist', `the proxy resolves ${target.host}; names are not checked here`);
  else await blocklistStep(recorder, input, config, [target.host], context);

  const connection: ProxyConnection = { endpoint, tls: tls.proxy, timeout: input.timeoutMs };
  let socket = await recorder.step('TCP to proxy', async () => {
    try {
      const tcp = await connectTcp(endpoint.hostname, endpoint.port, input.timeoutMs);
      sockets.add(tcp);
      const address = tcp.remoteAddress ?? '';
      const named = isIP(endpoint.hostname) === 0 ? `${endpoint.host} (${address}) port ${String(endpoint.port)}` : endpoint.authority;
      return { value: tcp, detail: `connected to ${named}` };
    } catch (cause) {
      const code = codeOf(cause);
      const error =
        code === 'ETIMEDOUT'
          ? new ProxyUnreachableError(endpoint.url, code, { detail: `no TCP connection within ${formatTimeout(input.timeoutMs)}` })
          : unreachable(endpoint, cause);
      throw fail(`no connection to ${endpoint.authority} (${code ?? 'error'})`, {
        code: error.code,
        message: error.message,
        systemCode: code,
        hint: tcpToProxyHint(endpoint, code, input.timeoutMs),
      });
    }
  });

  if (socksAddresses !== undefined) {
    const tunnelled = await socksExchangeSteps(recorder, endpoint, connection, socket, socksAddresses[0] ?? target.host, context, input.timeoutMs);
    sockets.add(tunnelled);
    let origin: Socket = tunnelled;
    if (secure) origin = await originTlsStep(recorder, input, tunnelled, tls, context, sockets);
    // Inside a SOCKS tunnel the origin gets an origin-form request, as on a direct connection.
    return httpStatusStep(recorder, input, origin, context);
  }

  if (endpoint.protocol === 'https:') {
    socket = await recorder.step('TLS to proxy', async () => {
      try {
        const result = await handshake(socket, endpoint.hostname, tls.proxy, input.timeoutMs);
        sockets.add(result.socket);
        return {
          value: result.socket,
          detail: `${result.protocol ?? 'TLS'}, certificate verified for ${endpoint.host} against ${trustedBy(input, input.proxyCa, '--proxy-ca')}`,
          info: certificateInfo(result.certificate),
        };
      } catch (cause) {
        const handshakeError = cause instanceof HandshakeError ? cause : new HandshakeError(cause, undefined);
        const code = handshakeError.code;
        const error =
          code === 'ETIMEDOUT'
            ? new ProxyUnreachableError(endpoint.url, code, { detail: `no TLS handshake within ${formatTimeout(input.timeoutMs)}` })
            : (proxyTlsErrorFrom(endpoint.url, handshakeError.cause) ?? unreachable(endpoint, handshakeError.cause));
        const reason = error instanceof ProxyTlsError ? error.reason : undefined;
        throw fail(
          reason === undefined || reason === 'other' ? `handshake failed (${code ?? 'error'})` : `certificate rejected: ${reason}`,
          {
            code: error.code,
            message: error.message + (code === undefined ? '' : ` (${code})`),
            reason,
            systemCode: code,
            hint: tlsToProxyHint(endpoint, reason, code, handshakeError.certificate, context),
          },
          { info: certificateInfo(handshakeError.certificate) },
        );
      }
    });
  } else {
    recorder.skip('TLS to proxy', `${endpoint.url} is a plain-HTTP proxy${input.proxyCa === undefined ? '' : ' (--proxy-ca is not used)'}`);
  }

  return secure
    ? tunnel(recorder, input, endpoint, connection, socket, tls, context, sockets)
    : forward(recorder, input, endpoint, socket, context);
}

function trustedBy(input: CheckInput, file: CaFile | undefined, flag: string): string {
  const extra = input.env.NODE_EXTRA_CA_CERTS;
  const sources = ['the system CAs', ...(extra === undefined || extra === '' ? [] : ['NODE_EXTRA_CA_CERTS']), ...(file === undefined ? [] : [flag])];
  return sources.length === 1 ? sources[0] ?? '' : `${sources.slice(0, -1).join(', ')} and ${sources.at(-1) ?? ''}`;
}

/** What the proxy's answer says about authentication: only a 407 rejects credentials (RFC 9110 §15.5.8). */
function authDetail(endpoint: ProxyEndpoint, statusCode: number | undefined): string {
  if (statusCode !== undefined && (statusCode < 200 || statusCode >= 300)) {
    const answered = `the proxy answered ${String(statusCode)}, not 407`;
    return endpoint.hasCredentials ? `credentials from ${endpoint.source} sent, not rejected (${answered})` : `no credentials configured, none asked for (${answered})`;
  }
  return endpoint.hasCredentials ? `credentials from ${endpoint.source} accepted` : 'no credentials configured, none required';
}

function describeAnswer(statusCode: number, statusMessage: string, server: string | undefined): string {
  return `${String(statusCode)}${statusMessage === '' ? '' : ` ${statusMessage}`}${server === undefined ? '' : ` (server: ${server})`}`;
}

async function tunnel(
  recorder: Recorder,
  input: CheckInput,
  endpoint: ProxyEndpoint,
  connection: ProxyConnection,
  proxySocket: Socket,
  tls: TlsSettings,
  context: HintContext,
  sockets: Set<Socket>,
): Promise<HttpAnswer> {
  const { target } = input;
  const authority = context.authority;
  // One CONNECT answers two questions: did the proxy accept our credentials, and did it open the tunnel.
  recorder.announce('proxy authentication');
  const startedAt = performance.now();
  const tap = tapAnswerHead(proxySocket);
  let tunnelSocket: Socket | undefined;
  let failure: unknown;
  try {
    tunnelSocket = await sendConnect(proxySocket, connection, { hostname: target.host, port: target.port });
  } catch (error) {
    failure = error;
  }
  const head = tap();
  const ms = elapsed(startedAt);
  const squidError = head?.headers.get('x-squid-error');
  const server = head?.headers.get('server') ?? head?.headers.get('via');

  if (failure instanceof ProxyAuthenticationError) {
    recorder.judgedFailure({
      name: 'proxy authentication',
      ms,
      statusCode: 407,
      detail: endpoint.hasCredentials
        ? `the proxy rejected the credentials from ${endpoint.source}${failure.realm === undefined ? '' : ` (realm "${failure.realm}")`}`
        : `the proxy requires credentials${failure.realm === undefined ? '' : ` (realm "${failure.realm}")`}; ${endpoint.source} has none`,
      error: stepError({ code: failure.code, message: failure.message, realm: failure.realm, hint: authHint(endpoint, failure.realm) }),
    });
  }
  if (failure instanceof ProxyConnectError) {
    recorder.judged({ name: 'proxy authentication', status: 'ok', ms, detail: authDetail(endpoint, failure.statusCode) });
    recorder.judgedFailure({
      name: 'CONNECT',
      ms,
      statusCode: failure.statusCode,
      detail: `${describeAnswer(failure.statusCode, head?.statusMessage ?? '', server)} for CONNECT ${authority}`,
      error: stepError({
        code: failure.code,
        message: failure.message + (squidError === undefined ? '' : ` (${squidError})`),
        hint: proxyRefusalHint(endpoint, failure.statusCode, squidError, context, 'CONNECT'),
      }),
    });
  }
  if (failure !== undefined || tunnelSocket === undefined) {
    recorder.judged({ name: 'proxy authentication', status: 'skipped', ms, detail: 'no answer from the proxy to judge by' });
    const error = isEgressError(failure) ? failure : unreachable(endpoint, failure);
    const systemCode = error instanceof ProxyUnreachableError ? error.syscallCode : undefined;
    recorder.judgedFailure({
      name: 'CONNECT',
      ms,
      detail: `no answer to CONNECT ${authority}`,
      error: stepError({ code: error.code, message: error.message, systemCode, hint: noAnswerHint(endpoint, systemCode ?? error.code, input.timeoutMs) }),
    });
  }
  sockets.add(tunnelSocket);
  recorder.judged({ name: 'proxy authentication', status: 'ok', ms, detail: authDetail(endpoint, head?.statusCode) });
  recorder.judged({
    name: 'CONNECT',
    status: 'ok',
    ms,
    ...(head !== undefined && { statusCode: head.statusCode }),
    detail: `${head === undefined ? '2xx' : describeAnswer(head.statusCode, head.statusMessage, server)}: tunnel to ${authority} open`,
  });

  const tunnelled = tunnelSocket;
  const secure = await originTlsStep(recorder, input, tunnelled, tls, context, sockets);
  return httpStatusStep(recorder, input, secure, context);
}

async function originTlsStep(
  recorder: Recorder,
  input: CheckInput,
  socket: Socket,
  tls: TlsSettings,
  context: HintContext,
  sockets: Set<Socket>,
): Promise<Socket> {
  return recorder.step('TLS to origin', async () => {
    try {
      const result = await handshake(socket, input.target.host, tls.origin, input.timeoutMs);
      sockets.add(result.socket);
      return {
        value: result.socket,
        detail: `${result.protocol ?? 'TLS'}, certificate verified for ${input.target.host} against ${trustedBy(input, input.ca, '--ca')}`,
        info: certificateInfo(result.certificate),
      };
    } catch (cause) {
      const handshakeError = cause instanceof HandshakeError ? cause : new HandshakeError(cause, undefined);
      const code = handshakeError.code;
      const reason = code === 'ETIMEDOUT' ? undefined : classifyTlsError(handshakeError.cause);
      throw fail(
        reason === undefined || reason === 'other' ? `handshake failed (${code ?? 'error'})` : `certificate rejected: ${reason}`,
        {
          code: code ?? 'ERR_TLS_HANDSHAKE',
          message: `TLS to ${context.authority} failed: ${handshakeError.message}`,
          reason,
          hint: tlsToOriginHint(reason, code, handshakeError.certificate, context),
        },
        { info: certificateInfo(handshakeError.certificate) },
      );
    }
  });
}

function requestHeaders(input: CheckInput): Record<string, string> {
  return { host: input.url.host, 'user-agent': USER_AGENT, accept: '*/*', connection: 'close' };
}

function requestPath(input: CheckInput): string {
  return `${input.url.pathname}${input.url.search}`;
}

function httpStatusStep(recorder: Recorder, input: CheckInput, socket: Socket, context: HintContext): Promise<HttpAnswer> {
  return recorder.step('HTTP status', async () => {
    try {
      const answer = await getHead(socket, requestPath(input), requestHeaders(input), input.timeoutMs);
      return {
        value: answer,
        statusCode: answer.statusCode,
        detail: `${describeAnswer(answer.statusCode, answer.statusMessage, headerText(answer, 'server'))} for GET ${requestPath(input)}`,
      };
    } catch (error) {
      const code = codeOf(error);
      throw fail(`no response to GET ${requestPath(input)}`, {
        code: code ?? 'ERR_HTTP',
        message: `GET ${displayUrl(input.url)} failed: ${error instanceof Error ? error.message : String(error)}`,
        hint: httpHint(code, context),
      });
    }
  });
}

function headerText(answer: HttpAnswer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** `http://` URLs through the proxy: one absolute-form GET, as the library's forwarding pool sends it. */
async function forward(recorder: Recorder, input: CheckInput, endpoint: ProxyEndpoint, proxySocket: Socket, context: HintContext): Promise<HttpAnswer> {
  const path = `${input.url.origin}${requestPath(input)}`;
  const authorization = endpoint.proxyAuthorization();
  const headers = { ...requestHeaders(input), ...(authorization !== undefined && { 'proxy-authorization': authorization }) };
  recorder.announce('proxy authentication');
  const startedAt = performance.now();
  let answer: HttpAnswer;
  try {
    answer = await getHead(proxySocket, path, headers, input.timeoutMs);
  } catch (cause) {
    const ms = elapsed(startedAt);
    const code = codeOf(cause);
    recorder.judged({ name: 'proxy authentication', status: 'skipped', ms, detail: 'no answer from the proxy to judge by' });
    const protocol = code?.startsWith('HPE_') === true;
    recorder.judgedFailure({
      name: 'forwarded request',
      ms,
      detail: `no answer to GET ${displayUrl(input.url)}`,
      error: stepError({
        code: protocol ? 'ERR_EGRESS_PROXY_PROTOCOL' : 'ERR_EGRESS_PROXY_UNREACHABLE',
        message: protocol
          ? `Proxy ${endpoint.url} sent an invalid answer to the forwarded request`
          : `Proxy ${endpoint.url} ${code === 'ETIMEDOUT' ? `did not answer within ${formatTimeout(input.timeoutMs)}` : 'closed the connection before answering'}`,
        systemCode: code,
        hint: noAnswerHint(endpoint, code, input.timeoutMs),
      }),
    });
  }
  const ms = elapsed(startedAt);
  const squidError = headerText(answer, 'x-squid-error');
  if (answer.statusCode === 407) {
    const realm = /realm="([^"]*)"/i.exec(headerText(answer, 'proxy-authenticate') ?? '')?.[1];
    // A 407 here answers the forwarded GET, not a CONNECT: the error says so (issue #12).
    const error = new ProxyAuthenticationError(endpoint.url, input.url.host, realm, endpoint.hasCredentials, true);
    recorder.judgedFailure({
      name: 'proxy authentication',
      ms,
      statusCode: 407,
      detail: endpoint.hasCredentials
        ? `the proxy rejected the credentials from ${endpoint.source}${realm === undefined ? '' : ` (realm "${realm}")`}`
        : `the proxy requires credentials${realm === undefined ? '' : ` (realm "${realm}")`}; ${endpoint.source} has none`,
      error: stepError({ code: error.code, message: error.message, realm, hint: authHint(endpoint, realm) }),
    });
  }
  recorder.judged({ name: 'proxy authentication', status: 'ok', ms, detail: authDetail(endpoint, answer.statusCode) });
  // A proxy error page is not the origin's answer: Squid marks its own with X-Squid-Error, and 502/504
  // are the gateway statuses a proxy sends when it cannot reach the origin (RFC 9110 §15.6.3, §15.6.5).
  if (squidError !== undefined || answer.statusCode === 502 || answer.statusCode === 504) {
    recorder.judgedFailure({
      name: 'forwarded request',
      ms,
      statusCode: answer.statusCode,
      detail: `${describeAnswer(answer.statusCode, answer.statusMessage, headerText(answer, 'server'))} from the proxy for GET ${displayUrl(input.url)}`,
      error: stepError({
        code: 'ERR_EGRESS_PROXY_CONNECT',
        message: `Proxy ${endpoint.url} answered ${String(answer.statusCode)} to GET ${displayUrl(input.url)}${squidError === undefined ? '' : ` (${squidError})`}`,
        hint: proxyRefusalHint(endpoint, answer.statusCode, squidError, context, 'GET'),
      }),
    });
  }
  const via = headerText(answer, 'via');
  recorder.judged({
    name: 'forwarded request',
    status: 'ok',
    ms,
    statusCode: answer.statusCode,
    detail: `relayed by the proxy${via === undefined ? '' : ` (via: ${via})`}`,
  });
  recorder.judged({
    name: 'HTTP status',
    status: 'ok',
    ms,
    statusCode: answer.statusCode,
    detail: `${describeAnswer(answer.statusCode, answer.statusMessage, headerText(answer, 'server'))} for GET ${requestPath(input)}`,
  });
  return answer;
}

/** A direct route: DNS, the IP blocklist, TCP, TLS and the HTTP status, as the library's direct pool connects. */
async function direct(
  recorder: Recorder,
  input: CheckInput,
  config: EgressConfig,
  tls: TlsSettings,
  context: HintContext,
  sockets: Set<Socket>,
): Promise<HttpAnswer> {
  const { target } = input;
  const secure = target.scheme === 'https';
  recorder.plan = ['configuration', 'route', 'DNS', 'IP blocklist', 'TCP to origin', 'TLS to origin', 'HTTP status'];
  let addresses: readonly LookupAddress[] | undefined;
  if (target.ip !== undefined) {
    recorder.skip('DNS', `${target.host} is an IP address`);
  } else {
    addresses = await recorder.step('DNS', async () => {
      try {
        const found = await resolveAll(target.host, input.timeoutMs);
        return { value: found, detail: `${target.host} resolves to ${found.map((a) => a.address).join(', ')}` };
      } catch (error) {
        const code = codeOf(error);
        throw fail(`${target.host} does not resolve (${code ?? 'error'})`, {
          code: code ?? 'ENOTFOUND',
          message: `DNS lookup of ${target.host} failed: ${error instanceof Error ? error.message : String(error)}`,
          hint: dnsHint(code, context),
        });
      }
    });
  }
  const policy = policyOf(config, input.type);
  if (!policy.ipBlocklist) recorder.skip('IP blocklist', `${input.type} connections are not checked against the IP blocklist`);
  else await blocklistStep(recorder, input, config, addresses?.map((a) => a.address) ?? [target.host], context);

  const tcp = await recorder.step('TCP to origin', async () => {
    try {
      const socket = await connectTcp(target.host, target.port, input.timeoutMs, addresses === undefined ? undefined : fixedLookup(addresses));
      sockets.add(socket);
      return { value: socket, detail: `connected to ${authorityOf({ hostname: socket.remoteAddress ?? target.host, port: target.port })}` };
    } catch (error) {
      const code = codeOf(error);
      throw fail(`no connection to ${context.authority} (${code ?? 'error'})`, {
        code: code ?? 'ECONNREFUSED',
        message: `No connection to ${context.authority}: ${error instanceof Error ? error.message : String(error)}`,
        hint: tcpToOriginHint(code, context),
      });
    }
  });
  let socket: Socket = tcp;
  if (secure) socket = await originTlsStep(recorder, input, tcp, tls, context, sockets);
  else recorder.skip('TLS to origin', 'http:// URL: no TLS');
  return httpStatusStep(recorder, input, socket, context);
}

