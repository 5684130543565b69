/**
 * Writes that share commits: while one write is in flight, the items that arrive meanwhile wait
 * and go in the next write together, in one statement. An item that arrives alone is written at
 * once, so a quiet system waits for nothing; a busy one pays one round trip, one write system
 * call and one commit (its WAL flush) for a batch instead of one each (issue 12: on two cores
 * those, not the statements, were most of what a result or a `/task run` cost the machine).
 *
 * Each item keeps its own answer. A shared write that fails (a deadlock, one bad row, the
 * database going away) is written again item by item, so one item's trouble neither holds back
 * nor undoes another's, and an error reaches only the caller whose own write failed.
 *
 * A write that waits on a lock holds up the others only for a moment: after `stallMs` the next
 * batch goes beside it, at most `maxInFlight` at once, so slow commits cannot take the whole pool.
 */

export interface SharedWriteRules<Item, Answer> {
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
  /** The batch in one statement; each item's answer, in order. May throw: then each is written alone. */
  together(batch: Item[]): Promise<Answer[]>;
  /** One item alone: when it came alone, or after a shared write failed. */
  alone(item: Item): Promise<Answer>;
  /** After a shared write committed: an answer that needs a read of its own to be sure of (bounded, like the fallback). */
  confirm?: (item: Item, answer: Answer) => Answer | Promise<Answer>;
  /** A shared write failed (its items are written one by one next). */
  onSharedFailure?: (error: unknown, items: number) => void;
}

interface Waiting<Item, Answer> {
  item: Item;
  resolve(answer: Answer): void;
  reject(error: unknown): void;
}

export class SharedWrites<Item, Answer> {
  private waiting: Array<Waiting<Item, Answer>> = [];
  /** Writes in flight for less than stallMs: the next batch waits for them. */
  private holding = 0;
  private inFlight = 0;

  constructor(private readonly rules: SharedWriteRules<Item, Answer>) {}

  write(item: Item): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.next();
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
        batch.push(waiting);
        items.push(waiting.item);
      } else left.push(waiting);
    }
    this.waiting = left;
    return order ? batch.sort((a, b) => order(a.item, b.item)) : batch;
  }

  private async writeBatch(batch: Array<Waiting<Item, Answer>>): Promise<void> {
    const answers = batch.length > 1 ? await this.writeTogether(batch) : null;
    if (answers) {
      const { confirm } = this.rules;
      await this.eachBounded(batch, (item, i) => (confirm ? confirm(item, answers[i]!) : answers[i]!));
      return;
    }
    // Each on its own, in order, a few at a time: the pool is shared with other work, and an item
    // waiting on a lock still leaves the others a way through. An item's own error reaches its caller.
    await this.eachBounded(batch, (item) => this.rules.alone(item));
  }

  /** The batch's answers, or null when the shared write failed (reported) and each goes alone. */
  private async writeTogether(batch: Array<Waiting<Item, Answer>>): Promise<Answer[] | null> {
    try {
      const answers = await this.rules.together(batch.map((waiting) => waiting.item));
      if (answers.length !== batch.length) throw new Error(`a shared write answered ${answers.length} of ${batch.length} items`);
      return answers;
    } catch (error) {
      try {
        this.rules.onSharedFailure?.(error, batch.length);
      } catch {
        // Reporting it must not keep the items from being written.
      }
      return null;
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
