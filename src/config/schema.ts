import { z } from 'zod';
import { validate as isValidCron } from 'node-cron';

export const SOURCE_TYPES = ['etcd', 'consul'] as const;
/** Continuous jobs: a base export on the job's schedule, and a change log between bases (see `continuous`). */
export const CONTINUOUS_KINDS = ['etcd-continuous', 'consul-continuous'] as const;
export const BACKUP_KINDS = ['etcd-snapshot', 'etcd-export', 'consul-snapshot', 'consul-export', 'px-dumps', ...CONTINUOUS_KINDS] as const;
export const JOB_KINDS = [...BACKUP_KINDS, 'restore-test', 'verify'] as const;
export type BackupKind = (typeof BACKUP_KINDS)[number];
export type JobKind = (typeof JOB_KINDS)[number];
export type ContinuousKind = (typeof CONTINUOUS_KINDS)[number];

export function isContinuousJob<J extends { kind: JobKind }>(job: J): job is J & { kind: ContinuousKind } {
  return (CONTINUOUS_KINDS as readonly string[]).includes(job.kind);
}

/** Jobs that store backups (not drills, not verify runs). */
export function isBackupJob<J extends { kind: JobKind }>(job: J): job is J & { kind: BackupKind } {
  return (BACKUP_KINDS as readonly string[]).includes(job.kind);
}

const name = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');

const tls = z.strictObject({
  /** Path to a PEM CA bundle. */
  ca: z.string().min(1).optional(),
  /** Path to a PEM client certificate. */
  cert: z.string().min(1).optional(),
  /** Path to the PEM key of the client certificate. */
  key: z.string().min(1).optional(),
});

const sourceEndpoint = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' });

const sourceFields = z.strictObject({
  name,
  type: z.enum(SOURCE_TYPES),
  /** etcd: at least one. Consul: the first is used; empty means CONSUL_HTTP_ADDR. */
  endpoints: z.array(sourceEndpoint).default([]),
  clusterId: z.string().min(1).optional(),
  /** Scope of backups; defaults to `pwx/<clusterId>/` when clusterId is set, else the whole keyspace. */
  prefix: z.string().optional(),
  region: z.string().min(1).optional(),
  auth: z.strictObject({ username: z.string().min(1), password: z.string() }).optional(),
  tls: tls.optional(),
  /** Consul ACL token; defaults to CONSUL_HTTP_TOKEN. */
  token: z.string().optional(),
  /** Consul datacenter. */
  datacenter: z.string().min(1).optional(),
  /** Consul: read snapshots and exports from any server, not only the leader (works without a leader). */
  stale: z.boolean().default(false),
  /**
   * etcd: the cluster's --max-request-bytes (default 1.5 MiB = 1572864). A restore refuses, before any
   * write, a value that cannot fit one request with its key; batches stay under it.
   */
  maxRequestBytes: z.number().int().min(4096).optional(),
  /**
   * Consul: the servers' kv_max_value_size (default 512 KiB = 524288). A restore refuses, before any
   * write, a larger value.
   */
  maxValueBytes: z.number().int().min(1024).optional(),
});

export const sourceSchema = sourceFields
  .refine((s) => s.type !== 'etcd' || s.endpoints.length > 0, {
    message: 'list at least one etcd endpoint',
    path: ['endpoints'],
  })
  .refine((s) => s.type === 'etcd' || s.maxRequestBytes === undefined, {
    message: 'maxRequestBytes is an etcd setting; for Consul set maxValueBytes',
    path: ['maxRequestBytes'],
  })
  .refine((s) => s.type === 'consul' || s.maxValueBytes === undefined, {
    message: 'maxValueBytes is a Consul setting; for etcd set maxRequestBytes',
    path: ['maxValueBytes'],
  });

