/**
 * A real SOCKS5 server, Dante (Debian's `dante-server` 1.4), on loopback for integration tests and
 * benchmarks.
 *
 * Each instance gets its own temporary directory holding a generated danted.conf, the log, the pid
 * file, and its own user, group, shadow and hosts files. Dante reads those instead of /etc through
 * nss_wrapper (LD_PRELOAD of libnss_wrapper.so with NSS_WRAPPER_PASSWD/GROUP/SHADOW/HOSTS), so
 * `socksmethod: username` (which checks the system password database with getpwnam/getspnam and
 * crypt(3)) sees a throwaway user that exists only for this instance, and `socks5h` names such as
 * `abc.onion` resolve to loopback without DNS. No system user is created and nothing under /etc is
 * touched. danted runs in the foreground as our child and is stopped by its own PID; the packaged
 * service is never used.
 *
 * Install Dante and nss_wrapper with `scripts/dante.sh install`.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants as fsConstants, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { md5Crypt } from './md5-crypt.js';
import { freePort, hostsFile, killChild, stopChild } from './squid.js';

/** Options for {@link startDante}. A port on 127.0.0.1 is always opened. */
export interface StartDanteOptions {
  /**
   * Require RFC 1929 username/password (`socksmethod: username`) with these credentials. The user
   * exists only in this instance's nss_wrapper files. User name: `[a-z_][a-z0-9_-]*`, at most 32
   * characters (a Unix account name); password: non-empty, no CR, LF or NUL.
   */
  readonly auth?: { readonly username: string; readonly password: string };
  /** With `auth`: also accept clients that offer no authentication (`socksmethod: username none`). **Default:** `false`. */
  readonly authOptional?: boolean;
  /** Also listen on [::1] (same port) and allow ::1 destinations. **Default:** `false`. */
  readonly ipv6?: boolean;
  /**
   * Names Dante resolves for `socks5h` requests, each to a loopback address (e.g.
   * `{ 'matrixabc.onion': '127.0.0.1' }`). `localhost` is always there.
   */
  readonly hosts?: Readonly<Record<string, string>>;
  /** How long to wait for Dante to run. **Default:** `10_000` ms. */
  readonly startupTimeoutMs?: number;
}

/**
 * One session line of Dante's log (`log: connect disconnect error` in the rules). Lines are
 * `pass(1): tcp/connect [: …` when a tunnel opens and `… ]: …` when it closes.
 */
export interface DanteLogEntry {
  /** Seconds since the epoch, with microseconds. */
  readonly time: number;
  /** The danted process (mother or child) that logged it. */
  readonly pid: number;
  /** Whether the rule passed or blocked. */
  readonly verdict: 'pass' | 'block';
  /** Rule number in danted.conf. */
  readonly rule: number;
  /** e.g. `'tcp/connect'` (a CONNECT tunnel) or `'tcp/accept'` (a client TCP connection). */
  readonly operation: string;
  /** `'open'` for `[`, `'close'` for `]`. */
  readonly phase: 'open' | 'close';
  /** The authenticated user (`username%<user>@` in the line), if any. */
  readonly user: string | undefined;
  /** The rest of the line after `[: ` or `]: `. */
  readonly detail: string;
}

/** A running Dante started by {@link startDante}. */
export interface DanteInstance {
  /** `socks5://127.0.0.1:<port>`. */
  readonly socks5Url: string;
  /** `socks5h://127.0.0.1:<port>`. */
  readonly socks5hUrl: string;
  /** `socks5://[::1]:<port>` when `ipv6` was set. */
  readonly ipv6Url?: string;
  /** The listening port. */
  readonly port: number;
  /** PID of the danted mother process (our direct child). */
  readonly pid: number;
  /** The instance's temporary directory; removed by {@link DanteInstance.stop}. */
  readonly dir: string;
  /** Session lines of the log so far (after `stop()`, the final log). */
  log(): Promise<DanteLogEntry[]>;
  /** The whole log text, for failure messages. */
  rawLog(): Promise<string>;
  /** CONNECT tunnels opened so far (`pass … tcp/connect [` lines). */
  tunnelsOpened(): Promise<number>;
  /** Poll the log until an entry satisfies `predicate`; rejects after `timeoutMs` (**Default:** 5000). */
  waitForLog(predicate: (entry: DanteLogEntry) => boolean, timeoutMs?: number): Promise<DanteLogEntry>;
  /** Stop Dante by PID (SIGTERM, or SIGKILL with `force`), wait for it, remove its directory. Idempotent. */
  stop(options?: { readonly force?: boolean }): Promise<void>;
}

