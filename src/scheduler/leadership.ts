import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Campaign, Etcd3, Lease } from 'etcd3';
import type { SourceConfig } from '../config/schema.js';
import { connectEtcd } from '../sources/etcd/connect.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

/** Who may schedule. A single replica always may; with election, only the elected one. */
export interface Leadership {
  role(): 'single' | 'leader' | 'follower';
  isLeader(): boolean;
  /** Called with true when this replica becomes leader, false when it stops being one. */
  onChange(listener: (leader: boolean) => void): void;
  /** Claims one cron slot of a job for this replica; false if another replica has it. Claiming again is
   * true for the replica that holds it, so a retried run goes ahead. */
  claimSlot(job: string, slot: Date): Promise<boolean>;
  close(): Promise<void>;
}

export class SingleReplica implements Leadership {
  role(): 'single' {
    return 'single';
  }
  isLeader(): boolean {
    return true;
  }
  onChange(): void {}
  claimSlot(): Promise<boolean> {
    return Promise.resolve(true);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * The leader flag and its listeners, shared by the elected backends, plus the watchdog that makes a
 * replica stop scheduling within the TTL when it cannot confirm its leadership: by the time the TTL
 * runs out another replica may hold the lock, and the client libraries only report a lost lease (etcd3:
 * about twice the TTL) or a hung request (Consul: up to 30 s) well after that.
 */
export abstract class ElectedLeadership implements Leadership {
  private leader = false;
  private confirmedAt = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly listeners: ((leader: boolean) => void)[] = [];

  protected constructor(
    /** Seconds a lock outlives its holder's last renewal. */
    protected readonly ttlSeconds: number,
    protected readonly logger: Logger,
  ) {}

  role(): 'leader' | 'follower' {
    return this.leader ? 'leader' : 'follower';
  }

  isLeader(): boolean {
    return this.leader;
  }

  onChange(listener: (leader: boolean) => void): void {
    this.listeners.push(listener);
  }

  abstract claimSlot(job: string, slot: Date): Promise<boolean>;
  abstract close(): Promise<void>;

  /** Two thirds of the TTL: one renewal (every third) may be missed before stepping down. */
  protected get stepDownMs(): number {
    return (this.ttlSeconds * 2000) / 3;
  }

  /** The backend has just proved this replica holds the lock. */
  protected confirmLeader(): void {
    this.confirmedAt = Date.now();
    this.setLeader(true);
  }

  protected setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    for (const listener of this.listeners) listener(leader);
  }

  protected startWatchdog(): void {
    this.watchdog ??= setInterval(() => {
      if (!this.leader || Date.now() - this.confirmedAt <= this.stepDownMs) return;
      this.logger.warn(`leadership not confirmed for ${Math.round((Date.now() - this.confirmedAt) / 1000)} s: no longer scheduling until it is`);
      this.setLeader(false);
    }, 250).unref();
  }

  protected stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.setLeader(false);
  }
}

/** A slot key lives a day (plus the hour a slot lease is reused): it only has to outlive a failover. */
export const SLOT_KEY_TTL_SECONDS = 25 * 3600;
const SLOT_LEASE_REUSE_MS = 3_600_000;

/**
 * Leader election through etcd (etcd3's Election: a key under `<key>/election` held by a lease of
 * `ttlSeconds`). A leader that loses its lease — crashed, partitioned — is replaced once the lease
 * expires; it checks every third of the TTL that it is still the elected one and stops scheduling when
 * it cannot. Each cron slot is claimed with a create-if-absent key under `<key>/slots/`, so a slot is
 * never run twice even while two replicas briefly both believe they lead.
 */
export class EtcdLeadership extends ElectedLeadership {
  private readonly etcd: Etcd3;
  private readonly id = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private campaign: Campaign | undefined;
  private closed = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private slotLease: { lease: Lease; grantedAt: number } | undefined;

  constructor(
    source: SourceConfig,
    private readonly key: string,
    ttlSeconds: number,
    logger: Logger,
  ) {
    super(ttlSeconds, logger);
    this.etcd = connectEtcd(source);
  }

  start(): void {
    this.runCampaign();
    this.startWatchdog();
    let checking = false;
    this.heartbeat = setInterval(() => {
      if (checking || this.closed) return;
      checking = true;
      this.etcd
        .election(`${this.key}/election`, this.ttlSeconds)
        .leader()
        .then((leader) => {
          if (leader === this.id && !this.closed) this.confirmLeader();
        })
        .catch(() => undefined) // unconfirmed: the watchdog decides
        .finally(() => (checking = false));
    }, (this.ttlSeconds * 1000) / 3).unref();
  }

  /**
   * Idempotent for this replica: a retry of a run claims its slot again and gets it, because the key
   * holds this replica's id. The slot keys' lease is not kept alive, so they expire on their own.
   */
  async claimSlot(job: string, slot: Date): Promise<boolean> {
    const key = `${this.key}/slots/${job}/${slot.toISOString()}`;
    const result = await this.etcd
      .if(key, 'Create', '==', 0)
      .then(this.etcd.put(key).value(this.id).lease(await this.slotLeaseId()))
      .else(this.etcd.get(key))
      .commit()
      .catch((err: unknown) => {
        // The lease may be gone (etcd restored, lease revoked): the next claim grants a new one.
        if (/lease not found/i.test(oneLine(err))) this.slotLease = undefined;
        throw err;
      });
    if (result.succeeded) return true;
    return result.responses[0]?.response_range?.kvs[0]?.value.toString() === this.id;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.stopWatchdog();
    await this.campaign?.resign().catch(() => undefined);
    this.etcd.close();
  }

  private async slotLeaseId(): Promise<string> {
    if (!this.slotLease || Date.now() - this.slotLease.grantedAt > SLOT_LEASE_REUSE_MS) {
      this.slotLease = { lease: this.etcd.lease(SLOT_KEY_TTL_SECONDS, { autoKeepAlive: false }), grantedAt: Date.now() };
    }
    const current = this.slotLease;
    try {
      return await current.lease.grant();
    } catch (err) {
      // etcd3 keeps a failed grant and fails every later grant() of that lease at once: start afresh.
      if (this.slotLease === current) this.slotLease = undefined;
      throw err;
    }
  }

  private runCampaign(): void {
    if (this.closed) return;
    const campaign = this.etcd.election(`${this.key}/election`, this.ttlSeconds).campaign(this.id);
    this.campaign = campaign;
    campaign.on('elected', () => {
      this.logger.info({ id: this.id }, 'elected leader: scheduling');
      this.confirmLeader();
    });
    campaign.on('error', (err: Error) => {
      this.logger.warn({ id: this.id }, `leadership lost or campaign failed (${oneLine(err)}); campaigning again`);
      this.setLeader(false);
      setTimeout(() => this.runCampaign(), 1_000).unref();
    });
  }
}
