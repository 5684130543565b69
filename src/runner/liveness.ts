/**
 * A runner's liveness, as Postgres itself sees it. The process holds a session advisory lock,
 * keyed by its runner key, on one dedicated connection outside the pool, and writes the key on
 * every run it claims. When the process dies (kill -9, OOM, a host that resets its connections)
 * its connection closes and the server drops the lock at once, so other processes find its runs
 * lost within about a second; a process that is alive but slow keeps its lock, and its runs are
 * never taken from it.
 *
 * A reset (a proxy or pooler restart, a firewall RST, a failover) drops the lock of a live
 * process too: it reconnects at once and then every RECONNECT_BACKOFF_MS, so it holds the lock
 * again within a moment of the database accepting, well within the grace other processes give a
 * free lock before they judge it lost (lostRunners.ts); past that grace it backs off to 2 s.
 *
 * A silent partition (packets dropped, nothing reset) is the one case the server cannot see at
 * once: the session is given `livenessMs` (idle_session_timeout, TCP keepalives and
 * tcp_user_timeout on this session; a heartbeat keeps it busy while the link works) before the
 * server ends it and the lock goes. On our side, a heartbeat that goes unanswered for a few
 * seconds makes `holds` false, so the runner claims nothing and starts no rollout batch until the
 * link answers again.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { confirmOwnershipQuery } from '../store/executions.js';
import { RECONNECT_BACKOFF_MS, RECONNECT_GRACE_MS } from './lostRunners.js';

export interface LivenessOptions {
  connectionString: string;
  /** How long the server keeps a silent session (and so the lock) before it gives up on it. */
  livenessMs: number;
  /** How often the heartbeat asks; `holds` turns false after about two missed answers. */
  heartbeatMs?: number;
  log: { warn(context: Record<string, unknown>, message: string): void; info(context: Record<string, unknown>, message: string): void };
  /** Called each time the lock is (re)acquired: the runner may claim again. */
  onAcquired?: () => void;
}

export type Ownership = 'ours' | 'not-ours' | 'unknown';

export class RunnerLiveness {
  /** Random, below 2^53 (int8 columns are read as numbers), unique among live runners by the lock itself. */
  readonly key = randomBytes(6).readUIntBE(0, 6) + 1;
  private client: pg.Client | null = null;
  private holding = false;
  private lastAnswerAt = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wakeSleeper: (() => void) | null = null;
  private readonly heartbeatMs: number;
  private readonly applicationName: string;

  constructor(private readonly options: LivenessOptions) {
    this.heartbeatMs = options.heartbeatMs ?? Math.max(250, Math.min(1000, Math.floor(options.livenessMs / 6)));
    // Names our sessions, so a lingering one of ours can be told apart and ended (see acquire).
    this.applicationName = `countersign-runner-${this.key}`;
  }

  /** Connects and takes the lock; resolves once held or after the first failed attempt (it keeps trying). */
  async start(): Promise<void> {
    let first: () => void = () => undefined;
    const firstAttempt = new Promise<void>((resolve) => (first = resolve));
    this.loop = this.run(() => first());
    await firstAttempt;
  }

  /** True while the lock is held and the link answered lately. */
  get holds(): boolean {
    return this.holdsWithin(this.heartbeatMs * 2 + 1000);
  }

  /** True while the lock is held and the link answered within the last `ms`. */
  holdsWithin(ms: number): boolean {
    return this.holding && Date.now() - this.lastAnswerAt < ms;
  }

  /**
   * Is the run still running and still ours? Asked on the lock's own connection, so "ours" also
   * proves the lock is held right now; renews the run's lease as it asks. "unknown" when the link
   * does not answer in time.
   */
  async confirmRun(executionId: number, leaseMs: number): Promise<Ownership> {
    const client = this.client;
    if (!client || !this.holds) return 'unknown';
    const query = confirmOwnershipQuery(executionId, this.key, leaseMs);
    const answer = client.query(query.text, query.values).then(
      (result) => ((result.rowCount ?? 0) > 0 ? ('ours' as const) : ('not-ours' as const)),
      () => 'unknown' as const,
    );
    return Promise.race([answer, sleep(Math.max(2000, this.heartbeatMs * 2)).then(() => 'unknown' as const)]);
  }

  /** Releases the lock (by closing its connection) and stops reconnecting; bounded by `waitMs`. */
  async stop(waitMs = 1000): Promise<void> {
    this.stopped = true;
    this.wakeSleeper?.();
    const client = this.client;
    this.client = null;
    this.holding = false;
    if (client) {
      const ended = client.end().catch(() => undefined);
      // A hung link never answers the Terminate: destroy the socket instead of waiting on it.
      if (!(await Promise.race([ended.then(() => true), sleep(waitMs).then(() => false)]))) destroy(client);
    }
    await Promise.race([this.loop, sleep(waitMs)]);
  }

