import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ContinuousJob } from '../../src/backup/continuous/continuous-job.js';
import type { KvdrConfig } from '../../src/config/schema.js';
import { readCatalog } from '../../src/repository/catalog.js';
import { listSegments } from '../../src/repository/chains.js';
import { FsStore } from '../../src/repository/fs-store.js';
import { prune } from '../../src/repository/prune.js';
import type { LocalArtifact } from '../../src/restore/artifact.js';
import { openArtifact } from '../../src/restore/local-artifact.js';
import { changeHistory, type ChangeRecord } from '../../src/restore/change-history.js';
import { materialise, selectChain } from '../../src/restore/point-in-time.js';
import { connectEtcd } from '../../src/sources/etcd/connect.js';
import { ExitCode } from '../../src/util/exit-codes.js';
import { kvdr } from '../harness/cli.js';
import { quietLogger, testConfig } from '../harness/config.js';
import { chainEvents, etcdPrefixAt, randomEtcdWrites, type WrittenChange } from '../harness/continuous.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { trailEvents } from '../harness/trail.js';
import { waitFor } from '../harness/wait.js';

describe('continuous chains: merging, retention and kvdr changes', () => {
  let etcd: Etcd3;
  let dir: string;
  beforeAll(async () => {
    etcd = connectEtcd({ endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')] }, {});
    dir = await mkdtemp(join(tmpdir(), 'kvdr-chains-'));
  });
  afterAll(async () => {
    etcd.close();
    await rm(dir, { recursive: true, force: true });
  });

  const KEEP_LAST_ONE = { keepLast: 1, daily: 0, weekly: 0, monthly: 0, minDays: 0 };
  /** A scope of its own with a seed key, a filesystem repository of its own, and a config file for the CLI. */
  async function setup(name: string, jobs: Record<string, unknown>[]): Promise<{ prefix: string; repo: string; config: KvdrConfig; configPath: string; store: FsStore }> {
    const prefix = `${uniqueName(name)}/`;
    await etcd.put(`${prefix}seed`).value('seed');
    const repo = join(dir, `${name}-repo`);
    const raw = { sources: [{ name: 'e', type: 'etcd', endpoints: [requireEnv('KVDR_ETCD_ENDPOINT')], prefix }], repositories: [{ name: 'local', type: 'fs', path: repo }], jobs };
    const configPath = join(dir, `${name}.yaml`);
    await writeFile(configPath, JSON.stringify(raw));
    return { prefix, repo, config: testConfig(raw), configPath, store: new FsStore({ path: repo }) };
  }

  it('old segments are merged without breaking the chain; retention removes a whole chain; changes shows a delete with the value before it', async () => {
    const { prefix, repo, config, configPath, store } = await setup('chains', [
      { name: 'export', source: 'e', kind: 'etcd-export', schedule: '0 0 1 1 *', repository: 'local' },
      { name: 'chain', source: 'e', kind: 'etcd-continuous', schedule: '0 0 1 1 *', repository: 'local', retention: KEEP_LAST_ONE, continuous: { segmentSeconds: 0.3, mergeAfterMinutes: 0.01, mergeTargetBytes: 1024 ** 2, spoolDir: join(dir, 'chains-spool') } },
    ]);
    const recorded: { type: string; subject: Record<string, unknown> }[] = [];
    const runner = new ContinuousJob({ config, job: config.jobs[1] as KvdrConfig['jobs'][number], logger: quietLogger, record: async (type, subject) => void recorded.push({ type, subject }) });
    runner.start();
    let written: WrittenChange[] = [];
    let firstBase = '';
    try {
      await waitFor(async () => (await chainEvents(store, 'chain').catch(() => undefined)) !== undefined, 'a base');
      firstBase = (await chainEvents(store, 'chain')).base;
      // A key that is written, then deleted: the forensic question later.
      const victim = `${prefix}volumes/v1`;
      await etcd.put(victim).value('{"id":"v1","size":42}');
      written = await randomEtcdWrites(etcd, prefix, 3_000, 40);
      const deleted = Number((await etcd.delete().key(victim).exec()).header.revision);
      const last = Math.max(deleted, (written.at(-1) as WrittenChange).revision);
      await waitFor(async () => (await chainEvents(store, 'chain')).last >= last, 'the chain to reach the writes');
      const small = (await listSegments(store, 'chain')).get(firstBase)?.length ?? 0;
      expect(small).toBeGreaterThan(3);

      // A restore that listed the chain's segments before a merge retires some of them: its open tail is
      // followed by more segments, and then merged with them.
      const stale = await selectChain(config, { job: 'chain' });
      // So does a `kvdr changes` that has begun reading.
      const repository = config.repositories[0] as KvdrConfig['repositories'][number];
      const history = changeHistory(store, repository, 'chain', { prefix: Buffer.from(prefix) })[Symbol.asyncIterator]();
      const firstChange = await history.next();
      const more = await randomEtcdWrites(etcd, prefix, 1_000, 40);
      await waitFor(async () => (await chainEvents(store, 'chain')).last >= (more.at(-1) as WrittenChange).revision, 'the chain to reach more writes');

      // Merging: fewer objects, the same events, a recorded merge.
      const before = await chainEvents(store, 'chain');
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await runner.mergeOld();
      const segments = (await listSegments(store, 'chain')).get(firstBase) ?? [];
      expect(segments.some((s) => s.merged)).toBe(true);
      expect(segments.length).toBeLessThan(small);
      expect((await chainEvents(store, 'chain')).events).toEqual(before.events);
      expect(recorded.some((e) => e.type === 'segments-merged' && e.subject['base'] === firstBase)).toBe(true);

      // That restore reads the merged segments instead (one fresh listing), and replays the same state.
      expect(stale.path.segments.filter((old) => !segments.some((now) => now.key === old.key)).length).toBeGreaterThan(0);
      const fresh = await selectChain(config, { job: 'chain' });
      const [fromStale, fromFresh] = [await materialise(stale), await materialise(fresh)];
      try {
        expect(fromStale.end.revision).toBe(before.last);
        expect(fromStale.path.segments.some((segment) => segment.merged)).toBe(true);
        expect(await recordsOf(fromStale.artifact)).toEqual(await recordsOf(fromFresh.artifact));
      } finally {
        await Promise.allSettled([fromStale.cleanup(), fromFresh.cleanup(), stale.store.close(), fresh.store.close()]);
      }

      const listed = (records: ChangeRecord[]): string[] => records.map((r) => `${r.revision} ${r.op} ${r.key.toString()} ${r.before?.toString('hex') ?? '-'}`);
      const afterMerge: ChangeRecord[] = [firstChange.value as ChangeRecord];
      for (let next = await history.next(); !next.done; next = await history.next()) afterMerge.push(next.value);
      const freshHistory: ChangeRecord[] = [];
      for await (const record of changeHistory(store, repository, 'chain', { prefix: Buffer.from(prefix) })) freshHistory.push(record);
      expect(listed(afterMerge)).toEqual(listed(freshHistory));

      // A point inside the merged range restores exactly.
      const point = (written[Math.floor(written.length / 2)] as WrittenChange).revision;
      const scratch = `${uniqueName('merged')}/`;
      const restored = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `rev:${point}`, '--job', 'chain', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(await etcdPrefixAt(etcd, Buffer.from(scratch))).toEqual(await etcdPrefixAt(etcd, Buffer.from(prefix), point));

      // kvdr changes: when was the key deleted, what did it hold, and where to restore to.
      const changes = await kvdr(['--config', configPath, 'changes', '--key', victim, '--json']);
      expect(changes.code, changes.stderr).toBe(0);
      const lines = changes.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.map((l) => l['op'])).toEqual(['put', 'del']);
      expect(lines[1]).toMatchObject({ revision: deleted, keyText: victim, before: Buffer.from('{"id":"v1","size":42}').toString('base64'), restoreBefore: `rev:${deleted - 1}` });

      // --latest across kinds: an export taken now is older than the chain's newest change after the next write.
      expect((await kvdr(['--config', configPath, 'backup', 'export'])).code).toBe(0);
      const newest = Number((await etcd.put(`${prefix}after-export`).value('x').exec()).header.revision);
      await waitFor(async () => (await chainEvents(store, 'chain')).last >= newest, 'the chain to hold the newest write');
      const latestScratch = `${uniqueName('latest')}/`;
      const latest = await kvdr(['--config', configPath, 'restore-from-s3', '--latest', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', latestScratch]);
      expect(latest.code, latest.stderr).toBe(0);
      expect(latest.stderr).toMatch(/latest: job chain holds changes up to .*, newer than backup .* of job export/);
      expect(await etcdPrefixAt(etcd, Buffer.from(latestScratch))).toEqual(await etcdPrefixAt(etcd, Buffer.from(prefix), newest));

      // A new chain, then retention (keepLast 1): the first base goes with every one of its segments.
      await runner.rebase();
    } finally {
      await runner.stop();
    }
    const result = await prune({ config, logger: quietLogger, dryRun: false });
    expect(result.deleted.filter((d) => d.job === 'chain').map((d) => d.id)).toEqual([firstBase]);
    expect((await listSegments(store, 'chain')).has(firstBase)).toBe(false);
    const pruned = (await trailEvents(repo)).find((e) => e.type === 'prune' && e.subject['backup'] === firstBase);
    expect(pruned?.subject['segments']).toBeGreaterThan(0);
    const gone = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `rev:${(written[0] as WrittenChange).revision}`, '--job', 'chain', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', `${uniqueName('gone')}/`]);
    expect(gone.code).toBe(ExitCode.Usage);
    expect(gone.stderr).toMatch(/no continuous backup of job chain has a base at or before/);
  }, 120_000);

  it('retention never deletes the chain being written, though a base taken on its own is newer', async () => {
    const { prefix, config, configPath, store } = await setup('live', [
      { name: 'live', source: 'e', kind: 'etcd-continuous', schedule: '0 0 1 1 *', repository: 'local', retention: KEEP_LAST_ONE, continuous: { segmentSeconds: 0.3, mergeAfterMinutes: 0, spoolDir: join(dir, 'live-spool') } },
    ]);
    const runner = new ContinuousJob({ config, job: config.jobs[0] as KvdrConfig['jobs'][number], logger: quietLogger, record: async () => undefined });
    const followedSegments = async (base: string): Promise<number[]> => ((await listSegments(store, 'live')).get(base) ?? []).map((s) => s.first);
    runner.start();
    try {
      await waitFor(async () => (await chainEvents(store, 'live').catch(() => undefined)) !== undefined, 'a base');
      const early = await randomEtcdWrites(etcd, prefix, 600, 20);
      const point = (early.at(-1) as WrittenChange).revision;
      await waitFor(async () => (await chainEvents(store, 'live')).last >= point, 'the chain to hold the first writes');
      const followed = (await chainEvents(store, 'live')).base;

      // A base taken on its own, as `kvdr backup` of the job does while the service follows its chain.
      const manual = await kvdr(['--config', configPath, 'backup', 'live']);
      expect(manual.code, manual.stderr).toBe(0);
      const manualBase = (await readCatalog(store, { job: 'live' })).at(-1);
      expect(manualBase?.id).not.toBe(followed);
      const manualRevision = manualBase?.revision ?? 0;
      const later = await randomEtcdWrites(etcd, prefix, 600, 20);
      const last = (later.at(-1) as WrittenChange).revision;
      expect(last).toBeGreaterThan(manualRevision);
      await waitFor(async () => (await followedSegments(followed)).some((first) => first > manualRevision), 'the followed chain to go on past the manual base');

      // keepLast 1 keeps the newest base (the one taken on its own) and, past its rule, the chain being written.
      const result = await prune({ config, logger: quietLogger, dryRun: false });
      expect(result.deleted.filter((d) => d.job === 'live')).toEqual([]);
      const kept = await followedSegments(followed);
      expect(kept.length).toBeGreaterThan(0);
      // It is still written, and still restores.
      const after = Number((await etcd.put(`${prefix}after-prune`).value('x').exec()).header.revision);
      await waitFor(async () => (await followedSegments(followed)).some((first) => first > Math.max(...kept)), 'a segment after the prune');
      expect(after).toBeGreaterThan(last);
      const scratch = `${uniqueName('live-restore')}/`;
      const restored = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `rev:${point}`, '--job', 'live', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', scratch]);
      expect(restored.code, restored.stderr).toBe(0);
      expect(await etcdPrefixAt(etcd, Buffer.from(scratch))).toEqual(await etcdPrefixAt(etcd, Buffer.from(prefix), point));
      // A point past the manual base: the followed chain holds it (the manual base's own chain is empty).
      const pastManual = `${uniqueName('live-past')}/`;
      const past = await kvdr(['--config', configPath, 'restore-from-s3', '--at', `rev:${after}`, '--job', 'live', '--target', `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}`, '--to-prefix', pastManual]);
      expect(past.code, past.stderr).toBe(0);
      expect(await etcdPrefixAt(etcd, Buffer.from(pastManual))).toEqual(await etcdPrefixAt(etcd, Buffer.from(prefix), after));
      // kvdr changes since the manual base finds them in the followed chain too (not skipped as ended there).
      const since = await kvdr(['--config', configPath, 'changes', '--job', 'live', '--since', `rev:${manualRevision + 1}`, '--json']);
      expect(since.code, since.stderr).toBe(0);
      const revisions = since.stdout.split('\n').filter((l) => l !== '').map((l) => (JSON.parse(l) as { revision: number }).revision);
      expect(revisions).toContain(after);
      expect(Math.min(...revisions)).toBeGreaterThan(manualRevision);
    } finally {
      await runner.stop();
    }
  }, 120_000);
});

/** Every record of a local artifact, as hex key and value, in order. */
async function recordsOf(artifact: LocalArtifact): Promise<string[]> {
  const reader = openArtifact(artifact);
  const out: string[] = [];
  try {
    for await (const record of reader.records()) out.push(`${record.key.toString('hex')}=${record.value.toString('hex')}`);
  } finally {
    await reader.close();
  }
  return out;
}
