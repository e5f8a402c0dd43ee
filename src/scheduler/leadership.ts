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
  /** Claims one cron slot of a job for this replica; false if a replica already ran it. */
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

/** The leader flag and its listeners, shared by the elected backends. */
export abstract class ElectedLeadership implements Leadership {
  private leader = false;
  private readonly listeners: ((leader: boolean) => void)[] = [];

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

  protected setLeader(leader: boolean): void {
    if (leader === this.leader) return;
    this.leader = leader;
    for (const listener of this.listeners) listener(leader);
  }
}

/**
 * Leader election through etcd (etcd3's Election: a key under `<key>/election` held by a lease of
 * `ttlSeconds`). A leader that loses its lease — crashed, partitioned — is replaced once the lease
 * expires. Each cron slot is claimed with a create-if-absent key under `<key>/slots/`, so a slot is
 * never run twice even while two replicas briefly both believe they lead.
 */
export class EtcdLeadership extends ElectedLeadership {
  private readonly etcd: Etcd3;
  private readonly id = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private campaign: Campaign | undefined;
  private closed = false;
  private slotLease: Lease | undefined;

  constructor(
    source: SourceConfig,
    private readonly key: string,
    private readonly ttlSeconds: number,
    private readonly logger: Logger,
  ) {
    super();
    this.etcd = connectEtcd(source);
  }

  start(): void {
    this.runCampaign();
  }

  async claimSlot(job: string, slot: Date): Promise<boolean> {
    // Slot keys expire after a day: node-cron never fires a past slot again, so they only need to
    // outlive a failover.
    this.slotLease ??= this.etcd.lease(86_400);
    const key = `${this.key}/slots/${job}/${slot.toISOString()}`;
    const result = await this.etcd
      .if(key, 'Create', '==', 0)
      .then(this.etcd.put(key).value(this.id).lease(await this.slotLease.grant()))
      .commit();
    return result.succeeded;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.setLeader(false);
    await this.campaign?.resign().catch(() => undefined);
    await this.slotLease?.revoke().catch(() => undefined);
    this.etcd.close();
  }

  private runCampaign(): void {
    if (this.closed) return;
    const campaign = this.etcd.election(`${this.key}/election`, this.ttlSeconds).campaign(this.id);
    this.campaign = campaign;
    campaign.on('elected', () => {
      this.logger.info({ id: this.id }, 'elected leader: scheduling');
      this.setLeader(true);
    });
    campaign.on('error', (err: Error) => {
      this.logger.warn({ id: this.id }, `leadership lost or campaign failed (${oneLine(err)}); campaigning again`);
      this.setLeader(false);
      setTimeout(() => this.runCampaign(), 1_000).unref();
    });
  }
}
