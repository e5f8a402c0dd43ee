/** The controls `kvdr audit` evaluates (README, "Compliance audits"). */
export const CONTROL_IDS = [
  'COVERAGE',
  'FREQUENCY',
  'LAST_RECOVERY_POINT',
  'CONTINUITY',
  'JOB_HEALTH',
  'MIN_RETENTION',
  'RETENTION_DEPTH',
  'EARLY_DELETION',
  'ENCRYPTED',
  'INTEGRITY',
  'CROSS_REGION',
  'IMMUTABILITY',
  'RESTORE_TESTED',
  'RESTORE_TIME',
  'RESTORE_GOVERNANCE',
  'TRAIL_INTEGRITY',
] as const;

export type ControlId = (typeof CONTROL_IDS)[number];

/** N/A: the control does not apply to this subject (e.g. FREQUENCY of PX dumps, which come when nodes fail). */
export type ControlStatus = 'PASS' | 'FAIL' | 'N/A';

/** One fact behind a verdict: a backup, a missed slot, an event. */
export interface EvidenceRow {
  time?: string;
  /** A backup id, object key or event key the row is about. */
  ref?: string;
  detail: string;
}

export interface ControlResult {
  control: ControlId;
  /** What was evaluated: a job, a source, a repository, or the trail. */
  subjectType: 'job' | 'source' | 'repository' | 'trail';
  subject: string;
  status: ControlStatus;
  /** One line: why PASS or FAIL. */
  summary: string;
  evidence: EvidenceRow[];
}

/** One mark on a job's timeline. */
export interface TimelineEntry {
  time: string;
  /** `gap`: a continuous job lost continuity (its detail names the revisions and the cause). */
  outcome: 'success' | 'failure' | 'missed' | 'gap';
  detail: string;
  ref?: string;
}

export interface JobTimeline {
  job: string;
  kind: string;
  schedule: string;
  entries: TimelineEntry[];
  /** Continuous jobs: the stretches any second of which can be restored (a chain from its base to its newest segment). */
  coverage?: { from: string; to: string; ref: string }[];
}

/** A row of the backup-job report (shaped like AWS Backup Audit Manager's BACKUP_JOB_REPORT). */
export interface BackupJobRow {
  backupJobId: string;
  jobStatus: 'COMPLETED' | 'FAILED';
  statusMessage: string;
  resourceType: string;
  resourceId: string;
  backupPlan: string;
  creationDate: string;
  completionDate: string;
  recoveryPointId: string;
  jobRunTimeSeconds: number;
  backupSizeInBytes: number;
  backupVaultName: string;
  region: string;
}

/** A row of the restore-job report (shaped like AWS Backup Audit Manager's RESTORE_JOB_REPORT). */
export interface RestoreJobRow {
  restoreJobId: string;
  jobStatus: 'COMPLETED' | 'FAILED' | 'ABORTED' | 'DRY_RUN';
  statusMessage: string;
  restoreType: 'restore' | 'drill';
  recoveryPointId: string;
  createdResource: string;
  creationDate: string;
  jobRunTimeSeconds: number | undefined;
  force: boolean;
  safetyBackupId: string;
}

export interface AuditReport {
  generatedAt: string;
  period: { since: string; until: string };
  tool: string;
  trail: { location: string; events: number; head: string; intact: boolean };
  controls: ControlResult[];
  timelines: JobTimeline[];
  backupJobs: BackupJobRow[];
  restoreJobs: RestoreJobRow[];
  /** True when no control failed. */
  passed: boolean;
}
