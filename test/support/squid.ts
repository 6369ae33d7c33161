/**
 * A real Squid (Debian's `squid` 5.x) on loopback for integration tests.
 *
 * Each instance gets its own temporary directory holding a generated
 * squid.conf, the access and cache logs, the pid file and, when asked for, a
 * TLS certificate and a password file. Squid runs in the foreground (`-N`) as
 * our child, so we stop it by its own PID and never touch another Squid.
 *
 * Install Squid with `scripts/squid.sh install`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants as fsConstants, existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, isIP, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { md5Crypt } from './md5-crypt.js';

/** The basic-auth helper shipped in Debian's squid package (`--enable-auth-basic=NCSA`). */
const NCSA_AUTH_HELPER = '/usr/lib/squid/basic_ncsa_auth';

/** Options for {@link startSquid}. An HTTP port on 127.0.0.1 is always opened. */
export interface StartSquidOptions {
  /** Also open an `https_port` (TLS from client to proxy) with this PEM certificate (chain) and key. */
  readonly https?: { readonly cert: string; readonly key: string };
  /** Require `Proxy-Authorization: Basic` with these credentials (checked by `basic_ncsa_auth`). */
  readonly auth?: { readonly username: string; readonly password: string };
  /**
   * Ports CONNECT may reach. **Default:** any port (our origins listen on random loopback ports).
   * With `stockSslPorts` these are added to 443, as an admin would add to `SSL_ports`.
   */
  readonly allowConnectPorts?: readonly number[];
  /**
   * Reproduce the stock Debian rules `http_access deny !Safe_ports` and
   * `http_access deny CONNECT !SSL_ports` (SSL_ports = 443). **Default:** `false`.
   */
  readonly stockSslPorts?: boolean;
  /** Also listen on [::1] (same port numbers). **Default:** `false`. */
  readonly ipv6?: boolean;
  /**
   * Extra names for Squid's private hosts file, each mapped to a loopback address
   * (e.g. `{ 'matrix.test': '127.0.0.1' }`). `localhost` is always there.
   */
  readonly hosts?: Readonly<Record<string, string>>;
  /** How long to wait for Squid to accept connections. **Default:** `10_000` ms. */
  readonly startupTimeoutMs?: number;
}

/** One parsed access-log line. */
export interface AccessLogEntry {
  /** Seconds since the epoch, with milliseconds, when the transaction ended. */
  readonly time: number;
  /** The client address Squid saw. */
  readonly client: string;
  /** Request method (`GET`, `CONNECT`, …). */
  readonly method: string;
  /** Absolute URL for forwarded requests, `host:port` for CONNECT (query kept: `strip_query_terms off`). */
  readonly target: string;
  /** Status code Squid sent to the client (`0` when none was sent). */
  readonly status: number;
  /** Squid's result code, e.g. `TCP_MISS`, `TCP_TUNNEL`, `TCP_DENIED`, `NONE_NONE`. */
  readonly result: string;
  /**
   * The proxy user name, or `undefined` when the request carried none.
   * A connection closed before sending a request is logged with method `-`,
   * status 0 and target `error:transaction-end-before-headers`.
   */
  readonly user: string | undefined;
}

/** A running Squid started by {@link startSquid}. */
export interface SquidInstance {
  /** `http://127.0.0.1:<port>`: the plain-HTTP proxy URL. */
  readonly url: string;
  /** `https://127.0.0.1:<httpsPort>` when `https` was given. */
  readonly httpsUrl?: string;
  /** `http://[::1]:<port>` when `ipv6` was set. */
  readonly ipv6Url?: string;
  /** The `http_port`. */
  readonly port: number;
  /** The `https_port`, when `https` was given. */
  readonly httpsPort?: number;
  /** PID of the Squid process (our direct child). */
  readonly pid: number;
  /** The instance's temporary directory (config, logs); removed by {@link SquidInstance.stop}. */
  readonly dir: string;
  /**
   * Parsed access-log lines so far. Squid logs a CONNECT only when its tunnel
   * closes, so close tunnels first (or use {@link SquidInstance.waitForAccessLog}).
   * After `stop()`, returns the final log.
   */
  accessLog(): Promise<AccessLogEntry[]>;
  /** Poll the access log until an entry satisfies `predicate`; rejects after `timeoutMs` (**Default:** 5000). */
  waitForAccessLog(predicate: (entry: AccessLogEntry) => boolean, timeoutMs?: number): Promise<AccessLogEntry>;
  /** Squid's cache.log (diagnostics), for failure messages. */
  cacheLog(): Promise<string>;
  /**
   * Stop Squid by PID and wait for it to exit, then remove its directory.
   * Graceful by default (SIGTERM; Squid then logs open tunnels and exits in
   * about 2 s, since it waits `shutdown_lifetime` + 1 s and then 1 s more).
   * `force` sends SIGKILL at once (≈ instant; open tunnels are not logged).
   * Idempotent.
   */
  stop(options?: { readonly force?: boolean }): Promise<void>;
}

