/**
 * TLS session tickets kept per peer, so a new connection resumes instead of a full handshake
 * (undici's own connector does the same for direct connections; our tunnels need their own).
 * @module
 */

/** Most sessions kept; the oldest is dropped first. */
const MAX_SESSIONS = 100;

/** A small insertion-ordered cache of TLS sessions by peer key. */
export class TlsSessionCache {
  readonly #sessions = new Map<string, Buffer>();

  get(key: string): Buffer | undefined {
    return this.#sessions.get(key);
  }

  set(key: string, session: Buffer): void {
    this.#sessions.delete(key);
    if (this.#sessions.size >= MAX_SESSIONS) {
      const oldest = this.#sessions.keys().next();
      if (oldest.done !== true) this.#sessions.delete(oldest.value);
    }
    this.#sessions.set(key, session);
  }

  /** Forget a peer's session, e.g. after a failed handshake. */
  delete(key: string): void {
    this.#sessions.delete(key);
  }
}