const STOP_GRACE_MS = 5_000;
const UNIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function findExecutable(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Path of libnss_wrapper.so (Debian installs it under the multiarch directory), or `undefined`. */
function findNssWrapper(): string | undefined {
  const dirs = ['/usr/lib', '/usr/lib64', '/usr/local/lib'];
  for (const dir of dirs) {
    const direct = join(dir, 'libnss_wrapper.so');
    if (existsSync(direct)) return direct;
    try {
      for (const sub of readdirSync(dir)) {
        const nested = join(dir, sub, 'libnss_wrapper.so');
        if (sub.endsWith('-linux-gnu') && existsSync(nested)) return nested;
      }
    } catch {
      // no such directory
    }
  }
  return undefined;
}

/** Whether danted and nss_wrapper are installed, so tests can fail with a clear message. */
function danteAvailable(): boolean {
  return findExecutable('danted') !== undefined && findNssWrapper() !== undefined;
}

/** Throws an error that says how to install Dante when {@link danteAvailable} is false. */
export function assertDanteAvailable(): void {
  if (!danteAvailable()) {
    throw new Error('Dante is not installed (need danted and libnss_wrapper.so); run: bash scripts/dante.sh install');
  }
}

interface Accounts {
  readonly privileged: string;
  readonly unprivileged: string;
  readonly passwd: string;
  readonly group: string;
  readonly shadow: string;
}

/**
 * The nss_wrapper account files. As root Dante switches between `root` and `nobody` (both must
 * exist in the wrapped database); otherwise it stays the current user.
 */
function accounts(auth: StartDanteOptions['auth']): Accounts {
  const passwd: string[] = [];
  const group: string[] = [];
  let privileged: string;
  let unprivileged: string;
  if (process.getuid?.() === 0) {
    passwd.push('root:x:0:0:root:/root:/bin/sh', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin');
    group.push('root:x:0:', 'nogroup:x:65534:');
    privileged = 'root';
    unprivileged = 'nobody';
  } else {
    const me = userInfo();
    passwd.push(`${me.username}:x:${String(me.uid)}:${String(me.gid)}:${me.username}:/nonexistent:/bin/sh`);
    group.push(`${me.username}:x:${String(me.gid)}:`);
    privileged = me.username;
    unprivileged = me.username;
  }
  const shadow: string[] = [];
  if (auth !== undefined) {
    passwd.push(`${auth.username}:x:4242:4242:matrix-egress test user:/nonexistent:/usr/sbin/nologin`);
    group.push(`${auth.username}:x:4242:`);
    // glibc crypt(3) reads `$1$` (MD5-crypt); fields after the hash: no ageing, never expires.
    shadow.push(`${auth.username}:${md5Crypt(auth.password, '$1$')}:19000:0:99999:7:::`);
  }
  const text = (lines: string[]): string => `${lines.join('\n')}\n`;
  return { privileged, unprivileged, passwd: text(passwd), group: text(group), shadow: text(shadow) };
}

interface ConfigInput {
  readonly dir: string;
  readonly port: number;
  readonly ipv6: boolean;
  readonly auth: boolean;
  readonly authOptional: boolean;
  readonly privileged: string;
  readonly unprivileged: string;
}

function danteConfig(input: ConfigInput): string {
  const families = input.ipv6 ? ['127.0.0.1', '::1'] : ['127.0.0.1'];
  const destinations = input.ipv6 ? ['127.0.0.0/8', '::1/128'] : ['127.0.0.0/8'];
  const socksRules = destinations.map((to) =>
    ['socks pass {', `  from: 0/0 to: ${to}`, '  command: connect', '  log: error connect disconnect', '}'].join('\n'),
  );
  return [
    '# generated by test/support/dante.ts',
    `logoutput: ${join(input.dir, 'danted.log')}`,
    ...families.map((address) => `internal: ${address} port = ${String(input.port)}`),
    ...families.map((address) => `external: ${address}`),
    `socksmethod: ${input.auth ? (input.authOptional ? 'username none' : 'username') : 'none'}`,
    'clientmethod: none',
    `user.privileged: ${input.privileged}`,
    `user.unprivileged: ${input.unprivileged}`,
    'timeout.negotiate: 10',
    'timeout.connect: 5',
    // Only loopback clients reach a loopback listener; the rules say so anyway.
    ...families.map((address) => `client pass {\n  from: ${address === '::1' ? '::1/128' : '127.0.0.0/8'} to: 0/0\n  log: error\n}`),
    // Destinations: loopback only, whatever a test asks for (names resolve through our hosts file).
    ...socksRules,
    'socks block {\n  from: 0/0 to: 0/0\n  log: error connect\n}',
    '',
  ].join('\n');
}

const SESSION_LINE =
  /^\w+ +\d+ [\d:]+ \(([\d.]+)\) danted\[(\d+)\]: \w+: (pass|block)\((\d+)\): (\S+) ([[\]]): (.*)$/;

function parseLog(text: string): DanteLogEntry[] {
  const entries: DanteLogEntry[] = [];
  for (const line of text.split('\n')) {
    const match = SESSION_LINE.exec(line);
    if (match === null) continue;
    const [, time = '0', pid = '0', verdict = 'block', rule = '0', operation = '', phase = '[', detail = ''] = match;
    entries.push({
      time: Number(time),
      pid: Number(pid),
      verdict: verdict === 'pass' ? 'pass' : 'block',
      rule: Number(rule),
      operation,
      phase: phase === '[' ? 'open' : 'close',
      user: /username%([^@\s]+)@/.exec(detail)?.[1],
      detail,
    });
  }
  return entries;
}

/** PIDs of the processes whose parent is `pid` (danted's negotiate/request/io children), from /proc. */
export function childProcesses(pid: number): number[] {
  const children: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return children;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(join('/proc', name, 'stat'), 'utf8');
      // Field 4 (ppid) follows the parenthesised command name, which may itself hold spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return children;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Wait until none of `pids` is alive; SIGKILL the ones left after `ms`. They are danted's own children. */
async function reap(pids: readonly number[], ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (pids.some(alive) && Date.now() < until) await sleep(20);
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

// Instances still running at process exit are killed so that no danted outlives the test file.
const live = new Map<number, string>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [pid, dir] of live) {
      for (const target of [pid, ...childProcesses(pid)]) {
        try {
          process.kill(target, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** danted exited because the port we picked was taken in the meantime. */
class PortTakenError extends Error {}

/**
 * Start a Dante on loopback with a fresh config and wait until it runs ("running" in its log,
 * written after the listening socket is bound).
 *
 * @throws When Dante or nss_wrapper is not installed, danted exits during start-up, or it does
 *   not run within `startupTimeoutMs` (the message includes the log).
 */
export async function startDante(options: StartDanteOptions = {}): Promise<DanteInstance> {
  assertDanteAvailable();
  if (options.auth !== undefined) {
    if (!UNIX_USER.test(options.auth.username)) {
      throw new TypeError('Option `auth.username`: must be a Unix account name ([a-z_][a-z0-9_-]*, at most 32 characters)');
    }
    if (/[\r\n\0]/.test(options.auth.password) || options.auth.password === '') {
      throw new TypeError('Option `auth.password`: must be non-empty, without CR, LF or NUL');
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options);
    } catch (error) {
      // freePort() releases its probe before danted binds, so another process can win the port.
      if (!(error instanceof PortTakenError) || attempt === 3) throw error;
    }
  }
}

async function launch(options: StartDanteOptions): Promise<DanteInstance> {
  const binary = findExecutable('danted') ?? 'danted';
  const wrapper = findNssWrapper() ?? '';
  const ipv6 = options.ipv6 ?? false;
  const dir = await mkdtemp(join(tmpdir(), 'matrix-egress-dante-'));
  try {
    const port = await freePort(ipv6);
    const account = accounts(options.auth);
    const files: Record<string, string> = {
      'passwd': account.passwd,
      'group': account.group,
      'shadow': account.shadow,
      // Dante's external address is IPv4 unless `ipv6`: `localhost` must not resolve to ::1 first.
      'hosts': hostsFile(options.hosts ?? {}, { localhostOnIpv6: ipv6 }),
      'danted.conf': danteConfig({
        dir,
        port,
        ipv6,
        auth: options.auth !== undefined,
        authOptional: options.authOptional ?? false,
        privileged: account.privileged,
        unprivileged: account.unprivileged,
      }),
    };
    // Dante's unprivileged children resolve names and users themselves: everything but the
    // shadow file (read with privileges, as getspnam needs) must be readable by `nobody`.
    await chmod(dir, 0o755);
    for (const [name, content] of Object.entries(files)) {
      await writeFile(join(dir, name), content, { mode: name === 'shadow' ? 0o600 : 0o644 });
    }
    const logPath = join(dir, 'danted.log');
    const child = spawn(binary, ['-f', join(dir, 'danted.conf'), '-p', join(dir, 'danted.pid'), '-N', '1'], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: process.env['PATH'] ?? '/usr/bin:/bin',
        LD_PRELOAD: wrapper,
        NSS_WRAPPER_PASSWD: join(dir, 'passwd'),
        NSS_WRAPPER_GROUP: join(dir, 'group'),
        NSS_WRAPPER_SHADOW: join(dir, 'shadow'),
        NSS_WRAPPER_HOSTS: join(dir, 'hosts'),
      },
    });
    const pid = child.pid;
    if (pid === undefined) {
      await once(child, 'error').catch(() => undefined);
      throw new Error(`could not spawn ${binary}`);
    }
    installExitHook();
    live.set(pid, dir);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) => (output += `\n[spawn error] ${error.message}`));
    const state = { exited: false };
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        state.exited = true;
        live.delete(pid);
        resolve();
      });
    });
    // A forgotten stop() must not hold the test process open; the exit hook kills danted.
    child.unref();
    (child.stdout as unknown as Socket).unref();
    (child.stderr as unknown as Socket).unref();

    const rawLog = async (): Promise<string> => readFile(logPath, 'utf8').catch(() => '');
    const deadline = Date.now() + (options.startupTimeoutMs ?? 10_000);
    for (;;) {
      const log = await rawLog();
      if (/Dante\/server\[\d+\/\d+\] v[\d.]+ running/.test(log)) break;
      if (state.exited || Date.now() > deadline) {
        if (!state.exited) killChild(child, 'SIGKILL');
        await exited;
        const portTaken = /Address already in use/.test(`${output}\n${log}`);
        throw new (portTaken ? PortTakenError : Error)(
          `danted ${state.exited ? 'exited during start-up' : 'did not run in time'}.\n--- output ---\n${output}\n--- log ---\n${log}`,
        );
      }
      await sleep(10);
    }

    let finalLog: string | undefined;
    let stopping: Promise<void> | undefined;
    const currentLog = async (): Promise<string> => finalLog ?? (await rawLog());
    const log = async (): Promise<DanteLogEntry[]> => parseLog(await currentLog());
    return {
      socks5Url: `socks5://127.0.0.1:${String(port)}`,
      socks5hUrl: `socks5h://127.0.0.1:${String(port)}`,
      ...(ipv6 ? { ipv6Url: `socks5://[::1]:${String(port)}` } : {}),
      port,
      pid,
      dir,
      log,
      rawLog: currentLog,
      async tunnelsOpened() {
        return (await log()).filter((entry) => entry.verdict === 'pass' && entry.operation === 'tcp/connect' && entry.phase === 'open')
          .length;
      },
      async waitForLog(predicate, timeoutMs = 5_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const found = (await log()).find(predicate);
          if (found !== undefined) return found;
          if (Date.now() > until) throw new Error(`no matching Dante log line within ${String(timeoutMs)} ms; log:\n${await currentLog()}`);
          await sleep(20);
        }
      },
      stop(stopOptions = {}) {
        stopping ??= (async () => {
          // Its children are remembered first: after a SIGKILL they lose their parent and must be reaped by PID.
          const children = childProcesses(pid);
          await stopChild(child, state, exited, stopOptions.force === true, STOP_GRACE_MS);
          await reap(children, STOP_GRACE_MS);
          finalLog = await rawLog();
          await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
