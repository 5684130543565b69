/**
 * Which other runners are gone, judged from what each sweep sees in Postgres: the runner keys
 * whose liveness lock is held (liveness.ts), the keys that running runs carry, and which server
 * answered. The judge is pure: the sweepers (runner.ts, the run engine's) feed it one observation
 * per round (lostRunnerKeys reads it) and end the runs of the keys it answers.
 *
 * A free lock alone does not mean dead. A process killed with -9 loses it for good, but so, for a
 * moment, does a live process whose connections were reset (a proxy or pooler restart, a firewall
 * RST, a failover): it reconnects within a second or so of the database accepting again (its first
 * retries come every RECONNECT_BACKOFF_MS). So a runner is lost only once its lock has been free
 * for RECONNECT_GRACE_MS, which keeps a kill -9 found within about four and a half seconds and lets
 * a reset of up to about three seconds pass.
 *
 * A changed server (a restart, or a failover to a standby: advisory locks are not replicated, and a
 * promoted standby's start time is old, so its uptime says nothing) frees every lock at once and
 * every runner has to reconnect, some through DNS or a proxy that takes longer. Until a runner has
 * been seen holding its lock on the new server, it gets `livenessMs` from the moment the change
 * was seen (or from the server's start), as it would for a silent link.
 */

/** A runner's lock must have been free this long, seen by consecutive sweeps, before its runs are ended. */
import type { Queryable } from '../store/db.js';
import { databaseServer, heldRunnerKeys } from '../store/executions.js';

export const RECONNECT_GRACE_MS = 4000;
/** The liveness connection's retries within the reconnect grace come at most this far apart. */
export const RECONNECT_BACKOFF_MS = 250;

/** The server a sweep talked to. */
export interface ServerIdentity {
  /** pg_postmaster_start_time(): changes with every restart and differs between primary and standby. */
  startedAt: string;
  /** pg_control_system().system_identifier, and the timeline of the latest checkpoint; null when the role may not read them. */
  systemId: string | null;
  timeline: number | null;
  /** Milliseconds since the server started. */
  upMs: number;
}

export interface LostRunnerJudgeOptions {
  livenessMs: number;
  reconnectGraceMs?: number;
  /** Told when the server changed between two sweeps of this process. */
  onServerChanged?: (from: string, to: string) => void;
}

export class LostRunnerJudge {
  /** Other runners' keys seen with their lock free, and since when (this process's clock). */
  private readonly freeSince = new Map<number, number>();
  /** Keys seen held, and on which server: such a runner has reconnected since a change. */
  private readonly seenHeld = new Map<number, string>();
  private server: string | null = null;
  private serverChangedAt = Number.NEGATIVE_INFINITY;
  private readonly graceMs: number;

  constructor(private readonly options: LostRunnerJudgeOptions) {
    this.graceMs = options.reconnectGraceMs ?? RECONNECT_GRACE_MS;
  }

  /**
   * One sweep: `held` are the keys whose lock some session holds, `withRuns` the keys of other
   * runners that running runs carry. Answers the keys whose runs are to be ended now.
   */
  judge(now: number, server: ServerIdentity, held: ReadonlySet<number>, withRuns: ReadonlySet<number>): number[] {
    const identity = `${server.systemId ?? '?'}/${server.timeline ?? '?'}/${server.startedAt}`;
    if (this.server !== null && identity !== this.server) {
      this.serverChangedAt = now;
      this.options.onServerChanged?.(this.server, identity);
    }
    this.server = identity;
    // How long the server we talk to has been this one, as far as this process can tell.
    const serverAgeMs = Math.min(server.upMs, now - this.serverChangedAt);

    for (const key of [...this.freeSince.keys()]) if (!withRuns.has(key) || held.has(key)) this.freeSince.delete(key);
    for (const [key, seenOn] of [...this.seenHeld]) if (seenOn !== identity || (!held.has(key) && !withRuns.has(key))) this.seenHeld.delete(key);
    for (const key of held) this.seenHeld.set(key, identity);

    const lost: number[] = [];
    for (const key of withRuns) {
      if (held.has(key)) continue;
      const since = this.freeSince.get(key) ?? now;
      this.freeSince.set(key, since);
      if (now - since < this.graceMs) continue;
      const reconnected = this.seenHeld.get(key) === identity;
      if (!reconnected && serverAgeMs < this.options.livenessMs) continue;
      lost.push(key);
    }
    return lost;
  }

  /** The key's runs were ended (or found held after all): start over if it shows up again. */
  forget(key: number): void {
    this.freeSince.delete(key);
  }
}

/**
 * The other runners judged lost this round, of those that have runs (`withRuns`). With none, the
 * locks (pg_locks takes every lock-manager partition) and the server's identity are not read: an
 * idle sweep four times a second costs nothing. A server change while idle is then seen at the
 * next judged round: a longer grace, never a shorter one.
 */
export async function lostRunnerKeys(db: Queryable, judge: LostRunnerJudge, withRuns: ReadonlySet<number>, now = Date.now()): Promise<number[]> {
  if (withRuns.size === 0) return [];
  const [held, server] = await Promise.all([heldRunnerKeys(db), databaseServer(db)]);
  return judge.judge(now, server, held, withRuns);
}
