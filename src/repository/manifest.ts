import { z } from 'zod';
import { JOB_KINDS, SOURCE_TYPES } from '../config/schema.js';

/**
 * What kvdr records about one backup (DESIGN.md invariant 2). Written once, after the artifact;
 * a backup without a manifest does not exist. Credentials never appear here.
 */
export const manifestSchema = z.object({
  formatVersion: z.literal(1),
  id: z.string().min(1),
  job: z.string().min(1),
  kind: z.enum([...JOB_KINDS, 'safety-backup']),
  status: z.enum(['success']),
  source: z.object({
    name: z.string(),
    type: z.enum(SOURCE_TYPES),
    endpoints: z.array(z.string()),
    clusterId: z.string().optional(),
    region: z.string().optional(),
  }),
  scope: z.object({ prefix: z.string() }),
  /** etcd: the revision the artifact is consistent at. */
  revision: z.number().int().optional(),
  /** Consul: the raft index (X-Consul-Index). */
  raftIndex: z.number().int().optional(),
  /** Keys in the artifact, when the format makes it known. */
  records: z.number().int().optional(),
  bytes: z.object({ raw: z.number().int(), stored: z.number().int() }),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  compression: z.enum(['gzip', 'zstd', 'none']),
  encryption: z.object({
    sse: z.object({ mode: z.string(), kmsKeyId: z.string().optional() }).optional(),
    clientSide: z.boolean(),
  }),
  repository: z.object({
    name: z.string(),
    type: z.enum(['s3', 'fs']),
    location: z.string(),
    bucket: z.string().optional(),
    region: z.string().optional(),
    key: z.string(),
    versionId: z.string().optional(),
    etag: z.string().optional(),
  }),
  objectLock: z.object({ mode: z.string(), retainUntil: z.iso.datetime() }).optional(),
  startedAt: z.iso.datetime(),
  finishedAt: z.iso.datetime(),
  toolVersion: z.string(),
  /** Kind-specific facts (Consul version, PX node name, highest KVDBIndex, ...). */
  details: z.record(z.string(), z.unknown()).default({}),
});

export type Manifest = z.infer<typeof manifestSchema>;

/** Whether a manifest is a continuous job's base: its chain of change segments starts after it. */
export function isChainBase(manifest: Manifest): boolean {
  return manifest.kind === 'etcd-continuous' || manifest.kind === 'consul-continuous';
}

/** The revision (etcd) or raft index (Consul) a backup is consistent at; a chain starts just after it. */
export function baseRevision(manifest: Manifest): number {
  return manifest.revision ?? manifest.raftIndex ?? 0;
}
