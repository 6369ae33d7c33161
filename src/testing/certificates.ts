/**
 * Throwaway X.509 material for TLS tests, made at run time so that no key or
 * certificate is ever committed and expiry never breaks the suite (undici's
 * tests do the same with node-forge).
 *
 * Keys come from Node's native `crypto.generateKeyPairSync` because forge's
 * pure-JS RSA generation takes seconds per 2048-bit key; forge is used only to
 * assemble and sign the certificates.
 *
 * @module
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import forge from 'node-forge';

/** A PEM certificate and the PEM (PKCS#8) private key that goes with it. */
export interface CertificateAndKey {
  /** The certificate, PEM-encoded (`-----BEGIN CERTIFICATE-----`). */
  readonly cert: string;
  /** The unencrypted private key, PEM-encoded PKCS#8 (`-----BEGIN PRIVATE KEY-----`). */
  readonly key: string;
}

/** What to put in a leaf certificate. */
export interface IssueOptions {
  /** DNS names and/or IP literals (v4 or v6) for subjectAltName; first is also the CN. */
  readonly hosts: readonly string[];
  /** Defaults: notBefore = now - 1 hour, notAfter = now + 1 day. Pass past dates to make an expired certificate. */
  readonly notBefore?: Date;
  /** See {@link IssueOptions.notBefore}. */
  readonly notAfter?: Date;
}

/** A certificate authority that lives only in memory for the duration of a test run. */
export interface TestCertificateAuthority extends CertificateAndKey {
  /** Issue a leaf server certificate signed by this CA (extKeyUsage serverAuth, SAN from hosts). */
  issue(options: IssueOptions): CertificateAndKey;
}

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

// GeneralName tags from RFC 5280 §4.2.1.6.
const SAN_DNS = 2;
const SAN_IP = 7;

interface KeyPair {
  readonly forgePrivate: forge.pki.rsa.PrivateKey;
  readonly forgePublic: forge.pki.rsa.PublicKey;
  readonly pkcs8Pem: string;
}

function generateKeyPair(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    forgePrivate: forge.pki.privateKeyFromPem(
      privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    ),
    forgePublic: forge.pki.publicKeyFromPem(
      publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    ),
    pkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/**
 * 16 random bytes as hex. Forcing the top byte into 0x40–0x7f keeps the DER
 * INTEGER positive and minimally encoded (RFC 5280 §4.1.2.2 requires a
 * positive serial; OpenSSL rejects a redundant leading zero byte).
 */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x3f) | 0x40;
  return bytes.toString('hex');
}

/**
 * The 4 or 16 network-order bytes of an IP literal, as a forge binary string.
 * Done here rather than by forge's `{ ip }` form because forge's IPv6 parser
 * mishandles embedded IPv4 (`::ffff:127.0.0.1`).
 */
function ipToBinaryString(ip: string): string {
  const family = isIP(ip);
  if (family === 4) {
    return String.fromCharCode(...ip.split('.').map((part) => Number(part)));
  }
  if (family !== 6) {
    throw new TypeError(`Not an IP literal: ${JSON.stringify(ip)}`);
  }
  let text = ip.split('%')[0] ?? ip; // zone ids are not part of the address
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    const v4 = text.slice(lastColon + 1).split('.').map((part) => Number(part));
    tail.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
    text = `${text.slice(0, lastColon + 1)}0`; // placeholder group, dropped below
  }
  const parseGroups = (s: string): number[] =>
    s === '' ? [] : s.split(':').map((group) => Number.parseInt(group, 16));
  const [head = '', rest] = text.split('::');
  let groups: number[];
  if (rest === undefined) {
    groups = parseGroups(head);
  } else {
    const left = parseGroups(head);
    const right = parseGroups(rest);
    const wanted = 8 - tail.length + (tail.length > 0 ? 1 : 0);
    groups = [...left, ...new Array<number>(wanted - left.length - right.length).fill(0), ...right];
  }
  if (tail.length > 0) {
    groups = [...groups.slice(0, -1), ...tail];
  }
  let out = '';
  for (const group of groups) {
    out += String.fromCharCode((group >> 8) & 0xff, group & 0xff);
  }
  return out;
}

function subjectAltNames(hosts: readonly string[]): object[] {
  return hosts.map((host) => {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    return isIP(bare) === 0
      ? { type: SAN_DNS, value: bare }
      : { type: SAN_IP, value: ipToBinaryString(bare) };
  });
}

