/**
 * Stores runs' results (a task's end with its run's, in transitionTaskAlong's one statement),
 * sharing commits between runs that end together: while one write is in flight, the results
 * that end meanwhile wait and go in the next transaction together. A commit waits for its WAL to
 * reach the disk, and on a busy runner that flush costs more of the machine than the statements
 * (bench:compare's throughput). A result that ends alone is written at once, as before.
 *
 * Each result keeps its own statement, gate and answer; a transaction that fails (a deadlock,
 * one bad row, the database going away) is written again result by result, so one result's
 * trouble neither holds back nor undoes another's. An error reaches only the caller whose own
 * write failed, and it retries as before (executeRun's untilStored).
 */
import type { Db } from '../store/db.js';
import { transitionTaskAlong, type AlongWith, type Transition } from '../store/tasks.js';

interface Pending {
  end: Transition;
  along: AlongWith;
  resolve(stored: boolean): void;
  reject(error: unknown): void;
}

/** At most this many results per transaction: a long one holds its rows' locks the longer. */
const MAX_BATCH = 32;

export class ResultWriter {
  private readonly waiting: Pending[] = [];
  private writing = false;

  constructor(private readonly db: Db) {}

  /** Stores one result; true when its statement's gate passed (the run was still this runner's). */
  write(end: Transition, along: AlongWith): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ end, along, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.writing || this.waiting.length === 0) return;
    this.writing = true;
    const batch = this.waiting.splice(0, MAX_BATCH);
    void this.writeBatch(batch).finally(() => {
      this.writing = false;
      this.next();
    });
  }

  private async writeBatch(batch: Pending[]): Promise<void> {
    if (batch.length > 1) {
      try {
        const stored = await this.db.transaction(async (trx) => {
          const answers: boolean[] = [];
          for (const item of batch) answers.push(await this.writeOne(trx, item));
          return answers;
        });
        for (const [i, item] of batch.entries()) item.resolve(stored[i]!);
        return;
      } catch {
        // Each again on its own: the error is reported by the write that meets it.
      }
    }
    await Promise.all(
      batch.map(async (item) => {
        try {
          item.resolve(await this.writeOne(this.db, item));
        } catch (error) {
          item.reject(error);
        }
      }),
    );
  }

  private async writeOne(db: Db, item: Pending): Promise<boolean> {
    return (await transitionTaskAlong(db, item.end, item.along, { notifyChanged: true })).along;
  }
}
