/**
 * The SOCKS5 wire format the recording SOCKS proxy speaks: RFC 1928 (greeting, request, reply)
 * and RFC 1929 (username/password sub-negotiation), plus a reader that takes exact byte counts
 * off a socket.
 *
 * @internal
 * @module
 */
import { Buffer } from 'node:buffer';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';

import ipaddr from 'ipaddr.js';

/** RFC 1928 §3 method numbers. */
export const SOCKS_METHOD = Object.freeze({
  noAuth: 0x00,
  gssapi: 0x01,
  usernamePassword: 0x02,
  noAcceptable: 0xff,
});

/** RFC 1928 §4 command numbers. */
export const SOCKS_COMMAND = Object.freeze({ connect: 0x01, bind: 0x02, udpAssociate: 0x03 });

/** RFC 1928 §6 reply codes, by the name the RFC gives them. */
export const SOCKS_REPLY = Object.freeze({
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
});

const REPLY_NAMES: readonly string[] = [
  'succeeded',
  'general SOCKS server failure',
  'connection not allowed by ruleset',
  'network unreachable',
  'host unreachable',
  'connection refused',
  'TTL expired',
  'command not supported',
  'address type not supported',
];

/** The RFC 1928 §6 name of a reply code, e.g. `'host unreachable'`; `'unassigned'` past 0x08. */
export function socksReplyName(code: number): string {
  return REPLY_NAMES[code] ?? 'unassigned';
}

/** How the destination was given in a request (RFC 1928 §5 ATYP). */
export type SocksAddressType = 'ipv4' | 'domain' | 'ipv6';

/** A parsed RFC 1928 §4 request. */
export interface SocksRequest {
  readonly command: number;
  readonly addressType: SocksAddressType;
  /** The name (ATYP 3) or the address in canonical text (ATYP 1 and 4). */
  readonly host: string;
  readonly port: number;
}

/** Thrown by {@link ByteReader.read} when the peer closed before enough bytes arrived. */
class ShortReadError extends Error {
  constructor() {
    super('the client closed the connection in the middle of a SOCKS message');
    this.name = 'ShortReadError';
  }
}

/** Thrown when the request names an ATYP other than 1, 3 or 4. */
export class AddressTypeError extends Error {
  constructor(readonly addressType: number) {
    super(`unsupported SOCKS address type ${String(addressType)}`);
    this.name = 'AddressTypeError';
  }
}

/**
 * Exact-length reads from a socket in flowing mode. After the handshake, {@link ByteReader.release}
 * detaches it, pauses the socket and returns the bytes that arrived early (a client may pipeline its
 * first tunnel bytes right behind the request).
 */
export class ByteReader {
  #buffered: Buffer = Buffer.alloc(0);
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #socket: Duplex;
  readonly #onData = (chunk: Buffer): void => {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    this.#wake?.();
  };
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#wake?.();
  };

  constructor(socket: Duplex) {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.once('end', this.#onEnd);
    socket.once('close', this.#onEnd);
  }

  /** Bytes received so far and not yet read. */
  get buffered(): number {
    return this.#buffered.length;
  }

  /** Resolve with exactly `n` bytes; reject with {@link ShortReadError} if the stream ends first. */
  async read(n: number): Promise<Buffer> {
    while (this.#buffered.length < n) {
      if (this.#ended) throw new ShortReadError();
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
    const out = this.#buffered.subarray(0, n);
    this.#buffered = this.#buffered.subarray(n);
    return out;
  }

  /** One byte, as a number. */
  async byte(): Promise<number> {
    return (await this.read(1))[0] ?? 0;
  }

  /** Stop reading: pause the socket, detach, and hand back what was buffered. */
  release(): Buffer {
    this.#socket.pause();
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    const rest = this.#buffered;
    this.#buffered = Buffer.alloc(0);
    return rest;
  }
}

/** Read an RFC 1928 §3 greeting after its VER byte: the offered methods. */
export async function readMethods(reader: ByteReader): Promise<number[]> {
  const count = await reader.byte();
  return [...(await reader.read(count))];
}

/** Read an RFC 1929 §2 sub-negotiation request: VER, ULEN, UNAME, PLEN, PASSWD. */
export async function readUsernamePassword(
  reader: ByteReader,
): Promise<{ readonly version: number; readonly username: string; readonly password: string }> {
  const version = await reader.byte();
  const username = (await reader.read(await reader.byte())).toString('utf8');
  const password = (await reader.read(await reader.byte())).toString('utf8');
  return { version, username, password };
}

/**
 * Read an RFC 1928 §4 request after its VER byte. Names are decoded as UTF-8 (RFC 1928 leaves the
 * encoding open; clients send ASCII, IDNs in punycode).
 *
 * @throws AddressTypeError for an unknown ATYP (the caller replies 0x08).
 */
export async function readRequest(reader: ByteReader): Promise<SocksRequest> {
  const head = await reader.read(3);
  const command = head[0] ?? 0;
  const atyp = head[2] ?? 0;
  let addressType: SocksAddressType;
  let host: string;
  if (atyp === 0x01) {
    addressType = 'ipv4';
    host = [...(await reader.read(4))].join('.');
  } else if (atyp === 0x03) {
    addressType = 'domain';
    host = (await reader.read(await reader.byte())).toString('utf8');
  } else if (atyp === 0x04) {
    addressType = 'ipv6';
    host = ipv6Text(await reader.read(16));
  } else {
    throw new AddressTypeError(atyp);
  }
  const port = (await reader.read(2)).readUInt16BE(0);
  return { command, addressType, host, port };
}

/** Canonical (RFC 5952) text of a 16-byte IPv6 address. */
function ipv6Text(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

/**
 * An RFC 1928 §6 reply. BND.ADDR/BND.PORT carry the address the proxy connected from (for a
 * success) or all zeros, as most servers send on failure.
 */
export function encodeReply(code: number, bound?: { readonly address: string; readonly port: number }): Buffer {
  const address = bound?.address ?? '0.0.0.0';
  const port = Buffer.alloc(2);
  port.writeUInt16BE(bound?.port ?? 0);
  const bytes = ipaddr.parse(address).toByteArray();
  return Buffer.concat([Buffer.from([0x05, code, 0x00, net.isIPv6(address) ? 0x04 : 0x01]), Buffer.from(bytes), port]);
}
