import { createHash } from 'node:crypto';

/**
 * Finds its way around a bbolt file (an etcd snapshot without its 32-byte trailer) so the fuzz
 * corpus can damage chosen structures: meta pages, the `key` bucket's pages, leaf and branch elements.
 * Layout facts from /work/shared/notes/etcd-snapshot-format.md; little-endian (amd64).
 */

export const TRAILER = 32;
const PAGE_HEADER = 16;
const ELEMENT = 16;
export const PAGE_BRANCH = 0x01;
export const PAGE_LEAF = 0x02;

export interface PageRef {
  id: number;
  offset: number;
  flags: number;
  count: number;
}

export class BboltFile {
  readonly pageSize: number;

  constructor(readonly db: Buffer) {
    this.pageSize = db.readUInt32LE(PAGE_HEADER + 8);
    if (db.readUInt32LE(PAGE_HEADER) !== 0xed0cdaed) throw new Error('not a bbolt file');
  }

  /** Byte offset of meta page `n` (0 or 1)'s meta struct. */
  metaOffset(n: 0 | 1): number {
    return n * this.pageSize + PAGE_HEADER;
  }

  rootPage(): number {
    return Number(this.db.readBigUInt64LE(this.metaOffset(0) + 16));
  }

  page(id: number): PageRef {
    const offset = id * this.pageSize;
    return { id, offset, flags: this.db.readUInt16LE(offset + 8), count: this.db.readUInt16LE(offset + 10) };
  }

  /** Offset of element `i` of a page (leaf and branch elements are both 16 bytes). */
  element(page: PageRef, i: number): number {
    return page.offset + PAGE_HEADER + i * ELEMENT;
  }

  leafKey(page: PageRef, i: number): Buffer {
    const e = this.element(page, i);
    const pos = this.db.readUInt32LE(e + 4);
    return this.db.subarray(e + pos, e + pos + this.db.readUInt32LE(e + 8));
  }

  /** Offset of leaf element i's value. */
  leafValueOffset(page: PageRef, i: number): number {
    const e = this.element(page, i);
    return e + this.db.readUInt32LE(e + 4) + this.db.readUInt32LE(e + 8);
  }

  branchChild(page: PageRef, i: number): number {
    return Number(this.db.readBigUInt64LE(this.element(page, i) + 8));
  }

  /** The `key` bucket's entry in the root leaf: where its bucket header (root pgid, sequence) is. */
  keyBucketHeaderOffset(): number {
    const root = this.page(this.rootPage());
    if (root.flags !== PAGE_LEAF) throw new Error('root bucket page is not a leaf (more buckets than expected)');
    for (let i = 0; i < root.count; i++) {
      if (this.leafKey(root, i).toString('latin1') === 'key') return this.leafValueOffset(root, i);
    }
    throw new Error('no key bucket');
  }

  keyBucketRoot(): PageRef {
    const root = Number(this.db.readBigUInt64LE(this.keyBucketHeaderOffset()));
    if (root === 0) throw new Error('key bucket is inline: fill the seed with more keys');
    return this.page(root);
  }

  /** The first leaf under the key bucket (following first children down). */
  firstKeyLeaf(): PageRef {
    let page = this.keyBucketRoot();
    for (let depth = 0; page.flags === PAGE_BRANCH && depth < 10; depth++) page = this.page(this.branchChild(page, 0));
    if (page.flags !== PAGE_LEAF) throw new Error('no leaf under the key bucket');
    return page;
  }
}

/** FNV-1a 64 over meta[0,56): what bbolt checks a meta page with. */
export function metaChecksum(db: Buffer, metaOffset: number): bigint {
  let hash = 0xcbf29ce484222325n;
  for (let i = 0; i < 56; i++) {
    hash ^= BigInt(db[metaOffset + i] as number);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash;
}

/** Recomputes both meta checksums, so only the structural damage remains. */
export function resumMetas(db: Buffer, file: BboltFile): void {
  for (const n of [0, 1] as const) {
    const at = file.metaOffset(n);
    db.writeBigUInt64LE(metaChecksum(db, at), at + 56);
  }
}

/** db ‖ sha256(db): what `etcdctl snapshot save` writes. */
export function withTrailer(db: Buffer): Buffer {
  return Buffer.concat([db, createHash('sha256').update(db).digest()]);
}

/** The bbolt part of a snapshot file (trailer cut off). */
export function dbOf(snapshot: Buffer): Buffer {
  return Buffer.from(snapshot.subarray(0, snapshot.length - TRAILER));
}
