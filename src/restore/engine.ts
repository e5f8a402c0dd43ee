import type { AuditEventType } from '../audit/audit-log.js';
import { appendOrReport } from '../audit/audit-repository.js';
import type { SourceConfig } from '../config/schema.js';
import type { KvRecord } from '../formats/record.js';
import type { KvTarget } from '../sources/kv-target.js';
import { InterruptedError, KvdrError, oneLine, ScopeNotEmptyError } from '../util/errors.js';
import { ExitCode } from '../util/exit-codes.js';
import type { Logger } from '../util/logger.js';
import { progress } from '../util/progress.js';
import { guardScope } from './guard.js';
import { KeyScope, keyScopeFor, type ScopeFlags } from './key-scope.js';
import { openArtifact, type ArtifactReader } from './local-artifact.js';
import { nativeExisting, nativeWrite, type EtcdMemberOptions } from './native-restore.js';
import { planRestore, type RestorePlan } from './plan.js';
import { capturePreimage, emptyPreimage, rollback, type Preimage } from './preimage.js';
import { replay } from './replay.js';
import type { RestoreRepository } from './restore-context.js';
import { Spool } from './spool.js';
import { openInput, type InputFacts, type OpenedInput, type RestoreInput } from './restore-input.js';
import { describePlan, scopeSummary, verifyScope, WriteFrontier } from './scope-check.js';

export interface RestoreRequest {
  input: RestoreInput;
  target: KvTarget;
  /** How the target is reached (same credentials), for the safety backup's manifest. */
  targetSource: SourceConfig;
  scope: ScopeFlags;
  force: boolean;
  dryRun: boolean;
  /** Take a safety backup of keys a --force restore replaces; without one, a local spool serves the rollback. */
  safetyBackup: boolean;
  /** @defaultValue 'keys' — 'native' restores a whole snapshot (etcd data directory, Consul snapshot restore). */
  mode?: 'keys' | 'native';
  /** Native etcd restores: the member to build. */
  etcdMember?: EtcdMemberOptions;
  /** Where safety backups and the attempt's audit event go. */
  repository?: RestoreRepository;
  /** The config file that names that repository, for commands printed to the user (`kvdr --config <it> …`). */
  configPath?: string;
  logger: Logger;
  /** Command output (stdout). */
  print: (text: string) => void;
  /** One-line notices for the person at the terminal (stderr): which dump was chosen and why. */
  notice?: (line: string) => void;
  /** Aborting (Ctrl-C, SIGTERM) stops the restore; after the first write it rolls back first (exit 130). */
  signal?: AbortSignal;
  /** Who asked, for the audit trail. */
  caller?: { tool?: string; drill?: string };
  /** What was asked for, before it was resolved to a backup id (e.g. --latest --job x). */
  asked?: Record<string, string | boolean>;
  /** Largest number of bytes decompression may produce for a local file (a stored backup's is capped by its manifest). */
  maxInflatedBytes?: number;
}

export interface RestoreResult {
  input: InputFacts;
  scope: string;
  plan?: RestorePlan;
  existing: number;
  deleted: number;
  written: number;
  safetyBackupId?: string;
  dryRun: boolean;
  /** Milliseconds from the start: until the artifact was fetched and verified, planned, written, verified (the end). */
  timings: Timings;
}

/** Who, what and where of one attempt: what every audit event of a restore carries. */
export type RestoreSubject = InputFacts & {
  target: string;
  force: boolean;
  dryRun?: true;
  mode?: 'native';
  tool?: string;
  drill?: string;
  clusterId?: string;
  asked?: Record<string, string | boolean>;
  scope?: string;
};

export interface Timings {
  fetchMs: number;
  planMs?: number;
  writeMs?: number;
  totalMs: number;
}

type Outcome =
  | { event: 'restore' | 'restore-dry-run'; result: RestoreResult; details: Record<string, unknown> }
  | { event: 'restore-aborted' | 'restore-failed' | 'restore-rolled-back'; error: unknown; details: Record<string, unknown> };

/**
 * The one restore pipeline (DESIGN.md invariants 4, 5, 5a), behind every entry point — `kvdr restore`,
 * `restore-from-s3`, `px-kvdb-restore run`, native mode and drills:
 *
 *   select → fetch and verify → plan (validate every record against the target) → guard (abort /
 *   --force) → preimage (safety backup or local spool) → write → verify → record
 *
 * Nothing is written before the plan and the guard pass. Any failure after the first write — the target
 * refusing or dying, verification, a signal — rolls the scope back to its preimage and checks it by
 * digest. Each attempt is recorded exactly once, after its outcome is known: `attempt` decides the
 * outcome and never records; this function records it and then returns or throws.
 */
