/**
 * SharedWrites' rules on their own (the writes are promises the test settles): what goes alone,
 * what goes together, what is written again and what is not. ResultWriter and the births use it
 * on Postgres (test/e2e/result-writer.test.ts, test/e2e/task-births.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { SharedWrites, type SharedWriteRules } from '../../src/store/sharedWrites.js';

interface Held {
  items: number[];
  resolve(value: number[]): void;
  reject(error: unknown): void;
}

/**
 * Shared writes wait until the test settles them. `alone` answers item * 10 at once, but the first
 * alone write waits for `release()` (the write in flight that others come behind); `failAlone`
 * makes an item's alone write throw.
 */
function harness(rules: Partial<SharedWriteRules<number, number, number>> = {}, failAlone: (item: number) => boolean = () => false) {
  const together: Held[] = [];
  const alone: number[] = [];
  let release: () => void = () => undefined;
  const writes = new SharedWrites<number, number, number>({
    maxBatch: 3,
    stallMs: 60_000,
    maxInFlight: 2,
    fallbackAtOnce: 2,
    together: (items) => new Promise<number[]>((resolve, reject) => together.push({ items, resolve, reject })),
    confirm: (_item, shared) => shared,
    alone: async (item) => {
      alone.push(item);
      if (alone.length === 1) await new Promise<void>((resolve) => (release = resolve));
      if (failAlone(item)) throw new Error(`${item} is bad`);
      return item * 10;
    },
    ...rules,
  });
  return { writes, together, alone, release: () => release() };
}

/** Writes `first` (held in flight), then `rest` behind it, and lets the first end: the rest go together. */
async function behindOne(h: ReturnType<typeof harness>, first: number, rest: number[]): Promise<Array<Promise<number>>> {
  const held = h.writes.write(first);
  const behind = rest.map((item) => h.writes.write(item));
  await tick();
  expect(h.together).toEqual([]);
  h.release();
  expect(await held).toBe(first * 10);
  await tick();
  return behind;
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('SharedWrites', () => {
  it('writes an item that comes alone at once, alone', async () => {
    const h = harness();
    const answer = h.writes.write(1);
    await tick();
    // Sent before anything else happened: no batch waits to form.
    expect(h.alone).toEqual([1]);
    h.release();
    expect(await answer).toBe(10);
    expect(h.together).toEqual([]);
  });

  it('writes the items that come while one is in flight together, up to maxBatch, in the order given', async () => {
    const h = harness();
    const rest = await behindOne(h, 1, [5, 3, 4, 2]);
    expect(h.together.map((held) => held.items)).toEqual([[5, 3, 4]]);
    h.together[0]!.resolve([50, 30, 40]);
    // The one left over goes next, alone.
    expect(await Promise.all(rest)).toEqual([50, 30, 40, 20]);
    expect(h.alone).toEqual([1, 2]);
  });

  it('orders a batch and leaves out what does not fit it for the next', async () => {
    const h = harness({ maxBatch: 10, order: (a, b) => a - b, fits: (item, batch) => !batch.some((other) => other % 10 === item % 10) });
    const rest = await behindOne(h, 100, [3, 1, 13, 2]);
    expect(h.together.map((held) => held.items)).toEqual([[1, 2, 3]]);
    h.together[0]!.resolve([1, 2, 3]);
    expect(await Promise.all(rest)).toEqual([3, 1, 130, 2]);
  });

  it('lets the next batch go beside a write that stalled, at most maxInFlight at once', async () => {
    const { writes, together } = harness({ stallMs: 20, maxInFlight: 2, alone: () => new Promise<number>(() => undefined) });
    void writes.write(1);
    const batchOf = [writes.write(2), writes.write(3)];
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(together.map((held) => held.items)).toEqual([[2, 3]]);
    // Two in flight: a third write waits, however long they stall.
    const waiting = [writes.write(4), writes.write(5)];
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(together).toHaveLength(1);
    together[0]!.resolve([20, 30]);
    expect(await Promise.all(batchOf)).toEqual([20, 30]);
    await tick();
    expect(together.map((held) => held.items)).toEqual([
      [2, 3],
      [4, 5],
    ]);
    together[1]!.resolve([40, 50]);
    expect(await Promise.all(waiting)).toEqual([40, 50]);
  });

  it('writes the items of a shared write that failed one by one, each answer and error its own', async () => {
    const reported: number[] = [];
    const h = harness({ onSharedFailure: (_error, items) => reported.push(items) }, (item) => item === 3);
    const rest = await behindOne(h, 1, [2, 3, 4]);
    h.together[0]!.reject(new Error('one bad row'));
    const settled = await Promise.allSettled(rest);
    expect(settled.map((s) => (s.status === 'fulfilled' ? s.value : (s.reason as Error).message))).toEqual([20, '3 is bad', 40]);
    expect(reported).toEqual([3]);
  });

  it('gives every item the error, writing none again, when the failed write may have committed', async () => {
    const h = harness({ retryAlone: (error) => (error as Error).message === 'refused' });
    const rest = await behindOne(h, 1, [2, 3]);
    h.together[0]!.reject(new Error('connection lost'));
    const settled = await Promise.allSettled(rest);
    expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : s.value))).toEqual(['connection lost', 'connection lost']);
    expect(h.alone).toEqual([1]);
  });

  it('gives every item the error, writing none again, when a shared write answers for a different number of items', async () => {
    const h = harness();
    const rest = await behindOne(h, 1, [2, 3]);
    h.together[0]!.resolve([20]);
    const settled = await Promise.allSettled(rest);
    expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : s.value))).toEqual([
      'a shared write answered for 1 of 2 items',
      'a shared write answered for 1 of 2 items',
    ]);
    expect(h.alone).toEqual([1]);
  });

  it('confirms each item of a shared write on its own: one confirmation’s error is its own', async () => {
    const h = harness({
      confirm: (item, shared) => {
        if (item === 2) throw new Error('its read failed');
        return shared + 1;
      },
    });
    const rest = await behindOne(h, 1, [2, 3]);
    h.together[0]!.resolve([20, 30]);
    const settled = await Promise.allSettled(rest);
    expect(settled.map((s) => (s.status === 'rejected' ? (s.reason as Error).message : s.value))).toEqual(['its read failed', 31]);
  });

  it('fails an item that cannot be sent within maxWaitMs, and writes it nowhere', async () => {
    const h = harness({ maxInFlight: 1, stallMs: 5, maxWaitMs: 50 });
    void h.writes.write(1);
    await expect(h.writes.write(2)).rejects.toThrow(/waited 50 ms/);
    expect(h.alone).toEqual([1]);
    expect(h.together).toEqual([]);
  });
});
