/**
 * Live followers of a task's log (the API's `?follow=1`, the task page's stream) share one reader
 * per task per process instead of polling Postgres per connection. The reader wakes on "task N
 * changed" notices (NOTIFY on one channel, sent once per stored output batch and on state changes,
 * and this process's own bus), reads the task's state and its new output once, and keeps the
 * newest output in a bounded window that every follower of the task reads from memory. A follower
 * behind the window (it just connected, or its client reads slowly) catches up with its own
 * bounded reads. A slow safety poll per watched task (not per connection) covers a lost notice.
 *
 * Followers are capped per user (or link), per client address and in total, so open streams
 * cannot take the process or the database pool. Downloads of whole logs (streamed in bounded
 * batches, but long) are capped per user and in total the same way.
 */
import type { TaskStatus } from '../domain/lifecycle.js';
import type { Db } from '../store/db.js';
import type { StoredChunk } from '../store/output.js';
import { chunksAfter } from './logs.js';

export interface FeedState {
  status: TaskStatus;
  viewVersion: number;
  /** The task's latest run, if any. */
  executionId: number | null;
}

export interface FeedOptions {
  /** A watched task is read at least this often even without a notice. */
  safetyPollMs?: number;
  /** Output kept in memory per watched task. */
  windowBytes?: number;
  maxFollowersPerUser?: number;
  /** Followers from one client address (all clients share one behind a proxy: keep it above the per-user cap). */
  maxFollowersPerAddress?: number;
  maxFollowers?: number;
  maxDownloadsPerUser?: number;
  maxDownloads?: number;
}

export interface FeedLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

const READ_BATCH = 500;

class Watch {
  state: FeedState | 'missing' | null = null;
  /** Every chunk of `executionId` with an id above `windowFrom`, oldest first. */
  window: StoredChunk[] = [];
  windowFrom = 0;
  windowExecution: number | null = null;
  windowBytes = 0;
  readonly listeners = new Set<() => void>();
  refreshing: Promise<void> | null = null;
  again = false;
  timer: NodeJS.Timeout | null = null;
  /** Resolves after the first read. */
  ready: Promise<void>;
  markReady: () => void = () => undefined;

  constructor(readonly taskId: number) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
  }
}

/** What one follower holds: the task's state as last read, and the output after a chunk id. */
export interface FeedSubscription {
  readonly ready: Promise<void>;
  state(): FeedState | 'missing' | null;
  /**
   * Chunks of `executionId` after `afterId` from the shared window, or null when the window does
   * not cover them (the follower reads those itself, see catchUp).
   */
  fromWindow(executionId: number, afterId: number): StoredChunk[] | null;
  /** Resolves at the next change of the task, or after `ms`, or when `signal` aborts. */
  next(ms: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}

export type Admission = { ok: true; release: () => void } | { ok: false; message: string };

/** Counts holders per key and in total, against caps. */
class Slots {
  private readonly perKey = new Map<string, number>();
  total = 0;

  count(key: string): number {
    return this.perKey.get(key) ?? 0;
  }

  take(keys: readonly string[]): () => void {
    for (const key of keys) this.perKey.set(key, this.count(key) + 1);
    this.total++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total--;
      for (const key of keys) {
        const left = this.count(key) - 1;
        if (left <= 0) this.perKey.delete(key);
        else this.perKey.set(key, left);
      }
    };
  }
}

export class TaskFeed {
  private readonly watches = new Map<number, Watch>();
  private readonly following = new Slots();
  private readonly downloading = new Slots();
  private readonly safetyPollMs: number;
  private readonly windowBytes: number;
  readonly maxFollowersPerUser: number;
  readonly maxFollowersPerAddress: number;
  readonly maxFollowers: number;
  readonly maxDownloadsPerUser: number;
  readonly maxDownloads: number;
  /** Shared reads (one per watched task per change) and followers' own catch-up reads, for tests and metrics. */
  readonly reads = { shared: 0, catchUp: 0 };

