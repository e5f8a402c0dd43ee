import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { SourceConfig } from '../config/schema.js';
import { consulAccess, type ConsulAccess } from '../sources/consul/connect.js';
import { keyPath } from '../sources/consul/consul-target.js';
import { consulRequest } from '../sources/consul/http.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { readAll } from '../util/streams.js';
import { ElectedLeadership, SLOT_KEY_TTL_SECONDS } from './leadership.js';

/**
 * Leader election through a Consul session lock: `<key>/leader` is acquired with a session of
 * `ttlSeconds` (at least Consul's minimum of 10 s) that this replica renews; a leader that dies loses
 * the session when it expires and another replica acquires the key, and a leader that cannot renew
 * stops scheduling within the TTL. Cron slots are claimed with create-only writes (`?cas=0`) under
 * `<key>/slots/`, so a slot never runs twice; Consul keys do not expire, so the leader deletes slot
 * keys older than a day as it goes.
 */
export class ConsulLeadership extends ElectedLeadership {
  private readonly access: ConsulAccess;
  private readonly id = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private session: string | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private lastSweep = 0;

  constructor(
    source: SourceConfig,
    private readonly key: string,
    ttlSeconds: number,
    logger: Logger,
  ) {
    super(Math.max(10, ttlSeconds), logger);
    this.access = consulAccess(source);
  }

  start(): void {
    this.startWatchdog();
    void this.tick();
  }

  /** Idempotent for this replica: a retried run finds its own id in the slot key and goes ahead. */
  async claimSlot(job: string, slot: Date): Promise<boolean> {
    const path = `/kv/${keyPath(`${this.key}/slots/${job}/${slot.toISOString()}`)}`;
    const created = (await this.text(await this.call('PUT', path, { cas: '0' }, this.id))).trim() === 'true';
    if (created) {
      await this.sweepSlots().catch((err: unknown) => this.logger.warn(`cannot delete old slot keys under ${this.key}/slots/ (${oneLine(err)}); they will be retried`));
      return true;
    }
    const holder = await this.call('GET', path, { raw: '' }, undefined, [404]);
    return holder.statusCode === 200 && (await this.text(holder)) === this.id;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.stopWatchdog();
    if (this.session) await this.call('PUT', `/session/destroy/${this.session}`).then((r) => r.resume(), () => undefined);
  }

  /** Renews the session (or makes one), then tries to hold the lock; runs every third of the TTL. */
  private async tick(): Promise<void> {
    if (this.closed) return;
    try {
      if (this.session) {
        const renewed = await this.call('PUT', `/session/renew/${this.session}`, {}, undefined, [404]);
        renewed.resume();
        if (renewed.statusCode === 404) {
          this.logger.warn({ id: this.id }, 'consul session expired: leadership lost');
          this.session = undefined;
          this.setLeader(false);
        }
      }
      if (!this.session) {
        const created = await this.call('PUT', '/session/create', {}, JSON.stringify({ Name: `kvdr ${this.id}`, TTL: `${this.ttlSeconds}s`, Behavior: 'release', LockDelay: '1s' }));
        this.session = (JSON.parse(await this.text(created)) as { ID: string }).ID;
      }
      const acquired = await this.call('PUT', `/kv/${keyPath(`${this.key}/leader`)}`, { acquire: this.session }, this.id);
      const held = (await this.text(acquired)).trim() === 'true';
      if (held && !this.isLeader()) this.logger.info({ id: this.id }, 'elected leader: scheduling');
      if (held) this.confirmLeader();
      else this.setLeader(false);
    } catch (err) {
      this.logger.warn({ id: this.id }, `leader election through Consul failed (${oneLine(err)}); not scheduling until it works again`);
      this.setLeader(false);
    }
    if (!this.closed) this.timer = setTimeout(() => void this.tick(), (this.ttlSeconds * 1000) / 3);
  }

  /** Deletes slot keys older than a day, at most once an hour (node-cron never fires a past slot again). */
  private async sweepSlots(): Promise<void> {
    if (Date.now() - this.lastSweep < 3_600_000) return;
    this.lastSweep = Date.now();
    const listing = await this.call('GET', `/kv/${keyPath(`${this.key}/slots/`)}`, { keys: '' }, undefined, [404]);
    if (listing.statusCode === 404) {
      listing.resume();
      return;
    }
    const cutoff = Date.now() - SLOT_KEY_TTL_SECONDS * 1000;
    for (const key of JSON.parse(await this.text(listing)) as string[]) {
      const slot = Date.parse(key.slice(key.lastIndexOf('/') + 1));
      if (slot < cutoff) (await this.call('DELETE', `/kv/${keyPath(key)}`)).resume();
    }
  }

  private call(method: 'PUT' | 'GET' | 'DELETE', path: string, query: Record<string, string> = {}, body?: string, accept?: number[]) {
    return consulRequest(this.access, {
      method,
      path,
      query,
      ...(body !== undefined ? { body } : {}),
      ...(accept ? { accept } : {}),
      what: 'take part in leader election',
      permission: `session:write and key_prefix "${this.key}/" { policy = "write" }`,
    });
  }

  private async text(response: Awaited<ReturnType<ConsulLeadership['call']>>): Promise<string> {
    return (await readAll(response)).toString('utf8');
  }

}
