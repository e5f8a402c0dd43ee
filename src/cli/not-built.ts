import { NotImplementedError } from '../util/errors.js';

/** Action of a command the contract names but this version does not implement yet: exit 1, say so. */
export function notBuiltYet(name: string): () => never {
  return () => {
    throw new NotImplementedError(name);
  };
}
