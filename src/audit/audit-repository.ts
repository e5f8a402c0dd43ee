import type { KvdrConfig, RepositoryConfig } from '../config/schema.js';
import type { ObjectStore } from '../repository/object-store.js';
import { openStore } from '../repository/open-store.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { appendAuditEvent, type AuditEvent, type AuditEventType } from './audit-log.js';

/** The repository that holds the one audit trail: `audit.repository`, else the first repository. */
export function auditRepository(config: KvdrConfig): RepositoryConfig {
  return config.repositories.find((r) => r.name === config.audit.repository) ?? (config.repositories[0] as RepositoryConfig);
}

/**
 * Appends an event to the config's trail. A trail that cannot be written is logged loudly but does not
 * change the outcome of what it records: a backup that was stored stays stored and listed.
 */
export async function recordAuditEvent(config: KvdrConfig, type: AuditEventType, subject: Record<string, unknown>, logger: Logger): Promise<AuditEvent | undefined> {
  const store = openStore(auditRepository(config));
  try {
    return await appendOrReport(store, type, subject, logger);
  } finally {
    await store.close();
  }
}

/** Appends to the trail in an open store; a failure is logged as an error, never thrown. */
export async function appendOrReport(store: ObjectStore, type: AuditEventType, subject: Record<string, unknown>, logger: Logger): Promise<AuditEvent | undefined> {
  try {
    return await appendAuditEvent(store, type, subject);
  } catch (err) {
    logger.error({ err }, `could not record this ${type} in the audit trail at ${store.location}: ${oneLine(err)}`);
    return undefined;
  }
}
