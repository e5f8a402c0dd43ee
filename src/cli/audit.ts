import { Command, Option } from 'commander';
import { IntegrityError } from '../util/errors.js';
import { contextFor, type CommandContext } from './context.js';
import { parseTime } from './options.js';

interface AuditFlags {
  since?: Date;
  until?: Date;
  format: 'json' | 'csv' | 'md' | 'html';
  out?: string;
  verifyLog?: boolean;
}

export function auditCommand(): Command {
  return new Command('audit')
    .description('compliance report over the backup history; exit 5 when a control fails')
    .option('--since <time>', 'start of the period (ISO-8601 or an age like 30d)', parseTime)
    .option('--until <time>', 'end of the period (ISO-8601 or an age)', parseTime)
    .addOption(new Option('--format <format>', 'report format').choices(['json', 'csv', 'md', 'html']).default('md'))
    .option('--out <file>', 'write the report to a file instead of stdout')
    .option('--verify-log', "check the audit trail's hash chain and name the first broken link")
    .action(async (flags: AuditFlags, command: Command) => {
      const ctx = contextFor(command);
      if (flags.verifyLog) return verifyLog(ctx);
      const { NotImplementedError } = await import('../util/errors.js');
      throw new NotImplementedError('audit report');
    });
}

async function verifyLog(ctx: CommandContext): Promise<void> {
  const [{ verifyTrail }, { auditRepository }, { openStore }] = await Promise.all([
    import('../audit/audit-log.js'),
    import('../audit/audit-repository.js'),
    import('../repository/open-store.js'),
  ]);
  const store = openStore(auditRepository(await ctx.config()));
  try {
    const check = await verifyTrail(store);
    if (ctx.json) ctx.print(JSON.stringify({ location: store.location, ...check }, null, 2));
    if (check.broken) {
      throw new IntegrityError(`audit trail at ${store.location}: first broken link at ${check.broken.key}: ${check.broken.reason} (${check.events} events before it check out)`);
    }
    if (!ctx.json) ctx.print(`audit trail at ${store.location}: ${check.events} events, hash chain intact; head sha256 ${check.head}`);
  } finally {
    await store.close();
  }
}
