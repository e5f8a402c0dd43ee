import { Command, Option } from 'commander';
import { LOG_LEVELS } from '../util/logger.js';
import { VERSION } from '../util/version.js';
import { auditCommand } from './audit.js';
import { backupCommand } from './backup.js';
import { backupsCommand } from './backups-list.js';
import { changesCommand } from './changes.js';
import { inspectCommand } from './inspect.js';
import { pruneCommand } from './prune.js';
import { restoreFromS3Command } from './restore-from-s3.js';
import { restoreCommand } from './restore.js';
import { serveCommand } from './serve.js';
import { verifyCommand } from './verify.js';

/**
 * The kvdr command tree. Command files load their implementations on first use, so `--help`, usage
 * errors and config errors answer without loading the AWS SDK or gRPC.
 */
export function kvdrProgram(): Command {
  const program = new Command('kvdr')
    .description('Backup and disaster recovery for the etcd or Consul KVDB behind Portworx')
    .version(VERSION, '-V, --version')
    .option('--config <file>', 'configuration file (env KVDR_CONFIG)', undefined)
    .addOption(new Option('--log-level <level>', 'log verbosity (env KVDR_LOG_LEVEL)').choices(LOG_LEVELS))
    .option('--json', 'machine-readable output where a command has any')
    .showSuggestionAfterError()
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 unexpected failure, 2 usage or configuration error, 3 restore aborted (keys exist in scope),\n' +
        '4 integrity check failed, 5 audit control failed, 130 restore interrupted (rolled back first).',
    );
  for (const command of [
    serveCommand(),
    backupCommand(),
    backupsCommand(),
    restoreFromS3Command(),
    restoreCommand(),
    verifyCommand(),
    pruneCommand(),
    auditCommand(),
    inspectCommand(),
    changesCommand(),
  ]) {
    program.addCommand(command);
  }
  return program;
}
