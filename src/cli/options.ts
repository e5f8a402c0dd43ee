import { InvalidArgumentError, Option, type Command } from 'commander';
import { JOB_KINDS } from '../config/schema.js';

/** Options shared by every restore command: where to write and the abort/--force rule. */
export function addRestoreTargetOptions(command: Command): Command {
  return command
    .option('--target <endpoint>', 'KVDB to restore into: etcd:http://host:2379 or consul:http://host:8500')
    .option('--cluster-id <id>', 'Portworx cluster id; the scope is pwx/<id>/')
    .option('--prefix <p>', 'restore only keys under this prefix')
    .option('--to-prefix <q>', 're-root the restored keys under q (scratch restores, drills)')
    .option('--force', 'delete the keys already in the scope, then restore (a safety backup is taken first)')
    .option('--no-safety-backup', 'with --force, skip the safety backup of the scope')
    .option('--dry-run', 'print what would be deleted and written, and write nothing');
}

export function kindOption(): Option {
  return new Option('--kind <kind>', 'only backups of this kind').choices(JOB_KINDS);
}

/** Parses an ISO-8601 time or a relative age such as 24h or 7d. */
export function parseTime(value: string): Date {
  const relative = /^(\d+)([smhdw])$/.exec(value);
  if (relative) {
    const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[relative[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return new Date(Date.now() - Number(relative[1]) * unit * 1000);
  }
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) {
    throw new InvalidArgumentError('expected an ISO-8601 time (2026-01-31T12:00:00Z) or an age such as 24h or 7d');
  }
  return time;
}

export function parsePositiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
}
