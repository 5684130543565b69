/**
 * Stores runs' results (a task's end with its run's, as transitionTaskAlong stores one), sharing
 * commits between runs that end together: while one write is in flight, the results that end
 * meanwhile wait and go in the next transaction together, in one set-based statement
 * (transitionTasksAlong). A commit waits for its WAL to reach the disk, and on a busy runner that
 * flush costs more of the machine than the statements; a statement per result then cost a round
 * trip and a write each (bench:compare's throughput). A result that ends alone is written at once,
 * in transitionTaskAlong's one statement.
 *
 * Each result keeps its own gate and answer; a shared statement that fails (a deadlock, one bad
 * row, the database going away) is written again result by result, so one result's trouble
 * neither holds back nor undoes another's. An error reaches only the caller whose own write
 * failed, and it retries as before (executeRun's untilStored).
 *
 * Runs are locked in id order, as the lease renewal and the lost-run sweeper lock them, so a
 * shared transaction cannot deadlock with either. A write that waits on a lock holds up the
 * others only for a moment: after STALL_MS the next batch goes beside it (at most MAX_IN_FLIGHT
 * at once, so slow commits cannot take the whole pool from the lease renewal and the output), and
 * a shared transaction gives up its lock wait after LOCK_TIMEOUT and is written result by result.
 */
import { transitionEventType } from '../domain/lifecycle.js';
import type { Db, Queryable } from '../store/db.js';
import { finishExecutionsStatement, finishExecutionStatement, type ExecutionResult } from '../store/executions.js';
import { transitionTaskAlong, transitionTasksAlong, type Transition } from '../store/tasks.js';

interface Pending {
  result: ExecutionResult;
  end: Transition;
  resolve(stored: boolean): void;
  reject(error: unknown): void;
}

/** At most this many results per transaction: a long one holds its rows' locks the longer. */
const MAX_BATCH = 32;
/** A write in flight this long no longer keeps the next batch waiting. */
const STALL_MS = 250;
/** A shared transaction waits this long for a row lock before its results go one by one. */
const LOCK_TIMEOUT = '1s';
/** Writes in flight at once, however long they take. */
const MAX_IN_FLIGHT = 3;
/** A failed shared transaction's results written on their own, or a shared one's refusals looked into, this many at a time. */
const FALLBACK_AT_ONCE = 2;

export class ResultWriter {
  private readonly waiting: Pending[] = [];
  /** Writes in flight for less than STALL_MS: the next batch waits for them. */
  private holding = 0;
  private inFlight = 0;

  constructor(
    private readonly db: Db,
    private readonly onSharedFailure: (error: unknown, results: number) => void = () => undefined,
  ) {}

  /**
   * Stores one run's result; true when it is stored (its statement's gate passed, or it had
   * passed in a commit whose answer was lost), false when the run was no longer this runner's.
   */
  write(result: ExecutionResult, end: Transition): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ result, end, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.holding > 0 || this.inFlight >= MAX_IN_FLIGHT || this.waiting.length === 0) return;
    const batch = this.waiting.splice(0, MAX_BATCH).sort((a, b) => a.result.executionId - b.result.executionId);
    this.holding++;
    this.inFlight++;
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.holding--;
      this.next();
    };
    const stall = setTimeout(release, STALL_MS);
    stall.unref();
    this.writeBatch(batch)
      // Never left unsettled: an error of our own (say, the logger's) fails the batch's writes,
      // and their callers retry them. A promise settled already ignores it.
      .catch((error: unknown) => {
        for (const item of batch) item.reject(error);
      })
      .finally(() => {
        clearTimeout(stall);
        this.inFlight--;
        if (held) release();
        else this.next();
      });
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    const answers = batch.length > 1 ? await this.writeTogether(batch) : null;
    if (answers) {
      // After the commit. A result its gate refused may have been stored by an earlier try of its
      // own whose answer was lost; finding out is a read of its own, and its error its own.
      // Refusals come in numbers after the sweeper gave this runner's runs up: a few reads at a time.
      await eachBounded(batch, async (item, i) => answers[i]!.along || ownEndStored(this.db, item.end));
      return;
    }
    // Each on its own, in id order, FALLBACK_AT_ONCE at a time: the pool is shared with the lease
    // renewal and the output, and a result waiting on a lock still leaves the others a way through.
    // An error that is a result's own reaches its caller then.
    await eachBounded(batch, (item) => this.writeOne(this.db, item));
  }

  /** The batch in one statement and one transaction; null when that failed (reported), to be written one by one. */
  private async writeTogether(batch: Pending[]): Promise<Array<{ along: boolean }> | null> {
    try {
      return await this.db.transaction(async (trx) => {
        await trx.raw(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
        return transitionTasksAlong(
          trx,
          batch.map((item) => item.end),
          finishExecutionsStatement(batch.map((item) => item.result)),
          { notifyChanged: true },
        );
      });
    } catch (error) {
      try {
        this.onSharedFailure(error, batch.length);
      } catch {
        // Reporting it must not keep the results from being written.
      }
      return null;
    }
  }

  private async writeOne(db: Queryable, item: Pending): Promise<boolean> {
    if ((await transitionTaskAlong(db, item.end, finishExecutionStatement(item.result), { notifyChanged: true })).along) return true;
    // The gate was shut. By another process (the run given up as lost), or by this very result,
    // stored in a commit whose answer never came back (the connection dropped as it committed):
    // then its end event, with this run and this duration, is there.
    return ownEndStored(db, item.end);
  }
}

async function ownEndStored(db: Queryable, end: Transition): Promise<boolean> {
  // Without its run's id the event could be any earlier run's end.
  if (end.data?.execution === undefined) return false;
  const row = await db('events')
    .where({ task_id: end.taskId, type: transitionEventType(end.to) })
    .whereRaw('data @> ?::jsonb', [JSON.stringify(end.data)])
    .first('id');
  return row !== undefined;
}

/** `store` for each item, FALLBACK_AT_ONCE at a time, in order; each answer or error goes to its own caller. */
async function eachBounded(batch: readonly Pending[], store: (item: Pending, index: number) => Promise<boolean>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < batch.length; i = next++) {
      const item = batch[i]!;
      try {
        item.resolve(await store(item, i));
      } catch (error) {
        item.reject(error);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FALLBACK_AT_ONCE, batch.length) }, worker));
}