  constructor(
    private readonly db: Db,
    private readonly log: FeedLogger,
    options: FeedOptions = {},
  ) {
    this.safetyPollMs = options.safetyPollMs ?? 5000;
    this.windowBytes = options.windowBytes ?? 1024 * 1024;
    this.maxFollowersPerUser = options.maxFollowersPerUser ?? 10;
    this.maxFollowersPerAddress = options.maxFollowersPerAddress ?? 50;
    this.maxFollowers = options.maxFollowers ?? 200;
    this.maxDownloadsPerUser = options.maxDownloadsPerUser ?? 2;
    this.maxDownloads = options.maxDownloads ?? 10;
  }

  /**
   * A follower may start when its user (an API token's user, or a task-page link), its client
   * address (when given) and the process are under their caps.
   */
  admit(who: string, address?: string): Admission {
    const mine = this.following.count(who);
    if (mine >= this.maxFollowersPerUser) {
      return { ok: false, message: `You already follow ${mine} live logs (the most one user may); close one, or read the log without follow=1.` };
    }
    const fromAddress = address === undefined ? 0 : this.following.count(`address:${address}`);
    if (fromAddress >= this.maxFollowersPerAddress) {
      return {
        ok: false,
        message: `Your address already follows ${fromAddress} live logs (the most one address may); close one, or read the log without follow=1.`,
      };
    }
    if (this.following.total >= this.maxFollowers) {
      return {
        ok: false,
        message: `This server already streams ${this.following.total} live logs (its limit); try again shortly, or read the log without follow=1.`,
      };
    }
    return { ok: true, release: this.following.take(address === undefined ? [who] : [who, `address:${address}`]) };
  }

  /** A download of a whole log (or any large part of it) may start when its user and the process are under their caps. */
  admitDownload(who: string): Admission {
    const mine = this.downloading.count(who);
    if (mine >= this.maxDownloadsPerUser) {
      return {
        ok: false,
        message: `You are already downloading ${mine} logs (the most one user may at once); wait for one to finish, or ask for a smaller range.`,
      };
    }
    if (this.downloading.total >= this.maxDownloads) {
      return {
        ok: false,
        message: `This server is already sending ${this.downloading.total} whole logs (its limit); try again shortly, or ask for a smaller range.`,
      };
    }
    return { ok: true, release: this.downloading.take([who]) };
  }

  get followers(): number {
    return this.following.total;
  }

  get downloads(): number {
    return this.downloading.total;
  }

  /** Task `taskId` changed (a notice from any process): its watch, if any, reads again. */
  changed(taskId: number): void {
    const watch = this.watches.get(taskId);
    if (watch) this.refresh(watch);
  }

  /** Notices may have been missed (the LISTEN connection came back): every watch reads again. */
  changedAll(): void {
    for (const watch of this.watches.values()) this.refresh(watch);
  }

  subscribe(taskId: number): FeedSubscription {
    let watch = this.watches.get(taskId);
    if (!watch) {
      watch = new Watch(taskId);
      this.watches.set(taskId, watch);
      const created = watch;
      created.timer = setInterval(() => this.refresh(created), this.safetyPollMs);
      created.timer.unref();
      this.refresh(created);
    }
    const w = watch;
    let wake: (() => void) | null = null;
    let changedSinceWait = false;
    const listener = () => {
      changedSinceWait = true;
      wake?.();
    };
    w.listeners.add(listener);
    let closed = false;
    return {
      ready: w.ready,
      state: () => w.state,
      fromWindow: (executionId, afterId) => {
        if (w.windowExecution !== executionId || afterId < w.windowFrom) return null;
        // The window is ordered by id: find the first chunk after `afterId`.
        let low = 0;
        let high = w.window.length;
        while (low < high) {
          const mid = (low + high) >> 1;
          if ((w.window[mid] as StoredChunk).id <= afterId) low = mid + 1;
          else high = mid;
        }
        return w.window.slice(low);
      },
      next: (ms, signal) =>
        new Promise<void>((resolve) => {
          if (changedSinceWait || closed || signal?.aborted) {
            changedSinceWait = false;
            return resolve();
          }
          const timer = setTimeout(done, ms);
          function done() {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            wake = null;
            changedSinceWait = false;
            resolve();
          }
          wake = done;
          signal?.addEventListener('abort', done, { once: true });
        }),
      close: () => {
        if (closed) return;
        closed = true;
        wake?.();
        w.listeners.delete(listener);
        if (w.listeners.size === 0) {
          if (w.timer) clearInterval(w.timer);
          if (this.watches.get(w.taskId) === w) this.watches.delete(w.taskId);
        }
      },
    };
  }

