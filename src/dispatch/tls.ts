/**
 * TLS settings for the two hops: to an `https://` proxy and to the origin. Verification is on
 * everywhere; the single testing switch turns it off for both hops and says so once.
 * @module
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { EgressConfig } from '../config/compile.js';
import { ProxyTlsError, type ProxyTlsReason } from '../errors.js';

/** TLS options for one hop. `ca` is `undefined` when Node's default store (system + NODE_EXTRA_CA_CERTS) applies. */
export interface HopTls {
  readonly ca: readonly (string | Buffer)[] | undefined;
  /**
   * A context built once from `ca`: passing `ca` to every `tls.connect` would parse the whole
   * root store again for each connection (milliseconds each).
   */
  readonly secureContext: SecureContext | undefined;
  readonly rejectUnauthorized: boolean;
}

/** TLS settings of an egress: one per hop. */
export interface TlsSettings {
  readonly proxy: HopTls;
  readonly origin: HopTls;
}

/** The warning logged once per egress when verification is off. */
const INSECURE_WARNING =
  'matrix-egress: TLS certificate verification is OFF for proxies and origins ' +
  '(useInsecureSslClientJustForTestingDoNotUse). Never use this outside tests.';

/**
 * Build the TLS settings of an egress.
 *
 * Node's `ca` option replaces the whole trust store, so an extra CA would drop the system roots and
 * the NODE_EXTRA_CA_CERTS file. We add both back explicitly: an extra CA extends trust, never narrows it.
 */
export function tlsSettingsFor(config: EgressConfig, env: Readonly<Record<string, string | undefined>> = process.env): TlsSettings {
  const rejectUnauthorized = !config.insecureSkipVerify;
  if (config.insecureSkipVerify) config.logger.warn(INSECURE_WARNING);
  const extraFromEnv = readExtraCaFile(env.NODE_EXTRA_CA_CERTS);
  const withSystem = (extra: readonly (string | Buffer)[] | undefined): readonly (string | Buffer)[] | undefined =>
    extra === undefined ? undefined : Object.freeze([...rootCertificates, ...extraFromEnv, ...extra]);
  const hop = (extra: readonly (string | Buffer)[] | undefined): HopTls => {
    const ca = withSystem(extra);
    return Object.freeze({ ca, secureContext: ca === undefined ? undefined : createSecureContext({ ca: [...ca] }), rejectUnauthorized });
  };
  return Object.freeze({ proxy: hop(config.proxyCa), origin: hop(config.ca) });
}

/**
 * The origin TLS of a `proxyRules` entry with its own `ca`: the system CAs, NODE_EXTRA_CA_CERTS, the
 * egress's `ca` and the rule's, so a rule extends trust for its hosts and never narrows it.
 */
export function ruleOriginTls(config: EgressConfig, ruleCa: readonly (string | Buffer)[], env: Readonly<Record<string, string | undefined>> = process.env): HopTls {
  const ca = Object.freeze([...rootCertificates, ...readExtraCaFile(env.NODE_EXTRA_CA_CERTS), ...(config.ca ?? []), ...ruleCa]);
  return Object.freeze({ ca, secureContext: createSecureContext({ ca: [...ca] }), rejectUnauthorized: !config.insecureSkipVerify });
}

function readExtraCaFile(path: string | undefined): string[] {
  if (path === undefined || path === '') return [];
  try {
    return [readFileSync(path, 'utf8')];
  } catch {
    // Node itself only warns about an unreadable NODE_EXTRA_CA_CERTS; so do we, by ignoring it here.
    return [];
  }
}

/** The SNI name for a host: none for IP literals (RFC 6066 §3 forbids literal addresses in SNI). */
export function serverNameFor(host: string): string | undefined {
  return isIP(host) === 0 ? host : undefined;
}

/** Map Node's certificate verification error codes to a {@link ProxyTlsReason}. */
export function classifyTlsError(error: unknown): ProxyTlsReason | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  switch (code) {
    case 'DEPTH_ZERO_SELF_SIGNED_CERT':
    case 'SELF_SIGNED_CERT_IN_CHAIN':
      return 'self-signed';
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_GET_ISSUER_CERT':
    case 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY':
    case 'CERT_UNTRUSTED':
      return 'unknown-ca';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return 'hostname-mismatch';
    case 'CERT_HAS_EXPIRED':
    case 'CERT_NOT_YET_VALID':
      return 'expired';
    default:
      return typeof code === 'string' && (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code.includes('CERT'))
        ? 'other'
        : undefined;
  }
}

/** Wrap a TLS failure on the proxy hop, or return `undefined` when it is not a TLS failure. */
export function proxyTlsErrorFrom(proxyUrl: string, error: unknown): ProxyTlsError | undefined {
  const reason = classifyTlsError(error);
  return reason === undefined ? undefined : new ProxyTlsError(proxyUrl, reason, { cause: error });
}
