import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsStore } from '../../src/repository/fs-store.js';
import { objectStoreConformance } from './object-store-conformance.js';

objectStoreConformance('filesystem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kvdr-fs-store-'));
  return {
    store: new FsStore({ path: join(dir, 'repo') }),
    cleanup: async () => {
      // A put that failed or lost a race must not leave temp files behind.
      const leftovers = (await readdir(dir, { recursive: true })).filter((f) => f.includes('.kvdr-tmp-'));
      await rm(dir, { recursive: true, force: true });
      if (leftovers.length > 0) throw new Error(`temp files left behind: ${leftovers.join(', ')}`);
    },
  };
});
