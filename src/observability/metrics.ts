/**
 * Prometheus metrics (prom-client), one registry per app so several apps in one process (tests)
 * don't share counters. Counts that live in Postgres (tasks by status) are read at scrape time,
 * so every replica reports the same truth; the rest are this process's own observations.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { TASK_STATUSES } from '../domain/lifecycle.js';
import type { Db } from '../store/db.js';

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

  constructor(db: Db, poolStats: () => PoolStats) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'countersign_' });
    new Gauge({
      name: 'countersign_tasks',
      help: 'Tasks by status (from the database, shared by all replicas).',
      labelNames: ['status'],
      registers,
      async collect() {
        const rows = await db('tasks').select('status').count<{ status: string; count: string }[]>('* as count').groupBy('status');
        const counts = new Map(rows.map((row) => [row.status, Number(row.count)]));
        for (const status of TASK_STATUSES) this.set({ status }, counts.get(status) ?? 0);
      },
    });
    this.runDuration = new Histogram({
      name: 'countersign_run_duration_seconds',
      help: 'Time from claim to result of runs this process carried out, by result.',
      labelNames: ['status'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
      registers,
    });
    this.queueWait = new Histogram({
      name: 'countersign_queue_wait_seconds',
      help: 'Time a task waited in `ready` before this process claimed it.',
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