export async function restore(request: RestoreRequest): Promise<RestoreResult> {
  const started = Date.now();
  const subject: RestoreSubject = {
    target: request.target.description,
    force: request.force,
    ...(request.dryRun ? { dryRun: true as const } : {}),
    ...(request.mode === 'native' ? { mode: 'native' as const } : {}),
    ...(request.caller?.tool ? { tool: request.caller.tool } : {}),
    ...(request.caller?.drill ? { drill: request.caller.drill } : {}),
    ...(request.scope.clusterId ? { clusterId: request.scope.clusterId } : {}),
    ...(request.asked ? { asked: request.asked } : {}),
  };
  const outcome = await attempt(request, subject, started);
  await record(request, outcome.event, { ...subject, ...outcome.details, durationMs: Date.now() - started });
  if ('error' in outcome) throw outcome.error;
  return outcome.result;
}

async function record(request: RestoreRequest, type: AuditEventType, subject: Record<string, unknown>): Promise<void> {
  if (!request.repository) {
    request.logger.warn(`no repository configured: this ${type} is not recorded in an audit trail`);
    return;
  }
  await appendOrReport(request.repository.store, type, subject, request.logger);
}

/** Mutable facts of one attempt, for the outcome's audit details. */
interface Progress {
  started: number;
  opened?: OpenedInput;
  reader?: ArtifactReader;
  /** The checked records, written by the plan pass and read by the replay. */
  spool?: Spool;
  preimage?: Preimage;
  fetchMs: number;
  planMs?: number;
  writeMs?: number;
  /** True from the moment before the first delete or write: from then on, a failure rolls back. */
  touched: boolean;
  deleted: number;
  written: number;
}

async function attempt(request: RestoreRequest, subject: RestoreSubject, started: number): Promise<Outcome> {
  const { target, signal } = request;
  const state: Progress = { started, fetchMs: 0, touched: false, deleted: 0, written: 0 };
  try {
    state.opened = await openInput(request.input, { localCap: request.maxInflatedBytes, scope: request.scope }, (facts) => Object.assign(subject, facts));
    const opened = state.opened;
    Object.assign(subject, opened.facts);
    state.fetchMs = Date.now() - started;
    if (opened.reason) (request.notice ?? ((line) => request.logger.info(line)))(opened.reason);
    signal?.throwIfAborted();
    state.reader = openArtifact(opened.artifact, { offThread: true });
    if (request.mode === 'native') return await native(request, subject, state);

    const keyScope = keyScopeFor(opened.keys, { ...request.scope, clusterId: request.scope.clusterId ?? opened.clusterId ?? '' }, request.targetSource.type);
    const scopeText = keyScope.scope.toString('utf8');
    subject.scope = scopeText;
    const reader = state.reader;
    request.logger.info({ artifact: opened.artifact.label, scope: scopeText }, 'checking the artifact');
    // A dry run writes nothing, so it keeps no copy of the records either.
    if (!request.dryRun) state.spool = await Spool.create();
    const plan = await planRestore(reader.records(keyScope.from), keyScope, target, {
      label: opened.artifact.label,
      again: () => numbered(reader, keyScope.from),
      ...(signal ? { signal } : {}),
      summarise: request.dryRun,
      ...(state.spool ? { spool: state.spool } : {}),
    });
    state.planMs = Date.now() - started;
    if (plan.leased > 0) request.logger.warn({ leased: plan.leased }, `${plan.leased} keys had etcd leases; they are restored without a lease`);
    const existing = await target.inspectScope(keyScope.scope);
    const result = (written: number, deleted: number, safetyBackupId?: string): RestoreResult => ({
      input: opened.facts,
      scope: scopeText,
      plan,
      existing: existing.count,
      deleted,
      written,
      dryRun: request.dryRun,
      ...(safetyBackupId ? { safetyBackupId } : {}),
      timings: { fetchMs: state.fetchMs, ...(state.planMs !== undefined ? { planMs: state.planMs } : {}), ...(state.writeMs !== undefined ? { writeMs: state.writeMs } : {}), totalMs: Date.now() - started },
    });

    if (request.dryRun) {
      request.print(describePlan(plan, existing.count, await scopeSummary(target, keyScope), scopeText, target.description));
      return { event: 'restore-dry-run', result: result(0, 0), details: { wouldDelete: existing.count, wouldWrite: plan.records } };
    }
    try {
      guardScope(existing, request.force, { target: target.description, scope: scopeText, ...(request.caller?.drill ? { drill: true } : {}) });
    } catch (err) {
      if (err instanceof ScopeNotEmptyError) return { event: 'restore-aborted', error: err, details: { existing: existing.count, examples: existing.examples } };
      throw err;
    }
    signal?.throwIfAborted();
    state.preimage = existing.count > 0 ? await capturePreimage({ ...request, scope: keyScope.scope, restoring: { ...opened.facts } }) : emptyPreimage(keyScope.scope);
    const safety = state.preimage.safetyBackupId;
    signal?.throwIfAborted();
    try {
      await write(request, keyScope, plan, state);
    } catch (err) {
      if (!state.touched) throw err;
      return await rolledBack(request, keyScope, state, err);
    }
    request.logger.info({ written: state.written, deleted: state.deleted, safetyBackupId: safety, planMs: state.planMs, writeMs: state.writeMs, totalMs: Date.now() - started }, `restored ${state.written} keys under "${scopeText}" into ${target.description}`);
    return {
      event: 'restore',
      result: result(state.written, state.deleted, safety),
      details: { deleted: state.deleted, written: state.written, records: plan.records, digest: plan.digest, ...(safety ? { safetyBackupId: safety } : {}) },
    };
  } catch (err) {
    const error = signal?.aborted ? interrupted(signal, 'before anything was written; the target is unchanged') : err;
    return { event: 'restore-failed', error, details: failure(error, state) };
  } finally {
    await state.reader?.close();
    await state.spool?.discard();
    await state.preimage?.discard();
    await state.opened?.close();
  }
}

