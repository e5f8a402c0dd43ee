import { isUtf8 } from 'node:buffer';
import { Command, InvalidArgumentError } from 'commander';
import type { ChangeQuery, ChangeRecord } from '../restore/change-history.js';
import { UsageError } from '../util/errors.js';
import { renderTable } from '../util/table.js';
import { contextFor } from './context.js';
import { parseTime } from './options.js';

interface ChangesFlags {
  job?: string;
  since?: Bound;
  until?: Bound;
  prefix?: string;
  key?: string;
  json?: boolean;
}

type Bound = { time: number } | { revision: number };

function parseBound(value: string): Bound {
  const rev = /^(?:rev|index):(\d+)$/.exec(value);
  if (rev) return { revision: Number(rev[1]) };
  try {
    return { time: parseTime(value).getTime() };
  } catch {
    throw new InvalidArgumentError('expected rev:<N>, an ISO-8601 time (2026-01-31T12:00:00Z) or an age such as 2h');
  }
}

export function changesCommand(): Command {
  return new Command('changes')
    .description('what changed in a scope, read from continuous jobs\' change segments: each put and delete with the value before it, and the revision to restore to')
    .option('--job <job>', 'only this continuous job (default: every continuous job in the repositories)')
    .option('--since <when>', 'from this time, age (2h) or rev:<N>', parseBound)
    .option('--until <when>', 'up to this time, age or rev:<N>', parseBound)
    .option('--prefix <p>', 'only keys starting with p')
    .option('--key <k>', 'only this key')
    .option('--json', 'one JSON object per change (keys and values base64)')
    .action(async (flags: ChangesFlags, command: Command) => {
      const [{ changeHistory, continuousJobsIn }, { openStore }] = await Promise.all([import('../restore/change-history.js'), import('../repository/open-store.js')]);
      const ctx = contextFor(command);
      const config = await ctx.config();
      if (flags.prefix !== undefined && flags.key !== undefined) throw new UsageError('give --prefix or --key, not both');
      const query: ChangeQuery = {
        ...(flags.since && 'time' in flags.since ? { since: flags.since.time } : {}),
        ...(flags.since && 'revision' in flags.since ? { sinceRevision: flags.since.revision } : {}),
        ...(flags.until && 'time' in flags.until ? { until: flags.until.time } : {}),
        ...(flags.until && 'revision' in flags.until ? { untilRevision: flags.until.revision } : {}),
        ...(flags.prefix !== undefined ? { prefix: Buffer.from(flags.prefix) } : {}),
        ...(flags.key !== undefined ? { key: Buffer.from(flags.key) } : {}),
      };
      const json = flags.json || ctx.json;
      const rows: ChangeRecord[] = [];
      for (const repository of config.repositories) {
        const store = openStore(repository);
        try {
          const jobs = flags.job !== undefined ? [flags.job] : await continuousJobsIn(store);
          for (const job of jobs) {
            for await (const change of changeHistory(store, repository, job, query)) {
              if (json) ctx.print(JSON.stringify(toJson(change)));
              else rows.push(change);
            }
          }
        } finally {
          await store.close();
        }
      }
      if (json) return;
      if (rows.length === 0) return ctx.print('no changes match');
      ctx.print(
        renderTable(
          ['TIME', 'REVISION', 'JOB', 'OP', 'KEY', 'VALUE', 'BEFORE', 'RESTORE BEFORE IT'],
          rows.map((c) => [new Date(c.at).toISOString(), String(c.revision), c.job, c.op, text(c.key), c.value ? preview(c.value) : '-', c.before ? preview(c.before) : '-', `--at rev:${c.revision - 1}`]),
        ),
      );
    });
}

function toJson(change: ChangeRecord): Record<string, unknown> {
  return {
    time: new Date(change.at).toISOString(),
    revision: change.revision,
    job: change.job,
    base: change.base,
    op: change.op,
    key: change.key.toString('base64'),
    ...(isUtf8(change.key) ? { keyText: change.key.toString('utf8') } : {}),
    ...(change.value ? { value: change.value.toString('base64') } : {}),
    ...(change.before ? { before: change.before.toString('base64') } : {}),
    restoreBefore: `rev:${change.revision - 1}`,
  };
}

function text(bytes: Buffer): string {
  return isUtf8(bytes) && !/\p{Cc}/u.test(bytes.toString('utf8')) ? bytes.toString('utf8') : `hex:${bytes.toString('hex')}`;
}

function preview(bytes: Buffer): string {
  const shown = text(bytes);
  return shown.length > 40 ? `${shown.slice(0, 39)}…` : shown;
}
