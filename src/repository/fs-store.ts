import { createWriteStream, type Dirent } from 'node:fs';
import { link, mkdir, open, readdir, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ObjectExistsError, ObjectNotFoundError, RepositoryError } from '../util/errors.js';
import { assertValidKey, type ObjectInfo, type ObjectStore, type PutOptions, type PutResult, type StoreProtection } from './object-store.js';

const TEMP_MARKER = '.kvdr-tmp-';

export interface FsStoreOptions {
  /** Directory that holds the repository; created on first write. */
  path: string;
}

/**
 * Repository in a local directory. Writes go to a temp file that is fsynced and then hard-linked into
 * place: link(2) fails if the name exists, which makes the write both atomic and write-once.
 */
export class FsStore implements ObjectStore {
  readonly location: string;
  private readonly root: string;

  constructor(options: FsStoreOptions) {
    this.root = options.path;
    this.location = `file://${options.path}`;
  }

  async put(key: string, body: Readable | Buffer, _options: PutOptions = {}): Promise<PutResult> {
    const path = this.pathOf(key);
    if (await this.head(key)) throw new ObjectExistsError(key);
    const dir = dirname(path);
    await this.guard(`create ${dir}`, () => mkdir(dir, { recursive: true }));
    const temp = `${path}${TEMP_MARKER}${randomBytes(6).toString('hex')}`;
    try {
      const source = Buffer.isBuffer(body) ? Readable.from([body]) : body;
      await this.guard(`write ${temp}`, () => pipeline(source, createWriteStream(temp, { flags: 'wx' })));
      await this.guard(`fsync ${temp}`, () => fsyncPath(temp));
      try {
        await link(temp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ObjectExistsError(key);
        throw this.wrap(`link ${path}`, err);
      }
      await fsyncPath(dir);
    } finally {
      await unlink(temp).catch(() => undefined);
    }
    const info = await this.head(key);
    if (!info) throw new RepositoryError(`${this.location}: ${key} vanished right after it was written`);
    return info;
  }

  async get(key: string): Promise<Readable> {
    const path = this.pathOf(key);
    try {
      const handle = await open(path, 'r');
      return handle.createReadStream();
    } catch (err) {
      if (isMissing(err)) throw new ObjectNotFoundError(key);
      throw this.wrap(`read ${path}`, err);
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const path = this.pathOf(key);
    try {
      const s = await stat(path);
      return s.isFile() ? { key, size: s.size, lastModified: s.mtime } : undefined;
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw this.wrap(`stat ${path}`, err);
    }
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    // Start the walk at the deepest directory the prefix names, so listing one job does not read all.
    const slash = prefix.lastIndexOf('/');
    const base = slash >= 0 ? prefix.slice(0, slash) : '';
    yield* this.walk(base, prefix);
  }

  /** A directory has neither versioning nor object lock: anyone with write access can delete. */
  protection(): Promise<StoreProtection> {
    return Promise.resolve({ versioning: 'unsupported', objectLock: { enabled: false } });
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (!isMissing(err)) throw this.wrap(`delete ${path}`, err);
    }
  }

  async close(): Promise<void> {}

  private async *walk(relDir: string, prefix: string): AsyncIterable<ObjectInfo> {
    const dir = relDir === '' ? this.root : join(this.root, ...relDir.split('/'));
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return;
      throw this.wrap(`list ${dir}`, err);
    }
    // S3 lists in byte order of the whole key, so a directory `a` sorts as `a/`: after `a-b` and `a.b`.
    const sortKey = (e: Dirent): Buffer => Buffer.from(e.isDirectory() ? `${e.name}/` : e.name);
    entries.sort((a, b) => Buffer.compare(sortKey(a), sortKey(b)));
    for (const entry of entries) {
      if (entry.name.includes(TEMP_MARKER)) continue;
      const key = relDir === '' ? entry.name : `${relDir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) yield* this.walk(key, prefix);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        const s = await stat(join(dir, entry.name)).catch(() => undefined);
        if (s) yield { key, size: s.size, lastModified: s.mtime };
      }
    }
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return join(this.root, ...key.split('/'));
  }

  private async guard<T>(what: string, action: () => Promise<T>): Promise<T> {
    try {
      return await action();
    } catch (err) {
      throw this.wrap(what, err);
    }
  }

  private wrap(what: string, err: unknown): Error {
    if (err instanceof RepositoryError || err instanceof ObjectExistsError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    const hint =
      code === 'ENOSPC'
        ? 'the disk is full; free space or point the repository elsewhere'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied; check the owner and mode of the repository directory'
          : code === 'EROFS'
            ? 'the filesystem is read-only'
            : (err as Error).message;
    return new RepositoryError(`${this.location}: cannot ${what}: ${hint}`, { cause: err });
  }
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}