const s3Repository = z.strictObject({
  name,
  type: z.literal('s3'),
  bucket: z.string().min(3, 'bucket names are at least 3 characters'),
  region: z.string().min(1),
  endpoint: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).optional(),
  forcePathStyle: z.boolean().default(false),
  prefix: z.string().default(''),
  storageClass: z.string().min(1).optional(),
  sse: z
    .strictObject({ mode: z.enum(['AES256', 'aws:kms']), kmsKeyId: z.string().min(1).optional() })
    .refine((s) => s.mode === 'aws:kms' || s.kmsKeyId === undefined, {
      message: 'kmsKeyId is only meaningful with mode aws:kms',
      path: ['kmsKeyId'],
    })
    .optional(),
  objectLock: z
    .strictObject({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().int().positive() })
    .optional(),
  /** Static credentials; omit to use the AWS SDK default provider chain. */
  credentials: z
    .strictObject({ accessKeyId: z.string().min(1), secretAccessKey: z.string().min(1), sessionToken: z.string().optional() })
    .optional(),
  /**
   * Multipart part size in MiB (S3 allows 5..5120). An upload holds partSizeMiB x (queueSize + 1) in
   * reused buffers: 24 MiB by default (a zstd snapshot backup then peaks at about 140 MB RSS, see
   * bench/README.md). Raise queueSize for more throughput to a distant region.
   */
  partSizeMiB: z.number().int().min(5).max(5120).default(8),
  /** Parts uploaded in parallel. */
  queueSize: z.number().int().min(1).max(64).default(2),
  /**
   * Sign each multipart part's bytes into its SigV4 signature (a SHA-256 pass over every part, on both
   * ends). Off: parts go as UNSIGNED-PAYLOAD with their CRC32, which S3 checks.
   */
  signPartPayloads: z.boolean().optional(),
});

const fsRepository = z.strictObject({
  name,
  type: z.literal('fs'),
  path: z.string().min(1),
});

export const repositorySchema = z.discriminatedUnion('type', [s3Repository, fsRepository]);

export const retentionSchema = z.strictObject({
  keepLast: z.number().int().min(1).default(24),
  daily: z.number().int().min(0).default(7),
  weekly: z.number().int().min(0).default(4),
  monthly: z.number().int().min(0).default(12),
  minDays: z.number().int().min(0).default(35),
});

/** How a continuous job cuts, spools and merges its change segments. */
export const continuousSchema = z.strictObject({
  /** A segment is cut this often while changes arrive (the recovery point objective in seconds). @defaultValue 5 */
  segmentSeconds: z.number().min(0.2).max(3600).default(5),
  /** ...or as soon as this many bytes of changes are pending. @defaultValue 8 MiB */
  segmentBytes: z.number().int().min(4096).max(256 * 1024 ** 2).default(8 * 1024 ** 2),
  /**
   * Segments wait here until the repository has them: put it on a persistent volume so a restart
   * uploads what the last run could not. @defaultValue <tmpdir>/kvdr-spool/<job>
   */
  spoolDir: z.string().min(1).optional(),
  /** When the spool grows past this (repository unreachable), continuity is given up: a gap is recorded and a new base taken once the repository is back. @defaultValue 1 GiB */
  spoolMaxBytes: z.number().int().min(1024 ** 2).default(1024 ** 3),
  /** Segments older than this are merged into larger ones, so the object count stays bounded. 0 turns merging off. @defaultValue 60 */
  mergeAfterMinutes: z.number().min(0).default(60),
  /** A merged segment holds up to this many stored bytes (a merge holds its events in memory). @defaultValue 16 MiB */
  mergeTargetBytes: z.number().int().min(1024 ** 2).max(256 * 1024 ** 2).default(16 * 1024 ** 2),
});

