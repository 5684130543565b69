/**
 * SSH connections, pooled per host and reused across tasks: the second task on a host pays no
 * handshake. Each connection serves at most `maxSessions` channels at once (OpenSSH's
 * MaxSessions, 10 by default): runs take up to maxSessions - 1 and queue beyond that, and one
 * slot stays free for control commands (stop, survivors check), so a Kill never waits behind
 * the runs it must stop. Keepalives find dead links; a dead or idle connection leaves the pool.
 */
import { createHash } from 'node:crypto';
import { Client } from 'ssh2';
import type { HostAddress } from '../domain/plan.js';
import { hostLabel } from '../domain/plan.js';
import { keysFor, type KnownHostEntry } from './knownHosts.js';

export interface SshEndpoint {
  address: HostAddress;
  privateKey: string;
  knownHosts: readonly KnownHostEntry[];
  connectTimeoutMs: number;
  maxSessions: number;
}

/** Connecting failed; `message` says why in words a user can act on. Nothing ran. */
export class SshConnectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SshConnectError';
  }
}

export interface PoolOptions {
  /** Close a connection nobody used for this long. */
  idleMs: number;
  keepaliveMs: number;
  keepaliveCountMax: number;
}

/** known_hosts key types -> the ssh2 host key algorithms that produce them. */
const ALGORITHMS_FOR_KEY_TYPE: Readonly<Record<string, string[]>> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
};

export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

interface Waiter {
  control: boolean;
  resolve(): void;
}

class PooledConnection {
  readonly client = new Client();
  readonly ready: Promise<void>;
  inUse = 0;
  closed = false;
  /** Why the link went away, for the steps that were using it. */
  lostReason: string | null = null;
  readonly waiters: Waiter[] = [];
  idleTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly endpoint: SshEndpoint,
    options: PoolOptions,
    onGone: () => void,
  ) {
    const label = hostLabel(endpoint.address);
    const pinned = keysFor(endpoint.knownHosts, endpoint.address.host, endpoint.address.port);
    let hostKeyProblem: string | null = null;
    this.ready = new Promise((resolve, reject) => {
      if (pinned.length === 0) {
        reject(new SshConnectError(`no pinned host key for ${label} in the target's ssh.knownHosts, so nothing was run (add the line ssh-keyscan prints)`));
        return;
      }
      let isReady = false;
      this.client.on('ready', () => {
        isReady = true;
        resolve();
      });
      this.client.on('error', (error: Error & { level?: string }) => {
        if (isReady) {
          this.lostReason ??= error.message;
          return;
        }
        if (hostKeyProblem) reject(new SshConnectError(hostKeyProblem));
        else if (error.level === 'client-authentication') reject(new SshConnectError(`${label} did not accept the target's SSH key for user ${endpoint.address.user}`));
        else reject(new SshConnectError(`cannot connect to ${label}: ${error.message}`));
      });
      this.client.on('close', () => {
        this.closed = true;
        this.lostReason ??= 'the connection closed';
        if (this.idleTimer) clearTimeout(this.idleTimer);
        onGone();
        if (!isReady) reject(new SshConnectError(hostKeyProblem ?? `the connection to ${label} closed before it was ready`));
        // Whoever waits for a slot on a dead connection must try again on a new one.
        for (const waiter of this.waiters.splice(0)) waiter.resolve();
      });
      const serverHostKey = [...new Set(pinned.flatMap((entry) => ALGORITHMS_FOR_KEY_TYPE[entry.keyType] ?? [entry.keyType]))];
      this.client.connect({
        host: endpoint.address.host,
        port: endpoint.address.port,
        username: endpoint.address.user,
        privateKey: endpoint.privateKey,
        // Key auth only: ssh2 otherwise tries "none" first and pays a round trip for it.
        authHandler: ['publickey'],
        readyTimeout: endpoint.connectTimeoutMs,
        // Off by default in ssh2: without it a silently dropped link hangs forever.
        keepaliveInterval: options.keepaliveMs,
        keepaliveCountMax: options.keepaliveCountMax,
        algorithms: { serverHostKey: serverHostKey as never },
        hostVerifier: (key: Buffer) => {
          const offered = key.toString('base64');
          if (pinned.some((entry) => entry.keyBase64 === offered)) return true;
          hostKeyProblem = `the host key of ${label} (${fingerprint(key)}) does not match the key pinned in the target's ssh.knownHosts, so nothing was run`;
          return false;
        },
      });
      // Nagle plus delayed ACKs cost ~40 ms per round trip of the handshake and of every exec.
      this.client.setNoDelay(true);
    });
    // A rejected `ready` that nobody awaits yet must not become an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /** Slots for runs; the last one is kept for control commands. */
  hasRoom(control: boolean): boolean {
    const limit = control ? this.endpoint.maxSessions : Math.max(1, this.endpoint.maxSessions - 1);
    return this.inUse < limit;
  }
}

