import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../../src/config/loader.js';
import type { KvdrConfig } from '../../src/config/schema.js';
import { CHART, helm, helmBinary, renderChart, validateManifests, type Manifest } from '../harness/helm.js';
import { PROJECT_ROOT } from '../harness/stack.js';

// The chart in deploy/helm/kvdr, checked as a cluster would take it: helm lint and template with the
// real helm, every rendered object validated against the Kubernetes schemas (and CRDs), wrong values
// refused with the path of the field, and the config it renders accepted by kvdr's own loader.

const run = promisify(execFile);
const SECRET_FIELDS = new Set(['password', 'token', 'accessKeyId', 'secretAccessKey', 'sessionToken']);

type Container = {
  name: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  envFrom?: unknown[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: Record<string, unknown>;
  livenessProbe?: { httpGet: { path: string } };
  readinessProbe?: { httpGet: { path: string } };
};
type Volume = { name: string; configMap?: { name: string }; hostPath?: { path: string }; emptyDir?: object; secret?: { secretName: string } };
type PodSpec = { containers: Container[]; volumes: Volume[]; securityContext: Record<string, unknown> };
type Workload = Manifest & { spec: { replicas?: number; template: { spec: PodSpec } } };

const find = (objects: Manifest[], kind: string, suffix = ''): Manifest | undefined =>
  objects.find((o) => o.kind === kind && o.metadata.name.endsWith(suffix));
const pod = (w: Manifest): PodSpec => (w as Workload).spec.template.spec;
const configMapData = (cm: Manifest): Record<string, string> => (cm as Manifest & { data: Record<string, string> }).data;

/** The kvdr config a workload's pods read: its config volume's ConfigMap, key kvdr.yaml. */
function mountedConfig(objects: Manifest[], workload: Manifest): string {
  const volume = pod(workload).volumes.find((v) => v.name === 'config');
  const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === volume?.configMap?.name);
  const text = cm ? configMapData(cm)['kvdr.yaml'] : undefined;
  if (text === undefined) throw new Error(`${workload.kind} ${workload.metadata.name}: no ConfigMap with kvdr.yaml mounted`);
  return text;
}

/**
 * Loads a rendered config with kvdr's loader, as the container would: every ${VAR} must be one the
 * container sets (env, the node name, Kubernetes' HOSTNAME) or may come from an envFrom Secret.
 */
function loadAsContainer(text: string, container: Container, origin: string): KvdrConfig {
  const referenced = [...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1] as string);
  const provided = new Set([...(container.env ?? []).map((e) => e.name), 'HOSTNAME']);
  const missing = referenced.filter((name) => !provided.has(name) && (container.envFrom ?? []).length === 0);
  expect(missing, `${origin}: variables the config needs but the container does not set`).toEqual([]);
  return parseConfig(text, origin, Object.fromEntries(referenced.map((name) => [name, `value-of-${name}`])));
}

/** Every secret-bearing field of a config is a ${VAR} reference, never a value. */
function secretFields(tree: unknown, path = ''): { path: string; value: unknown }[] {
  if (Array.isArray(tree)) return tree.flatMap((item, i) => secretFields(item, `${path}[${i}]`));
  if (tree === null || typeof tree !== 'object') return [];
  return Object.entries(tree as Record<string, unknown>).flatMap(([k, v]) =>
    SECRET_FIELDS.has(k) ? [{ path: `${path}.${k}`, value: v }] : secretFields(v, `${path}.${k}`),
  );
}

