/**
 * A burst of commands: Slack takes about one post a second per channel (the app allows 3 at once,
 * then one per 1.1 s), so most cards, review requests and review DMs wait in their channel's
 * queue. Each is claimed (so one process sends it) only when its turn comes: a claim taken before
 * a wait of minutes would go stale and let another process send the same message, and the
 * burst's acks would pay for claims that only wait. Sampled while the queues drain: no message
 * holds its claim longer than its own sending takes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, AUTHOR, Harness } from '../support/harness.js';

const CHANNEL = 'CBURST';
/** Targets whose review requests go to channels of their own, all DMing one reviewer. */
const DM_TARGETS = ['dm-a', 'dm-b', 'dm-c', 'dm-d', 'dm-e', 'dm-f'];

describe('post claims in a burst', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) =>
        DM_TARGETS.flatMap((target, i) => [
          `  ${target}:`,
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`,
          '    review:',
          `      channel: CDMREVIEW${i}`,
          '      groups:',
          `        - { name: sre, users: [${ALICE}], approvals: 1, dm: true }`,
        ]).join('\n'),
    });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  /**
   * Samples which messages are claimed but not sent (`waiting()`, as keys) every 10 ms until
   * `done()`; answers the longest any of them stayed so. Sending one takes a few ms here (up to
   * a second if Slack answers 429 meanwhile); one claimed before its turn waits its place in the
   * queue (1.1 s a place: 3.3-4.7 s for the last ones here) with the claim held.
   */
  async function longestClaimedWait(waiting: () => Promise<string[]>, done: () => Promise<boolean>): Promise<number> {
    const since = new Map<string, { first: number; last: number }>();
    const deadline = Date.now() + 30_000;
    while (!(await done())) {
      if (Date.now() > deadline) throw new Error('the burst was not sent in time');
      const now = Date.now();
      for (const key of await waiting()) {
        const seen = since.get(key);
        if (seen) seen.last = now;
        else since.set(key, { first: now, last: now });
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return Math.max(0, ...[...since.values()].map((seen) => seen.last - seen.first));
  }

  it('claims each card and review request only when its channel can take the post, and posts each once', async () => {
    const burst = 7;
    const acks = await Promise.all(Array.from({ length: burst }, (_, i) => h.command(`run web-prod -m "burst ${i}" true`, AUTHOR, { channel: CHANNEL })));
    for (const ack of acks) expect(ack.status).toBe(200);
    const ids = (await h.database.db('tasks').where({ channel_id: CHANNEL }).pluck('id')) as number[];
    expect(ids).toHaveLength(burst);
    const count = async (where: string) => Number((await h.database.db('tasks').whereIn('id', ids).whereRaw(where).count<{ n: number }[]>('* as n'))[0]!.n);
    const longest = await longestClaimedWait(
      async () => {
        const rows = await h.database.db('tasks').whereIn('id', ids).select('id', 'card_post_claimed_at', 'card_ts', 'review_post_claimed_at', 'review_ts');
        return rows.flatMap((row) => [
          ...(row.card_post_claimed_at && !row.card_ts ? [`card ${row.id}`] : []),
          ...(row.review_post_claimed_at && !row.review_ts ? [`review ${row.id}`] : []),
        ]);
      },
      async () => (await count('card_ts IS NOT NULL AND review_ts IS NOT NULL')) === burst,
    );
    // Claimed up front, the last card and request waited about 4 s with their claims held.
    expect(longest).toBeLessThan(2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.fake.messages(CHANNEL).filter((m) => !m.thread_ts)).toHaveLength(burst);
  }, 30_000);

  it('claims each review DM to one reviewer only when the DM channel can take it, and sends each once', async () => {
    // One task per target, each target with its own review channel: the requests go out at once,
    // and their DMs to the one reviewer queue on the reviewer's DM channel (3 at once, then 1.1 s each).
    // Each card in a channel of its own too: a task's DMs wait for its card and request.
    const acks = await Promise.all(DM_TARGETS.map((target, i) => h.command(`run ${target} -m "dm burst ${i}" true`, AUTHOR, { channel: `CDMCARDS${i}` })));
    for (const ack of acks) expect(ack.status).toBe(200);
    const ids = (await h.database.db('tasks').whereIn('target', DM_TARGETS).pluck('id')) as number[];
    expect(ids).toHaveLength(DM_TARGETS.length);
    const sentCount = async () =>
      Number((await h.database.db('review_dms').whereIn('task_id', ids).whereNotNull('sent_at').count<{ n: number }[]>('* as n'))[0]!.n);
    const longest = await longestClaimedWait(
      async () => (await h.database.db('review_dms').whereIn('task_id', ids).whereNull('sent_at').pluck('task_id')).map((id) => `dm ${id}`),
      async () => (await sentCount()) === DM_TARGETS.length,
    );
    expect(longest).toBeLessThan(2000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const sent = h.fake
      .callsTo('chat.postMessage')
      .filter((c) => c.status === 200 && /dm burst/.test(JSON.stringify(c.args)) && String(c.args.channel).startsWith('D'));
    expect(sent).toHaveLength(DM_TARGETS.length);
  }, 40_000);
});
