import { createHash } from 'node:crypto';

/**
 * Change segments: the continuous part of an etcd-continuous or consul-continuous job. A chain is a
 * base export at revision R (etcd revision, Consul raft index) followed by segments that together hold
 * every change of the scope from R+1 on, in revision order. One segment is NDJSON:
 *
 *   {"format":"kvdr-segment","version":1, ...SegmentHeader}
 *   {"op":"put","key":b64,"value":b64,"rev":n,"create":n,"ver":n,"lease":"0","at":ms}   (Consul: "flags":n)
 *   {"op":"del","key":b64,"rev":n,"at":ms}
 *   {"trailer":{"count":n,"chain":hex,"headerSha256":hex}}
 *
 * Integrity is a hash chain over the events of the whole chain, not per object: `chain` after an event
 * is sha256(previous chain ‖ the event's line). A segment's header names the chain value it starts
 * from (`previous`, the base's is 64 zeros) and its trailer the value it ends at, so segments link
 * into one verifiable sequence, and a merged segment — the same events re-encoded (lines are canonical)
 * — starts and ends on exactly the values of the small segments it replaces.
 */
export const SEGMENT_FORMAT = 'kvdr-segment';
export const SEGMENT_VERSION = 1;
export const CHAIN_START = '0'.repeat(64);

export interface SegmentHeader {
  format: typeof SEGMENT_FORMAT;
  version: typeof SEGMENT_VERSION;
  job: string;
  source: { type: 'etcd' | 'consul'; clusterId?: string };
  /** The scope prefix, base64 (etcd keys are bytes). */
  scope: string;
  /** The backup id of the chain's base, and the revision (or index) it is consistent at. */
  base: string;
  baseRevision: number;
  /** Revisions this segment covers, inclusive: first is the previous segment's last + 1. */
  first: number;
  last: number;
  /** The chain value this segment starts from. */
  previous: string;
  /** When the segment was cut: every change observed before this time is in it or an earlier one. */
  durableAt: string;
}

/** One change of the scope, as the source reported it. */
export type ChangeEvent =
  | {
      op: 'put';
      key: Buffer;
      value: Buffer;
      /** etcd mod revision; Consul ModifyIndex. */
      revision: number;
      /** etcd create revision; Consul CreateIndex. */
      createRevision: number;
      /** etcd version; Consul: 0. */
      version: number;
      /** etcd lease id (decimal); Consul: "0". */
      lease: string;
      /** Consul flags (etcd: absent). */
      flags?: number;
      /** Unix ms when kvdr observed the change. */
      at: number;
    }
  | { op: 'del'; key: Buffer; revision: number; at: number };

export interface SegmentTrailer {
  trailer: { count: number; chain: string; headerSha256: string };
}

/** The canonical line of an event: the same event always encodes to the same bytes. */
export function eventLine(event: ChangeEvent): string {
  const key = event.key.toString('base64');
  if (event.op === 'del') return `{"op":"del","key":"${key}","rev":${event.revision},"at":${event.at}}`;
  if (!/^\d+$/.test(event.lease)) throw new TypeError(`lease id must be decimal digits, got ${JSON.stringify(event.lease)}`);
  const flags = event.flags === undefined ? '' : `,"flags":${event.flags}`;
  return `{"op":"put","key":"${key}","value":"${event.value.toString('base64')}","rev":${event.revision},"create":${event.createRevision},"ver":${event.version},"lease":"${event.lease}"${flags},"at":${event.at}}`;
}

/** The next chain value: sha256(previous ‖ line), over the line's UTF-8 bytes without its newline. */
export function chainNext(previous: string, line: string | Buffer): string {
  return createHash('sha256').update(previous, 'hex').update(line).digest('hex');
}

/** Encodes one segment. Segments are bounded (`segmentBytes`), so this builds it whole. */
export function encodeSegment(header: Omit<SegmentHeader, 'format' | 'version'>, events: readonly ChangeEvent[]): { bytes: Buffer; chain: string } {
  const headerLine = JSON.stringify({ format: SEGMENT_FORMAT, version: SEGMENT_VERSION, ...header });
  const lines = [headerLine];
  let chain = header.previous;
  for (const event of events) {
    const line = eventLine(event);
    chain = chainNext(chain, line);
    lines.push(line);
  }
  const headerSha256 = createHash('sha256').update(headerLine).digest('hex');
  const trailer: SegmentTrailer = { trailer: { count: events.length, chain, headerSha256 } };
  lines.push(JSON.stringify(trailer), '');
  return { bytes: Buffer.from(lines.join('\n')), chain };
}
