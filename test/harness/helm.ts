import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { PROJECT_ROOT } from './stack.js';

/**
 * The Helm chart's real tools: helm built from its Go module, and kubernetes-validate (with the
 * prometheus-operator CRDs) in a venv — both pinned in scripts/versions.sh and cached by
 * install-services.sh, which each part runs idempotently and which prints the paths.
 */

const run = promisify(execFile);
export const CHART = `${PROJECT_ROOT}deploy/helm/kvdr`;

function installPart(part: 'helm' | 'kubevalidate'): Promise<string[]> {
  return run('bash', [`${PROJECT_ROOT}scripts/install-services.sh`, part], { timeout: 900_000 }).then(
    ({ stdout }) => stdout.trim().split('\n'),
    (error: Error & { stderr?: string }) => {
      throw new Error(`install-services.sh ${part} failed: ${error.stderr?.trim().split('\n').at(-1) ?? error.message}`);
    },
  );
}

let helmPath: Promise<string> | undefined;
let validator: Promise<{ python: string; crds: string }> | undefined;

export function helmBinary(): Promise<string> {
  helmPath ??= installPart('helm').then((lines) => lines.at(-1) ?? '');
  return helmPath;
}

function kubeValidate(): Promise<{ python: string; crds: string }> {
  validator ??= installPart('kubevalidate').then((lines) => ({ python: lines.at(-2) ?? '', crds: lines.at(-1) ?? '' }));
  return validator;
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; a non-zero exit is a result to assert on, not an exception. */
export async function helm(args: readonly string[]): Promise<HelmResult> {
  const bin = await helmBinary();
  return new Promise((resolve) => {
    execFile(bin, args, { maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A rendered object, loosely typed: tests read the fields they check. */
export type Manifest = { apiVersion: string; kind: string; metadata: { name: string }; [field: string]: unknown };

/** `helm template` of the chart with values files (paths relative to the chart) and --set flags; throws on failure. */
export async function renderChart(valuesFiles: readonly string[] = [], extra: readonly string[] = []): Promise<{ text: string; objects: Manifest[] }> {
  const args = ['template', 'kvdr', CHART, '--namespace', 'backup', ...valuesFiles.flatMap((f) => ['-f', `${CHART}/${f}`]), ...extra];
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm ${args.join(' ')} failed: ${result.stderr.trim()}`);
  const objects = parseAllDocuments(result.stdout)
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((o): o is Manifest => o !== null);
  return { text: result.stdout, objects };
}

export interface ValidationReport {
  apiVersion: string;
  kind: string;
  name: string;
  checks: { against: string; errors: string[] }[];
}

/**
 * Validates rendered manifests with scripts/validate-k8s-manifests.py: built-in kinds against the strict
 * schemas of every Kubernetes version from `oldest` on that kubernetes-validate ships, custom resources
 * against their CRD's schema.
 */
export async function validateManifests(text: string, oldest: string): Promise<ValidationReport[]> {
  const { python, crds } = await kubeValidate();
  const script = `${PROJECT_ROOT}scripts/validate-k8s-manifests.py`;
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = execFile(python, [script, '--kube-versions-from', oldest, '--crds', crds], { maxBuffer: 64 * 1024 * 1024, timeout: 300_000 }, (error, out, stderr) => {
      if (error) reject(new Error(`validate-k8s-manifests.py failed: ${stderr.trim() || error.message}`));
      else resolve(out);
    });
    child.stdin?.end(text);
  });
  return JSON.parse(stdout) as ValidationReport[];
}
