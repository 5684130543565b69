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
import { connectCoalesced } from './coalescedSocket.js';
import { keysFor, type KnownHostEntry } from './knownHosts.js';

export interface SshEndpoint {
  address: HostAddress;
  privateKey: string;
  knownHosts: readonly KnownHostEntry[];
  connectTimeoutMs: number;
  maxSessions: number;
}

/** Why connecting failed: `countersign check` says what to fix for each. */
export type SshConnectReason = 'unpinned' | 'host-key' | 'auth' | 'network';

/** Connecting failed; `message` says why in words a user can act on. Nothing ran. */
export class SshConnectError extends Error {
  constructor(
    message: string,
    readonly reason: SshConnectReason = 'network',
  ) {
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

/** How countersign reaches one host of a target. */
export function targetEndpoint(
  target: { privateKey: string; knownHosts: readonly KnownHostEntry[]; connectTimeoutMs: number; maxSessions: number },
  address: HostAddress,
): SshEndpoint {
  return {
    address,
    privateKey: target.privateKey,
    knownHosts: target.knownHosts,
    connectTimeoutMs: target.connectTimeoutMs,
    maxSessions: target.maxSessions,
  };
}

interface Waiter {
  control: boolean;
  /** true: the slot was handed over (already counted in inUse); false: the connection closed, try another. */
  wake(granted: boolean): void;
}

/** What a session's user may do with its connection besides using the client. */
export interface SessionHandle {
  /** Why the link went away, once it has. */
  lostReason(): string | null;
  /** Takes a connection that can no longer open channels out of the pool, so the next user connects afresh. */
  discard(): void;
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
    readonly onGone: () => void,
  ) {
    const label = hostLabel(endpoint.address);
    const pinned = keysFor(endpoint.knownHosts, endpoint.address.host, endpoint.address.port);
    let hostKeyProblem: string | null = null;
    this.ready = new Promise((resolve, reject) => {
      if (pinned.length === 0) {
        reject(
          new SshConnectError(
            `no pinned host key for ${label} in the target's ssh.knownHosts, so nothing was run (add the line ssh-keyscan prints)`,
            'unpinned',
          ),
        );
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
        if (hostKeyProblem) reject(new SshConnectError(hostKeyProblem, 'host-key'));
        else if (error.level === 'client-authentication')
          reject(new SshConnectError(`${label} did not accept the target's SSH key for user ${endpoint.address.user}`, 'auth'));
        else reject(new SshConnectError(`cannot connect to ${label}: ${error.message}`));
      });
      // The server ended the link: its socket takes no more writes, so nobody new may get it.
      this.client.on('end', () => this.retire());
      this.client.on('close', () => {
        this.retire();
        this.lostReason ??= 'the connection closed';
        if (!isReady)
          reject(
            hostKeyProblem ? new SshConnectError(hostKeyProblem, 'host-key') : new SshConnectError(`the connection to ${label} closed before it was ready`),
          );
        // Whoever waits for a slot on a dead connection must try again on a new one.
        for (const waiter of this.waiters.splice(0)) waiter.wake(false);
      });
      const serverHostKey = [...new Set(pinned.flatMap((entry) => ALGORITHMS_FOR_KEY_TYPE[entry.keyType] ?? [entry.keyType]))];
      // Our socket, so that a packet's pieces leave in one write (coalescedSocket.ts); ssh2 waits
      // for its 'connect' and reports its errors as it does for a socket of its own.
      const socket = connectCoalesced({ host: endpoint.address.host, port: endpoint.address.port });
      // As ssh2 does for a socket it opens itself: each channel listens to it.
      socket.setMaxListeners(0);
      // ssh2 refuses some settings (a key it cannot parse, a host key type it does not know) by
      // throwing before it listens to the socket: closed here, or its connect error would be
      // unhandled and end the process, or its descriptor leak.
      try {
        this.client.connect({
          sock: socket,
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
      } catch (error) {
        socket.destroy();
        throw error;
      }
      // Nagle plus delayed ACKs cost ~40 ms per round trip of the handshake and of every exec.
      this.client.setNoDelay(true);
    });
    // A rejected `ready` that nobody awaits yet must not become an unhandled rejection.
    this.ready.catch(() => undefined);
  }

  /**
   * Out of the pool for good, before anything else happens to it: a connection that is closing
   * must never be handed out (its client throws "Not connected" on exec).
   */
  retire(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.onGone();
  }

  readonly handle: SessionHandle = {
    lostReason: () => this.lostReason,
    discard: () => {
      this.retire();
      this.client.end();
    },
  };

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
  async withSession<T>(
    endpoint: SshEndpoint,
    use: (client: Client, connection: SessionHandle) => Promise<T>,
    options: { control?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    const control = options.control ?? false;
    for (;;) {
      options.signal?.throwIfAborted();
      const connection = this.connectionFor(endpoint);
      await connection.ready;
      if (connection.closed) continue;
      if (connection.hasRoom(control)) connection.inUse++;
      else if (!(await waitForSlot(connection, control, options.signal))) continue;
      // Handed a slot just as the connection went away: give it back and connect afresh.
      if (connection.closed) {
        this.release(connection);
        continue;
      }
      if (connection.idleTimer) clearTimeout(connection.idleTimer);
      connection.idleTimer = null;
      try {
        return await use(connection.client, connection.handle);
      } finally {
        this.release(connection);
      }
    }
  }

  /**
   * Starts connecting to `endpoint` if no connection is open or opening, for a run about to be
   * claimed: its handshake (~25 ms) then overlaps the Run's commit and the claim instead of
   * following them. Nothing runs on it; unused, it closes after `idleMs` like a released one,
   * and a failure only leaves the pool (the run that follows reports it when it connects).
   */
  warm(endpoint: SshEndpoint): void {
    const connection = this.connectionFor(endpoint);
    connection.ready.then(
      () => {
        if (connection.inUse > 0 || connection.closed) return;
        // An idle one about to be closed is wanted again: its idle time starts over.
        if (connection.idleTimer) clearTimeout(connection.idleTimer);
        this.startIdleTimer(connection);
      },
      () => undefined,
    );
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
    for (const connection of [...this.connections.values()]) connection.handle.discard();
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
    connection.inUse--;
    // The freed slot goes straight to the first waiter it fits (a control command fits the
    // reserved slot), already counted: a newcomer arriving meanwhile cannot jump the queue.
    for (let i = 0; i < connection.waiters.length && !connection.closed; ) {
      const waiter = connection.waiters[i]!;
      if (!connection.hasRoom(waiter.control)) {
        i++;
        continue;
      }
      connection.waiters.splice(i, 1);
      connection.inUse++;
      waiter.wake(true);
    }
    if (connection.inUse === 0 && !connection.closed) this.startIdleTimer(connection);
  }

  private startIdleTimer(connection: PooledConnection): void {
    // Retired before it is ended, so no acquire in between gets a closing connection.
    connection.idleTimer = setTimeout(() => connection.handle.discard(), this.options.idleMs);
    connection.idleTimer.unref();
  }
}

/**
 * Queues for a slot on `connection`: true when one was handed over, false when the connection
 * closed first. Aborting `signal` leaves the queue; the listener goes as soon as either happens.
 */
function waitForSlot(connection: PooledConnection, control: boolean, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      const index = connection.waiters.indexOf(waiter);
      if (index >= 0) connection.waiters.splice(index, 1);
      reject(signal?.reason);
    };
    const waiter: Waiter = {
      control,
      wake: (granted) => {
        signal?.removeEventListener('abort', onAbort);
        resolve(granted);
      },
    };
    connection.waiters.push(waiter);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One pool entry per login (user, host, port) and credentials: a changed key or pin gets a new connection. */
function poolKey(endpoint: SshEndpoint): string {
  const credentials = createHash('sha256').update(endpoint.privateKey).update(JSON.stringify(endpoint.knownHosts)).digest('hex').slice(0, 16);
  return `${endpoint.address.user}@${endpoint.address.host}:${endpoint.address.port}#${credentials}`;
}
