// The kernel's TCP tables (/proc/net/tcp and tcp6), read for tests that must know who holds which
// connection: Squid and this process both connect from 127.0.0.1, so addresses cannot tell them apart.
import { readFileSync } from 'node:fs';

/** One row of /proc/net/tcp{,6}. Ports are numbers; `state` is the kernel's hex state code. */
export interface TcpRow {
  readonly localPort: number;
  readonly remotePort: number;
  readonly state: string;
  /** The socket inode; `'0'` for sockets no process holds (TIME_WAIT). */
  readonly inode: string;
}

/** Every row of both TCP tables (a table that cannot be read is skipped). */
export function tcpRows(): TcpRow[] {
  const rows: TcpRow[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      const local = fields[1]?.split(':').at(-1);
      const remote = fields[2]?.split(':').at(-1);
      const state = fields[3];
      const inode = fields[9];
      if (local === undefined || remote === undefined || state === undefined || inode === undefined) continue;
      rows.push({ localPort: Number.parseInt(local, 16), remotePort: Number.parseInt(remote, 16), state, inode });
    }
  }
  return rows;
}
