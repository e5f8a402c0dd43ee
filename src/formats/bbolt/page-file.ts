import type { FileHandle } from 'node:fs/promises';
import { IntegrityError } from '../../util/errors.js';

/** Page types, one flag per page (bbolt page.go). */
export const BRANCH = 0x01;
export const LEAF = 0x02;
export const META = 0x04;

const MAGIC = 0xed0cdaed;
const MAGIC_SWAPPED = 0xedda0ced; // what a big-endian file reads as on a little-endian reader
const PAGE_HEADER = 16;
const MIN_PAGE_SIZE = 512;
const MAX_PAGE_SIZE = 1 << 20;
const READ_AHEAD = 64 * 1024;

export interface Meta {
  pageSize: number;
  rootPgid: bigint;
  /** High-water mark: pages 0..pgid-1 are in use. */
  pgid: bigint;
  txid: bigint;
}

/** A page read from the file: its header and all its bytes (including overflow pages). */
export interface Page {
  id: bigint;
  flags: number;
  count: number;
  bytes: Buffer;
}

/**
 * Random access to the pages of a bbolt database file, read on demand: memory holds the pages being
 * walked, never the file. Little-endian only (amd64, arm64), as etcd writes it there.
 */
export class PageFile {
  private constructor(
    private readonly file: FileHandle,
    readonly meta: Meta,
    private readonly dataBytes: number,
    private readonly label: string,
  ) {}

  private block: { start: number; bytes: Buffer } | undefined;

  /** Opens a database whose data ends at `dataBytes` (an etcd snapshot's trailer is not part of it). */
  static async open(file: FileHandle, dataBytes: number, label: string): Promise<PageFile> {
    const first = await readAt(file, 0, Math.min(dataBytes, 4096 + 128));
    const pageSize = metaAt(first, 0, label, true)?.pageSize;
    if (!pageSize) throw new IntegrityError(`${label}: page 0 is not a valid bbolt meta page; the file is damaged or not an etcd snapshot`);
    // Both metas are checked against pageSize; a damaged size must fail here, not as a wild read.
    if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) throw damaged(label, `page size ${pageSize} is not a power of two between 512 B and 1 MiB`);
    const both = await readAt(file, 0, Math.min(dataBytes, 2 * pageSize));
    const metas = [metaAt(both, 0, label, false), metaAt(both, pageSize, label, false)].filter((m): m is Meta => m !== undefined);
    const meta = metas.sort((a, b) => (a.txid > b.txid ? -1 : 1))[0];
    if (!meta) throw damaged(label, 'neither bbolt meta page checks out');
    // Every page below the high-water mark must be in the file, so page() never reads past its end.
    const pages = BigInt(Math.floor(dataBytes / pageSize));
    if (meta.pgid < 2n || meta.pgid > pages) throw damaged(label, `the meta page counts ${meta.pgid} pages but only ${pages} are in the file`);
    return new PageFile(file, meta, dataBytes, label);
  }

  async page(id: bigint): Promise<Page> {
    const { pageSize } = this.meta;
    if (id < 2n || id >= this.meta.pgid) throw damaged(this.label, `reference to page ${id} outside the database (pages 2..${this.meta.pgid - 1n})`);
    const offset = Number(id) * pageSize;
    const head = await this.bytesAt(offset, pageSize);
    const overflow = head.readUInt32LE(12);
    const size = (1 + overflow) * pageSize;
    if (offset + size > this.dataBytes) throw damaged(this.label, `page ${id} runs past the end of the database`);
    const bytes = overflow === 0 ? head : await this.bytesAt(offset, size);
    if (bytes.readBigUInt64LE(0) !== id) throw damaged(this.label, `page ${id} says it is page ${bytes.readBigUInt64LE(0)}`);
    return { id, flags: bytes.readUInt16LE(8), count: bytes.readUInt16LE(10), bytes };
  }

  /**
   * Reads ahead: bbolt writes the pages of a transaction together, so a walk mostly moves forward
   * through the file, and one 64 KiB read serves the pages after it — a third of the reader's time
   * went to a round trip per 4 KiB page. Only the latest block is kept.
   */
  private async bytesAt(offset: number, length: number): Promise<Buffer> {
    const block = this.block;
    if (block && offset >= block.start && offset + length <= block.start + block.bytes.length) {
      return block.bytes.subarray(offset - block.start, offset - block.start + length);
    }
    if (length >= READ_AHEAD) return readAt(this.file, offset, length);
    this.block = { start: offset, bytes: await readAt(this.file, offset, Math.min(READ_AHEAD, this.dataBytes - offset)) };
    return this.block.bytes.subarray(0, length);
  }
}

/** The reader's one refusal for a structurally broken database: exit 4, naming what is wrong. */
export function damaged(label: string, what: string): IntegrityError {
  return new IntegrityError(`${label}: ${what}; the file is damaged`);
}

function metaAt(buffer: Buffer, offset: number, label: string, headerOnly: boolean): Meta | undefined {
  if (buffer.length < offset + PAGE_HEADER + 64) return undefined;
  const m = offset + PAGE_HEADER;
  const magic = buffer.readUInt32LE(m);
  if (magic === MAGIC_SWAPPED) throw new IntegrityError(`${label}: a big-endian bbolt file; kvdr reads little-endian databases (amd64, arm64) only`);
  if (magic !== MAGIC) return undefined;
  const version = buffer.readUInt32LE(m + 4);
  if (version !== 2) throw new IntegrityError(`${label}: bbolt format version ${version} is unknown (kvdr reads version 2)`);
  const pageSize = buffer.readUInt32LE(m + 8);
  if (headerOnly) return { pageSize, rootPgid: 0n, pgid: 0n, txid: 0n };
  if (fnv1a64(buffer.subarray(m, m + 56)) !== buffer.readBigUInt64LE(m + 56)) return undefined;
  return { pageSize, rootPgid: buffer.readBigUInt64LE(m + 16), pgid: buffer.readBigUInt64LE(m + 40), txid: buffer.readBigUInt64LE(m + 48) };
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK = (1n << 64n) - 1n;

/** FNV-1a 64, bbolt's meta checksum. */
export function fnv1a64(bytes: Buffer): bigint {
  let hash = FNV_OFFSET;
  for (const b of bytes) hash = ((hash ^ BigInt(b)) * FNV_PRIME) & MASK;
  return hash;
}

async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await file.read(buffer, 0, length, position);
  return buffer.subarray(0, bytesRead);
}
