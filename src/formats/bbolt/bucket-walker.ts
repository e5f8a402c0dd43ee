import { BRANCH, LEAF, damaged, type Page, type PageFile } from './page-file.js';

const PAGE_HEADER = 16;
const ELEMENT = 16;
const BUCKET_LEAF_FLAG = 0x01;
const BUCKET_HEADER = 16;
/**
 * bbolt splits and merges pages so that a branch page has at least two children: a real tree is
 * about log2(pages) deep at worst, far from this. A deeper walk means a page refers back to one of
 * its ancestors. A cap costs no memory, unlike a set of visited pages.
 */
const MAX_DEPTH = 64;

export interface LeafEntry {
  key: Buffer;
  value: Buffer;
  /** The value is a nested bucket's header. */
  isBucket: boolean;
}

/** Where a bucket's B+tree starts: a page in the file, or a page inlined in its parent's value. */
export type BucketRoot = { pgid: bigint } | { inline: Page };

/**
 * The entries of a bucket in key order, one batch per leaf page (so the work per entry stays
 * synchronous), reading pages on demand. A damaged tree is refused, never
 * followed into a loop or past a page's end: the depth is capped, the pages visited cannot outnumber
 * the pages in the file (a page referenced twice), every element must lie inside its page, and keys
 * must ascend (the order readers such as etcd's newest-revision rule depend on).
 */
export async function* leafPages(file: PageFile, root: BucketRoot, label: string): AsyncIterable<LeafEntry[]> {
  const pages = Number(file.meta.pgid);
  let visited = 0;
  let last: Buffer | undefined;
  async function* visit(page: Page, depth: number): AsyncIterable<LeafEntry[]> {
    if (depth > MAX_DEPTH) throw damaged(label, `the B+tree runs deeper than ${MAX_DEPTH} levels at page ${page.id} (a page refers back to its ancestors)`);
    if (++visited > pages) throw damaged(label, `page ${page.id} is reached more often than the database has pages (a page is referenced twice)`);
    if (PAGE_HEADER + page.count * ELEMENT > page.bytes.length) throw damaged(label, `page ${page.id} claims ${page.count} elements, more than fit in it`);
    if (page.flags === BRANCH) {
      for (let i = 0; i < page.count; i++) {
        yield* visit(await file.page(page.bytes.readBigUInt64LE(PAGE_HEADER + i * ELEMENT + 8)), depth + 1);
      }
    } else if (page.flags === LEAF) {
      const entries = leafEntries(page, label);
      for (const entry of entries) {
        if (last && last.compare(entry.key) >= 0) throw damaged(label, `keys on page ${page.id} are out of order`);
        last = entry.key;
      }
      yield entries;
    } else {
      throw damaged(label, `page ${page.id} has type ${page.flags}, expected a branch or leaf page`);
    }
  }
  yield* visit('inline' in root ? root.inline : await file.page(root.pgid), 1);
}

/** Every entry of a bucket in key order (see {@link leafPages}). */
export async function* walkBucket(file: PageFile, root: BucketRoot, label: string): AsyncIterable<LeafEntry> {
  for await (const entries of leafPages(file, root, label)) yield* entries;
}

function leafEntries(page: Page, label: string): LeafEntry[] {
  const b = page.bytes;
  const entries: LeafEntry[] = [];
  for (let i = 0; i < page.count; i++) {
    const at = PAGE_HEADER + i * ELEMENT;
    const flags = b.readUInt32LE(at);
    const keyAt = at + b.readUInt32LE(at + 4); // pos counts from the element itself
    const valueAt = keyAt + b.readUInt32LE(at + 8);
    const end = valueAt + b.readUInt32LE(at + 12);
    if (end > b.length) throw damaged(label, `element ${i} of page ${page.id} reaches byte ${end} of a ${b.length}-byte page`);
    entries.push({ key: b.subarray(keyAt, valueAt), value: b.subarray(valueAt, end), isBucket: (flags & BUCKET_LEAF_FLAG) !== 0 });
  }
  return entries;
}

/** The root of a nested bucket from its header value (root pgid 0 means inlined: a leaf page follows). */
export function bucketRoot(value: Buffer, label: string): BucketRoot {
  if (value.length < BUCKET_HEADER) throw damaged(label, `a bucket header of ${value.length} bytes (expected ${BUCKET_HEADER})`);
  const pgid = value.readBigUInt64LE(0);
  if (pgid !== 0n) return { pgid };
  const inline = value.subarray(BUCKET_HEADER);
  if (inline.length < PAGE_HEADER || inline.readUInt16LE(8) !== LEAF) throw damaged(label, 'an inline bucket is not a leaf page');
  return { inline: { id: 0n, flags: LEAF, count: inline.readUInt16LE(10), bytes: inline } };
}

/** Finds a top-level bucket by name. */
export async function topLevelBucket(file: PageFile, name: string, label: string): Promise<BucketRoot | undefined> {
  for await (const entry of walkBucket(file, { pgid: file.meta.rootPgid }, label)) {
    if (entry.isBucket && entry.key.toString('latin1') === name) return bucketRoot(entry.value, label);
  }
  return undefined;
}
