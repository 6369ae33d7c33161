/**
 * The command table of the `matrix-egress` bin and the contract every command implements.
 *
 * To add a command, write `src/cli/<name>.ts` exporting `usage` and `run(argv, io)` (see
 * {@link CommandModule}) and add one entry to {@link COMMANDS}. Modules load lazily, so a command
 * costs nothing until it is invoked and `main.ts` never changes.
 * @module
 */
import type { CliIo } from './output.js';

/**
 * What a command module exports. `run` returns the exit code; it throws a `UsageError` (from
 * `args.ts`) for bad arguments and lets library errors (`EgressError`) propagate: the dispatcher
 * turns both into a one-line message on stderr and exit code `EXIT.usage` (see `output.ts`).
 */
export interface CommandModule {
  /** Full help text, printed for `matrix-egress <name> --help` and `matrix-egress help <name>`. */
  readonly usage: string;
  run(argv: readonly string[], io: CliIo): number | Promise<number>;
}

/** One row of the command table. */
export interface CommandEntry {
  /** Arguments as shown in the top-level help, e.g. `<type> <url> [--json]`. */
  readonly synopsis: string;
  /** One line for the top-level help. */
  readonly summary: string;
  load(): Promise<CommandModule>;
}

/** Every command, in the order the help lists them. One entry per command. */
export const COMMANDS: ReadonlyMap<string, CommandEntry> = new Map<string, CommandEntry>([
  [
    'explain',
    {
      synopsis: '<type> <url> [--json]',
      summary: 'Show the route of one connection (proxy or direct) and why',
      load: () => import('./explain.js'),
    },
  ],
  [
    'env',
    {
      synopsis: '[--json]',
      summary: 'Show the proxy settings and where each one came from',
      load: () => import('./env.js'),
    },
  ],
  [
    'check',
    {
      synopsis: '[--type <type>] <url> [--json]',
      summary: 'Make one real request, step by step, and show which step fails',
      load: () => import('./check.js'),
    },
  ],
  ['demo', { synopsis: '[--json]', summary: 'Show the route of every connection type, live on loopback', load: () => import('./demo.js') }],
  [
    'federation',
    {
      synopsis: '<server_name> [--json]',
      summary: 'Resolve a Matrix server name step by step and fetch its keys',
      load: () => import('./federation.js'),
    },
  ],
]);
