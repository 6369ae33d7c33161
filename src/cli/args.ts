/**
 * Argument parsing for the `matrix-egress` commands: `node:util` `parseArgs` in strict mode, with
 * messages of our own. Node's messages quote the raw argument and run over several clauses; ours
 * name only the flag (never an `=value`, which could be a secret) and fit on one line.
 * @module
 */
import { parseArgs } from 'node:util';
import { redactUrl } from '../redact.js';

/** Bad command-line arguments. The dispatcher prints the message on one line and exits with code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  /** The command whose arguments were wrong, for the "see --help" hint; `undefined` at the top level. */
  readonly command: string | undefined;

  constructor(message: string, command?: string) {
    super(message);
    this.command = command;
  }
}

/** One flag a command accepts. `--help`/`-h` is added to every command and need not be declared. */
export interface FlagSpec {
  readonly type: 'boolean' | 'string';
  /** A one-letter alias, without the dash. */
  readonly short?: string;
}

/** What a command accepts: its flags and its positional arguments, by name. */
export interface CommandArgsSpec<F extends Readonly<Record<string, FlagSpec>>, R extends string, O extends string> {
  /** The command name, for messages. */
  readonly command: string;
  readonly flags: F;
  /** Names of the required positional arguments, in order. */
  readonly required: readonly R[];
  /** Names of the optional positional arguments that may follow the required ones. */
  readonly optional?: readonly O[];
}

/** A flag's parsed value: `true` or the string given, absent when the flag was not given. */
export type FlagValues<F extends Readonly<Record<string, FlagSpec>>> = {
  readonly [K in keyof F]?: F[K]['type'] extends 'boolean' ? boolean : string;
};

/** The parsed command line. Positionals are keyed by name. */
export type ParsedCommandArgs<F extends Readonly<Record<string, FlagSpec>>, R extends string, O extends string> =
  | { readonly help: true }
  | {
      readonly help: false;
      readonly flags: FlagValues<F>;
      readonly positionals: Readonly<Record<R, string>> & Readonly<Partial<Record<O, string>>>;
    };

/**
 * Parse a command's arguments (everything after the command name). Unknown flags, a value given to a
 * boolean flag, a missing positional and an extra positional are all {@link UsageError}s.
 * When `--help` is present nothing else is checked, so `explain --help` works without arguments.
 */
export function parseCommandArgs<const F extends Readonly<Record<string, FlagSpec>>, const R extends string, const O extends string = never>(
  argv: readonly string[],
  spec: CommandArgsSpec<F, R, O>,
): ParsedCommandArgs<F, R, O> {
  const options: Record<string, { type: 'boolean' | 'string'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, flag] of Object.entries(spec.flags)) {
    options[name] = flag.short === undefined ? { type: flag.type } : { type: flag.type, short: flag.short };
  }

  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${spec.command}: ${describeParseError(error, argv)}`, spec.command);
  }
  if (parsed.values.help === true) return { help: true };

  const optional: readonly string[] = spec.optional ?? [];
  const names: readonly string[] = [...spec.required, ...optional];
  if (parsed.positionals.length < spec.required.length) {
    const missing = spec.required.slice(parsed.positionals.length).map((name) => `<${name}>`);
    throw new UsageError(`${spec.command}: missing ${missing.join(' and ')}`, spec.command);
  }
  const extra = parsed.positionals[names.length];
  if (extra !== undefined) {
    throw new UsageError(`${spec.command}: unexpected argument ${JSON.stringify(redactUrl(extra))}`, spec.command);
  }

  const positionals: Record<string, string> = {};
  parsed.positionals.forEach((value, i) => {
    const name = names[i];
    if (name !== undefined) positionals[name] = value;
  });
  const flags: Record<string, string | boolean> = {};
  for (const name of Object.keys(spec.flags)) {
    const value = parsed.values[name];
    if (value !== undefined) flags[name] = value;
  }
  return {
    help: false,
    flags: flags as FlagValues<F>,
    positionals: positionals as Readonly<Record<R, string>> & Readonly<Partial<Record<O, string>>>,
  };
}

/** The flag named in a `parseArgs` error, without any `=value` part. */
function flagIn(message: string): string | undefined {
  return /'(-[^'\s=]*)/.exec(message)?.[1];
}

function describeParseError(error: unknown, argv: readonly string[]): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : '';
  const flag = flagIn(message);
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${flag ?? '(unreadable)'}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return flag === undefined ? 'invalid option value' : `option ${flag} ${argv.some((a) => a.startsWith(`${flag}=`)) ? 'takes no value' : 'needs a value'}`;
    default:
      return 'invalid arguments';
  }
}
