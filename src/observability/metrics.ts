/**
 * Prometheus metrics (prom-client), one registry per app so several apps in one process (tests)
 * don't share counters. Counts that live in Postgres (tasks waiting or running) are read at
 * scrape time, so every replica reports the same truth; the rest are this process's own
 * observations. A scrape never scans the tasks table: only the statuses a task passes through
 * are counted (index-only, capped), cached briefly, and a slow database leaves the last values.
 * Finished tasks are counted by the runs that finished them:
 * `sum by (status) (countersign_run_duration_seconds_count)` across replicas.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isTerminal, TASK_STATUSES, type TaskStatus } from '../domain/lifecycle.js';
import type { Db } from '../store/db.js';

/** Statuses a task passes through; their counts stay small (work waiting or under way). */
export const OPEN_STATUSES = TASK_STATUSES.filter((status) => !isTerminal(status));
/** Beyond this many tasks in one open status the gauge reads this number: the count is bounded work. */
export const OPEN_COUNT_CAP = 100_000;
const COUNTS_TTL_MS = 5_000;
const COUNTS_WAIT_MS = 2_000;

/** This process's live state, read at scrape time. */
export interface ProcessGauges {
  /** Live log followers (API follow streams and task page streams). */
  followers(): number;
  /** Whether the runner holds its liveness lock (1) or is cut off from Postgres (0). */
  livenessHeld(): boolean;
}

export interface PoolStats {
  connections: number;
  sessionsInUse: number;
  waiting: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly runDuration: Histogram<'status'>;
  readonly queueWait: Histogram;
  readonly slackCalls: Counter<'method' | 'outcome'>;
  readonly logBytes: Counter<'stream'>;

  constructor(db: Db, poolStats: () => PoolStats, gauges?: ProcessGauges) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'countersign_' });
    let cached: { at: number; counts: Map<TaskStatus, number> } | null = null;
    new Gauge({
      name: 'countersign_tasks',
      help: `Tasks waiting or running, by status (from the database, shared by all replicas; capped at ${OPEN_COUNT_CAP}).`,
      labelNames: ['status'],
      registers,
      async collect() {
        if (!cached || Date.now() - cached.at > COUNTS_TTL_MS) {
          const read = countOpenTasks(db).then((counts) => (cached = { at: Date.now(), counts }));
          read.catch(() => undefined);
          // A slow or absent database must not hang the scrape: the last values stay.
          await Promise.race([read, new Promise((resolve) => setTimeout(resolve, COUNTS_WAIT_MS).unref())]).catch(() => undefined);
        }
        for (const status of OPEN_STATUSES) this.set({ status }, cached?.counts.get(status) ?? 0);
      },
    });
    if (gauges) {
      new Gauge({
        name: 'countersign_log_followers',
        help: 'Live log streams (API follow and task pages) this process serves.',
        registers,
        collect() {
          this.set(gauges.followers());
        },
      });
      new Gauge({
        name: 'countersign_runner_liveness',
        help: '1 while this process holds its runner liveness lock in Postgres; 0 while it is cut off (it starts nothing new).',
        registers,
        collect() {
          this.set(gauges.livenessHeld() ? 1 : 0);
        },
      });
    }
    this.runDuration = new Histogram({
      name: 'countersign_run_duration_seconds',
      help: 'Time from claim to result of runs this process carried out, by result.',
      labelNames: ['status'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'countersign_queue_wait_seconds',
      help: 'Time a task waited in `ready` before this process claimed it (about 0 for a Run claimed at its click).',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.slackCalls = new Counter({
      name: 'countersign_slack_api_calls_total',
      help: 'Slack Web API calls by method and outcome (ok, ratelimited = HTTP 429, error).',
      labelNames: ['method', 'outcome'],
      registers,
    });
    this.logBytes = new Counter({
      name: 'countersign_log_bytes_total',
      help: 'Bytes of task output stored (after masking and the per-task cap), by stream.',
      labelNames: ['stream'],
      registers,
    });
    const pool = (name: string, help: string, pick: (stats: PoolStats) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(pick(poolStats()));
        },
      });
    pool('countersign_ssh_pool_connections', 'Open pooled SSH connections.', (s) => s.connections);
    pool('countersign_ssh_pool_sessions_in_use', 'SSH sessions in use across the pool.', (s) => s.sessionsInUse);
    pool('countersign_ssh_pool_waiting', 'Steps waiting for a free SSH session (MaxSessions reached).', (s) => s.waiting);
  }
}

/** One status's count: an index-only scan of tasks_status_idx, capped. Bindings: status, cap. */
export const OPEN_COUNT_SQL = 'SELECT count(*)::int AS count FROM (SELECT 1 FROM tasks WHERE status = ? LIMIT ?) AS open';

async function countOpenTasks(db: Db): Promise<Map<TaskStatus, number>> {
  const counts = new Map<TaskStatus, number>();
  for (const status of OPEN_STATUSES) {
    const result = await db.raw<{ rows: Array<{ count: number }> }>(OPEN_COUNT_SQL, [status, OPEN_COUNT_CAP]);
    counts.set(status, Number(result.rows[0]?.count ?? 0));
  }
  return counts;
}