const STOP_GRACE_MS = 5_000;
const LOOPBACK_V4 = /^127(?:\.\d{1,3}){3}$/;

/** Absolute path of the `squid` binary, or `undefined`. /usr/sbin is often not on a non-root PATH. */
function findSquidBinary(): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, 'squid');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether Squid and the NCSA auth helper are installed, so tests can fail with a clear message. */
function squidAvailable(): boolean {
  return findSquidBinary() !== undefined && existsSync(NCSA_AUTH_HELPER);
}

/** Throws an error that says how to install Squid when {@link squidAvailable} is false. */
export function assertSquidAvailable(): void {
  if (!squidAvailable()) {
    throw new Error(
      `Squid is not installed (need the squid binary and ${NCSA_AUTH_HELPER}); run: bash scripts/squid.sh install`,
    );
  }
}

// --- APR1 (Apache MD5-crypt) for the htpasswd file --------------------------

/**
 * `$apr1$` hash as `htpasswd -m` / `openssl passwd -apr1` make it; basic_ncsa_auth verifies it.
 * Done here so the tests need neither apache2-utils nor an openssl binary.
 */
export function apr1Hash(password: string, salt?: string): string {
  return md5Crypt(password, '$apr1$', salt);
}

// --- helpers -----------------------------------------------------------------

/** A port that is free on 127.0.0.1 (and on ::1 when asked) right now. */
export async function freePort(ipv6: boolean): Promise<number> {
  const probe = async (host: string, port: number): Promise<number> => {
    const server = createServer();
    server.listen({ host, port, exclusive: true });
    try {
      await once(server, 'listening');
      const address = server.address();
      return typeof address === 'object' && address !== null ? address.port : 0;
    } finally {
      server.close();
    }
  };
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await probe('127.0.0.1', 0);
    if (!ipv6) return port;
    try {
      await probe('::1', port);
      return port;
    } catch {
      // taken on ::1; try another
    }
  }
  throw new Error('could not find a port free on both 127.0.0.1 and ::1');
}

