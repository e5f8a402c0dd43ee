import { CommanderError, type Command } from 'commander';
import { KvdrError, oneLine } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';

/**
 * Parses argv, runs the chosen command, and turns every outcome into a documented exit code:
 * user-facing errors print one line (the stack only at --log-level debug/trace); anything else is a bug.
 */
export async function runCli(program: Command, argv: readonly string[] = process.argv): Promise<number> {
  for (const command of [program, ...allCommands(program)]) {
    command.exitOverride();
    command.configureOutput({
      outputError: (text, write) => write(`${program.name()}: ${text.replace(/^error: /, '')}`),
    });
  }
  try {
    await program.parseAsync(argv);
    return ExitCode.Ok;
  } catch (err) {
    return report(program, err, argv);
  }
}

function report(program: Command, err: unknown, argv: readonly string[]): number {
  if (err instanceof CommanderError) {
    // --help and --version end through here too, with exit code 0.
    if (err.exitCode === 0) return ExitCode.Ok;
    return ExitCode.Usage;
  }
  const debug = /--log-level[= ](debug|trace)\b/.test(argv.join(' ')) || ['debug', 'trace'].includes(process.env['KVDR_LOG_LEVEL'] ?? '');
  const name = program.name();
  if (err instanceof KvdrError) {
    process.stderr.write(`${name}: ${oneLine(err)}\n`);
    if (debug && err.stack) process.stderr.write(`${err.stack}\n`);
    return err.exitCode;
  }
  process.stderr.write(`${name}: unexpected failure: ${oneLine(err)} (run with --log-level debug for details)\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return ExitCode.Failure;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((sub) => [sub, ...allCommands(sub)]);
}