  /** Stops every watch's safety poll (the process is stopping). */
  stop(): void {
    for (const watch of this.watches.values()) {
      if (watch.timer) clearInterval(watch.timer);
      for (const listener of watch.listeners) listener();
    }
    this.watches.clear();
  }

  /** One read at a time per task; notices during a read make exactly one more. */
  private refresh(watch: Watch): void {
    if (watch.refreshing) {
      watch.again = true;
      return;
    }
    watch.refreshing = (async () => {
      do {
        watch.again = false;
        try {
          await this.read(watch);
        } catch (error) {
          this.log.warn({ err: error, taskId: watch.taskId }, 'reading a followed task failed; the next notice or poll tries again');
        }
        watch.markReady();
        for (const listener of watch.listeners) listener();
      } while (watch.again && this.watches.get(watch.taskId) === watch);
    })().finally(() => {
      watch.refreshing = null;
    });
  }

  /**
   * The output a follower at (`executionId`, `afterId`) has not seen: from the shared window when
   * it covers it, else one bounded read of its own. `more` says another read would find more.
   */
  async catchUp(subscription: FeedSubscription, executionId: number, afterId: number): Promise<{ chunks: StoredChunk[]; more: boolean }> {
    const shared = subscription.fromWindow(executionId, afterId);
    if (shared !== null) return { chunks: shared, more: false };
    this.reads.catchUp++;
    return chunksAfter(this.db, executionId, afterId, READ_BATCH);
  }

  private async read(watch: Watch): Promise<void> {
    this.reads.shared++;
    // The state first: output stored before a final status is then surely in the read below.
    const row = await this.db('tasks as t')
      .where('t.id', watch.taskId)
      .first<{ status: TaskStatus; view_version: number; execution_id: number | null } | undefined>(
        't.status',
        't.view_version',
        this.db.raw('(SELECT max(e.id) FROM executions e WHERE e.task_id = t.id) AS execution_id'),
      );
    if (!row) {
      watch.state = 'missing';
      return;
    }
    const state: FeedState = {
      status: row.status,
      viewVersion: Number(row.view_version),
      executionId: row.execution_id === null ? null : Number(row.execution_id),
    };
    if (state.executionId !== null && state.executionId !== watch.windowExecution) {
      // A new run (or the first sight of one): the window starts at its current end; followers
      // read what came before it themselves.
      const last = await this.db('output_chunks').where({ execution_id: state.executionId }).max<{ max: number | null }>('id as max').first();
      watch.windowExecution = state.executionId;
      watch.windowFrom = Number(last?.max ?? 0);
      watch.window = [];
      watch.windowBytes = 0;
    }
    if (watch.windowExecution !== null) {
      const lastId = () => (watch.window.length > 0 ? (watch.window[watch.window.length - 1] as StoredChunk).id : watch.windowFrom);
      for (let batch = 0; batch < 20; batch++) {
        const { chunks, more } = await chunksAfter(this.db, watch.windowExecution, lastId(), READ_BATCH);
        for (const chunk of chunks) {
          watch.window.push(chunk);
          watch.windowBytes += chunk.data.length;
        }
        this.trim(watch);
        if (!more) break;
        if (batch === 19) watch.again = true;
      }
    }
    watch.state = state;
  }

  private trim(watch: Watch): void {
    let drop = 0;
    while (watch.windowBytes > this.windowBytes && drop < watch.window.length - 1) {
      watch.windowBytes -= (watch.window[drop] as StoredChunk).data.length;
      drop++;
    }
    if (drop > 0) {
      watch.windowFrom = (watch.window[drop - 1] as StoredChunk).id;
      watch.window = watch.window.slice(drop);
    }
  }
}