/** uid/gid of the account Squid drops to when started as root (Debian: `proxy`). */
function effectiveUser(): { name: string; uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8').split('\n');
  for (const name of ['proxy', 'nobody']) {
    const fields = passwd.find((line) => line.startsWith(`${name}:`))?.split(':');
    if (fields !== undefined) return { name, uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  throw new Error('running as root but neither a `proxy` nor a `nobody` account exists for Squid');
}

function checkNoNewline(what: string, value: string): void {
  if (/[\r\n\0]/.test(value)) throw new TypeError(`Option \`${what}\` must not contain CR, LF or NUL`);
}

function checkPorts(ports: readonly number[]): void {
  for (const port of ports) {
    if (!Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new TypeError(`Option \`allowConnectPorts\`: ${String(port)} is not a port number`);
    }
  }
}

/**
 * A private hosts file: `localhost` and the `extra` names, each on a loopback address (anything else
 * is refused). Shared with test/support/dante.ts; `localhostOnIpv6: false` leaves `localhost` IPv4-only.
 */
export function hostsFile(extra: Readonly<Record<string, string>>, { localhostOnIpv6 = true } = {}): string {
  const lines = ['127.0.0.1 localhost', `::1 ${localhostOnIpv6 ? 'localhost ' : ''}ip6-localhost ip6-loopback`];
  for (const [name, address] of Object.entries(extra)) {
    // Targets must stay on loopback, whatever a test asks for.
    if (!(LOOPBACK_V4.test(address) || (isIP(address) === 6 && address.replace(/^(0{0,4}:)+/, '') === '1'))) {
      throw new TypeError(`Option \`hosts.${name}\`: ${address} is not a loopback address`);
    }
    if (!/^[A-Za-z0-9.-]+$/.test(name)) throw new TypeError(`Option \`hosts\`: bad host name ${JSON.stringify(name)}`);
    lines.push(`${address} ${name}`);
  }
  return `${lines.join('\n')}\n`;
}

interface ConfigInput {
  readonly dir: string;
  readonly port: number;
  readonly httpsPort: number | undefined;
  readonly ipv6: boolean;
  readonly user: string | undefined;
  readonly auth: boolean;
  readonly connectPorts: readonly number[] | undefined;
  readonly stock: boolean;
  /** Host names in the private hosts file. */
  readonly names: readonly string[];
}

/** Debian's stock Safe_ports list (squid.conf of squid 5.7). */
const STOCK_SAFE_PORTS = '80 21 443 70 210 1025-65535 280 488 591 777';

function squidConfig(input: ConfigInput): string {
  const { dir } = input;
  const listen = (directive: string, port: number, extra = ''): string[] => [
    `${directive} 127.0.0.1:${port}${extra}`,
    ...(input.ipv6 ? [`${directive} [::1]:${port}${extra}`] : []),
  ];
  const lines = [
    '# generated by test/support/squid.ts',
    ...listen('http_port', input.port),
    ...(input.httpsPort === undefined
      ? []
      : listen('https_port', input.httpsPort, ` tls-cert=${join(dir, 'proxy-cert.pem')} tls-key=${join(dir, 'proxy-key.pem')}`)),
    `pid_filename ${join(dir, 'squid.pid')}`,
    `cache_log ${join(dir, 'cache.log')}`,
    `coredump_dir ${dir}`,
    // %un last but one and %ru last: the URL never holds a space, so the line splits unambiguously.
    'logformat egress %ts.%03tu %>a %rm %>Hs %Ss %un %ru',
    `access_log stdio:${join(dir, 'access.log')} logformat=egress`,
    'buffered_logs off',
    'strip_query_terms off',
    'logfile_rotate 0',
    'cache_store_log none',
    'netdb_filename none', // else Squid writes /var/spool/squid/netdb.state
    'pinger_enable off', // Debian builds --enable-icmp; the setuid pinger is not needed
    'cache deny all',
    'cache_mem 0 MB',
    'shutdown_lifetime 0 seconds',
    'visible_hostname squid-test', // avoids a hostname look-up at start
    // No DNS beyond our hosts file: targets are loopback only.
    `hosts_file ${join(dir, 'hosts')}`,
    'dns_nameservers 127.0.0.1',
    'dns_timeout 2 seconds',
    'connect_timeout 5 seconds',
    'max_filedescriptors 4096', // Debian's build defaults to 65536 and allocates tables for them
    ...(input.user === undefined ? [] : [`cache_effective_user ${input.user}`]),
    ...(input.auth
      ? [
          `auth_param basic program ${NCSA_AUTH_HELPER} ${join(dir, 'passwd')}`,
          'auth_param basic children 2 startup=0 idle=1',
          'auth_param basic realm matrix-egress-test',
          'acl egress_authed proxy_auth REQUIRED',
        ]
      : []),
    'acl egress_clients src 127.0.0.1/32 ::1',
    // Names outside the hosts file are refused before any DNS look-up: Squid would
    // otherwise wait out dns_timeout on 127.0.0.1:53 (-n: no reverse look-up of IPs).
    `acl egress_known_dst dstdom_regex -n -i ^(${[
      ...input.names.map((name) => name.replaceAll('.', '\\.')),
      '[0-9.]+',
      '\\[?[0-9a-f:.]+\\]?',
    ].join('|')})$`,
    // Stock Squid denies `to_localhost` in many configs; we must allow it, and only it.
    'acl egress_loopback_dst dst 127.0.0.0/8 ::1',
    'acl egress_connect method CONNECT',
    'http_access deny !egress_clients',
    'http_access deny !egress_known_dst',
    'http_access deny !egress_loopback_dst',
  ];
  if (input.stock) {
    lines.push(
      `acl Safe_ports port ${STOCK_SAFE_PORTS}`,
      `acl SSL_ports port ${[443, ...(input.connectPorts ?? [])].join(' ')}`,
      'http_access deny !Safe_ports',
      'http_access deny egress_connect !SSL_ports',
    );
  } else if (input.connectPorts !== undefined) {
    lines.push(
      `acl egress_connect_ports port ${input.connectPorts.length > 0 ? input.connectPorts.join(' ') : '0'}`,
      'http_access deny egress_connect !egress_connect_ports',
    );
  }
  if (input.auth) {
    // An auth ACL last on a deny line makes Squid answer 407, not 403.
    lines.push('http_access deny !egress_authed');
  }
  lines.push('http_access allow egress_clients', 'http_access deny all', '');
  return lines.join('\n');
}

function parseAccessLog(text: string): AccessLogEntry[] {
  const entries: AccessLogEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ');
    if (fields.length < 7) continue;
    const [time = '', client = '', method = '', status = '', result = '', user = '', ...target] = fields;
    entries.push({
      time: Number(time),
      client,
      method,
      status: Number(status),
      result,
      user: user === '-' ? undefined : user, // logged as sent (Squid does not escape %un here)
      target: target.join(' '),
    });
  }
  return entries;
}

// Instances still running at process exit are killed so that no Squid outlives the test file.
const live = new Map<number, { dir: string; service: string }>();
let exitHookInstalled = false;

function removeShm(service: string): void {
  // Squid 5 creates `<service>-cf__*.shm` even with -N; SIGKILL leaves them behind.
  try {
    for (const name of readdirSync('/dev/shm')) {
      if (name.startsWith(`${service}-`)) rmSync(join('/dev/shm', name), { force: true });
    }
  } catch {
    // no /dev/shm
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const [pid, { dir, service }] of live) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
      removeShm(service);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

let serviceCounter = 0;

/**
 * Start a Squid on loopback with a fresh config and wait until it accepts
 * connections.
 *
 * Readiness is read from cache.log ("Accepting … connections at … local=ip:port")
 * rather than by probing the port, because Squid 5 logs a probe that sends no
 * request as an `error:transaction-end-before-headers` access-log entry.
 *
 * @throws When Squid is not installed, exits during start-up, or does not
 *   listen within `startupTimeoutMs` (the message includes cache.log).
 */
export async function startSquid(options: StartSquidOptions = {}): Promise<SquidInstance> {
  assertSquidAvailable();
  const binary = findSquidBinary() ?? 'squid';
  if (options.auth !== undefined) {
    checkNoNewline('auth.username', options.auth.username);
    checkNoNewline('auth.password', options.auth.password);
    if (options.auth.username.includes(':') || options.auth.username.includes(' ')) {
      throw new TypeError('Option `auth.username` must not contain `:` or a space (htpasswd format)');
    }
  }
  if (options.allowConnectPorts !== undefined) checkPorts(options.allowConnectPorts);
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options, binary);
    } catch (error) {
      // freePort() closes its probe before Squid binds, so another process can win the port.
      if (!(error instanceof PortTakenError) || attempt === 3) throw error;
    }
  }
}