/** Delete (for --force), replay in transactions, read back. */
async function write(request: RestoreRequest, keyScope: KeyScope, plan: RestorePlan, state: Progress): Promise<void> {
  const { target } = request;
  const spool = state.spool as Spool;
  state.touched = true;
  if ((state.preimage?.count ?? 0) > 0) state.deleted = await target.deleteScope(keyScope.scope);
  // Keys written in ascending order are verified piece by piece behind the writes, not after them all.
  const frontier = plan.ascending ? new WriteFrontier() : undefined;
  const planned = (): AsyncIterable<KvRecord> => spool.read();
  const following = frontier ? verifyScope(target, keyScope, plan, { planned, waitFor: frontier.waitFor }) : undefined;
  following?.catch(() => undefined); // awaited below, once the replay is done
  const bar = progress(`restoring into ${target.description}`, plan.records, request.logger);
  try {
    // The spool holds the keys already mapped into the scope: mapping them again leaves them as they are.
    state.written = await replay(spool.read(), new KeyScope({ base: keyScope.scope.toString('utf8') }), target, plan.records, (n) => {
      state.written = n;
      bar.update(n);
    }, { ...(request.signal ? { signal: request.signal } : {}), ...(frontier ? { onConfirmed: (upTo: Buffer) => frontier.advance(upTo) } : {}) });
    frontier?.finish();
  } catch (err) {
    frontier?.fail(err);
    throw err;
  } finally {
    bar.stop();
  }
  state.writeMs = Date.now() - state.started;
  await (following ?? verifyScope(target, keyScope, plan, { planned }));
}

/** A failure after the first write: put the preimage back, or say exactly how to. */
async function rolledBack(request: RestoreRequest, keyScope: KeyScope, state: Progress, err: unknown): Promise<Outcome> {
  const { target, signal } = request;
  const preimage = state.preimage as Preimage;
  const scope = keyScope.scope.toString('utf8');
  request.logger.info({ err: oneLine(err) }, `restore failed after its first write; rolling back "${scope}" to its ${preimage.count} keys from before`);
  try {
    const undone = await rollback(target, preimage);
    const note = `the scope "${scope}" was rolled back to the ${preimage.count} keys it held before (digest checked)`;
    const error = signal?.aborted ? interrupted(signal, `after ${state.written} keys were written; ${note}`) : withNote(err, note);
    return { event: 'restore-rolled-back', error, details: { ...failure(error, state), rolledBack: { keys: undone.restored, digest: undone.digest } } };
  } catch (rollbackError) {
    preimage.keep();
    const how = putBackCommand(request, preimage, scope);
    const error = new KvdrError(
      `${oneLine(err)}; the rollback failed too (${oneLine(rollbackError)}), so the scope "${scope}" is incomplete — once ${target.description} is reachable, put it back with: ${how}`,
      ExitCode.Failure,
      { cause: err },
    );
    return { event: 'restore-failed', error, details: { ...failure(error, state), rollbackFailed: oneLine(rollbackError), putBackWith: how } };
  }
}

