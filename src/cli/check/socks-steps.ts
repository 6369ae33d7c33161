/**
 * The SOCKS5 steps of `matrix-egress check` (SPEC §9): for `socks5://` the local DNS look-up and the IP
 * blocklist on its answer, then, after TCP to the proxy, the greeting (the authentication method the
 * proxy chose), RFC 1929 authentication, the CONNECT reply, and TLS to the origin inside the tunnel.
 * The exchange is the library's own (`sendSocksConnect`); the steps are read from the bytes the proxy
 * sent (RFC 1928 §3: method selection, RFC 1929 §2: status, RFC 1928 §6: reply) and its typed error.
 * @module
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ProxyEndpoint } from '../../config/proxy-url.js';
import { sendSocksConnect } from '../../dispatch/socks.js';
import type { ProxyConnection } from '../../dispatch/tunnel.js';
import { unreachable } from '../../dispatch/tunnel.js';
import { ProxyAuthenticationError, ProxyConnectError, ProxyUnreachableError, isEgressError } from '../../errors.js';
import { authHint, dnsHint, noAnswerHint, type HintContext } from './hints.js';
import { codeOf, resolveAll } from './probe.js';
import { elapsed, fail, stepError, type CheckStepName, type Recorder } from './report.js';

/** The steps of a SOCKS route, in order. */
export function socksPlan(endpoint: ProxyEndpoint, secure: boolean): CheckStepName[] {
  return [
    'configuration',
    'route',
    ...(endpoint.protocol === 'socks5:' ? (['DNS'] as const) : []),
    'IP blocklist',
    'TCP to proxy',
    'SOCKS greeting',
    'proxy authentication',
    'SOCKS CONNECT',
    ...(secure ? (['TLS to origin'] as const) : []),
    'HTTP status',
  ];
}

/**
 * For `socks5://` and a host name: resolve it here, as the library does, and return the addresses to
 * check and the one to ask the proxy for. For `socks5h://` (or an IP literal): the host as it is.
 */
export async function socksDestinationStep(recorder: Recorder, endpoint: ProxyEndpoint, context: HintContext, timeoutMs: number): Promise<readonly string[]> {
  const { target } = context;
  if (endpoint.protocol === 'socks5h:') return [target.host];
  if (target.ip !== undefined) {
    recorder.skip('DNS', `${target.host} is an IP address`);
    return [target.host];
  }
  return recorder.step('DNS', async () => {
    try {
      const found = (await resolveAll(target.host, timeoutMs)).map((a) => a.address);
      return { value: found, detail: `${target.host} resolves to ${found.join(', ')}; ${endpoint.url} is asked for ${found[0] ?? ''} (socks5:// resolves locally)` };
    } catch (error) {
      const code = codeOf(error);
      throw fail(`${target.host} does not resolve (${code ?? 'error'})`, {
        code: code ?? 'ENOTFOUND',
        message: `DNS lookup of ${target.host} failed: ${error instanceof Error ? error.message : String(error)}`,
        hint: `${dnsHint(code, context)} With socks5h:// the proxy resolves the name instead.`,
      });
    }
  });
}

const METHOD_NAMES: Readonly<Record<number, string>> = { 0: 'no authentication', 1: 'GSSAPI', 2: 'username/password (RFC 1929)', 255: 'no acceptable method' };

