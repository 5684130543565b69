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
