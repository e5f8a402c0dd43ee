import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consulPairs, consulPut, startConsul, type ConsulInstance } from '../harness/consul-instance.js';
import { startEtcd, type EtcdInstance } from '../harness/etcd-instance.js';
import type { Expectation, FuzzCase, Pair, Seed } from '../harness/fuzz-types.js';
import { Rng } from '../harness/fuzz-types.js';
import { expectedScope, referenceDecode, type Decoded, type ReferenceSeeds } from '../harness/mutation-reference.js';
import { buildCorpus } from '../harness/mutations.js';
import { requireEnv, uniqueName } from '../harness/namespace.js';
import { PROJECT_ROOT } from '../harness/stack.js';
import { snapshotMembers } from '../harness/tar-bytes.js';

/**
 * The restore contract under fuzzing. Every damaged, foreign or hostile artifact — each format, plain
 * and gzipped — given to `kvdr restore` against real etcd and real Consul must end with exit 2 or 4
 * (3 only into a populated scope without --force), one line on stderr naming the file, no stack trace,
 * within 60 s and 512 MiB, and zero writes: the case's keys (scope, a pre-existing key, neighbours just
 * outside the scope) byte- and revision-identical before and after. A mutation that leaves a valid
 * artifact may restore, but then the scope must hold exactly what the test's own reference decoding
 * says (test/harness/mutation-reference.ts); for checksummed formats any content change must be refused.
 *
 * KVDR_FUZZ_CASES (default 224) random mutations; KVDR_FUZZ_SEED (default fixed) the PRNG seed, or
 * "random"; KVDR_FUZZ_BOTH_TARGETS=1 runs every case against both targets (by default the random
 * mutations, the tar/msgpack/bbolt structure cases and the bombs run against one each, alternating, to
 * keep `npm test` near 6 minutes; the seeds, devices, empty and wrong-kind files always run against both); KVDR_FUZZ_BIG=0 leaves out the 200 MB lines and GB bombs. A nightly run:
 * KVDR_FUZZ_CASES=2000 KVDR_FUZZ_SEED=random KVDR_FUZZ_BOTH_TARGETS=1. KVDR_FUZZ=0 skips the file. All
 * violations are collected and reported once, as a table; the damaged artifacts behind them are kept.
 */

const run = promisify(execFile);
const CASES = Number(process.env['KVDR_FUZZ_CASES'] ?? 224);
const SEED = process.env['KVDR_FUZZ_SEED'] === 'random' ? Date.now() % 2 ** 31 : Number(process.env['KVDR_FUZZ_SEED'] ?? 0x6b766472);
const BIG = process.env['KVDR_FUZZ_BIG'] !== '0';
/** Every case against both targets (else the random and structural ones alternate: see above). */
const BOTH = process.env['KVDR_FUZZ_BOTH_TARGETS'] === '1';
const RSS_LIMIT_KIB = 512 * 1024;
const TIMEOUT_S = 60;
const CONCURRENCY = 2;
const MAX_RSS = `${PROJECT_ROOT}test/harness/max-rss.py`;
const LIMITS = { etcd: 1536 * 1024, consul: 512 * 1024 };

type TargetKind = 'etcd' | 'consul';
type Variant = 'empty' | 'force' | 'populated';

interface RunReport {
  exitCode: number | null;
  signal: number | null;
  timedOut: boolean;
  maxRssKiB: number;
  wallMs: number;
}

interface Row {
  index: number;
  name: string;
  target: TargetKind;
  variant: Variant;
  exit: string;
  rssMiB: number;
  wallMs: number;
  line: string;
  violations: string[];
  refusedValid: boolean;
}

/** Keys of one namespace with what identifies each version: equal maps mean nothing was written. */
type KeyState = Map<string, string>;

function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

async function etcdKeys(etcd: Etcd3, prefix: string): Promise<Map<string, { value: Buffer; id: string; lease: string }>> {
  const key = Buffer.from(prefix);
  const response = await etcd.kv.range(prefix === '' ? { key: Buffer.from([0]), range_end: Buffer.from([0]) } : { key, range_end: prefixEnd(key) });
  const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
  return new Map(response.kvs.map((kv) => [kv.key.toString('hex'), { value: kv.value, id: `${kv.mod_revision}:${digest(kv.value)}`, lease: kv.lease }]));
}

