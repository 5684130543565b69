/**
 * A TCP proxy on 127.0.0.1 that can go silent.
 *
 * `freeze()` stops forwarding in both directions for good, without closing anything, as a dead
 * router or a dropped VPN does, so only keepalives can tell.
 *
 * `partition()` and `heal()` model a network partition that ends: while partitioned nothing
 * passes either way (data, and closes, which would travel as FIN or RST) and new connections hang
 * unanswered; on heal, what was sent meanwhile arrives (as TCP retransmission delivers it), then
 * the closes. Both ends' sockets stay open throughout unless one gives up by itself.
 *
 * `cut()` drops every open connection at once (as a NAT or a load balancer forgetting them),
 * while new ones go through: the client learns at once, the server only when it next reads or writes.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  host: string;
  port: number;
  freeze(): void;
  partition(): void;
  heal(): void;
  cut(): void;
  close(): Promise<void>;
}

/** `port`: listen on this port (e.g. one a config names before the proxy starts); a free one otherwise. */
export async function startTcpProxy(target: { host: string; port: number }, options: { port?: number } = {}): Promise<TcpProxy> {
  let frozen = false;
  let partitioned = false;
  /** What waits for the heal: writes and closes, in the order they happened. */
  let held: Array<() => void> = [];
  const sockets = new Set<Socket>();
  /** Data: dropped when frozen, held while partitioned. */
  const pass = (action: () => void) => {
    if (frozen) return;
    if (partitioned) held.push(action);
    else action();
  };
  /** Closes: a frozen link still passes them (as it always did); a partition holds them. */
  const passClose = (action: () => void) => {
    if (partitioned && !frozen) held.push(action);
    else action();
  };
  const server: Server = createServer((client) => {
    let upstream: Socket | null = null;
    const early: Buffer[] = [];
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => client.destroy());
    // A connection opened during a partition reaches the other side only once it heals.
    passClose(() => {
      if (client.destroyed) return;
      const socket = connect(target.port, target.host);
      upstream = socket;
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => socket.destroy());
      socket.on('data', (data) => pass(() => client.write(data)));
      socket.on('close', () => passClose(() => client.destroy()));
      for (const data of early) socket.write(data);
      early.length = 0;
    });
    client.on('data', (data) =>
      pass(() => {
        if (upstream) upstream.write(data);
        else early.push(data);
      }),
    );
    client.on('close', () => passClose(() => upstream?.destroy()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no proxy address');
  return {
    host: '127.0.0.1',
    port: address.port,
    freeze: () => {
      frozen = true;
    },
    partition: () => {
      partitioned = true;
    },
    heal: () => {
      partitioned = false;
      const waiting = held;
      held = [];
      for (const action of waiting) action();
    },
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
