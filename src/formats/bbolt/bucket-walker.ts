import { IntegrityError } from '../../util/errors.js';
import { BRANCH, LEAF, type Page, type PageFile } from './page-file.js';

const PAGE_HEADER = 16;
const ELEMENT = 16;
const BUCKET_LEAF_FLAG = 0x01;
const BUCKET_HEADER = 16;

export interface LeafEntry {
  key: Buffer;
  value: Buffer;
  /** The value is a nested bucket's header. */
  isBucket: boolean;
}

/** Where a bucket's B+tree starts: a page in the file, or a page inlined in its parent's value. */
export type BucketRoot = { pgid: bigint } | { inline: Page };

/** Every entry of a bucket in key order, reading one page at a time. */
export async function* walkBucket(file: PageFile, root: BucketRoot, label: string): AsyncIterable<LeafEntry> {
  const page = 'inline' in root ? root.inline : await file.page(root.pgid);
  if (page.flags === LEAF) {
    yield* leafEntries(page);
  } else if (page.flags === BRANCH) {
    for (let i = 0; i < page.count; i++) {
      const at = PAGE_HEADER + i * ELEMENT;
      yield* walkBucket(file, { pgid: page.bytes.readBigUInt64LE(at + 8) }, label);
    }
  } else {
    throw new IntegrityError(`${label}: page ${page.id} has type ${page.flags}, expected a branch or leaf page; the file is damaged`);
  }
}

function* leafEntries(page: Page): Iterable<LeafEntry> {
  const b = page.bytes;
  for (let i = 0; i < page.count; i++) {
    const at = PAGE_HEADER + i * ELEMENT;
    const flags = b.readUInt32LE(at);
    const pos = b.readUInt32LE(at + 4);
    const ksize = b.readUInt32LE(at + 8);
    const vsize = b.readUInt32LE(at + 12);
    const keyAt = at + pos; // pos counts from the element itself
    yield { key: b.subarray(keyAt, keyAt + ksize), value: b.subarray(keyAt + ksize, keyAt + ksize + vsize), isBucket: (flags & BUCKET_LEAF_FLAG) !== 0 };
  }
}

/** The root of a nested bucket from its header value (root pgid 0 means inlined). */
export function bucketRoot(value: Buffer): BucketRoot {
  const pgid = value.readBigUInt64LE(0);
  if (pgid !== 0n) return { pgid };
  const inline = value.subarray(BUCKET_HEADER);
  return { inline: { id: 0n, flags: inline.readUInt16LE(8), count: inline.readUInt16LE(10), bytes: inline } };
}

/** Finds a top-level bucket by name. */
export async function topLevelBucket(file: PageFile, name: string, label: string): Promise<BucketRoot | undefined> {
  for await (const entry of walkBucket(file, { pgid: file.meta.rootPgid }, label)) {
    if (entry.isBucket && entry.key.toString('latin1') === name) return bucketRoot(entry.value);
  }
  return undefined;
}
