import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { KvdrConfig } from '../config/schema.js';
import { oldestFirst, readCatalog } from '../repository/catalog.js';
import type { Manifest } from '../repository/manifest.js';
import { openStore } from '../repository/open-store.js';
import type { JobStatus } from '../scheduler/scheduler.js';
import { oneLine } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { ContinuousState } from '../backup/continuous/state.js';
import type { ServiceMetrics } from './metrics.js';
import { statusPage, type RepositoryProblem } from './status-page.js';

/** How long the status page waits for one repository's listing before showing the page without it. */
const PAGE_LIST_TIMEOUT_MS = 5_000;

export interface HttpServerOptions {
  config: KvdrConfig;
  logger: Logger;
  metrics: ServiceMetrics;
  jobs: () => JobStatus[];
  /** 'starting' before the scheduler is up; then 'single', or 'leader' / 'follower' with election. */
  role: () => 'starting' | 'single' | 'leader' | 'follower';
  /** The continuous jobs this replica follows (none on a follower). @defaultValue none */
  continuous?: () => readonly ContinuousState[];
}

/**
 * The service's HTTP face on service.listen: /healthz (the process answers), /readyz (the scheduler is
 * up, with the last success per job), /metrics (Prometheus), /api/backups (the catalog), /api/jobs, and
 * a status page at /.
 */
export class HttpServer {
  private readonly server: Server;
  private closed: Promise<void> | undefined;

  constructor(private readonly options: HttpServerOptions) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        options.logger.error({ err, url: req.url }, 'HTTP handler failed');
        if (!res.headersSent) send(res, 500, 'text/plain', `error: ${oneLine(err)}\n`);
      });
    });
  }

  /** Listens on host:port (port 0 picks a free one); returns the address. */
  async listen(address = this.options.config.service.listen): Promise<AddressInfo> {
    const colon = address.lastIndexOf(':');
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(Number(address.slice(colon + 1)), address.slice(0, colon), resolve);
    });
    return this.server.address() as AddressInfo;
  }

  close(): Promise<void> {
    this.closed ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closed;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://kvdr').pathname;
    const { metrics, jobs, role } = this.options;
    switch (path) {
      case '/healthz':
        return send(res, 200, 'text/plain', 'ok\n');
      case '/readyz': {
        const ready = role() !== 'starting';
        const body = { ready, role: role(), jobs: jobs().map((j) => ({ job: j.job, lastSuccess: j.lastSuccess ?? null, running: j.running })) };
        return send(res, ready ? 200 : 503, 'application/json', JSON.stringify(body));
      }
      case '/metrics':
        return send(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
      case '/api/jobs':
        return send(res, 200, 'application/json', JSON.stringify(jobs()));
      case '/api/continuous':
        return send(res, 200, 'application/json', JSON.stringify(this.options.continuous?.() ?? []));
      case '/api/backups':
        return send(res, 200, 'application/json', JSON.stringify(await this.catalog()));
      case '/': {
        const { backups, problems } = await this.catalogForPage();
        return send(res, 200, 'text/html; charset=utf-8', statusPage(jobs(), backups, role(), problems, this.options.continuous?.() ?? []));
      }
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  }

  private async catalog(): Promise<Manifest[]> {
    const all: Manifest[] = [];
    for (const repository of this.options.config.repositories) {
      const store = openStore(repository);
      try {
        all.push(...(await readCatalog(store)));
      } finally {
        await store.close();
      }
    }
    return all.sort(oldestFirst);
  }

  /**
   * The catalog for the status page: a repository that fails (or does not answer in time) becomes a
   * problem line instead of failing the page, so the jobs and the other repositories still show.
   */
  private async catalogForPage(): Promise<{ backups: Manifest[]; problems: RepositoryProblem[] }> {
    const listed = await Promise.all(
      this.options.config.repositories.map(async (repository) => {
        const store = openStore(repository);
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${PAGE_LIST_TIMEOUT_MS / 1000}s`)), PAGE_LIST_TIMEOUT_MS);
        });
        try {
          return { backups: await Promise.race([readCatalog(store), deadline]) };
        } catch (err) {
          this.options.logger.warn({ err, repository: repository.name }, 'status page: cannot list repository');
          return { backups: [], problem: { repository: repository.name, error: oneLine(err) } };
        } finally {
          clearTimeout(timer);
          // A store abandoned at the deadline closes in the background; the page does not wait for it.
          void store.close().catch(() => undefined);
        }
      }),
    );
    return {
      backups: listed.flatMap((l) => l.backups).sort(oldestFirst),
      problems: listed.flatMap((l) => ('problem' in l && l.problem ? [l.problem] : [])),
    };
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