describe('the Helm chart', () => {
  let valuesFiles: string[];
  let oldestKube: string;

  beforeAll(async () => {
    await helmBinary(); // built once into the cache (minutes the first time); later runs are instant
    valuesFiles = (await readdir(`${CHART}/ci`)).filter((f) => f.endsWith('.yaml')).map((f) => `ci/${f}`).sort();
    const chart = parse(await readFile(`${CHART}/Chart.yaml`, 'utf8')) as { kubeVersion: string };
    oldestKube = /^>=\s*(\d+\.\d+)/.exec(chart.kubeVersion)?.[1] ?? '';
  }, 900_000);

  it('has a values schema generated from the current config schema', async () => {
    await expect(run(process.execPath, [`${PROJECT_ROOT}scripts/helm-values-schema.mjs`, '--check'])).resolves.toBeDefined();
  });

  it('passes helm lint with the default values and every representative values file', async () => {
    for (const values of [undefined, ...valuesFiles]) {
      const result = await helm(['lint', CHART, '--strict', ...(values ? ['-f', `${CHART}/${values}`] : [])]);
      expect(result.code, `${values ?? 'default values'}: ${result.stdout}${result.stderr}`).toBe(0);
    }
  });

  it('renders objects that validate against every supported Kubernetes version and the prometheus-operator CRDs', async () => {
    expect(oldestKube).toMatch(/^1\.\d+$/);
    for (const values of [[], ...valuesFiles.map((f) => [f])]) {
      const { text, objects } = await renderChart(values, ['--kube-version', `${oldestKube}.0`]);
      const report = await validateManifests(text, oldestKube);
      expect(report.map((r) => `${r.kind}/${r.name}`)).toEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`));
      for (const object of report) {
        const against = object.checks.map((c) => c.against);
        if (object.apiVersion.startsWith('monitoring.coreos.com/')) expect(against).toEqual([expect.stringMatching(/^CRD .*monitoring\.coreos\.com$/)]);
        // The three newest versions the package ships are at least among them.
        else expect(against).toEqual(expect.arrayContaining(['Kubernetes 1.35', 'Kubernetes 1.36', 'Kubernetes 1.37', `Kubernetes ${oldestKube}`]));
        for (const check of object.checks) expect(check.errors, `${values.join() || 'defaults'}: ${object.kind}/${object.name} against ${check.against}`).toEqual([]);
      }
    }
  }, 300_000);

  it('refuses a Kubernetes older than the chart supports', async () => {
    const [major, minor] = oldestKube.split('.').map(Number);
    const result = await helm(['template', 'kvdr', CHART, '--kube-version', `${major}.${(minor ?? 0) - 1}.0`]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain('kubeVersion');
  });

  it.each([
    ['replicaCount: two', '/replicaCount', 'want integer'],
    ['config: {jobs: [{name: a, kind: etcd-snapshots, source: px-etcd, schedule: "0 * * * *", repository: dr}]}', '/config/jobs/0/kind', 'etcd-snapshot'],
    ['config: {jobs: [{name: a, kind: etcd-snapshot, source: px-etcd, schedule: "0 * * * *", repository: dr, retension: {keepLast: 3}}]}', '/config/jobs/0', 'retension'],
    ['config: {sources: [{name: px-etcd, type: etcd, endpoints: [http://e:2379], auth: {username: root, password: hunter2}}]}', '/config/sources/0/auth/password', 'pattern'],
    ['config: {service: {listen: "127.0.0.1:9464"}}', '/config/service/listen', 'pattern'],
    ['pxDumps: {enabled: true, hostpath: /var/cores}', '/pxDumps', 'hostpath'],
  ])('refuses %s with the path of the field', async (values, path, detail) => {
    const result = await helmWithValues(values);
    expect(result.code).not.toBe(0);
    const line = result.stderr.split('\n').find((l) => l.includes(`'${path}'`));
    expect(line, result.stderr).toBeDefined();
    expect(line).toContain(detail);
  });

  it('refuses several replicas without leader election, and a DaemonSet without a px-dumps job', async () => {
    const noElection = await helmWithValues('config: {service: {leaderElection: null}}');
    expect(noElection.stderr).toContain('replicaCount > 1 needs config.service.leaderElection');
    const noDumpJob = await helmWithValues('pxDumps: {enabled: true}');
    expect(noDumpJob.stderr).toContain('config.jobs has no job of kind px-dumps');
  });

  it('runs two replicas with leader election, probes, a PodDisruptionBudget and a locked-down pod', async () => {
    const { objects } = await renderChart();
    const deployment = find(objects, 'Deployment') as Workload;
    expect(deployment.spec.replicas).toBe(2);
    const spec = pod(deployment);
    const [container] = spec.containers as [Container];
    const config = loadAsContainer(mountedConfig(objects, deployment), container, 'deployment');
    expect(config.service.leaderElection).toMatchObject({ backend: 'etcd', source: 'px-etcd' });
    const port = Number(config.service.listen.split(':')[1]);
    expect(container.ports).toEqual([{ name: 'http', containerPort: port, protocol: 'TCP' }]);
    expect(container.livenessProbe?.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe?.httpGet.path).toBe('/readyz');
    expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    // The scratch space kvdr spools restores into is a writable emptyDir, and TMPDIR points at it.
    const tmpdir = container.env?.find((e) => e.name === 'TMPDIR')?.value;
    const tmpMount = container.volumeMounts?.find((m) => m.mountPath === tmpdir);
    expect(spec.volumes.find((v) => v.name === tmpMount?.name)?.emptyDir).toBeDefined();
    const pdb = find(objects, 'PodDisruptionBudget') as Manifest & { spec: { selector: { matchLabels: object } } };
    expect(pdb.spec.selector.matchLabels).toEqual((deployment.spec as unknown as { selector: { matchLabels: object } }).selector.matchLabels);
    const service = find(objects, 'Service') as Manifest & { spec: { ports: { port: number }[] } };
    expect(service.spec.ports[0]?.port).toBe(port);
  });

  it('renders, for every values file, configs kvdr loads, with no secret in any ConfigMap', async () => {
    for (const values of [[], ...valuesFiles.map((f) => [f])]) {
      const { objects } = await renderChart(values);
      expect(objects.filter((o) => o.kind === 'Secret')).toEqual([]);
      const workloads = objects.filter((o) => ['Deployment', 'DaemonSet', 'Job'].includes(o.kind));
      for (const workload of workloads) {
        const container = pod(workload).containers[0] as Container;
        loadAsContainer(mountedConfig(objects, workload), container, `${values.join() || 'defaults'}: ${workload.kind}`);
      }
      for (const cm of objects.filter((o) => o.kind === 'ConfigMap' && configMapData(o)['kvdr.yaml'] !== undefined)) {
        const fields = secretFields(parse(configMapData(cm)['kvdr.yaml'] ?? ''));
        for (const field of fields) expect(field.value, `${cm.metadata.name} ${field.path}`).toMatch(/^\$\{[A-Za-z_][A-Za-z0-9_]*\}$/);
      }
    }
  });

  it('mounts the etcd client TLS Secret where the config points', async () => {
    const { objects } = await renderChart(['ci/etcd-tls-values.yaml']);
    const deployment = find(objects, 'Deployment') as Workload;
    const container = pod(deployment).containers[0] as Container;
    const config = loadAsContainer(mountedConfig(objects, deployment), container, 'etcd-tls');
    const files = Object.values(config.sources[0]?.tls ?? {});
    expect(files).toHaveLength(3);
    for (const file of files) {
      // The mount that holds the file: the deepest one whose path is a prefix of it.
      const mount = (container.volumeMounts ?? []).filter((m) => file.startsWith(`${m.mountPath}/`)).sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
      expect(mount?.readOnly, file).toBe(true);
      expect(pod(deployment).volumes.find((v) => v.name === mount?.name)?.secret?.secretName).toBe('px-etcd-client-tls');
    }
  });

  it('collects PX dumps with a DaemonSet that reads the host directory read-only and names its node', async () => {
    const { objects } = await renderChart(['ci/px-dumps-daemonset-values.yaml']);
    const daemonSet = find(objects, 'DaemonSet') as Workload;
    const spec = pod(daemonSet);
    const container = spec.containers[0] as Container;
    const hostVolume = spec.volumes.find((v) => v.hostPath?.path === '/var/cores/kvdb_dump');
    const mount = container.volumeMounts?.find((m) => m.name === hostVolume?.name);
    expect(mount).toMatchObject({ readOnly: true });
    expect(container.env?.find((e) => e.name === 'NODE_NAME')?.valueFrom?.fieldRef?.fieldPath).toBe('spec.nodeName');

    const dumps = loadAsContainer(mountedConfig(objects, daemonSet), container, 'daemonset');
    expect(dumps.pxDumps.dirs).toEqual([mount?.mountPath]);
    expect(dumps.pxDumps.node).toBe('value-of-NODE_NAME');
    expect(dumps.jobs.map((j) => j.kind)).toEqual(['px-dumps']);
    // The scheduler leaves PX dumps to the DaemonSet, and the two never compete for one leader lock.
    const deployment = find(objects, 'Deployment') as Workload;
    const scheduler = loadAsContainer(mountedConfig(objects, deployment), pod(deployment).containers[0] as Container, 'scheduler');
    expect(scheduler.jobs.map((j) => j.kind)).toEqual(['etcd-snapshot']);
    expect(dumps.service.leaderElection?.key).not.toBe(scheduler.service.leaderElection?.key);
  });

  it('runs restore-from-s3 as a Job with the same config and credentials, never retried', async () => {
    const { objects } = await renderChart(['ci/restore-job-values.yaml']);
    const job = find(objects, 'Job') as Workload & { spec: { backoffLimit: number } };
    const container = pod(job).containers[0] as Container;
    expect(container.args).toEqual(['restore-from-s3', '--target', 'etcd:http://px-etcd.kube-system.svc:2379', '--latest', '--job', 'etcd-export-daily', '--to-prefix', 'drill/2026-11/']);
    expect(job.spec.backoffLimit).toBe(0);
    expect(mountedConfig(objects, job)).toBe(mountedConfig(objects, find(objects, 'Deployment') as Manifest));
    const both = await helmWithValues('restore: {enabled: true, target: "etcd:http://e:2379", backup: some-id, latest: true}');
    expect(both.stderr).toContain('exactly one of restore.backup');
  });

  it('renders the alert rules file into a PrometheusRule and the dashboard into a sidecar ConfigMap', async () => {
    const { objects } = await renderChart(['ci/s3-irsa-values.yaml']);
    const rules = parse(await readFile(`${CHART}/files/kvdr.rules.yaml`, 'utf8')) as { groups: unknown[] };
    const rule = find(objects, 'PrometheusRule') as Manifest & { spec: { groups: unknown[] }; metadata: { labels: Record<string, string> } };
    expect(rule.spec.groups).toEqual(rules.groups);
    expect(rule.metadata.labels['release']).toBe('kube-prometheus-stack');
    const dashboard = find(objects, 'ConfigMap', '-dashboard') as Manifest & { metadata: { labels: Record<string, string> } };
    expect(dashboard.metadata.labels['grafana_dashboard']).toBe('1');
    const json = JSON.parse(configMapData(dashboard)['kvdr.json'] ?? '') as { panels: { targets?: { expr: string }[] }[] };
    const exprs = json.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr).join('\n');
    for (const metric of ['kvdr_backup_last_success_timestamp_seconds', 'kvdr_job_rpo_seconds', 'kvdr_backup_duration_seconds_bucket', 'kvdr_backup_bytes', 'kvdr_backup_failures_total', 'kvdr_prune_failures_total', 'kvdr_leader', 'kvdr_continuous_lag_seconds', 'kvdr_continuous_durable_revision', 'kvdr_continuous_gaps_total']) {
      expect(exprs).toContain(metric);
    }
    const account = find(objects, 'ServiceAccount') as Manifest & { metadata: { annotations: Record<string, string> } };
    expect(account.metadata.annotations['eks.amazonaws.com/role-arn']).toMatch(/^arn:aws:iam::/);
  });
});

/** `helm template` with one extra values document, for the refusals. */
async function helmWithValues(values: string): Promise<{ code: number; stderr: string }> {
  const dir = await mkdtemp(`${tmpdir()}/kvdr-helm-`);
  try {
    await writeFile(`${dir}/values.yaml`, values);
    return await helm(['template', 'kvdr', CHART, '-f', `${dir}/values.yaml`]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
