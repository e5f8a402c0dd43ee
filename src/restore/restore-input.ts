import type { KvdrConfig } from '../config/schema.js';
import { storedInflateCap } from '../formats/inflate.js';
import { baseRevision } from '../repository/manifest.js';
import { UsageError } from '../util/errors.js';
import { fetchVerified, selectBackup, type BackupSelector } from './fetch-backup.js';
import { chooseFreshestDump } from './freshest-dump.js';
import { materialise, newestChainEnd, selectChain, type ChainSelector } from './point-in-time.js';
import { describePoint } from './point.js';
import type { ArtifactKeys, ScopeFlags } from './key-scope.js';
import type { ArtifactFormat, LocalArtifact } from './artifact.js';
import { exportScope, sniffArtifact } from './local-artifact.js';

/** What a restore replays: the first step of the pipeline turns it into a verified local artifact. */
export type RestoreInput =
  /** A stored backup, by id or the newest matching a selector (restore-from-s3, drills). */
  | { from: 'repository'; config: KvdrConfig; selector: BackupSelector }
  /** A local file of any kind, told by its bytes (`kvdr restore --file`); `expect` narrows it. */
  | { from: 'file'; path: string; expect?: 'px-dump' }
  /** Local PX dumps: the freshest of the files and directories named (`--kvdb_dump_file`). */
  | { from: 'dumps'; paths: readonly string[] }
  /** A continuous job's state at a point: its base with the change segments up to that point replayed (`--at`). */
  | { from: 'point-in-time'; config: KvdrConfig; selector: ChainSelector };

/** What the audit trail says about the artifact of an attempt. */
export interface InputFacts {
  backup?: string;
  job?: string;
  kind?: string;
  repository?: string;
  /** When the backup was taken (its manifest's finishedAt). */
  takenAt?: string;
  /** Point-in-time restores: the point asked for, and the revision (or index) the replay reached. */
  at?: string;
  revision?: number;
  segments?: number;
  file?: string;
  format?: ArtifactFormat;
}

/** A verified artifact on local disk, ready for the plan pass; `close` removes any temp copy. */
export interface OpenedInput {
  artifact: LocalArtifact;
  keys: ArtifactKeys;
  /** The cluster the artifact was taken from, when its manifest knows it. */
  clusterId?: string;
  facts: InputFacts;
  /** Which of several candidates was chosen, and why; printed and recorded. */
  reason?: string;
  close(): Promise<void>;
}

/**
 * Select → fetch → verify: a stored backup is chosen, downloaded to a private temp file and checked
 * against its manifest's sha256 (invariant 4); a local file is recognised by its first bytes; of
 * several PX dumps, the freshest by content is taken. Nothing is written to any target here.
 */
export interface InputOptions {
  /** The decompression cap for local files (a stored backup's comes from its manifest). */
  localCap?: number | undefined;
  /** The scope flags, checked against a backup's manifest before it is fetched. */
  scope: ScopeFlags;
}