/** Run the SOCKS5 exchange on `socket` and record the greeting, authentication and CONNECT steps. */
export async function socksExchangeSteps(
  recorder: Recorder,
  endpoint: ProxyEndpoint,
  connection: ProxyConnection,
  socket: Socket,
  destination: string,
  context: HintContext,
  timeoutMs: number,
): Promise<Socket> {
  const { target, authority } = context;
  const asked = `${destination.includes(':') ? `[${destination}]` : destination}:${String(target.port)}`;
  recorder.announce('SOCKS greeting');
  const received: Buffer[] = [];
  const tap = (chunk: Buffer): void => {
    received.push(chunk);
  };
  socket.on('data', tap);
  const startedAt = performance.now();
  let tunnel: Socket | undefined;
  let failure: unknown;
  try {
    tunnel = await sendSocksConnect(socket, connection, { hostname: destination, port: target.port });
  } catch (error) {
    failure = error;
  }
  socket.removeListener('data', tap);
  const ms = elapsed(startedAt);
  const bytes = Buffer.concat(received);
  const version = bytes[0];
  const method = bytes[1];
  const greeted = version === 5 && method !== undefined;
  const methodName = method === undefined ? 'none' : (METHOD_NAMES[method] ?? `method 0x${method.toString(16).padStart(2, '0')}`);

  if (!greeted) {
    const error = isEgressError(failure) ? failure : unreachable(endpoint, failure);
    const systemCode = error instanceof ProxyUnreachableError ? error.syscallCode : undefined;
    recorder.judgedFailure({
      name: 'SOCKS greeting',
      ms,
      detail: bytes.length === 0 ? 'no answer to the SOCKS5 greeting' : 'the answer is not SOCKS5',
      error: stepError({
        code: error.code,
        message: error.message,
        systemCode,
        hint:
          bytes.length === 0
            ? noAnswerHint(endpoint, systemCode ?? error.code, timeoutMs)
            : `${endpoint.authority} does not speak SOCKS5: check the port in ${endpoint.source} (an HTTP proxy needs http://).`,
      }),
    });
  }
  recorder.judged({ name: 'SOCKS greeting', status: 'ok', ms, detail: `SOCKS5; the proxy chose ${methodName}` });

  if (failure instanceof ProxyAuthenticationError) {
    recorder.judgedFailure({
      name: 'proxy authentication',
      ms,
      detail: endpoint.hasCredentials ? `the proxy rejected the user name and password from ${endpoint.source}` : `the proxy requires a user name and password; ${endpoint.source} has none`,
      error: stepError({ code: failure.code, message: failure.message, hint: authHint(endpoint, undefined) }),
    });
  }
  const authUsed = method === 2;
  recorder.judged({
    name: 'proxy authentication',
    status: 'ok',
    ms,
    detail: authUsed ? `credentials from ${endpoint.source} accepted` : endpoint.hasCredentials ? 'credentials configured, not asked for' : 'no credentials configured, none required',
  });

  if (failure !== undefined || tunnel === undefined) {
    const error = isEgressError(failure) ? failure : unreachable(endpoint, failure);
    const reply = error instanceof ProxyConnectError ? error.socksReply : undefined;
    const systemCode = error instanceof ProxyUnreachableError ? error.syscallCode : undefined;
    recorder.judgedFailure({
      name: 'SOCKS CONNECT',
      ms,
      detail: reply === undefined ? `no valid reply to CONNECT ${asked}` : `reply 0x${reply.toString(16).padStart(2, '0')} for CONNECT ${asked}`,
      error: stepError({
        code: error.code,
        message: error.message,
        systemCode,
        hint:
          reply === undefined
            ? noAnswerHint(endpoint, systemCode ?? error.code, timeoutMs)
            : `The proxy could not or would not reach ${authority}: check its rules and that ${target.host} is reachable from the proxy${endpoint.protocol === 'socks5h:' ? ' (the proxy resolves the name)' : ''}.`,
      }),
    });
  }
  recorder.judged({ name: 'SOCKS CONNECT', status: 'ok', ms, detail: `reply 0x00 succeeded: tunnel to ${asked} open` });
  return tunnel;
}

/** An IP-literal destination or the addresses of a `socks5://` name, checked as on a direct route. */
export function socksBlocklistSkipReason(endpoint: ProxyEndpoint, context: HintContext): string | undefined {
  if (endpoint.protocol === 'socks5h:' && context.target.ip === undefined) return `the proxy resolves ${context.target.host} (socks5h://); names are not checked here`;
  return undefined;
}
