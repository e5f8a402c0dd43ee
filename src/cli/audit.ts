import { Command, Option } from 'commander';
import { ControlFailedError, IntegrityError, UsageError } from '../util/errors.js';
import { contextFor, type CommandContext } from './context.js';
import { parseTime } from './options.js';

interface AuditFlags {
  since?: Date;
  until?: Date;
  format: 'json' | 'csv' | 'md' | 'html';
  report?: 'controls' | 'backup-jobs' | 'restore-jobs';
  out?: string;
  verifyLog?: boolean;
}

const DEFAULT_PERIOD_DAYS = 30;

export function auditCommand(): Command {
  return new Command('audit')
    .description('compliance report over the backup history; exit 5 when a control fails')
    .option('--since <time>', 'start of the period (ISO-8601 or an age like 30d)', parseTime)
    .option('--until <time>', 'end of the period (ISO-8601 or an age)', parseTime)
    .addOption(new Option('--format <format>', 'report format').choices(['json', 'csv', 'md', 'html']).default('md'))
    .addOption(new Option('--report <table>', 'with csv (default controls) or json: one table, shaped like AWS Backup Audit Manager reports').choices(['controls', 'backup-jobs', 'restore-jobs']))
    .option('--out <file>', 'write the report to a file instead of stdout')
    .option('--verify-log', "check the audit trail's hash chain and name the first broken link")
    .action(async (flags: AuditFlags, command: Command) => {
      const ctx = contextFor(command);
      if (flags.verifyLog) return verifyLog(ctx);
      return report(ctx, flags);
    });
}

async function report(ctx: CommandContext, flags: AuditFlags): Promise<void> {
  const [{ buildAuditReport }, text, { renderHtml }, { writeFile }] = await Promise.all([
    import('../audit/build-report.js'),
    import('../audit/report/text-reports.js'),
    import('../audit/report/html-report.js'),
    import('node:fs/promises'),
  ]);
  if (flags.report && (flags.format === 'md' || flags.format === 'html')) throw new UsageError('--report picks one table: use it with --format csv or json');
  const until = flags.until ?? new Date();
  const since = flags.since ?? new Date(until.getTime() - DEFAULT_PERIOD_DAYS * 86_400_000);
  if (since >= until) throw new UsageError(`--since (${since.toISOString()}) must be before --until (${until.toISOString()})`);
  const audit = await buildAuditReport(await ctx.config(), since, until);
  const format = ctx.json && !flags.out ? 'json' : flags.format;
  const rendered =
    format === 'json' ? text.renderJson(audit, flags.report) : format === 'csv' ? text.renderCsv(audit, flags.report ?? 'controls') : format === 'html' ? renderHtml(audit) : text.renderMarkdown(audit);
  if (flags.out) await writeFile(flags.out, rendered);
  else process.stdout.write(rendered);
  const failed = audit.controls.filter((c) => c.status === 'FAIL');
  if (failed.length > 0) {
    const names = [...new Set(failed.map((c) => c.control))].join(', ');
    throw new ControlFailedError(`${failed.length} of ${audit.controls.length} controls failed (${names})${flags.out ? `; see ${flags.out}` : ''}`);
  }
  if (flags.out) process.stderr.write(`all ${audit.controls.length} controls pass; report written to ${flags.out}\n`);
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
