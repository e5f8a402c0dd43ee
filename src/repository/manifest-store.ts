import { IntegrityError } from '../util/errors.js';
import { readAll } from '../util/streams.js';
import { manifestKey } from './layout.js';
import { manifestSchema, type Manifest } from './manifest.js';
import type { ObjectStore } from './object-store.js';

/** Writes a manifest (write-once). Call only after its artifact is stored: invariant 1. */
export async function writeManifest(store: ObjectStore, manifest: Manifest): Promise<void> {
  const checked = manifestSchema.parse(manifest);
  const body = Buffer.from(`${JSON.stringify(checked, null, 2)}\n`);
  await store.put(manifestKey(checked.job, checked.id), body, { contentType: 'application/json', contentLength: body.length });
}

export async function readManifest(store: ObjectStore, key: string): Promise<Manifest> {
  const text = (await readAll(await store.get(key))).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new IntegrityError(`${store.location}: manifest ${key} is not valid JSON; the repository may be damaged`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(
      `${store.location}: manifest ${key} is not a kvdr manifest (${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'})`,
    );
  }
  return parsed.data;
}
