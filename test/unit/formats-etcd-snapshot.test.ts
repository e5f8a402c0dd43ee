import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openEtcdSnapshot } from '../../src/formats/etcd-snapshot-reader.js';
import { IntegrityError } from '../../src/util/errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kvdr-etcd-reader-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `db` followed by its sha256, as etcd frames a snapshot: the trailer check passes, the database is what is tested. */
const framed = (db: Buffer): Buffer => Buffer.concat([db, createHash('sha256').update(db).digest()]);

/** A bbolt meta page header claiming `pageSize`, with nothing valid after it. */
function metaOnly(pageSize: number, total: number): Buffer {
  const db = Buffer.alloc(total);
  db.writeUInt16LE(0x04, 8); // meta page flag
  db.writeUInt32LE(0xed0cdaed, 16);
  db.writeUInt32LE(2, 20);
  db.writeUInt32LE(pageSize, 24);
  return db;
}

async function refusal(bytes: Buffer | undefined, name: string): Promise<Error> {
  const path = join(dir, name);
  if (bytes) await writeFile(path, bytes);
  return openEtcdSnapshot(path, name).then(
    async (file) => {
      await file.close();
      return new Error('no failure');
    },
    (err: Error) => err,
  );
}

describe('etcd snapshot reader on files that are not snapshots', () => {
  it.each([
    ['an empty file', 'empty.db', Buffer.alloc(0), /^empty\.db: 0 bytes is not a bbolt database plus etcd's 32-byte sha256 trailer/],
    ['a file shorter than one page', 'short.db', randomBytes(100), /^short\.db: 100 bytes is not a bbolt database/],
    ['one 512-byte block and a matching trailer', 'block.db', framed(randomBytes(512)), /^block\.db: page 0 is not a valid bbolt meta page/],
    ['a meta page header and nothing else', 'meta.db', framed(metaOnly(4096, 512)), /^meta\.db: .*the file is damaged/],
    ['a meta page claiming a page size past the file', 'meta2.db', framed(metaOnly(4096, 1024)), /^meta2\.db: .*the file is damaged/],
    ['a bad page size', 'meta3.db', framed(metaOnly(1000, 1024)), /^meta3\.db: page size 1000 is not a power of two/],
    ['a trailer that does not match', 'bad.db', Buffer.concat([randomBytes(512), Buffer.alloc(32)]), /^bad\.db: sha256 trailer mismatch/],
  ])('refuses %s in one line', async (_what, name, bytes, message) => {
    const err = await refusal(bytes, name);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toMatch(message);
    expect(err.message).not.toContain('\n');
  });

  it('refuses a directory path', async () => {
    const err = await refusal(undefined, '.');
    expect(err).toBeInstanceOf(IntegrityError);
    expect(err.message).toBe('.: is a directory, not an etcd snapshot file; name the snapshot file itself');
  });
});
