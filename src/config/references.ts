import { ConfigError } from '../util/errors.js';
import { isBackupJob, type KvdrConfig, type SourceConfig } from './schema.js';

/** Checks what a schema cannot see: unique names and references between sections. */
export function checkReferences(config: KvdrConfig): void {
  unique('sources', config.sources);
  unique('repositories', config.repositories);
  unique('jobs', config.jobs);

  const sources = new Map(config.sources.map((s) => [s.name, s]));
  const repositories = new Set(config.repositories.map((r) => r.name));

  config.jobs.forEach((job, i) => {
    if (job.source === undefined) return; // a verify job: it reads repositories only
    const source = sources.get(job.source);
    if (!source) fail(`jobs[${i}].source`, `no source named "${job.source}"; define it under sources`, [...sources.keys()]);
    if (job.repository !== undefined && !repositories.has(job.repository)) {
      fail(`jobs[${i}].repository`, `no repository named "${job.repository}"; define it under repositories`, [...repositories]);
    }
    if (job.drill) checkDrill(config, i, source);
    const wanted = job.kind.startsWith('etcd-') ? 'etcd' : job.kind.startsWith('consul-') ? 'consul' : undefined;
    if (wanted && source.type !== wanted) {
      fail(`jobs[${i}].kind`, `${job.kind} needs a ${wanted} source, but "${source.name}" is ${source.type}`);
    }
  });

  const election = config.service.leaderElection;
  if (election) {
    const source = sources.get(election.source);
    if (!source) fail('service.leaderElection.source', `no source named "${election.source}"`, [...sources.keys()]);
    if (source.type !== election.backend) {
      fail('service.leaderElection.backend', `is ${election.backend} but source "${source.name}" is ${source.type}`);
    }
  }
  if (config.audit.repository !== undefined && !repositories.has(config.audit.repository)) {
    fail('audit.repository', `no repository named "${config.audit.repository}"`, [...repositories]);
  }
}

/** A drill restores a backup job's latest backup, and never over the cluster that job backs up. */
function checkDrill(config: KvdrConfig, i: number, target: SourceConfig): void {
  const drill = config.jobs[i]?.drill;
  if (!drill) return;
  const tested = config.jobs.find((j) => j.name === drill.job);
  const backupJobs = config.jobs.filter(isBackupJob).map((j) => j.name);
  if (!tested || !isBackupJob(tested)) fail(`jobs[${i}].drill.job`, `no backup job named "${drill.job}"`, backupJobs);
  const live = config.sources.find((s) => s.name === tested.source);
  const sameCluster = live !== undefined && (live.name === target.name || live.endpoints.some((e) => target.endpoints.includes(e)));
  if (sameCluster && drill.toPrefix === undefined) {
    fail(`jobs[${i}].drill.toPrefix`, `the drill would restore into "${live.name}", the cluster job ${tested.name} backs up; set toPrefix (a scratch prefix) or use a scratch cluster as source`);
  }
}

function unique(section: string, items: readonly { name: string }[]): void {
  const seen = new Set<string>();
  items.forEach((item, i) => {
    if (seen.has(item.name)) fail(`${section}[${i}].name`, `"${item.name}" is used twice; names must be unique`);
    seen.add(item.name);
  });
}

function fail(path: string, problem: string, known?: string[]): never {
  const hint = known && known.length > 0 ? ` (known: ${known.join(', ')})` : '';
  throw new ConfigError(`${path}: ${problem}${hint}`);
}
