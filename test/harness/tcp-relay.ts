import type { Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Transform } from 'node:stream';

export interface Relay {
  port: number;
  /** Drops every connection and refuses new ones, as a network partition would, until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export interface RelayHooks {
  /** Makes a transform for each connection's server-to-client bytes (to damage them). */
  downstream?: () => Transform;
  /** Makes a transform for each connection's client-to-server bytes (to read or damage them). */
  upstream?: () => Transform;
  /** Sees the running total of server-to-client bytes. */
  onBytes?: (total: number) => void;
}

/** Listens on a free loopback port and returns it. */
export async function listen(server: Server | HttpServer): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return (server.address() as AddressInfo).port;
}

/** A TCP relay on loopback to a local port: real services behind a network the test controls. */
export async function tcpRelay(target: number, hooks: RelayHooks = {}): Promise<Relay> {
  const sockets = new Set<Socket>();
  let total = 0;
  let cut = false;
  const server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    if (hooks.upstream) client.pipe(hooks.upstream()).pipe(upstream);
    else client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      total += chunk.length;
      hooks.onBytes?.(total);
    });
    if (hooks.downstream) upstream.pipe(hooks.downstream()).pipe(client);
    else upstream.pipe(client);
  });
  const port = await listen(server);
  const dropAll = (): void => {
    for (const s of sockets) s.destroy();
  };
  return {
    port,
    cut: () => {
      cut = true;
      dropAll();
    },
    restore: () => {
      cut = false;
    },
    close: async () => {
      dropAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
