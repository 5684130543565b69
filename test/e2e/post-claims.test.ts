/**
 * A burst of commands in one channel: Slack takes about one post a second per channel, so most
 * cards wait in the channel's queue. A card's post is claimed (so one process posts it) only when
 * its turn comes: a claim taken before a wait of minutes would go stale and let another process
 * post the same card, and the burst's acks would pay for claims that only wait.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTHOR, Harness } from '../support/harness.js';

const CHANNEL = 'CBURST';

describe('post claims in a burst', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('claims a card only when its channel can take the post, and posts each card once', async () => {
    const burst = 6; // the app allows 3 at once, then one per 1.1 s
    const acks = await Promise.all(Array.from({ length: burst }, (_, i) => h.command(`run web-prod -m "burst ${i}" true`, AUTHOR, { channel: CHANNEL })));
    for (const ack of acks) expect(ack.status).toBe(200);
    const ids = (await h.database.db('tasks').where({ channel_id: CHANNEL }).orderBy('id').pluck('id')) as number[];
    expect(ids).toHaveLength(burst);
    // The first three are posted; the others wait for their turn without holding a claim.
    const deadline = Date.now() + 5_000;
    const waiting = () => h.database.db('tasks').whereIn('id', ids).whereNull('card_ts');
    while (Number((await waiting().clone().count<{ count: number }[]>('* as count'))[0]!.count) !== burst - 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const queued = await waiting().clone().select('id', 'card_post_claimed_at');
    expect(queued).toHaveLength(burst - 3);
    expect(queued.every((row) => row.card_post_claimed_at === null)).toBe(true);
    // All of them follow, each once.
    await h.fake.waitFor(() => (h.fake.messages(CHANNEL).filter((m) => !m.thread_ts).length >= burst ? true : undefined), 10_000, 'every card');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.fake.messages(CHANNEL).filter((m) => !m.thread_ts)).toHaveLength(burst);
  }, 30_000);
});
