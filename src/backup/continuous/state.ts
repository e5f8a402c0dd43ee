/** What status pages and metrics show of a continuous job. */
export interface ContinuousState {
  job: string;
  /** When this run of the job started: counters below count from it. */
  epoch: number;
  following: boolean;
  base?: string;
  durableRevision?: number;
  receivedRevision?: number;
  lagSeconds: number;
  /**
   * Unix ms up to which every change of the scope is in the repository: it advances through quiet
   * periods while the source is followed (nothing to write, nothing missing), and stops when it is not.
   */
  durableAt?: number;
  spoolBytes: number;
  segments: number;
  segmentBytes: number;
  gaps: number;
  lastError?: string;
}
