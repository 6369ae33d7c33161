import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';

import {
  createSelfSignedCertificate,
  createTestCertificateAuthority,
  type CertificateAndKey,
  type TestCertificateAuthority,
} from '../../src/testing/certificates.js';

const HOSTS = ['localhost', '127.0.0.1', '::1'] as const;

/** Serve `credentials` on 127.0.0.1 (and [::1]) and return the port; closed by `after`. */
async function serve(credentials: CertificateAndKey, host: '127.0.0.1' | '::1' = '127.0.0.1'): Promise<number> {
  const server = https.createServer({ ...credentials }, (_req, res) => {
    res.end('ok');
  });
  server.listen(0, host);
  await once(server, 'listening');
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

const servers: https.Server[] = [];

interface Outcome {
  readonly authorized: boolean;
  readonly code: string | undefined;
}

/** One verifying TLS handshake; resolves with the error code instead of throwing. */
async function handshake(options: tls.ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = tls.connect({ ...options, timeout: 5_000 });
    socket.once('secureConnect', () => {
      resolve({ authorized: socket.authorized, code: undefined });
      socket.destroy();
    });
    socket.once('timeout', () => {
      socket.destroy(new Error('handshake timed out'));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve({ authorized: false, code: error.code ?? error.message });
    });
  });
}

describe('test certificates', { timeout: 60_000 }, () => {
  let ca: TestCertificateAuthority;
  let goodPort: number;

  before(async () => {
    ca = createTestCertificateAuthority();
    goodPort = await serve(ca.issue({ hosts: HOSTS }));
  });

  after(() => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
  });

  it('makes a CA with basicConstraints cA:true and a positive random serial', () => {
    const x509 = new X509Certificate(ca.cert);
    assert.equal(x509.ca, true);
    assert.equal(x509.subject, 'CN=matrix-egress test CA');
    assert.ok(Number.parseInt(x509.serialNumber.slice(0, 2), 16) < 0x80, 'serial is positive');
    assert.notEqual(x509.serialNumber, new X509Certificate(createTestCertificateAuthority().cert).serialNumber);
  });

  it('issues leaves with DNS and IP subjectAltNames and the first host as CN', () => {
    const leaf = new X509Certificate(ca.issue({ hosts: HOSTS }).cert);
    assert.equal(leaf.ca, false);
    assert.equal(leaf.subject, 'CN=localhost');
    assert.equal(leaf.subjectAltName, 'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    assert.ok(leaf.keyUsage.includes('1.3.6.1.5.5.7.3.1'), 'extKeyUsage serverAuth');
    assert.ok(leaf.verify(new X509Certificate(ca.cert).publicKey));
    assert.ok(leaf.checkIssued(new X509Certificate(ca.cert)));
  });

  it('verifies by DNS name (SNI localhost)', async () => {
    const outcome = await handshake({ host: '127.0.0.1', port: goodPort, servername: 'localhost', ca: ca.cert });
    assert.deepEqual(outcome, { authorized: true, code: undefined });
  });

  it('verifies by IPv4 literal', async () => {
    const outcome = await handshake({ host: '127.0.0.1', port: goodPort, ca: ca.cert });
    assert.deepEqual(outcome, { authorized: true, code: undefined });
  });

  it('verifies by IPv6 literal', async () => {
    const port = await serve(ca.issue({ hosts: HOSTS }), '::1');
    const outcome = await handshake({ host: '::1', port, ca: ca.cert });
    assert.deepEqual(outcome, { authorized: true, code: undefined });
  });

  it('fails on a host name the certificate does not name', async () => {
    const outcome = await handshake({ host: '127.0.0.1', port: goodPort, servername: 'example.test', ca: ca.cert });
    assert.equal(outcome.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  });

  it('fails on an expired leaf', async () => {
    const day = 24 * 60 * 60 * 1000;
    const port = await serve(
      ca.issue({ hosts: HOSTS, notBefore: new Date(Date.now() - 3 * day), notAfter: new Date(Date.now() - day) }),
    );
    const outcome = await handshake({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert });
    assert.equal(outcome.code, 'CERT_HAS_EXPIRED');
  });

  it('fails on a self-signed leaf', async () => {
    const port = await serve(createSelfSignedCertificate({ hosts: HOSTS }));
    const outcome = await handshake({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert });
    assert.equal(outcome.code, 'DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('fails on a leaf from another CA', async () => {
    const other = createTestCertificateAuthority({ commonName: 'another test CA' });
    assert.equal(new X509Certificate(other.cert).subject, 'CN=another test CA');
    const port = await serve(other.issue({ hosts: HOSTS }));
    const outcome = await handshake({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert });
    assert.equal(outcome.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('rejects an empty host list', () => {
    assert.throws(() => ca.issue({ hosts: [] }), TypeError);
    assert.throws(() => createSelfSignedCertificate({ hosts: [] }), TypeError);
  });
});