/** Squid exited because a port we picked was taken in the meantime. */
class PortTakenError extends Error {}

async function launch(options: StartSquidOptions, binary: string): Promise<SquidInstance> {
  const ipv6 = options.ipv6 ?? false;
  const user = effectiveUser();
  const dir = await mkdtemp(join(tmpdir(), 'matrix-egress-squid-'));
  try {
    const port = await freePort(ipv6);
    let httpsPort: number | undefined;
    if (options.https !== undefined) {
      do httpsPort = await freePort(ipv6);
      while (httpsPort === port);
    }
    const files: Record<string, string> = {
      'hosts': hostsFile(options.hosts ?? {}),
      'squid.conf': squidConfig({
        dir,
        port,
        httpsPort,
        ipv6,
        user: user?.name,
        auth: options.auth !== undefined,
        connectPorts: options.allowConnectPorts,
        stock: options.stockSslPorts ?? false,
        names: ['localhost', 'ip6-localhost', 'ip6-loopback', ...Object.keys(options.hosts ?? {})],
      }),
    };
    if (options.https !== undefined) {
      files['proxy-cert.pem'] = options.https.cert;
      files['proxy-key.pem'] = options.https.key;
    }
    if (options.auth !== undefined) {
      files['passwd'] = `${options.auth.username}:${apr1Hash(options.auth.password)}\n`;
    }
    for (const [name, content] of Object.entries(files)) {
      await writeFile(join(dir, name), content, { mode: 0o600 });
    }
    // Squid (after dropping to `proxy`) and its auth helper must read and write here.
    if (user !== undefined) {
      await chown(dir, user.uid, user.gid);
      for (const name of Object.keys(files)) await chown(join(dir, name), user.uid, user.gid);
    }

    // A unique service name keeps concurrent instances' shared-memory segments apart.
    const service = `egress${process.pid}x${++serviceCounter}`;
    const child = spawn(binary, ['-N', '-n', service, '-f', join(dir, 'squid.conf')], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;
    if (pid === undefined) {
      await once(child, 'error').catch(() => undefined);
      throw new Error(`could not spawn ${binary}`);
    }
    installExitHook();
    live.set(pid, { dir, service });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const state = { exited: false }; // an object, so flow analysis sees the change made in the callback
    const exited = new Promise<void>((resolve) => {
      child.once('exit', () => {
        state.exited = true;
        live.delete(pid);
        resolve();
      });
    });
    child.on('error', (error) => (output += `\n[spawn error] ${error.message}`));
    // Let a forgotten stop() not hold the test process open; the exit hook kills Squid.
    child.unref();
    // Pipes to a child are net.Sockets at run time; the typings only say Readable.
    (child.stdout as unknown as Socket).unref();
    (child.stderr as unknown as Socket).unref();

    const wanted = [
      `local=127.0.0.1:${port} `,
      ...(ipv6 ? [`local=[::1]:${port} `] : []),
      ...(httpsPort === undefined ? [] : [`local=127.0.0.1:${httpsPort} `, ...(ipv6 ? [`local=[::1]:${httpsPort} `] : [])]),
    ];
    const cacheLogPath = join(dir, 'cache.log');
    const readCacheLog = async (): Promise<string> => readFile(cacheLogPath, 'utf8').catch(() => '');
    const deadline = Date.now() + (options.startupTimeoutMs ?? 10_000);
    for (;;) {
      const log = await readCacheLog();
      const accepting = log.split('\n').filter((line) => line.includes('Accepting'));
      if (wanted.every((needle) => accepting.some((line) => line.includes(needle)))) break;
      if (state.exited || Date.now() > deadline) {
        if (!state.exited) killChild(child, 'SIGKILL');
        await exited;
        removeShm(service);
        const portTaken = /Unable to open HTTPS? Socket|Address already in use/.test(`${output}\n${log}`);
        throw new (portTaken ? PortTakenError : Error)(
          `Squid ${state.exited ? 'exited during start-up' : 'did not listen in time'}.\n` +
            `--- output ---\n${output}\n--- cache.log ---\n${log}`,
        );
      }
      await sleep(10);
    }

    let finalLog: AccessLogEntry[] | undefined;
    let stopping: Promise<void> | undefined;
    const accessLog = async (): Promise<AccessLogEntry[]> =>
      finalLog ?? parseAccessLog(await readFile(join(dir, 'access.log'), 'utf8').catch(() => ''));

    const stop = async (stopOptions: { readonly force?: boolean } = {}): Promise<void> => {
      stopping ??= (async () => {
        await stopChild(child, state, exited, stopOptions.force === true, STOP_GRACE_MS);
        removeShm(service);
        finalLog = await accessLog();
        await rm(dir, { recursive: true, force: true });
      })();
      return stopping;
    };

    return {
      url: `http://127.0.0.1:${port}`,
      ...(httpsPort === undefined ? {} : { httpsUrl: `https://127.0.0.1:${httpsPort}`, httpsPort }),
      ...(ipv6 ? { ipv6Url: `http://[::1]:${port}` } : {}),
      port,
      pid,
      dir,
      accessLog,
      async waitForAccessLog(predicate, timeoutMs = 5_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const found = (await accessLog()).find(predicate);
          if (found !== undefined) return found;
          if (Date.now() > until) {
            throw new Error(`no matching access-log entry within ${timeoutMs} ms; log: ${JSON.stringify(await accessLog())}`);
          }
          await sleep(20);
        }
      },
      cacheLog: readCacheLog,
      stop,
    };
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Stop our own child by PID: SIGTERM (SIGKILL when `force`), then SIGKILL if it is still running after
 * `graceMs`. Resolves once it has exited; at once if it already has.
 */
export async function stopChild(
  child: ChildProcess,
  state: { readonly exited: boolean },
  exited: Promise<void>,
  force: boolean,
  graceMs: number,
): Promise<void> {
  if (state.exited) return;
  killChild(child, force ? 'SIGKILL' : 'SIGTERM');
  const timer = setTimeout(() => {
    killChild(child, 'SIGKILL');
  }, graceMs);
  await exited;
  clearTimeout(timer);
}

/** Signal our own child by PID; it may already be gone. */
export function killChild(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // ESRCH: already exited
  }
}
