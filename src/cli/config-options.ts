/**
 * The flags every command takes to see exactly what the homeserver sees: `--config <file>` (the JSON
 * configuration file of `createEgress({ configFile })`) and `--strict-no-proxy`.
 * @module
 */
import type { EgressOptions } from '../config/compile.js';
import type { FlagValues } from './args.js';
import type { CliIo } from './output.js';

/** The flag specs, to spread into a command's `flags`. */
export const CONFIG_FLAGS = {
  config: { type: 'string' },
  'strict-no-proxy': { type: 'boolean' },
} as const;

/** The help lines of the flags, aligned like the other options of the commands. */
export const CONFIG_USAGE = `  --config <file>     read a JSON configuration file, as createEgress({ configFile })
                      does; its keys win over the variables (docs/configuration.md)
  --strict-no-proxy   refuse no_proxy entries that are not understood (exit 2)
                      instead of skipping them with a warning`;

/**
 * The options a command compiles: the command's environment, the file and the strict flag.
 * Skipped no_proxy entries are not logged: the commands show them in their output.
 */
export function configOptions(flags: FlagValues<typeof CONFIG_FLAGS>, io: CliIo): EgressOptions {
  return {
    env: io.env,
    ...(flags.config !== undefined && { configFile: flags.config }),
    ...(flags['strict-no-proxy'] === true && { strictNoProxy: true }),
    logger: { warn: () => undefined },
  };
}
