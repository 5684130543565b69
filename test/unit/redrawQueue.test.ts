/**
 * The reconciler's sweep over rows whose Slack messages are behind. In a burst, most rows are
 * behind while their posts wait for their channel's turn (minutes): a row this process is
 * redrawing already is passed over, not given a second redraw queued behind the first (which
 * doubled the reads and updates, and held the sweep until the first one's post went out).
 */
import { describe, expect, it } from 'vitest';
import { RedrawAttempt, RedrawQueue, type MessagesLogger, type Redraw } from '../../src/slack/messageSync.js';

const log: MessagesLogger = { warn: () => undefined, error: () => undefined };

describe('RedrawQueue.reconcile', () => {
  it('passes over rows being redrawn, redraws the others once, and does not wait for the busy ones', async () => {
    const redrawn: number[] = [];
    let releaseFirst: () => void = () => undefined;
    const firstHeld = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const queue = new RedrawQueue<null>(
      'task',
      async (id): Promise<Redraw<null>> => {
        redrawn.push(id);
        // Row 1's post waits for its channel's turn.
        if (id === 1 && redrawn.filter((x) => x === 1).length === 1) await firstHeld;
        return { report: null, attempt: new RedrawAttempt(log, { id }, `task ${id}`), failed: false };
      },
      async () => [1, 2, 3],
      log,
      { retryBaseMs: 1000, reconcileMs: 60_000 },
    );
    const first = queue.sync(1);
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The sweep finishes while row 1's redraw still waits.
    const swept = await Promise.race([queue.reconcile().then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 2000))]);
    releaseFirst();
    expect(swept).toBe(true);
    expect(redrawn).toEqual([1, 2, 3]);
    await first;
    await queue.idle(1000);
    // No second redraw of row 1 was queued behind the first.
    expect(redrawn).toEqual([1, 2, 3]);
    // Idle now: the next sweep redraws it as any other row still behind.
    await queue.reconcile();
    expect(redrawn.filter((id) => id === 1)).toHaveLength(2);
    queue.stop();
  });
});

