/**
 * PHK's MD5-crypt, the `$1$` hashes of crypt(3) and Apache's `$apr1$` variant (the same algorithm
 * with another magic). Squid's basic_ncsa_auth reads `$apr1$`; Dante's `socksmethod: username`
 * hands a shadow entry to glibc's crypt(3), which reads `$1$`. Done here so the tests need neither
 * apache2-utils nor an openssl binary.
 */
import { Buffer } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';

const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function md5(...parts: Buffer[]): Buffer {
  const hash = createHash('md5');
  for (const part of parts) hash.update(part);
  return hash.digest();
}

function to64(value: number, length: number): string {
  let out = '';
  for (let v = value, i = 0; i < length; i++, v >>= 6) out += CRYPT_ALPHABET[v & 0x3f] ?? '';
  return out;
}

/** A random 8-character salt from the crypt alphabet. */
function randomSalt(): string {
  return randomBytes(6).toString('base64').replace(/[^./0-9A-Za-z]/g, '.').slice(0, 8);
}

/**
 * MD5-crypt of `password`: `<magic><salt>$<22 characters>`.
 *
 * @param magic - `'$1$'` (crypt(3)) or `'$apr1$'` (Apache htpasswd).
 * @param salt - Up to 8 characters of `[./0-9A-Za-z]`. **Default:** random.
 */
export function md5Crypt(password: string, magic: '$1$' | '$apr1$', salt = randomSalt()): string {
  const pw = Buffer.from(password, 'utf8');
  const s = Buffer.from(salt, 'ascii');
  const alternate = md5(pw, s, pw);
  const parts: Buffer[] = [pw, Buffer.from(magic), s];
  for (let left = pw.length; left > 0; left -= 16) parts.push(alternate.subarray(0, Math.min(16, left)));
  for (let i = pw.length; i > 0; i >>= 1) parts.push(i & 1 ? Buffer.from([0]) : pw.subarray(0, 1));
  let digest = md5(...parts);
  for (let i = 0; i < 1000; i++) {
    const round: Buffer[] = [i & 1 ? pw : digest];
    if (i % 3 !== 0) round.push(s);
    if (i % 7 !== 0) round.push(pw);
    round.push(i & 1 ? digest : pw);
    digest = md5(...round);
  }
  const b = (index: number): number => digest[index] ?? 0;
  const encoded =
    to64((b(0) << 16) | (b(6) << 8) | b(12), 4) +
    to64((b(1) << 16) | (b(7) << 8) | b(13), 4) +
    to64((b(2) << 16) | (b(8) << 8) | b(14), 4) +
    to64((b(3) << 16) | (b(9) << 8) | b(15), 4) +
    to64((b(4) << 16) | (b(10) << 8) | b(5), 4) +
    to64(b(11), 2);
  return `${magic}${salt}$${encoded}`;
}
