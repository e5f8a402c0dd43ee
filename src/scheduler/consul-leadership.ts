import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { SourceConfig } from '../config/schema.js';
import { consulAccess, type ConsulAccess } from '../sources/consul/connect.js';
import { keyPath } from '../sources/consul/consul-target.js';
import { consulRequest } from '../sources/consul/http.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { readAll } from '../util/streams.js';
import { ElectedLeadership } from './leadership.js';

/**
 * Leader election through a Consul session lock: `<key>/leader` is acquired with a session of
 * `ttlSeconds` (at least Consul's minimum of 10 s) that this replica renews; a leader that dies loses
 * the session when it expires and another replica acquires the key. Cron slots are claimed with
 * create-only writes (`?cas=0`) under `<key>/slots/`, so a slot never runs twice.
 */
export class ConsulLeadership extends ElectedLeadership {
  private readonly access: ConsulAccess;
  private readonly id = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  private readonly ttl: number;
  private session: string | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    source: SourceConfig,
    private readonly key: string,
    ttlSeconds: number,
    private readonly logger: Logger,
  ) {
    super();
    this.access = consulAccess(source);
    this.ttl = Math.max(10, ttlSeconds);
  }

  start(): void {
    void this.tick();
  }

  async claimSlot(job: string, slot: Date): Promise<boolean> {
    const response = await this.call('PUT', `/kv/${keyPath(`${this.key}/slots/${job}/${slot.toISOString()}`)}`, { cas: '0' }, this.id);
    return (await this.text(response)).trim() === 'true';
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.setLeader(false);
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
        const created = await this.call('PUT', '/session/create', {}, JSON.stringify({ Name: `kvdr ${this.id}`, TTL: `${this.ttl}s`, Behavior: 'release', LockDelay: '1s' }));
        this.session = (JSON.parse(await this.text(created)) as { ID: string }).ID;
      }
      const acquired = await this.call('PUT', `/kv/${keyPath(`${this.key}/leader`)}`, { acquire: this.session }, this.id);
      const held = (await this.text(acquired)).trim() === 'true';
      if (held && !this.isLeader()) this.logger.info({ id: this.id }, 'elected leader: scheduling');
      this.setLeader(held);
    } catch (err) {
      this.logger.warn({ id: this.id }, `leader election through Consul failed (${oneLine(err)}); not scheduling until it works again`);
      this.setLeader(false);
    }
    if (!this.closed) this.timer = setTimeout(() => void this.tick(), (this.ttl * 1000) / 3);
  }

  private call(method: 'PUT' | 'GET', path: string, query: Record<string, string> = {}, body?: string, accept?: number[]) {
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
