import { setFlagsFromString } from 'node:v8';

/**
 * Keeps V8's young generation at its start-up size (a few MiB) instead of letting it grow to
 * 3 x 16 MiB: for the commands that stream backups, `kvdr backup` and `kvdr serve`, which call it
 * before loading anything else (kvdr.ts). V8 reads the growth factor each time it considers growing
 * the young generation, so setting it at run time works, unlike the start-up option
 * `--max-semi-space-size` that has the same effect.
 *
 * Why: a streamed backup leaves a trail of short-lived Buffers (grpc-js and Node's HTTP/2 allocate one
 * per message and per frame, twice the snapshot's size in all). Their memory lives outside the heap and
 * is freed only when a scavenge collects their small wrappers; with a large young generation
 * scavenges come late, external memory piles up until V8 runs full mark-compacts for it, and the
 * committed young generation stays resident. On a 1.3 GB etcd snapshot to S3 (zstd) this took kvdr's
 * CPU from 8.8 to 6.4 s and its peak RSS from 254 to 188 MiB (bench/README.md).
 *
 * Restores keep V8's default: their plan pass allocates many small objects that live a little while,
 * and in a small young generation more of them survive into the old one (about 2 s more CPU and 0.5 s
 * more wall time at a million keys). `serve` runs its restore drills with the small one.
 */
export function keepYoungGenerationSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
