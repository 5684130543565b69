/**
 * Stores runs' results (a task's end with its run's, as transitionTaskAlong stores one), sharing
 * commits between runs that end together (SharedWrites: a result that ends alone is written at
 * once; those that end while a write is in flight go in the next transaction together, in one
 * set-based statement, transitionTasksAlong). On a busy runner the commits' WAL flushes, round
 * trips and writes cost more of the machine than the statements (bench:compare's throughput).
 *
 * Each result keeps its own gate and answer. A shared transaction that fails, or waits on a row
 * lock for over LOCK_TIMEOUT, is written result by result; an error reaches only the caller
 * whose own write failed, and it retries as before (executeRun's untilStored). Runs are locked
 * in id order, as the lease renewal and the lost-run sweeper lock them, so a shared transaction
 * cannot deadlock with either. At most three writes are in flight, so slow commits cannot take
 * the whole pool from the lease renewal and the output.
 */
import { transitionEventType } from '../domain/lifecycle.js';
import type { Db, Queryable } from '../store/db.js';
import { finishExecutionsStatement, finishExecutionStatement, type ExecutionResult } from '../store/executions.js';
import { SharedWrites } from '../store/sharedWrites.js';
import { transitionTaskAlong, transitionTasksAlong, type Transition } from '../store/tasks.js';

interface Ended {
  result: ExecutionResult;
  end: Transition;
}

/** A shared transaction waits this long for a row lock before its results go one by one. */
const LOCK_TIMEOUT = '1s';

export class ResultWriter {
  private readonly writes: SharedWrites<Ended, boolean, boolean>;

  constructor(db: Db, onSharedFailure: (error: unknown, results: number) => void = () => undefined) {
    this.writes = new SharedWrites<Ended, boolean, boolean>({
      // At most this many results per transaction: a long one holds its rows' locks the longer.
      maxBatch: 32,
      stallMs: 250,
      maxInFlight: 3,
      fallbackAtOnce: 2,
      // Runs are locked in id order, as the lease renewal and the lost-run sweeper lock them.
      order: (a, b) => a.result.executionId - b.result.executionId,
      together: (batch) =>
        db.transaction(async (trx) => {
          await trx.raw(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
          const changes = await transitionTasksAlong(
            trx,
            batch.map((item) => item.end),
            finishExecutionsStatement(batch.map((item) => item.result)),
            { notifyChanged: true },
          );
          return changes.map((change) => change.along);
        }),
      alone: (item) => writeOne(db, item),
      // After the commit. A result its gate refused may have been stored by an earlier try of its
      // own whose answer was lost; finding out is a read of its own, and its error its own.
      // Refusals come in numbers after the sweeper gave this runner's runs up: a few reads at a time.
      confirm: (item, along) => along || ownEndStored(db, item.end),
      onSharedFailure,
    });
  }

  /**
   * Stores one run's result; true when it is stored (its statement's gate passed, or it had
   * passed in a commit whose answer was lost), false when the run was no longer this runner's.
   */
  write(result: ExecutionResult, end: Transition): Promise<boolean> {
    return this.writes.write({ result, end });
  }
}

async function writeOne(db: Queryable, item: Ended): Promise<boolean> {
  if ((await transitionTaskAlong(db, item.end, finishExecutionStatement(item.result), { notifyChanged: true })).along) return true;
  // The gate was shut. By another process (the run given up as lost), or by this very result,
  // stored in a commit whose answer never came back (the connection dropped as it committed):
  // then its end event, with this run and this duration, is there.
  return ownEndStored(db, item.end);
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
