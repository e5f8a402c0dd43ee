import { randomInt } from 'node:crypto';
import type { KvdrConfig } from '../config/schema.js';
import { readCatalog } from '../repository/catalog.js';
import type { Manifest } from '../repository/manifest.js';
import type { ObjectStore } from '../repository/object-store.js';
import { openStore } from '../repository/open-store.js';
import { verifyBackup, type VerifyResult } from '../repository/verify-backup.js';
import { selectBackup } from '../restore/fetch-backup.js';
import { IntegrityError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { recordAuditEvent } from './audit-repository.js';

export type VerifySelection = { backup: string } | { all: true } | { sample: number };

/**
 * `kvdr verify`: re-reads the chosen backups (one, all, or a random sample across every repository),
 * checks each against its manifest, and records every result in the audit trail — the evidence the
 * INTEGRITY control reads. `context` is added to each event (the verify job that ran it).
 */
export async function verifyBackups(config: KvdrConfig, selection: VerifySelection, logger: Logger, context: Record<string, unknown> = {}): Promise<VerifyResult[]> {
  const results: VerifyResult[] = [];
  const check = async (store: ObjectStore, manifest: Manifest): Promise<void> => {
    const result = await verifyBackup(store, manifest);
    results.push(result);
    const log = result.result === 'ok' ? logger.info.bind(logger) : logger.error.bind(logger);
    log({ backup: manifest.id, result: result.result }, `${manifest.id}: ${result.result}: ${result.detail}`);
    await recordAuditEvent(config, 'verify', { ...result, ...context }, logger);
  };
  if ('backup' in selection) {
    const selected = await selectBackup(config, { backup: selection.backup });
    try {
      await check(selected.store, selected.manifest);
    } finally {
      await selected.store.close();
    }
    return results;
  }
  for (const repository of config.repositories) {
    const store = openStore(repository);
    try {
      const catalog = await readCatalog(store);
      const chosen = 'all' in selection ? catalog : sample(catalog, selection.sample, config.repositories.length);
      for (const manifest of chosen) await check(store, manifest);
    } finally {
      await store.close();
    }
  }
  return results;
}

/** Up to n backups of one repository, at random: a sample spread over `repositories` repositories. */
function sample(catalog: readonly Manifest[], n: number, repositories: number): Manifest[] {
  const pool = [...catalog];
  const take = Math.min(pool.length, Math.ceil(n / repositories));
  for (let i = 0; i < take; i++) {
    const j = i + randomInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j] as Manifest, pool[i] as Manifest];
  }
  return pool.slice(0, take);
}

/** Exit 4 when any verified backup did not match its manifest, naming each. */
export function assertVerified(results: readonly VerifyResult[]): void {
  const bad = results.filter((r) => r.result !== 'ok');
  if (bad.length === 0) return;
  throw new IntegrityError(
    `${bad.length} of ${results.length} backups failed verification (${bad.map((r) => `${r.backup}: ${r.result}`).join('; ')}); restore from another backup and find out what changed the repository`,
  );
}
