import { UsageError } from '../util/errors.js';

/** A point to restore to: a revision (etcd) or raft index (Consul), or a time. */
export type PointInTime = { revision: number } | { time: Date };

/** Parses `--at`: `rev:N` (also `index:N`) or an RFC 3339 time. */
export function parsePointInTime(text: string): PointInTime {
  const rev = /^(?:rev|index):(\d+)$/.exec(text);
  if (rev) return { revision: Number(rev[1]) };
  const time = Date.parse(text);
  if (/^\d{4}-\d\d-\d\dT/.test(text) && Number.isFinite(time)) return { time: new Date(time) };
  throw new UsageError(`--at ${text}: give rev:<N> (an etcd revision or Consul index) or an RFC 3339 time such as 2026-11-28T10:15:30Z`);
}

export function describePoint(point: PointInTime): string {
  return 'revision' in point ? `rev:${point.revision}` : point.time.toISOString();
}