interface ConsulEntry {
  Key: string;
  Value: string | null;
  Flags: number;
  ModifyIndex: number;
  Session?: string;
}

async function consulKeys(address: string, prefix: string): Promise<ConsulEntry[]> {
  const response = await fetch(`${address}/v1/kv/${prefix.split('/').map(encodeURIComponent).join('/')}?recurse`);
  if (response.status === 404) return [];
  if (!response.ok) throw new Error(`consul list ${prefix}: HTTP ${response.status}`);
  return (await response.json()) as ConsulEntry[];
}

/** The stored keys of a case's namespace, as key hex → version identity. */
async function namespaceState(target: TargetKind, ns: string, etcd: Etcd3, consul: string): Promise<KeyState> {
  if (target === 'etcd') return new Map([...(await etcdKeys(etcd, ns))].map(([k, v]) => [k, v.id]));
  const digest = (v: string | null): string => createHash('sha256').update(v ?? '').digest('hex');
  return new Map((await consulKeys(consul, ns)).map((e) => [Buffer.from(e.Key).toString('hex'), `${e.ModifyIndex}:${e.Flags}:${digest(e.Value)}`]));
}

function describeDiff(before: KeyState, after: KeyState): string {
  const added = [...after.keys()].filter((k) => !before.has(k));
  const removed = [...before.keys()].filter((k) => !after.has(k));
  const changed = [...after.keys()].filter((k) => before.has(k) && before.get(k) !== after.get(k));
  const show = (keys: string[]): string => keys.slice(0, 2).map((k) => JSON.stringify(Buffer.from(k, 'hex').toString('utf8').slice(-40))).join(', ');
  return [added.length && `+${added.length} (${show(added)})`, removed.length && `-${removed.length} (${show(removed)})`, changed.length && `~${changed.length} (${show(changed)})`]
    .filter(Boolean)
    .join(' ');
}