/**
 * The exact command that puts a scope back by hand when the rollback could not run: restoring the
 * safety backup (needs the config that names its repository), else the local copy kept on disk, else
 * — the scope was empty — deleting what was written.
 */
function putBackCommand(request: RestoreRequest, preimage: Preimage, scope: string): string {
  const target = request.target.description;
  if (preimage.safetyBackupId && request.configPath) return `kvdr --config ${shellQuote(request.configPath)} restore-from-s3 --backup ${preimage.safetyBackupId} --target ${target} --force`;
  if (preimage.spool) {
    const also = preimage.safetyBackupId ? ` (the same keys as safety backup ${preimage.safetyBackupId})` : '';
    // --prefix: a Consul spool is a `consul kv export`, whose keys say nothing of the scope they came from.
    return `kvdr restore --file ${shellQuote(preimage.spool.path)} --prefix ${shellQuote(scope)} --target ${target} --force --no-safety-backup${also}`;
  }
  return request.targetSource.type === 'etcd' ? `etcdctl --endpoints ${request.targetSource.endpoints.join(',')} del --prefix ${shellQuote(scope)}` : `consul kv delete -recurse ${shellQuote(scope)}`;
}

/** A word as a POSIX shell reads it back unchanged: as is when it is plainly safe, else in single quotes. */
function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A full-cluster restore of a native snapshot: the same select, verify and guard, with the whole keyspace as scope. */
async function native(request: RestoreRequest, subject: RestoreSubject, state: Progress): Promise<Outcome> {
  const { target } = request;
  const opened = state.opened as OpenedInput;
  subject.scope = '';
  // Reading every record checks the whole snapshot (bbolt structure, SHA256SUMS) before anything changes.
  for await (const _ of (state.reader as ArtifactReader).records()) request.signal?.throwIfAborted();
  const existing = await nativeExisting(request, opened.artifact);
  const backupId = opened.facts.backup ?? opened.artifact.label;
  const result: RestoreResult = { input: opened.facts, scope: '', existing: existing.count, deleted: 0, written: 0, dryRun: request.dryRun, timings: { fetchMs: state.fetchMs, totalMs: 0 } };
  if (request.dryRun) {
    request.print(`dry run: a native restore of ${backupId} would replace all ${existing.count} keys of ${target.description}`);
    return { event: 'restore-dry-run', result, details: { wouldReplace: existing.count } };
  }
  try {
    guardScope(existing, request.force, { target: target.description, scope: '', native: true });
  } catch (err) {
    if (err instanceof ScopeNotEmptyError) return { event: 'restore-aborted', error: err, details: { existing: existing.count } };
    throw err;
  }
  if (existing.count > 0 && request.safetyBackup) {
    state.preimage = await capturePreimage({ ...request, scope: Buffer.alloc(0), restoring: { ...opened.facts, mode: 'native' } });
  }
  request.signal?.throwIfAborted();
  // Both native writes are all or nothing on the server (a new data directory; Consul's snapshot restore).
  await nativeWrite(request, opened.artifact, backupId);
  const safetyBackupId = state.preimage?.safetyBackupId;
  return { event: 'restore', result: { ...result, ...(safetyBackupId ? { safetyBackupId } : {}) }, details: { replaced: existing.count, ...(safetyBackupId ? { safetyBackupId } : {}) } };
}

async function* numbered(reader: ArtifactReader, prefix: Buffer): AsyncIterable<{ key: Buffer; index: number }> {
  let index = 0;
  for await (const record of reader.records(prefix)) yield { key: record.key, index: index++ };
}

function failure(error: unknown, state: Progress): Record<string, unknown> {
  const exitCode = error instanceof KvdrError ? error.exitCode : ExitCode.Failure;
  return {
    error: oneLine(error),
    exitCode,
    deleted: state.deleted,
    written: state.written,
    ...(state.preimage?.safetyBackupId ? { safetyBackupId: state.preimage.safetyBackupId } : {}),
  };
}

function interrupted(signal: AbortSignal, what: string): InterruptedError {
  const reason: unknown = signal.reason;
  const name = reason instanceof Error && /^SIG[A-Z]+$/.test(reason.message) ? reason.message : 'a signal';
  return new InterruptedError(`restore interrupted by ${name} ${what}`);
}

function withNote(err: unknown, note: string): unknown {
  if (err instanceof KvdrError) {
    err.message = `${err.message}; ${note}`;
    return err;
  }
  return new KvdrError(`${oneLine(err)}; ${note}`, ExitCode.Failure, { cause: err });
}