export class SshPool {
  private readonly connections = new Map<string, PooledConnection>();
  handshakes = 0;

  constructor(private readonly options: PoolOptions) {}

  /**
   * Runs `use` with a session slot on a connection to `endpoint`, connecting first if needed and
   * waiting for a free slot when the host's sessions are all in use. Throws SshConnectError when
   * the host cannot be reached or is not the pinned host; `signal` abandons the wait.
   */
  async withSession<T>(endpoint: SshEndpoint, use: (client: Client, connection: { lostReason(): string | null }) => Promise<T>, options: { control?: boolean; signal?: AbortSignal } = {}): Promise<T> {
    const control = options.control ?? false;
    for (;;) {
      options.signal?.throwIfAborted();
      const connection = this.connectionFor(endpoint);
      await connection.ready;
      if (connection.closed) continue;
      if (!connection.hasRoom(control)) {
        await new Promise<void>((resolve, reject) => {
          const waiter: Waiter = { control, resolve };
          connection.waiters.push(waiter);
          options.signal?.addEventListener(
            'abort',
            () => {
              const index = connection.waiters.indexOf(waiter);
              if (index >= 0) connection.waiters.splice(index, 1);
              reject(options.signal?.reason);
            },
            { once: true },
          );
        });
        continue;
      }
      connection.inUse++;
      if (connection.idleTimer) clearTimeout(connection.idleTimer);
      connection.idleTimer = null;
      try {
        return await use(connection.client, { lostReason: () => connection.lostReason });
      } finally {
        connection.inUse--;
        this.release(connection);
      }
    }
  }

  stats(): { connections: number; sessionsInUse: number; waiting: number; handshakes: number } {
    let sessionsInUse = 0;
    let waiting = 0;
    for (const connection of this.connections.values()) {
      sessionsInUse += connection.inUse;
      waiting += connection.waiters.length;
    }
    return { connections: this.connections.size, sessionsInUse, waiting, handshakes: this.handshakes };
  }

  closeAll(): void {
    for (const connection of this.connections.values()) connection.client.end();
    this.connections.clear();
  }

  private connectionFor(endpoint: SshEndpoint): PooledConnection {
    const key = poolKey(endpoint);
    const existing = this.connections.get(key);
    if (existing && !existing.closed) return existing;
    this.handshakes++;
    const connection = new PooledConnection(endpoint, this.options, () => {
      if (this.connections.get(key) === connection) this.connections.delete(key);
    });
    this.connections.set(key, connection);
    // A connection that failed to connect leaves the pool at once: the next task tries afresh.
    connection.ready.catch(() => {
      if (this.connections.get(key) === connection) this.connections.delete(key);
    });
    return connection;
  }

  private release(connection: PooledConnection): void {
    // Wake the first waiter that fits now (a control command fits in the reserved slot).
    const index = connection.waiters.findIndex((waiter) => connection.hasRoom(waiter.control));
    if (index >= 0) {
      const [waiter] = connection.waiters.splice(index, 1);
      waiter?.resolve();
      return;
    }
    if (connection.inUse === 0 && !connection.closed) {
      connection.idleTimer = setTimeout(() => connection.client.end(), this.options.idleMs);
      connection.idleTimer.unref();
    }
  }
}

/** One pool entry per login (user, host, port) and credentials: a changed key or pin gets a new connection. */
function poolKey(endpoint: SshEndpoint): string {
  const credentials = createHash('sha256')
    .update(endpoint.privateKey)
    .update(JSON.stringify(endpoint.knownHosts))
    .digest('hex')
    .slice(0, 16);
  return `${endpoint.address.user}@${endpoint.address.host}:${endpoint.address.port}#${credentials}`;
}
