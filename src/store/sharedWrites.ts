/**
 * Writes that share commits: while one write is in flight, the items that arrive meanwhile wait
 * and go in the next write together, in one statement. An item that arrives alone is written at
 * once, so a quiet system waits for nothing; a busy one pays one round trip, one write system
 * call and one commit (its WAL flush) for a batch instead of one each (issue 12: on two cores
 * those, not the statements, were most of what a result or a `/task run` cost the machine).
 *
 * Each item keeps its own answer. A shared write that fails (a deadlock, one bad row) is written
 * again item by item, so one item's trouble neither holds back nor undoes another's, and an error
 * reaches only the caller whose own write failed; where writing an item twice would do harm, only
 * when the write surely did not commit (retryAlone), else each caller gets the error.
 *
 * A write that waits on a lock holds up the others only for a moment: after `stallMs` the next
 * batch goes beside it, at most `maxInFlight` at once, so slow commits cannot take the whole pool.
 */

export interface SharedWriteRules<Item, Answer, Shared> {
  /** Items at most per shared write: a long transaction holds its rows' locks the longer. */
  maxBatch: number;
  /** A write in flight this long no longer keeps the next batch waiting. */
  stallMs: number;
  /** Writes in flight at once, however long they take. */
  maxInFlight: number;
  /** Items written one by one (after a shared write failed, or looked into after one) this many at a time. */
  fallbackAtOnce: number;
  /** The order a batch is written in (the order its rows are locked in). */
  order?: (a: Item, b: Item) => number;
  /** Whether `item` may go in a batch holding `batch` (else it waits for the next). */
  fits?: (item: Item, batch: readonly Item[]) => boolean;
  /**
   * The batch in one statement; what it says of each item, in order. May throw: then each item
   * is written alone, or (retryAlone) given the error.
   */
  together(batch: Item[]): Promise<Shared[]>;
  /**
   * After the shared write committed, each item's answer from what it said, with any read that
   * needs (bounded, like the fallback): its error is the item's own, and the write is not redone.
   */
  confirm(item: Item, shared: Shared): Answer | Promise<Answer>;
  /** One item alone: when it came alone, or after a shared write failed. */
  alone(item: Item): Promise<Answer>;
  /**
   * Whether the items of a shared write that failed with `error` may be written again one by one:
   * only if it surely did not commit, unless writing an item twice is harmless. Default: yes.
   */
  retryAlone?: (error: unknown) => boolean;
  /** An item not sent within this long (every write in flight is stuck) fails instead of waiting on. */
  maxWaitMs?: number;
  /** A shared write failed (its items are written one by one next, or given its error). */
  onSharedFailure?: (error: unknown, items: number) => void;
}

interface Waiting<Item, Answer> {
  item: Item;
  resolve(answer: Answer): void;
  reject(error: unknown): void;
  /** Taken into a write (its deadline no longer applies). */
  sent?: boolean;
  /** Fails it when it waits too long (maxWaitMs), until it is sent. */
  deadline?: NodeJS.Timeout;
}

export class SharedWrites<Item, Answer, Shared> {
  private waiting: Array<Waiting<Item, Answer>> = [];
  /** Writes in flight for less than stallMs: the next batch waits for them. */
  private holding = 0;
  private inFlight = 0;

  constructor(private readonly rules: SharedWriteRules<Item, Answer, Shared>) {}

  write(item: Item): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      const waiting: Waiting<Item, Answer> = { item, resolve, reject };
      this.waiting.push(waiting);
      this.next();
      const { maxWaitMs } = this.rules;
      if (maxWaitMs === undefined || waiting.sent) return;
      waiting.deadline = setTimeout(() => {
        if (waiting.sent) return;
        this.waiting.splice(this.waiting.indexOf(waiting), 1);
        reject(new Error(`not written: waited ${maxWaitMs} ms for the writes in flight to answer`));
      }, maxWaitMs);
      waiting.deadline.unref();
    });
  }

  private next(): void {
    if (this.holding > 0 || this.inFlight >= this.rules.maxInFlight || this.waiting.length === 0) return;
    const batch = this.take();
    this.holding++;
    this.inFlight++;
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.holding--;
      this.next();
    };
    const stall = setTimeout(release, this.rules.stallMs);
    stall.unref();
    this.writeBatch(batch)
      // Never left unsettled: an error of our own (say, a report's) fails the batch's writes.
      // A promise settled already ignores it.
      .catch((error: unknown) => {
        for (const waiting of batch) waiting.reject(error);
      })
      .finally(() => {
        clearTimeout(stall);
        this.inFlight--;
        if (held) release();
        else this.next();
      });
  }

  /** The next batch, in arrival order up to maxBatch, skipping items that do not fit it (they wait, in order). */
  private take(): Array<Waiting<Item, Answer>> {
    const { fits, order, maxBatch } = this.rules;
    const batch: Array<Waiting<Item, Answer>> = [];
    const items: Item[] = [];
    const left: Array<Waiting<Item, Answer>> = [];
    for (const waiting of this.waiting) {
      if (batch.length < maxBatch && (!fits || fits(waiting.item, items))) {
        waiting.sent = true;
        clearTimeout(waiting.deadline);
        batch.push(waiting);
        items.push(waiting.item);
      } else left.push(waiting);
    }
    this.waiting = left;
    return order ? batch.sort((a, b) => order(a.item, b.item)) : batch;
  }

  private async writeBatch(batch: Array<Waiting<Item, Answer>>): Promise<void> {
    if (batch.length > 1) {
      const shared = await this.writeTogether(batch);
      if (shared === 'failed') return;
      if (shared) {
        // A statement that answers for a different number of items is a bug: each is given the
        // error (below, by the caller's catch), none is written again.
        if (shared.length !== batch.length) throw new Error(`a shared write answered for ${shared.length} of ${batch.length} items`);
        await this.eachBounded(batch, (item, i) => this.rules.confirm(item, shared[i]!));
        return;
      }
    }
    // Each on its own, in order, a few at a time: the pool is shared with other work, and an item
    // waiting on a lock still leaves the others a way through. An item's own error reaches its caller.
    await this.eachBounded(batch, (item) => this.rules.alone(item));
  }

  /**
   * What the shared write said of each item; null when it failed and each is to be written alone;
   * 'failed' when it failed and might have committed (each item was given the error).
   */
  private async writeTogether(batch: Array<Waiting<Item, Answer>>): Promise<Shared[] | null | 'failed'> {
    try {
      return await this.rules.together(batch.map((waiting) => waiting.item));
    } catch (error) {
      try {
        this.rules.onSharedFailure?.(error, batch.length);
      } catch {
        // Reporting it must not keep the items from being written.
      }
      if (this.rules.retryAlone?.(error) ?? true) return null;
      for (const waiting of batch) waiting.reject(error);
      return 'failed';
    }
  }

  /** `store` for each waiting item, fallbackAtOnce at a time, in order; each answer or error goes to its own caller. */
  private async eachBounded(batch: Array<Waiting<Item, Answer>>, store: (item: Item, index: number) => Answer | Promise<Answer>): Promise<void> {
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < batch.length; i = next++) {
        const waiting = batch[i]!;
        try {
          waiting.resolve(await store(waiting.item, i));
        } catch (error) {
          waiting.reject(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.rules.fallbackAtOnce, batch.length) }, worker));
  }
}
