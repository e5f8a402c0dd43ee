import { readFile, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { readSegment } from '../../formats/change-segment-reader.js';
import { compressionOf } from '../../formats/compression.js';
import { readConsulExport } from '../../formats/consul-export-reader.js';
import { inflate, storedInflateCap } from '../../formats/inflate.js';
import { readChain, openSegment, MAX_SEGMENT_INFLATED_BYTES } from '../../repository/chain-reader.js';
import { chainPath, listSegments } from '../../repository/chains.js';
import { readCatalog } from '../../repository/catalog.js';
import { segmentKey } from '../../repository/layout.js';
import { baseRevision, type Manifest } from '../../repository/manifest.js';
import type { ObjectStore } from '../../repository/object-store.js';
import { IntegrityError, ObjectExistsError, oneLine } from '../../util/errors.js';
import { hashCounter } from '../../util/hash-counter.js';
import type { Logger } from '../../util/logger.js';
import { spooledSegments, type ChainTip } from './segmenter.js';
import { CHAIN_START } from '../../formats/change-segment.js';

/** The newest base of a continuous job, from its manifests. */
export async function newestBase(store: ObjectStore, job: string): Promise<Manifest | undefined> {
  return (await readCatalog(store, { job })).filter((m) => m.details['role'] === 'base').at(-1);
}

/**
 * Where the newest chain of a job stands, read from the repository: its base, and the tail segment's
 * last revision and chain value (the tail is read whole and checked). Segments a previous process
 * spooled but never uploaded are uploaded first when they continue the chain exactly, and dropped
 * otherwise. Undefined when the job has no base yet.
 */
export async function resumeChain(store: ObjectStore, job: string, spoolDir: string, logger: Logger, base?: Manifest): Promise<ChainTip | undefined> {
  const manifest = base ?? (await newestBase(store, job));
  if (!manifest) return undefined;
  const segments = (await listSegments(store, job)).get(manifest.id) ?? [];
  const path = chainPath(manifest.id, segments, baseRevision(manifest) + 1);
  let tip: ChainTip = {
    job,
    base: manifest.id,
    baseRevision: baseRevision(manifest),
    source: { type: manifest.source.type, ...(manifest.source.clusterId ? { clusterId: manifest.source.clusterId } : {}) },
    scope: Buffer.from(manifest.scope.prefix).toString('base64'),
    last: baseRevision(manifest),
    chain: CHAIN_START,
  };
  const tail = path.segments.at(-1);
  if (tail) {
    const reader = readSegment(await openSegment(store, tail), `segment ${tail.key}`);
    const header = await reader.header();
    for await (const _ of reader.events); // checks the trailer
    tip = { ...tip, last: header.last, chain: reader.chain() };
  }
  for (const spooled of await spooledSegments(spoolDir, manifest.id)) {
    try {
      const body = await readFile(spooled.path);
      const reader = readSegment(inflate(Readable.from([body]), { compression: compressionOf(body), maxBytes: MAX_SEGMENT_INFLATED_BYTES, label: spooled.path }), spooled.path);
      const header = await reader.header();
      for await (const _ of reader.events);
      if (header.first !== tip.last + 1 || header.previous !== tip.chain) {
        logger.info(`${job}: dropping spooled segment ${spooled.path}: it does not continue the chain at ${tip.last}`);
        await rm(spooled.path, { force: true });
        continue;
      }
      await store.put(segmentKey(job, manifest.id, header.first), body, { contentLength: body.length });
      tip = { ...tip, last: header.last, chain: reader.chain() };
      logger.info(`${job}: uploaded segment ${header.first}..${header.last} spooled by an earlier run`);
    } catch (err) {
      logger.warn(`${job}: dropping spooled segment ${spooled.path}: ${err instanceof ObjectExistsError ? 'another replica wrote that revision range' : oneLine(err)}`);
    }
    await rm(spooled.path, { force: true });
  }
  return tip;
}

/** Consul: the keys of the scope at a chain's tip — the base's keys with the chain's changes applied. */
export async function chainKeys(store: ObjectStore, job: string, tip: ChainTip): Promise<Set<string>> {
  const manifest = (await readCatalog(store, { job })).find((m) => m.id === tip.base);
  if (!manifest) throw new IntegrityError(`job ${job}: the manifest of base ${tip.base} is gone`);
  const keys = new Set<string>();
  const hashed = hashCounter();
  const input = (await store.get(manifest.repository.key)).pipe(hashed);
  for await (const record of readConsulExport(inflate(input, { compression: manifest.compression, maxBytes: storedInflateCap(manifest.bytes.raw), label: manifest.id }), manifest.id)) {
    keys.add(record.key.toString('utf8'));
  }
  if (hashed.sha256() !== manifest.sha256) throw new IntegrityError(`base ${manifest.id}: its sha256 does not match the manifest; the base is damaged`);
  const segments = (await listSegments(store, job)).get(tip.base) ?? [];
  const chain = readChain(store, chainPath(tip.base, segments, tip.baseRevision + 1), tip.baseRevision, { revision: tip.last });
  for await (const event of chain.events) {
    if (event.op === 'put') keys.add(event.key.toString('utf8'));
    else keys.delete(event.key.toString('utf8'));
  }
  return keys;
}