function checkHosts(hosts: readonly string[]): string {
  const first = hosts[0];
  if (first === undefined) {
    throw new TypeError('Option `hosts`: at least one host name or IP literal is required');
  }
  return first;
}

interface BuildOptions {
  readonly subjectCn: string;
  readonly subjectKeys: KeyPair;
  readonly issuer: { readonly cn: string; readonly keys: KeyPair; readonly keyId: string } | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly extensions: object[];
}

function buildCertificate(options: BuildOptions): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = options.subjectKeys.forgePublic;
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = options.notBefore;
  cert.validity.notAfter = options.notAfter;
  cert.setSubject([{ name: 'commonName', value: options.subjectCn }]);
  cert.setIssuer([{ name: 'commonName', value: options.issuer?.cn ?? options.subjectCn }]);
  const subjectKeyId = cert.generateSubjectKeyIdentifier().getBytes();
  cert.setExtensions([
    ...options.extensions,
    { name: 'subjectKeyIdentifier' }, // forge derives it from cert.publicKey
    // Explicit bytes: forge's `keyIdentifier: true` would use the subject's own key, not the issuer's.
    { name: 'authorityKeyIdentifier', keyIdentifier: options.issuer?.keyId ?? subjectKeyId },
  ]);
  cert.sign(options.issuer?.keys.forgePrivate ?? options.subjectKeys.forgePrivate, forge.md.sha256.create());
  return cert;
}

function leafExtensions(hosts: readonly string[]): object[] {
  return [
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: subjectAltNames(hosts) },
  ];
}

function validity(options: IssueOptions): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return {
    notBefore: options.notBefore ?? new Date(now - HOUR_MS),
    notAfter: options.notAfter ?? new Date(now + DAY_MS),
  };
}

/**
 * Create an in-memory certificate authority (RSA 2048, SHA-256, valid from an
 * hour ago for one day) whose `issue()` signs leaf server certificates.
 *
 * Trust it by passing its `cert` as `ca` to `tls.connect`, an undici `Agent`
 * or the egress factory; never by turning verification off.
 *
 * @param options - `commonName` of the CA. **Default:** `'matrix-egress test CA'`.
 * @returns The CA's certificate and key plus an `issue()` method.
 *
 * @example
 * ```ts
 * const ca = createTestCertificateAuthority();
 * const { cert, key } = ca.issue({ hosts: ['localhost', '127.0.0.1', '::1'] });
 * https.createServer({ cert, key }, handler);
 * tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca: ca.cert });
 * ```
 */
export function createTestCertificateAuthority(
  options: { readonly commonName?: string } = {},
): TestCertificateAuthority {
  const cn = options.commonName ?? 'matrix-egress test CA';
  const keys = generateKeyPair();
  const now = Date.now();
  const caCert = buildCertificate({
    subjectCn: cn,
    subjectKeys: keys,
    issuer: undefined,
    notBefore: new Date(now - HOUR_MS),
    notAfter: new Date(now + DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const issuer = { cn, keys, keyId: caCert.generateSubjectKeyIdentifier().getBytes() };
  return {
    cert: forge.pki.certificateToPem(caCert),
    key: keys.pkcs8Pem,
    issue(issueOptions: IssueOptions): CertificateAndKey {
      const subjectCn = checkHosts(issueOptions.hosts);
      const leafKeys = generateKeyPair();
      const leaf = buildCertificate({
        subjectCn,
        subjectKeys: leafKeys,
        issuer,
        ...validity(issueOptions),
        extensions: leafExtensions(issueOptions.hosts),
      });
      return { cert: forge.pki.certificateToPem(leaf), key: leafKeys.pkcs8Pem };
    },
  };
}

/**
 * A self-signed leaf (not from any CA) for the "self-signed" failure case.
 *
 * Clients that verify see `DEPTH_ZERO_SELF_SIGNED_CERT`. It carries the same
 * extensions as an issued leaf, so the only defect is who signed it.
 *
 * @param options - Hosts and validity, as for {@link TestCertificateAuthority.issue}.
 * @returns The certificate and its key.
 */
export function createSelfSignedCertificate(options: IssueOptions): CertificateAndKey {
  const subjectCn = checkHosts(options.hosts);
  const keys = generateKeyPair();
  const cert = buildCertificate({
    subjectCn,
    subjectKeys: keys,
    issuer: undefined,
    ...validity(options),
    extensions: leafExtensions(options.hosts),
  });
  return { cert: forge.pki.certificateToPem(cert), key: keys.pkcs8Pem };
}
