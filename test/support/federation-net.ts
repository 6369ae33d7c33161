/**
 * A small "internet" of Matrix servers on loopback for federation discovery tests: each host name
 * gets its own address in 127.0.0.0/8 (random, so parallel runs do not collide), and TLS origins
 * listen on the ports discovery really uses (443 for `.well-known`, 8448, SRV ports). Certificates
 * come from one throwaway CA and name exactly the hosts each origin is meant to serve.
 *
 * Ports below 1024 need root (or CAP_NET_BIND_SERVICE); {@link privilegedPortsUsable} says whether
 * this process can bind them, so suites can skip with a reason instead of failing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:net';
import { once } from 'node:events';
import { randomInt } from 'node:crypto';
import { createTestCertificateAuthority, type TestCertificateAuthority } from '../../src/testing/certificates.js';
import { createTestOrigin, type OriginRequest, type TestOrigin } from '../../src/testing/test-origin.js';

/** Answers a `.well-known/matrix/server` request. */
export type WellKnownResponder = (req: IncomingMessage, res: ServerResponse) => void;

/** Whether this process may listen on port 443 of a loopback address. */
export async function privilegedPortsUsable(): Promise<boolean> {
  const server = createServer();
  try {
    server.listen({ host: `127.${String(randomInt(1, 255))}.${String(randomInt(1, 255))}.${String(randomInt(2, 255))}`, port: 443 });
    await once(server, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

/** JSON answer helper. */
export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

export class FederationNet {
  readonly ca: TestCertificateAuthority;
  /** Host name → its loopback address: pass to `createHostsLookup`, Squid's `hosts`, the recording proxy's `hosts`. */
  readonly hosts: Record<string, string> = {};
  /** Per host name: how its `/.well-known/matrix/server` answers (404 when unset). */
  readonly wellKnown = new Map<string, WellKnownResponder>();
  readonly #origins: TestOrigin[] = [];
  readonly #prefix = `127.${String(randomInt(1, 255))}.${String(randomInt(0, 256))}`;
  #next = randomInt(2, 100);

  constructor() {
    this.ca = createTestCertificateAuthority({ commonName: 'federation-net CA' });
  }

  /** The address of `name`, allocated on first use. */
  address(name: string): string {
    this.hosts[name] ??= `${this.#prefix}.${String(this.#next++)}`;
    return this.hosts[name];
  }

  /**
   * Start a TLS origin at `name`'s address and `port`, presenting a certificate for `certNames`
   * (default: `name`). `/.well-known/matrix/server` answers from {@link wellKnown} for the Host's
   * name; every other path answers 200 JSON `{ served, port }` unless `handler` is given.
   */
  async serve(
    name: string,
    port: number,
    options: { certNames?: readonly string[]; handler?: (req: IncomingMessage, res: ServerResponse, call: OriginRequest) => void } = {},
  ): Promise<TestOrigin> {
    const host = this.address(name);
    const leaf = this.ca.issue({ hosts: [...(options.certNames ?? [name])] });
    const origin = await createTestOrigin({
      host,
      port,
      tls: { ...leaf, ca: this.ca.cert },
      handler: (req, res, call) => {
        req.resume();
        if (req.url === '/.well-known/matrix/server' || req.url?.startsWith('/.well-known/') === true || req.url?.startsWith('/wk-') === true) {
          const wanted = (req.headers.host ?? '').replace(/:\d+$/, '');
          const responder = this.wellKnown.get(wanted);
          if (responder === undefined) json(res, 404, { errcode: 'M_NOT_FOUND' });
          else responder(req, res);
          return;
        }
        if (options.handler !== undefined) {
          options.handler(req, res, call);
          return;
        }
        json(res, 200, { served: name, port });
      },
    });
    this.#origins.push(origin);
    return origin;
  }

  async close(): Promise<void> {
    await Promise.all(this.#origins.map((origin) => origin.close()));
  }
}