export const jobSchema = z
  .strictObject({
    name,
    /** Backup jobs: the source backed up. restore-test jobs: the cluster the drill restores into. Not for verify jobs. */
    source: z.string().min(1).optional(),
    kind: z.enum(JOB_KINDS),
    schedule: z.string().refine((s) => isValidCron(s), 'not a valid cron expression (5 fields, or 6 with seconds)'),
    timezone: z.string().min(1).default('UTC'),
    /** Backup jobs: where backups are stored. restore-test jobs read from the tested job's repository. */
    repository: z.string().min(1).optional(),
    compression: z.enum(['gzip', 'zstd', 'none']).default('gzip'),
    retention: retentionSchema.prefault({}),
    timeoutMinutes: z.number().positive().default(60),
    retries: z.number().int().min(0).default(3),
    /** The recovery point objective the audit holds this job to; defaults to `audit.rpoMinutes`. */
    rpoMinutes: z.number().positive().optional(),
    /** restore-test jobs: which job's latest backup to restore, and where. */
    drill: z
      .strictObject({
        /** The backup job whose latest backup each drill restores. */
        job: z.string().min(1),
        /** Re-root the restored keys under `<toPrefix><run id>/` (needed when restoring into a live cluster). */
        toPrefix: z.string().regex(/^.+\/$/, "must end with '/' (drills restore under <toPrefix><run id>/)").optional(),
      })
      .optional(),
    /** etcd-continuous / consul-continuous jobs: segment cadence, spool and merging. The schedule says when a new base is taken. */
    continuous: continuousSchema.optional(),
    /** verify jobs: which backups each run re-reads and checks, across every repository. @defaultValue {sample: 3} */
    verify: z
      .strictObject({
        /** Backups chosen at random on each run. */
        sample: z.number().int().min(1).optional(),
        /** Every backup on each run. */
        all: z.literal(true).optional(),
      })
      .refine((v) => (v.sample === undefined) !== (v.all === undefined), 'give exactly one of sample: <n> or all: true')
      .optional(),
  })
  .superRefine((job, ctx) => {
    if (job.kind === 'restore-test' && !job.drill) ctx.addIssue({ code: 'custom', path: ['drill'], message: 'a restore-test job names the job it tests: drill: {job: <name>}' });
    if (job.kind !== 'restore-test' && job.drill) ctx.addIssue({ code: 'custom', path: ['drill'], message: 'only restore-test jobs have a drill' });
    if (isBackupJob(job) && job.repository === undefined) ctx.addIssue({ code: 'custom', path: ['repository'], message: 'name the repository this job stores its backups in' });
    if (job.kind !== 'verify' && job.source === undefined) ctx.addIssue({ code: 'custom', path: ['source'], message: 'name the source this job works on' });
    if (job.kind === 'verify' && (job.source !== undefined || job.repository !== undefined)) {
      ctx.addIssue({ code: 'custom', path: [job.source !== undefined ? 'source' : 'repository'], message: 'a verify job checks backups in every repository; remove it' });
    }
    if (job.kind !== 'verify' && job.verify) ctx.addIssue({ code: 'custom', path: ['verify'], message: 'only verify jobs have a verify block' });
    if (!isContinuousJob(job) && job.continuous) ctx.addIssue({ code: 'custom', path: ['continuous'], message: 'only etcd-continuous and consul-continuous jobs have a continuous block' });
  });

export const configSchema = z.strictObject({
  sources: z.array(sourceSchema).default([]),
  repositories: z.array(repositorySchema).min(1, 'define at least one repository'),
  jobs: z.array(jobSchema).default([]),
  pxDumps: z
    .strictObject({
      dirs: z.array(z.string().min(1)).default(['/var/cores/kvdb_dump']),
      node: z.string().optional(),
      clusterId: z.string().min(1).optional(),
      /** A dump is collected once it has not changed for this long (a node may still be writing it). */
      stableSeconds: z.number().min(0).default(10),
    })
    .prefault({}),
  service: z
    .strictObject({
      listen: z.string().regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port').default('127.0.0.1:9464'),
      /** On SIGTERM, how long running jobs may finish before they are aborted. */
      shutdownGraceSeconds: z.number().min(0).default(30),
      leaderElection: z
        .strictObject({
          backend: z.enum(SOURCE_TYPES),
          source: z.string().min(1),
          key: z.string().min(1).default('kvdr/leader'),
          ttlSeconds: z.number().int().min(5).default(15),
        })
        .optional(),
    })
    .prefault({}),
  audit: z
    .strictObject({
      /** Repository that holds the audit trail; defaults to the first one. */
      repository: z.string().min(1).optional(),
      /** LAST_RECOVERY_POINT: the newest backup of each job is at most this old (a job may override it). */
      rpoMinutes: z.number().positive().default(60),
      /** RESTORE_TESTED: each backup job had a successful restore drill at most this long ago. */
      restoreTestMaxAgeDays: z.number().positive().default(30),
      /** RESTORE_TIME: the newest drill of each job restored within this many minutes (RTO). */
      rtoMinutes: z.number().positive().default(60),
      /** INTEGRITY: each job's backups were re-verified (kvdr verify) at most this long ago. */
      verifyMaxAgeDays: z.number().positive().default(7),
      /** MIN_RETENTION: each job keeps every backup at least this long (retention.minDays, object lock). */
      minRetentionDays: z.number().min(0).default(35),
    })
    .prefault({}),
});

export type KvdrConfig = z.infer<typeof configSchema>;
export type SourceConfig = z.infer<typeof sourceSchema>;
export type RepositoryConfig = z.infer<typeof repositorySchema>;
export type S3RepositoryConfig = Extract<RepositoryConfig, { type: 's3' }>;
export type FsRepositoryConfig = Extract<RepositoryConfig, { type: 'fs' }>;
export type JobConfig = z.infer<typeof jobSchema>;
export type ContinuousConfig = z.infer<typeof continuousSchema>;
export type RetentionConfig = z.infer<typeof retentionSchema>;