  private async run(firstAttemptDone: () => void): Promise<void> {
    let backoffMs = FIRST_BACKOFF_MS;
    /** When the lock was last lost (or first missed): retries stay frequent for the reconnect grace. */
    let lostAt: number | null = null;
    while (!this.stopped) {
      const client = this.newClient();
      let broken: (error: Error) => void = () => undefined;
      const brokenLink = new Promise<never>((_, reject) => (broken = reject));
      brokenLink.catch(() => undefined);
      client.on('error', (error) => broken(error));
      client.on('end', () => broken(new Error('the liveness connection closed')));
      try {
        await Promise.race([client.connect(), brokenLink]);
        await Promise.race([this.acquire(client), brokenLink]);
        if (this.stopped) break;
        this.client = client;
        this.holding = true;
        this.lastAnswerAt = Date.now();
        backoffMs = FIRST_BACKOFF_MS;
        lostAt = null;
        firstAttemptDone();
        this.options.log.info({ key: this.key }, 'holding the runner liveness lock');
        this.options.onAcquired?.();
        await this.heartbeat(client, brokenLink);
      } catch (error) {
        if (!this.stopped) this.options.log.warn({ err: error, key: this.key }, 'the runner liveness lock is not held; reconnecting');
      } finally {
        if (this.client === client) this.client = null;
        this.holding = false;
        destroy(client);
        firstAttemptDone();
      }
      if (this.stopped) break;
      lostAt ??= Date.now();
      await this.pause(backoffMs);
      backoffMs = Math.min(backoffMs * 2, Date.now() - lostAt < RECONNECT_GRACE_MS ? RECONNECT_BACKOFF_MS : MAX_BACKOFF_MS);
    }
  }

  private newClient(): pg.Client {
    const seconds = Math.max(1, Math.floor(this.options.livenessMs / 1000));
    const settings = [
      // A silent link: the server ends the session (and so drops the lock) after livenessMs.
      `idle_session_timeout=${this.options.livenessMs}`,
      `tcp_user_timeout=${this.options.livenessMs}`,
      `tcp_keepalives_idle=${Math.max(1, Math.floor(seconds / 2))}`,
      `tcp_keepalives_interval=${Math.max(1, Math.floor(seconds / 6))}`,
      'tcp_keepalives_count=3',
      // An ownership check never waits long on a row lock: "unknown" is answered instead.
      'lock_timeout=2000',
    ];
    return new pg.Client({
      connectionString: this.options.connectionString,
      application_name: this.applicationName,
      keepAlive: true,
      keepAliveInitialDelayMillis: Math.max(1000, Math.floor(this.options.livenessMs / 2)),
      connectionTimeoutMillis: Math.max(2000, Math.min(10_000, this.options.livenessMs)),
      options: settings.map((setting) => `-c ${setting}`).join(' '),
    });
  }

  /**
   * Takes the lock. Someone else may hold it for a moment: a session of ours the server has not
   * yet seen go (after a link we gave up on), which we end, or another process's sweeper deciding
   * whether we are dead (it holds the lock for one short transaction).
   */
  private async acquire(client: pg.Client): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      const result = await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS got', [this.key]);
      if (result.rows[0]?.got === true) return;
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()', [
        this.applicationName,
      ]);
      if (attempt % 25 === 24) this.options.log.warn({ key: this.key }, 'the runner liveness lock is held elsewhere; still trying');
      await sleep(200);
    }
  }

  /** Keeps the session busy and checks the link; throws when the link is broken or silent for livenessMs. */
  private async heartbeat(client: pg.Client, brokenLink: Promise<never>): Promise<void> {
    while (!this.stopped) {
      const answered = client.query('SELECT 1').then(() => true);
      answered.catch(() => undefined);
      // One heartbeat at a time: an unanswered one is waited for, not piled on.
      const silentFor = () => Date.now() - this.lastAnswerAt;
      const ok = await Promise.race([answered, brokenLink, sleep(Math.max(0, this.options.livenessMs - silentFor())).then(() => false)]);
      if (!ok) throw new Error(`the database did not answer for ${Math.round(silentFor() / 1000)} s`);
      this.lastAnswerAt = Date.now();
      await Promise.race([this.pause(this.heartbeatMs), brokenLink]);
    }
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleeper = done;
    });
  }
}

function destroy(client: pg.Client): void {
  // No Terminate message: on a hung link it would never be answered.
  (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  client.end().catch(() => undefined);
}

const FIRST_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