export async function openInput(input: RestoreInput, options: InputOptions, learned: (facts: InputFacts) => void): Promise<OpenedInput> {
  const { localCap } = options;
  switch (input.from) {
    case 'repository': {
      // --latest: a continuous job's chain may hold a newer point than any stored backup; then that wins.
      const chainEnd = input.selector.latest && (input.selector.kind === undefined || input.selector.kind.endsWith('-continuous')) ? await newestChainEnd(input.config, input.selector) : undefined;
      const selected = await selectBackup(input.config, input.selector).catch((err: unknown) => {
        if (chainEnd) return undefined;
        throw err;
      });
      if (chainEnd && (!selected || chainEnd.durableAt > selected.manifest.finishedAt)) {
        if (selected) await selected.store.close();
        const opened = await openInput({ from: 'point-in-time', config: input.config, selector: { job: chainEnd.job, ...(input.selector.before ? { at: { time: input.selector.before }, atMost: true } : {}) } }, options, learned);
        const other = selected ? `, newer than backup ${selected.manifest.id} of job ${selected.manifest.job} (${selected.manifest.kind}, ${selected.manifest.finishedAt})` : '';
        return { ...opened, reason: `latest: job ${chainEnd.job} holds changes up to ${chainEnd.durableAt}${other}; ${opened.reason ?? ''}` };
      }
      if (!selected) throw new UsageError('no backup matches; see kvdr backups list');
      const { manifest } = selected;
      const facts: InputFacts = { backup: manifest.id, job: manifest.job, kind: manifest.kind, repository: manifest.repository.name, takenAt: manifest.finishedAt };
      learned(facts);
      try {
        checkCluster(manifest.id, manifest.source.clusterId, options.scope);
        const fetched = await fetchVerified(selected);
        // The manifest says how large the artifact is: inflating past that is damage, whatever the local cap.
        const layer = fetched.artifact.format === 'consul-snapshot' ? 'archive' : 'kvdr';
        const artifact = { ...fetched.artifact, maxInflatedBytes: storedInflateCap(manifest.bytes.raw, layer, localCap) };
        const cleanup = fetched.cleanup;
        const pxDump = artifact.format === 'px-dump';
        return {
          artifact,
          keys: { relative: pxDump, takenFrom: pxDump ? '' : manifest.scope.prefix },
          ...(manifest.source.clusterId ? { clusterId: manifest.source.clusterId } : {}),
          facts: { ...facts, format: artifact.format },
          ...(selected.reason ? { reason: selected.reason } : {}),
          close: cleanup,
        };
      } finally {
        await selected.store.close();
      }
    }
    case 'file': {
      learned({ file: input.path });
      const artifact = await sniffArtifact(input.path, localCap, input.expect);
      if (input.expect === 'px-dump' && artifact.format !== 'px-dump') throw new UsageError(`${artifact.label} is a ${artifact.format}, not a Portworx KVDB dump`);
      return local(artifact, { file: input.path, format: artifact.format });
    }
    case 'point-in-time': {
      const selected = await selectChain(input.config, input.selector);
      const { base } = selected;
      const at = input.selector.at ? describePoint(input.selector.at) : 'end of chain';
      learned({ backup: base.id, job: base.job, kind: base.kind, repository: selected.repository.name, at });
      try {
        checkCluster(base.id, base.source.clusterId, options.scope);
        // The path read: a fresh one when a merge retired part of the listed one meanwhile.
        const { artifact, end, path, cleanup } = await materialise(selected);
        const read = path.segments.filter((s) => s.first <= end.revision).length;
        const unit = base.kind === 'consul-continuous' ? 'index' : 'revision';
        const facts: InputFacts = { backup: base.id, job: base.job, kind: base.kind, repository: selected.repository.name, takenAt: end.durableAt ?? base.finishedAt, format: artifact.format, at, revision: end.revision, segments: read };
        return {
          artifact,
          keys: { relative: false, takenFrom: base.scope.prefix },
          ...(base.source.clusterId ? { clusterId: base.source.clusterId } : {}),
          facts,
          reason: `point in time ${at}: base ${base.id} (${unit} ${baseRevision(base)}) + ${read} change segment(s), replayed to ${unit} ${end.revision}${end.lastChange ? ` (last change at ${new Date(end.lastChange.at).toISOString()})` : ''}`,
          close: cleanup,
        };
      } finally {
        await selected.store.close();
      }
    }
    case 'dumps': {
      learned({ file: input.paths.join(', ') });
      const choice = await chooseFreshestDump(input.paths, localCap);
      learned({ file: choice.path });
      const artifact = await sniffArtifact(choice.path, localCap, 'px-dump');
      if (artifact.format !== 'px-dump') throw new UsageError(`--kvdb_dump_file: ${artifact.label} is a ${artifact.format}, not a PX dump; use --file`);
      return { ...(await local(artifact, { file: choice.path, format: artifact.format })), ...(choice.reason ? { reason: choice.reason } : {}) };
    }
  }
}

/** A backup of one cluster restored under another's id would land in the wrong place: said before it is downloaded. */
function checkCluster(backup: string, backupCluster: string | undefined, flags: ScopeFlags): void {
  if (!flags.clusterId || !backupCluster || flags.clusterId === backupCluster || flags.toPrefix !== undefined) return;
  throw new UsageError(`backup ${backup} is of cluster ${backupCluster}, not ${flags.clusterId}; pass --to-prefix pwx/${flags.clusterId}/ to restore it there`);
}

async function local(artifact: LocalArtifact, facts: InputFacts): Promise<OpenedInput> {
  const pxDump = artifact.format === 'px-dump';
  // An export's keys are whole keys, taken from the prefix its header names; other files' keys are whole keys from anywhere.
  const takenFrom = artifact.format === 'etcd-export' ? await exportScope(artifact) : '';
  return { artifact, keys: { relative: pxDump, takenFrom }, facts, close: () => Promise.resolve() };
}
