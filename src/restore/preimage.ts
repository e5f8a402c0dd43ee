import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { takeBackup } from '../backup/run-backup.js';
import type { SourceConfig } from '../config/schema.js';
import { consulExportWriter } from '../formats/consul-export.js';
import { EXPORT_FORMAT, EXPORT_VERSION, exportWriter, type ExportHeader } from '../formats/kvdr-export.js';
import type { KvRecord } from '../formats/record.js';
import { SetDigest } from '../formats/set-digest.js';
import type { KvTarget } from '../sources/kv-target.js';
import type { Logger } from '../util/logger.js';
import { KeyScope } from './key-scope.js';
import type { LocalArtifact } from './artifact.js';
import { openArtifact } from './local-artifact.js';
import { replay } from './replay.js';
import type { RestoreRepository } from './restore-context.js';

/**
 * The scope as it was before a restore's first write: what a rollback puts back and checks against.
 * `spool` holds its keys on local disk (absent when the scope was empty); the safety backup, when one
 * was taken, is the same bytes in the repository.
 */
export interface Preimage {
  scope: Buffer;
  count: number;
  /** SetDigest of the scope's pairs. */
  digest: string;
  spool?: LocalArtifact;
  safetyBackupId?: string;
  /** Keeps the spool on disk past `discard` (a rollback that could not run points the user at it). */
  keep(): void;
  discard(): Promise<void>;
}

/** The preimage of a scope that holds nothing: a rollback deletes what was written, and that is all. */
export function emptyPreimage(scope: Buffer): Preimage {
  return { scope, count: 0, digest: new SetDigest().digest(), keep: () => undefined, discard: () => Promise.resolve() };
}

export interface CaptureOptions {
  target: KvTarget;
  targetSource: SourceConfig;
  scope: Buffer;
  /** Also store the spool in the repository as a safety backup (`--no-safety-backup` turns it off). */
  safetyBackup: boolean;
  repository?: RestoreRepository | undefined;
  logger: Logger;
  /** For the safety backup's manifest: what is about to replace these keys. */
  restoring: Record<string, unknown>;
}

/**
 * Reads the scope once into a local spool — a kvdr export for etcd, `consul kv export` JSON for Consul
 * (which keeps flags) — digesting it on the way, then stores that spool as the safety backup. The
 * rollback reads the local spool, so it works even when the repository has become unreachable.
 */
export async function capturePreimage(options: CaptureOptions): Promise<Preimage> {
  const { target, scope } = options;
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-preimage-'));
  let kept = false;
  const discard = async (): Promise<void> => {
    if (!kept) await rm(dir, { recursive: true, force: true });
  };
  try {
    const etcd = options.targetSource.type === 'etcd';
    const path = join(dir, etcd ? 'scope.ndjson' : 'scope.json');
    const digest = new SetDigest();
    async function* pairs(): AsyncIterable<KvRecord> {
      for await (const record of target.read(scope)) {
        digest.add(record.key, record.value);
        yield record;
      }
    }
    const header: ExportHeader = {
      format: EXPORT_FORMAT,
      version: EXPORT_VERSION,
      source: { type: 'etcd' },
      prefix: scope.toString('base64'),
      revision: 0,
      createdAt: new Date().toISOString(),
    };
    const writer = etcd ? exportWriter(() => header) : consulExportWriter();
    await pipeline(Readable.from(pairs(), { highWaterMark: 16 }), writer, createWriteStream(path, { mode: 0o600 }));
    const spool: LocalArtifact = { path, format: etcd ? 'etcd-export' : 'consul-export', compression: 'none', label: `the pre-restore copy of "${scope.toString('utf8')}"` };
    let safetyBackupId: string | undefined;
    if (options.safetyBackup && options.repository) {
      const manifest = await takeBackup({
        store: options.repository.store,
        repository: options.repository.config,
        job: 'safety-backup',
        kind: 'safety-backup',
        produce: etcd ? 'etcd-export' : 'consul-export',
        artifact: spoolSource(path, etcd, options.targetSource, digest.count),
        source: options.targetSource,
        scope: scope.toString('utf8'),
        compression: 'gzip',
        logger: options.logger,
        details: { reason: 'restore --force', restoring: options.restoring, setDigest: digest.digest() },
      });
      safetyBackupId = manifest.id;
      options.logger.info({ backup: manifest.id, keys: digest.count }, `safety backup of ${digest.count} keys taken: ${manifest.id}`);
    }
    return {
      scope,
      count: digest.count,
      digest: digest.digest(),
      spool,
      ...(safetyBackupId ? { safetyBackupId } : {}),
      keep: () => {
        kept = true;
      },
      discard,
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

function spoolSource(path: string, etcd: boolean, source: SourceConfig, records: number): Parameters<typeof takeBackup>[0]['artifact'] {
  const bytes = createReadStream(path);
  return {
    endpoints: source.endpoints,
    extension: etcd ? '.ndjson' : '.json',
    bytes,
    describeError: (err) => (err instanceof Error ? err : new Error(String(err))),
    facts: () => ({ records, details: {} }),
    close: () => {
      bytes.destroy();
      return Promise.resolve();
    },
  };
}

export interface RollbackResult {
  /** Keys written back from the preimage. */
  restored: number;
  digest: string;
}

/**
 * Puts the scope back as the preimage recorded it: deletes whatever is there now (what the restore
 * wrote), writes the preimage's keys back, then reads the scope and checks count and digest. Throws
 * if any step fails or the scope does not match — the caller then tells the user how to finish by hand.
 */
export async function rollback(target: KvTarget, preimage: Preimage): Promise<RollbackResult> {
  await target.deleteScope(preimage.scope);
  let restored = 0;
  if (preimage.spool) {
    const reader = openArtifact(preimage.spool);
    try {
      const identity = new KeyScope({ base: preimage.scope.toString('utf8') });
      restored = await replay(reader.records(), identity, target, preimage.count, () => undefined);
    } finally {
      await reader.close();
    }
  }
  const now = new SetDigest();
  for await (const record of target.read(preimage.scope)) now.add(record.key, record.value);
  if (now.count !== preimage.count || now.digest() !== preimage.digest) {
    throw new Error(`after the rollback the scope holds ${now.count} keys (digest ${now.digest().slice(0, 12)}…), before the restore it held ${preimage.count} (${preimage.digest.slice(0, 12)}…)`);
  }
  return { restored, digest: now.digest() };
}