/** Runs kvdr through the RSS wrapper, keeping at most 64 KiB of each stream. */
async function runKvdr(args: string[], cwd: string, env: NodeJS.ProcessEnv, reportPath: string): Promise<{ report: RunReport; stdout: string; stderr: string; stderrBytes: number }> {
  const child = spawn('python3', [MAX_RSS, '--report', reportPath, '--timeout', String(TIMEOUT_S), '--', process.execPath, `${PROJECT_ROOT}dist/cli/kvdr.js`, ...args], {
    cwd,
    env: { ...process.env, KVDR_CONFIG: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (stream: NodeJS.ReadableStream): { text: () => string; bytes: () => number } => {
    const parts: Buffer[] = [];
    let kept = 0;
    let total = 0;
    stream.on('data', (d: Buffer) => {
      total += d.length;
      if (kept < 64 * 1024) {
        parts.push(d.subarray(0, 64 * 1024 - kept));
        kept += Math.min(d.length, 64 * 1024 - kept);
      }
    });
    return { text: () => Buffer.concat(parts).toString('utf8'), bytes: () => total };
  };
  const out = keep(child.stdout);
  const err = keep(child.stderr);
  const guard = setTimeout(() => child.kill('SIGKILL'), (TIMEOUT_S + 30) * 1000);
  await new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', () => resolve());
  });
  clearTimeout(guard);
  const report = JSON.parse(await readFile(reportPath, 'utf8')) as RunReport;
  return { report, stdout: out.text(), stderr: err.text(), stderrBytes: err.bytes() };
}

/** The variant of a run: mostly an empty scope; some with a key in it, with or without --force. */
function variantOf(index: number, target: TargetKind, expect: Expectation): Variant {
  const v = (index * 5 + (target === 'etcd' ? 0 : 3)) % 7;
  if (v >= 6 && expect.kind !== 'succeed') return 'populated';
  if (v >= 4) return 'force';
  return 'empty';
}

function pairsOf(dump: Buffer): Pair[] {
  return (JSON.parse(dump.toString('utf8')) as { Key: string; Value: string | null }[]).map((p) => ({
    key: Buffer.from(p.Key),
    value: Buffer.from(p.Value ?? '', 'base64'),
    flags: 0,
  }));
}

/** The scope every seed fills in the private services: binary values, non-ASCII keys, an empty and a large value. */
function seedData(): { key: string; value: Buffer; flags: number }[] {
  const rng = new Rng(7);
  const data = Array.from({ length: 48 }, (_, i) => ({ key: `seed/k/${String(i).padStart(3, '0')}`, value: rng.bytes(rng.range(60, 220)), flags: i % 5 === 0 ? i : 0 }));
  data.push(
    { key: 'seed/ünï/名前', value: Buffer.from('значение'), flags: 3 },
    { key: 'seed/empty', value: Buffer.alloc(0), flags: 0 },
    { key: 'seed/large', value: rng.bytes(300 * 1024), flags: 0 },
    { key: 'seed/html<&>', value: Buffer.from('<b>&amp;</b>'), flags: 0 },
  );
  return data;
}

async function makeSeeds(work: string, etcdInstance: EtcdInstance, consul: ConsulInstance): Promise<Seed[]> {
  const fixtures = `${PROJECT_ROOT}test/fixtures/pxdump/`;
  const older = await readFile(`${fixtures}pwx_kvdb_2018-05-25T22:57:41Z.dump`);
  const newer = await readFile(`${fixtures}pwx_kvdb_2018-05-25T22:59:08Z.dump`);
  const data = seedData();

  // etcd: the scope with some history (overwrites, deletes) and a key outside it.
  const client = new Etcd3({ hosts: etcdInstance.endpoint });
  try {
    for (const d of data) await client.put(d.key).value(d.value);
    for (let i = 0; i < 48; i += 6) await client.put(data[i]?.key as string).value(Buffer.from(`overwritten ${i}`));
    for (const i of [7, 19, 31]) await client.delete().key(data[i]?.key as string);
    await client.put('other/outside').value('not in the scope');
  } finally {
    client.close();
  }
  const etcdSnap = join(work, 'seed-etcd.db');
  await etcdInstance.ctl('snapshot', 'save', etcdSnap);
  const verify = new Etcd3({ hosts: etcdInstance.endpoint });
  const etcdAll = await etcdKeys(verify, '');
  verify.close();
  const etcdPairs = [...etcdAll].map(([k, v]) => ({ key: Buffer.from(k, 'hex'), value: v.value, flags: 0 }));

  const repo = join(work, 'repo');
  const config = join(work, 'seed.yaml');
  await writeFile(
    config,
    `sources: [{name: e, type: etcd, endpoints: ["${etcdInstance.endpoint}"], prefix: seed/}]\n` +
      `repositories: [{name: local, type: fs, path: ${repo}}]\n` +
      `jobs: [{name: export, source: e, kind: etcd-export, compression: none, schedule: "0 * * * *", repository: local}]\n`,
  );
  const backup = await run(process.execPath, [`${PROJECT_ROOT}dist/cli/kvdr.js`, '--config', config, '--log-level', 'silent', 'backup', 'export'], { env: { ...process.env, KVDR_CONFIG: '' } });
  const id = backup.stdout.trim();
  const stored = (await readdir(repo, { recursive: true })).find((f) => f.includes(id) && !f.startsWith('manifests'));
  if (!stored) throw new Error(`kvdr backup export stored nothing for ${id}`);
  const exportBytes = await readFile(join(repo, stored));

  // Consul: the same scope, with flags, and a key outside it.
  for (const d of data) await consulPut(consul.address, d.key, d.value, undefined, d.flags);
  await consulPut(consul.address, 'other/outside', 'not in the scope');
  const consulExport = Buffer.from(await consul.ctl('kv', 'export', ''));
  const consulSnap = join(work, 'seed-consul.snap');
  await consul.ctl('snapshot', 'save', consulSnap);
  const consulAll = [...(await consulPairs(consul.address, ''))].map(([key, p]) => ({ key: Buffer.from(key), value: p.value, flags: p.flags }));

  return [
    { name: 'px-old', format: 'px-dump', bytes: older, pairs: pairsOf(older) },
    { name: 'px-new', format: 'px-dump', bytes: newer, pairs: pairsOf(newer) },
    { name: 'kvdr-export', format: 'kvdr-export', bytes: exportBytes, pairs: etcdPairs.filter((p) => p.key.toString().startsWith('seed/')) },
    { name: 'consul-export', format: 'consul-export', bytes: consulExport, pairs: consulAll },
    { name: 'etcd-snap', format: 'etcd-snapshot', bytes: await readFile(etcdSnap), pairs: etcdPairs },
    { name: 'consul-snap', format: 'consul-snapshot', bytes: await readFile(consulSnap), pairs: consulAll },
  ];
}

/** Runs `work` over `items` with at most `limit` at a time. */
async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

function stderrProblems(stderr: string, stderrBytes: number, exit: number, names: string[]): { line: string; problems: string[] } {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  const errorLine = [...lines].reverse().find((l) => l.startsWith('kvdr: ')) ?? lines.at(-1) ?? '';
  const problems: string[] = [];
  if (/^\s+at .+:\d+:\d+\)?$/m.test(stderr) || /node:internal/.test(stderr)) problems.push('stack trace on stderr');
  if (exit === 0) return { line: errorLine, problems };
  if (lines.length !== 1) {
    const other = lines.find((l) => l !== errorLine) ?? '';
    problems.push(`stderr has ${lines.length} lines, not 1 (also: ${other.slice(0, 90)})`);
  }
  if (!errorLine.startsWith('kvdr: ')) problems.push('no "kvdr: …" error line');
  if ((exit === 2 || exit === 4) && !names.some((n) => errorLine.includes(n))) problems.push('error line does not name the file');
  if (errorLine.length > 2000 || stderrBytes > 64 * 1024) problems.push(`error output of ${stderrBytes} bytes`);
  return { line: errorLine, problems };
}