describe('RedrawQueue: rows waiting for a turn', () => {
  const deferred = (log: MessagesLogger, id: number, waitMs: number): Redraw<string> => {
    const attempt = new RedrawAttempt(log, { id }, `task ${id}`);
    if (waitMs > 0) attempt.waitForTurn(waitMs);
    return { report: waitMs > 0 ? 'waiting' : 'posted', attempt, failed: false };
  };

  it('ends a redraw whose post must wait, holds the row as a timer, passes it over when reconciling, and resumes it at its turn', async () => {
    const calls: Array<{ id: number; resumed: boolean; at: number }> = [];
    const waits = [2_000, 0, 0];
    const queue = new RedrawQueue<string>(
      'task',
      async (id, resumed) => {
        calls.push({ id, resumed, at: Date.now() });
        return deferred(log, id, waits.shift() ?? 0);
      },
      async () => [7],
      log,
      { retryBaseMs: 1000, reconcileMs: 60_000 },
    );
    const started = Date.now();
    expect(await queue.sync(7)).toBe('waiting');
    await queue.idle(100);
    expect(queue.pending).toEqual({ waitingForTurn: 1, redrawing: 0 });
    // The sweep does not draw a row that only waits for its turn, nor does a follower start one.
    await queue.reconcile();
    queue.follow(7, () => true, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(calls).toHaveLength(1);
    await waitFor(() => calls.length === 2);
    expect(calls[1]).toMatchObject({ id: 7, resumed: true });
    expect(calls[1]!.at - started).toBeGreaterThanOrEqual(1_990);
    await queue.idle(1000);
    expect(queue.pending).toEqual({ waitingForTurn: 0, redrawing: 0 });
    // A redraw asked for by a change is not a resumed one.
    await queue.sync(7);
    expect(calls[2]).toMatchObject({ resumed: false });
    queue.stop();
  });

  it('keeps the earliest turn when a row is told to wait again, and resumes it once', async () => {
    const calls: number[] = [];
    // First draw: wait 400 ms. A redraw asked for meanwhile: wait 1,500 ms (a later turn of the other message).
    const waits = [400, 1_500, 0];
    const queue = new RedrawQueue<string>(
      'task',
      async (id) => {
        calls.push(Date.now());
        return deferred(log, id, waits.shift() ?? 0);
      },
      async () => [],
      log,
      { retryBaseMs: 1000, reconcileMs: 60_000 },
    );
    const started = Date.now();
    await queue.sync(3);
    await queue.sync(3);
    await waitFor(() => calls.length === 3);
    expect(calls[2]! - started).toBeGreaterThanOrEqual(390);
    expect(calls[2]! - started).toBeLessThan(1_400);
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    expect(calls).toHaveLength(3);
    queue.stop();
  });

  it('keeps a refused post backing off while the row waits for its turn between tries', async () => {
    const calls: number[] = [];
    // Refused, then waiting a little, then refused again, then fine: the second retry must back off longer than the first.
    const script: Array<'refused' | 'wait' | 'ok'> = ['refused', 'wait', 'refused', 'ok'];
    const queue = new RedrawQueue<string>(
      'task',
      async (id) => {
        calls.push(Date.now());
        const step = script.shift() ?? 'ok';
        const attempt = new RedrawAttempt(log, { id }, `task ${id}`);
        if (step === 'wait') attempt.waitForTurn(20);
        return { report: step, attempt, failed: step === 'refused' };
      },
      async () => [],
      log,
      { retryBaseMs: 300, reconcileMs: 60_000 },
    );
    await queue.sync(5);
    await waitFor(() => calls.length === 4, 5_000);
    // Retry one after 300 ms (then a 20 ms wait); retry two after 600 ms, not 300 again.
    expect(calls[3]! - calls[2]!).toBeGreaterThanOrEqual(590);
    queue.stop();
  });

  it('tells a follower each report until it is done, starting a redraw for an idle row, and forgets it when it expires', async () => {
    let waits = [200, 0];
    const queue = new RedrawQueue<string>(
      'task',
      async (id) => deferred(log, id, waits.shift() ?? 0),
      async () => [],
      log,
      {
        retryBaseMs: 1000,
        reconcileMs: 60_000,
      },
    );
    const heard: string[] = [];
    // Idle row: following it starts a redraw, which waits; the one at the turn posts.
    queue.follow(
      1,
      (report) => {
        heard.push(report);
        return report === 'posted';
      },
      10_000,
    );
    await waitFor(() => heard.length === 2);
    expect(heard).toEqual(['waiting', 'posted']);
    // Done: a later redraw is not told.
    await queue.sync(1);
    expect(heard).toEqual(['waiting', 'posted']);

    // A follower whose time is up hears nothing more, and a listener that throws is dropped, not rethrown.
    waits = [0, 0];
    const late: string[] = [];
    queue.follow(2, (report) => late.push(report) > 5, 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await queue.sync(2);
    const thrown: string[] = [];
    queue.follow(
      3,
      (report) => {
        thrown.push(report);
        throw new Error('listener bug');
      },
      10_000,
    );
    await waitFor(() => thrown.length === 1);
    await queue.sync(3);
    expect(thrown).toHaveLength(1);
    expect(late.length).toBeLessThanOrEqual(1);
    queue.stop();
  });
});

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('RedrawQueue: a redraw that throws', () => {
  it('is tried again after the backoff, not left to the reconciler', async () => {
    const calls: number[] = [];
    const queue = new RedrawQueue<string>(
      'task',
      async (id) => {
        calls.push(Date.now());
        if (calls.length === 1) throw new Error('the database is away');
        return { report: 'drawn', attempt: new RedrawAttempt(log, { id }, `task ${id}`), failed: false };
      },
      async () => [],
      log,
      { retryBaseMs: 300, reconcileMs: 60_000 },
    );
    await expect(queue.sync(9)).rejects.toThrow('the database is away');
    await waitFor(() => calls.length === 2, 3_000);
    expect(calls[1]! - calls[0]!).toBeGreaterThanOrEqual(290);
    // Drawn: no more tries.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(calls).toHaveLength(2);
    queue.stop();
  });
});
