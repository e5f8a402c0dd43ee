/**
 * The subcommand named on a kvdr command line, read before commander is loaded: the first word that
 * is neither a global option nor the value of one (`kvdr --config k.yaml --log-level info backup x`
 * → `backup`). Undefined when there is none (`kvdr --help`).
 */
export function commandWord(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (GLOBAL_OPTIONS_WITH_VALUES.includes(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/** program.ts's global options that take a value as the next word (`--config=k.yaml` is one word). */
const GLOBAL_OPTIONS_WITH_VALUES = ['--config', '--log-level'];

/** The commands that stream backups for as long as they run (see util/young-generation.ts). */
export const STREAMING_COMMANDS: readonly string[] = ['backup', 'serve'];