describe.skipIf(process.env['KVDR_FUZZ'] === '0')('restore fuzz: damaged and hostile artifacts against real etcd and Consul', () => {
  let work: string;
  let corpus: FuzzCase[];
  let seeds: Seed[];
  let referenceSeeds: ReferenceSeeds;
  let etcd: Etcd3;
  let runId: string;
  const consul = (): string => requireEnv('KVDR_CONSUL_ADDR');

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'kvdr-fuzz-'));
    runId = uniqueName('fuzz');
    const [privateEtcd, privateConsul] = await Promise.all([startEtcd(), startConsul()]);
    try {
      seeds = await makeSeeds(work, privateEtcd, privateConsul);
    } finally {
      await Promise.all([privateEtcd.stop(), privateConsul.stop()]);
    }
    const seed = (name: string): Seed => seeds.find((s) => s.name === name) as Seed;
    referenceSeeds = {
      checksummed: {
        'kvdr-export': { plain: seed('kvdr-export').bytes, pairs: seed('kvdr-export').pairs },
        'etcd-snapshot': { plain: seed('etcd-snap').bytes, pairs: seed('etcd-snap').pairs },
      },
      consulSnapshot: { members: snapshotMembers(seed('consul-snap').bytes), pairs: seed('consul-snap').pairs },
    };
    const tag = randomBytes(4).toString('hex');
    corpus = buildCorpus(seeds, { count: CASES, seed: SEED, tag, bothTargets: BOTH, escapeRoots: [tmpdir(), '', PROJECT_ROOT.replace(/\/$/, ''), work], big: BIG, fifo: true });
    // A restore that wrongly accepts a 200 MB record must not break the test's own reads.
    etcd = new Etcd3({ hosts: requireEnv('KVDR_ETCD_ENDPOINT'), grpcOptions: { 'grpc.max_receive_message_length': 1024 * 1024 * 1024 } });
  }, 300_000);

  afterAll(async () => {
    // Whatever a failed check left behind in the shared services.
    if (etcd && runId) {
      for (const prefix of [runId, `pwx/${runId}`]) {
        await etcd.delete().prefix(prefix);
        await fetch(`${consul()}/v1/kv/${prefix}?recurse`, { method: 'DELETE' });
      }
    }
    etcd?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('refuses every damaged artifact in one line with zero writes, and restores valid ones exactly', async () => {
    const started = Date.now();
    const rows: Row[] = [];
    const outsideBefore = await outsideState();
    const failedDir = await mkdtemp(join(tmpdir(), `kvdr-fuzz-failed-`));
    // Expectation pairs per case, computed once (the reference decode of a 400 kB dump is not free).
    const decoded = new Map<number, Decoded>();

    const runCase = async (index: number): Promise<void> => {
      const c = corpus[index] as FuzzCase;
      const caseDir = join(work, 'cases', String(index));
      await mkdir(join(caseDir, 'cwd'), { recursive: true });
      try {
        const artifact = await materialise(c, caseDir).catch((err: unknown) => {
          rows.push(harnessFailure(index, c, 'etcd', err));
          return undefined;
        });
        if (artifact === undefined) return;
        for (const target of c.targets ?? (['etcd', 'consul'] as const)) {
          const row = await runOne(index, c, target, caseDir, artifact, decoded).catch((err: unknown) => harnessFailure(index, c, target, err));
          rows.push(row);
          if (row.violations.length > 0 && c.content.kind === 'bytes') await writeFile(join(failedDir, `${index}-${c.fileName || 'artifact'}`), c.content.bytes);
        }
      } finally {
        await rm(caseDir, { recursive: true, force: true });
      }
    };
    await pool(corpus.map((_, i) => i), CONCURRENCY, runCase);

    // Nothing outside the cases' namespaces changed, in either service.
    const outsideAfter = await outsideState();
    for (const target of ['etcd', 'consul'] as const) {
      const diff = describeDiff(outsideBefore[target], outsideAfter[target]);
      if (diff) rows.push({ index: -1, name: 'keys outside every case', target, variant: 'empty', exit: '-', rssMiB: 0, wallMs: 0, line: '', violations: [`written outside the cases: ${diff}`], refusedValid: false });
    }

    const seconds = Math.round((Date.now() - started) / 1000);
    const report = summarise(rows, seconds);
    await writeFile(join(failedDir, 'report.txt'), report);
    console.log(report);
    const violating = rows.filter((r) => r.violations.length > 0);
    if (violating.length === 0) await rm(failedDir, { recursive: true, force: true });
    expect(violating.length, `${report}\nDamaged artifacts that broke the contract are kept in ${failedDir}`).toBe(0);
  }, 60 * 60_000);

  /** A case the harness itself could not check: reported like a violation, and the run goes on. */
  function harnessFailure(index: number, c: FuzzCase, target: TargetKind, err: unknown): Row {
    const message = err instanceof Error ? err.message : String(err);
    return { index, name: c.name, target, variant: 'empty', exit: '?', rssMiB: 0, wallMs: 0, line: '', violations: [`harness could not check the case: ${message.slice(0, 200)}`], refusedValid: false };
  }

  /** Every key outside this run's namespaces, in both services (leased and locked keys left out: they expire). */
  async function outsideState(): Promise<Record<TargetKind, KeyState>> {
    const mine = (key: string): boolean => key.startsWith(runId) || key.startsWith(`pwx/${runId}`);
    const etcdAll = await etcdKeys(etcd, '');
    const consulAll = await consulKeys(consul(), '');
    return {
      etcd: new Map([...etcdAll].filter(([k, v]) => v.lease === '0' && !mine(Buffer.from(k, 'hex').toString('utf8'))).map(([k, v]) => [k, v.id])),
      consul: new Map(consulAll.filter((e) => !e.Session && !mine(e.Key)).map((e) => [Buffer.from(e.Key).toString('hex'), `${e.ModifyIndex}:${e.Value ?? ''}`])),
    };
  }

  async function materialise(c: FuzzCase, caseDir: string): Promise<string> {
    const path = join(caseDir, c.fileName || 'artifact');
    switch (c.content.kind) {
      case 'bytes':
        await writeFile(path, c.content.bytes);
        return path;
      case 'stream':
        await c.content.write(path);
        return path;
      case 'path':
        return c.content.path;
      case 'dir':
        await mkdir(path, { recursive: true });
        for (const [name, bytes] of Object.entries(c.content.files)) await writeFile(join(path, name), bytes);
        return path;
      case 'fifo':
        await run('mkfifo', [path]);
        return path;
      case 'missing':
        return path;
    }
  }

  /** What a successful restore must leave in the scope, or why the case must fail. */
  function expectedFor(index: number, c: FuzzCase, target: TargetKind, scope: string, decoded: Map<number, Decoded>): { mustFail: string } | { pairs: Map<string, Pair> } {
    const px = c.format === 'px-dump' || c.flag === '--kvdb_dump_file';
    const mapping = { relative: px, from: Buffer.from(px ? '' : 'seed/'), scope: Buffer.from(scope), maxValueBytes: LIMITS[target] };
    let pairs: Pair[];
    if (c.expect.kind === 'fail') return { mustFail: c.expect.why };
    if (c.expect.kind === 'reference') {
      if (c.content.kind !== 'bytes') throw new Error(`${c.name}: a reference expectation needs bytes`);
      if (!decoded.has(index)) decoded.set(index, referenceDecode(c.format, c.content.bytes, referenceSeeds));
      const d = decoded.get(index) as Decoded;
      if (!d.valid) return { mustFail: d.why };
      pairs = d.pairs;
    } else {
      pairs = c.expect.pairs;
    }
    const scoped = expectedScope(pairs, mapping);
    return scoped.valid ? { pairs: scoped.pairs } : { mustFail: scoped.why };
  }

  async function runOne(index: number, c: FuzzCase, target: TargetKind, caseDir: string, artifact: string, decoded: Map<number, Decoded>): Promise<Row> {
    const variant = variantOf(index, target, c.expect);
    // --kvdb_dump_file always comes with --cluster-id, as a user must give it.
    const px = c.format === 'px-dump' || c.flag === '--kvdb_dump_file';
    // A PX dump's scope is pwx/<cluster>/; --to-prefix names it again, so that a dump kvdr mistakes for
    // another kind still cannot reach beyond it. Other kinds: keys under seed/ re-rooted in the case's scope.
    const cluster = `${runId}-${index}-${target}`;
    const ns = px ? `pwx/${cluster}` : `${runId}/${index}-${target}/`;
    const scope = px ? `pwx/${cluster}/` : `${ns}s/`;
    const neighbours = px ? [`pwx/${cluster}x/neighbour`, `pwx/${cluster}`] : [`${ns}s-neighbour`, `${ns}s`];
    const put = (key: string, value: string): Promise<unknown> => (target === 'etcd' ? etcd.put(key).value(value).exec() : consulPut(consul(), key, value));
    for (const key of neighbours) await put(key, 'outside the scope');
    if (variant !== 'empty') await put(`${scope}pre-existing/key`, 'must survive a refused restore');
    const before = await namespaceState(target, ns, etcd, consul());

    const endpoint = target === 'etcd' ? `etcd:${requireEnv('KVDR_ETCD_ENDPOINT')}` : `consul:${consul()}`;
    const args = ['restore', c.flag, artifact, '--target', endpoint, ...(px ? ['--cluster-id', cluster, '--to-prefix', scope] : ['--prefix', 'seed/', '--to-prefix', scope])];
    if (variant === 'force') args.push('--force');
    const tmp = join(caseDir, `tmp-${target}`);
    await mkdir(tmp, { recursive: true });
    const { report, stderr, stderrBytes } = await runKvdr(args, join(caseDir, 'cwd'), { KVDR_SAFETY_DIR: join(caseDir, `safety-${target}`), TMPDIR: tmp }, join(caseDir, `report-${target}.json`));

    const violations: string[] = [];
    const exit = report.exitCode ?? -1;
    const expected = expectedFor(index, c, target, scope, decoded);
    const after = await namespaceState(target, ns, etcd, consul());
    if (report.timedOut) violations.push(`hung: killed after ${TIMEOUT_S} s`);
    else if (report.signal !== null) violations.push(`killed by signal ${report.signal}`);
    if (report.maxRssKiB > RSS_LIMIT_KIB) violations.push(`peak RSS ${Math.round(report.maxRssKiB / 1024)} MiB > ${RSS_LIMIT_KIB / 1024} MiB`);
    const populated = variant !== 'empty';
    let refusedValid = false;
    if (exit === 0) {
      if ('mustFail' in expected) violations.push(`accepted a damaged artifact (${expected.mustFail})`);
      else if (variant === 'populated') violations.push('exit 0 into a populated scope without --force');
      // What a success left: the scope exactly as decoded, everything else in the namespace untouched.
      const inScope = (k: string): boolean => Buffer.from(k, 'hex').subarray(0, scope.length).equals(Buffer.from(scope));
      const outside = (s: KeyState): KeyState => new Map([...s].filter(([k]) => !inScope(k)));
      const outsideDiff = describeDiff(outside(before), outside(after));
      if (outsideDiff) violations.push(`wrote outside the scope: ${outsideDiff}`);
      if (!('mustFail' in expected)) {
        const problem = await compareScope(target, scope, expected.pairs);
        if (problem) violations.push(`restored content differs from the reference: ${problem}`);
      }
    } else {
      const diff = describeDiff(before, after);
      if (diff) violations.push(`exit ${exit} but the target changed: ${diff}`);
      if (c.expect.kind === 'succeed' && !(exit === 3 && variant === 'populated')) violations.push('refused an undamaged seed');
      else if (!('mustFail' in expected) && (exit === 2 || exit === 4)) refusedValid = true;
      if (exit === 3 && !(populated && variant !== 'force')) violations.push(`exit 3 with ${variant === 'force' ? '--force' : 'an empty scope'}`);
      else if (exit === 1) violations.push('exit 1 (undocumented for a bad artifact: 2 or 4)');
      else if (![2, 3, 4].includes(exit) && !report.timedOut && report.signal === null) violations.push(`exit ${exit}`);
    }
    // The line names the file (for a directory of dumps, the directory or the dump in it).
    const names = c.content.kind === 'path' ? [c.content.path] : [basename(artifact), ...(c.content.kind === 'dir' ? Object.keys(c.content.files) : [])];
    const { line, problems } = stderrProblems(stderr, stderrBytes, exit, names);
    violations.push(...problems);
    for (const path of [...(c.mustNotExist ?? []), ...(c.mustNotExist ?? []).map((p) => join(caseDir, basename(p)))]) {
      if (existsSync(path)) {
        violations.push(`an archive entry escaped to ${path}`);
        await rm(path, { force: true, recursive: true });
      }
    }
    const leftovers = await readdir(tmp);
    if (leftovers.length > 0) violations.push(`left ${leftovers.length} temp files (${leftovers.slice(0, 2).join(', ')})`);

    // Clean up the case's keys: the shared services serve the files after this one.
    if (target === 'etcd') await etcd.delete().prefix(ns);
    else await fetch(`${consul()}/v1/kv/${ns}?recurse`, { method: 'DELETE' });
    return {
      index,
      name: c.name,
      target,
      variant,
      exit: report.timedOut ? 'timeout' : report.signal !== null ? `sig${report.signal}` : String(exit),
      rssMiB: Math.round(report.maxRssKiB / 1024),
      wallMs: report.wallMs,
      line,
      violations,
      refusedValid,
    };
  }

  async function compareScope(target: TargetKind, scope: string, want: Map<string, Pair>): Promise<string | undefined> {
    const have = new Map<string, { value: Buffer; flags: number }>();
    if (target === 'etcd') for (const [k, v] of await etcdKeys(etcd, scope)) have.set(k, { value: v.value, flags: 0 });
    else for (const e of await consulKeys(consul(), scope)) have.set(Buffer.from(e.Key).toString('hex'), { value: Buffer.from(e.Value ?? '', 'base64'), flags: e.Flags });
    const name = (k: string): string => JSON.stringify(Buffer.from(k, 'hex').toString('utf8').slice(scope.length).slice(0, 40));
    const missing = [...want.keys()].filter((k) => !have.has(k));
    const extra = [...have.keys()].filter((k) => !want.has(k));
    const wrong = [...want.keys()].filter((k) => {
      const h = have.get(k);
      const w = want.get(k) as Pair;
      return h && (!h.value.equals(w.value) || (target === 'consul' && h.flags !== w.flags));
    });
    const parts = [
      missing.length && `${missing.length} missing (${missing.slice(0, 2).map(name).join(', ')})`,
      extra.length && `${extra.length} unexpected (${extra.slice(0, 2).map(name).join(', ')})`,
      wrong.length && `${wrong.length} with other bytes or flags (${wrong.slice(0, 2).map(name).join(', ')})`,
    ].filter(Boolean);
    return parts.length > 0 ? parts.join('; ') : undefined;
  }

  function summarise(rows: Row[], seconds: number): string {
    rows.sort((a, b) => a.index - b.index || a.target.localeCompare(b.target));
    const violating = rows.filter((r) => r.violations.length > 0);
    const kindOf = (v: string): string => v.replace(/\(.*$/, '').replace(/\d+/g, 'N').replace(/: .*$/, '').trim();
    const kinds = new Map<string, { runs: number; example: string }>();
    for (const r of violating) {
      for (const v of r.violations) {
        const k = kinds.get(kindOf(v)) ?? { runs: 0, example: `${r.name} (${r.target}): ${v}` };
        kinds.set(kindOf(v), { ...k, runs: k.runs + 1 });
      }
    }
    // A kind that hits most runs (one cause, everywhere) is summarised once instead of drowning the table.
    const widespread = new Set([...kinds].filter(([, k]) => k.runs >= Math.max(20, rows.length / 4)).map(([name]) => name));
    const listed = violating.filter((r) => r.violations.some((v) => !widespread.has(kindOf(v))));
    const peak = [...rows].sort((a, b) => b.rssMiB - a.rssMiB).slice(0, 5);
    const slow = [...rows].sort((a, b) => b.wallMs - a.wallMs).slice(0, 5);
    const pad = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
    const lines = [
      `restore fuzz: seed ${SEED} (KVDR_FUZZ_SEED=${SEED} reproduces the corpus), ${corpus.length} cases (${CASES} random), ${rows.length} runs in ${seconds} s`,
      `violations: ${violating.length} runs of ${new Set(violating.map((r) => r.index)).size} cases; valid-by-reference artifacts refused (allowed): ${rows.filter((r) => r.refusedValid).length}; ` +
        `restores that succeeded and matched the reference: ${rows.filter((r) => r.exit === '0' && r.violations.length === 0).length}`,
      `peak RSS: ${peak.map((r) => `${r.rssMiB} MiB (${r.name}, ${r.target})`).join('; ')}`,
      `slowest: ${slow.map((r) => `${(r.wallMs / 1000).toFixed(1)} s (${r.name}, ${r.target})`).join('; ')}`,
      '',
      'by kind (runs; first example):',
      ...[...kinds].sort((a, b) => b[1].runs - a[1].runs).map(([name, k]) => `  ${String(k.runs).padStart(4)}  ${name}${widespread.has(name) ? ' [widespread: not repeated below]' : ''}\n        e.g. ${k.example.slice(0, 300)}`),
      '',
      `${pad('case', 58)} ${pad('target', 6)} ${pad('variant', 9)} ${pad('exit', 7)} ${pad('stderr (the kvdr: line)', 70)} violated`,
      ...listed.map((r) => {
        const own = r.violations.filter((v) => !widespread.has(kindOf(v)));
        const also = r.violations.length > own.length ? ' (+ widespread)' : '';
        return `${pad(r.name, 58)} ${pad(r.target, 6)} ${pad(r.variant, 9)} ${pad(r.exit, 7)} ${pad(r.line.replace(/\s+/g, ' '), 70)} ${own.join('; ')}${also}`;
      }),
    ];
    return lines.join('\n');
  }
});
