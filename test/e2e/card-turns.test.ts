/**
 * A card or review request whose channel's turn has not come waits as a row, not as a redraw
 * held open: the redraw ends, the row is drawn again from Postgres when the turn comes, and only
 * what is still to do is done then (the message already shown is not updated again). The author
 * still hears of a refused post, when it is tried. Through signed commands, against the fake
 * Slack's own per-channel limit (three at once, then one a second).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, REVIEW_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const DM_REVIEW_CHANNELS = ['CDMREV0', 'CDMREV1', 'CDMREV2'];

describe('posts waiting for their channel', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({
      // Three targets, each with its own review channel, whose one group DMs the same two reviewers.
      extraTargets: (ssh) =>
        DM_REVIEW_CHANNELS.flatMap((channel, index) => [
          `  dm-turns-${index}:`,
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`,
          '    review:',
          `      channel: ${channel}`,
          `      groups: [{ name: oncall, users: [${ALICE}, ${BOB}], approvals: 1, dm: true }]`,
        ]).join('\n'),
      extraYaml: () => ['runbooks:', '  turn-check:', '    steps:', '      - { id: look, script: { target: web-prod, script: uptime } }'].join('\n'),
    });
  });
  afterAll(async () => {
    await h.stop();
  });

  const createIn = async (channel: string, message: string, target = 'web-prod'): Promise<number> => {
    const response = await h.command(`run ${target} -m "${message}" uptime`, undefined, { channel });
    const match = /Created \*#(\d+)\*/.exec(String(response.json?.text ?? ''));
    if (!match) throw new Error(`no task created: ${response.text}`);
    return Number(match[1]);
  };
  const topLevel = (channel: string, id: number) => h.fake.messages(channel).filter((m) => !m.thread_ts && blocksText(m).includes(`*#${id}*`));
  /** Until at least `atLeast` rows wait for their turn while no redraw is open. */
  const waitingAsRows = (views: { pending: { waitingForTurn: number; redrawing: number } }, atLeast: number, label: string) =>
    h.fake.waitFor(() => views.pending.waitingForTurn >= atLeast && views.pending.redrawing === 0, 5_000, label);
  const updatesOf = (channel: string, ts: string) =>
    h.fake.callsTo('chat.update').filter((c) => c.args.channel === channel && c.args.ts === ts && c.status === 200);

  it('waits as rows while the review channel is busy, then posts each message once and updates each once for its links', async () => {
    // Nine tasks from three channels: their cards go out at once (three per channel), their review
    // requests share one channel, where three go out at once and six wait a second apart.
    const channels = ['CTURNS1', 'CTURNS2', 'CTURNS4'];
    const ids: number[] = [];
    for (const channel of channels) for (let i = 0; i < 3; i++) ids.push(await createIn(channel, `turn ${channel} ${i}`));
    const messages = h.app.messages!;
    // While the last review requests wait, nothing is being drawn: they wait as rows.
    await waitingAsRows(messages, 2, 'review requests waiting with no redraw open');

    for (const [index, id] of ids.entries()) {
      const channel = channels[Math.floor(index / 3)]!;
      const linked = async () => {
        const row = await h.database.db('tasks').where({ id }).first('card_permalink', 'review_permalink', 'view_version', 'card_version', 'review_version');
        return (
          row.card_permalink &&
          row.review_permalink &&
          Number(row.card_version) === Number(row.view_version) &&
          Number(row.review_version) === Number(row.view_version)
        );
      };
      await waitFor(linked, 15_000, `#${id}'s messages linked and drawn`);
      await messages.idle(5_000);
      const cards = topLevel(channel, id);
      const requests = topLevel(REVIEW_CHANNEL, id);
      expect(cards, `#${id}'s card`).toHaveLength(1);
      expect(requests, `#${id}'s review request`).toHaveLength(1);
      // One update each: the one that shows the links. The card drawn before its review
      // request's wait is not drawn again when the wait ends.
      expect(updatesOf(channel, cards[0]!.ts), `#${id}'s card updates`).toHaveLength(1);
      expect(updatesOf(REVIEW_CHANNEL, requests[0]!.ts), `#${id}'s review request updates`).toHaveLength(1);
    }
    // The later review requests did wait for their turn.
    const posted = h.fake.callsTo('chat.postMessage').filter((c) => c.args.channel === REVIEW_CHANNEL && c.status === 200);
    expect(posted.at(-1)!.at - posted[0]!.at).toBeGreaterThanOrEqual(2_000);
    // A 429 now and then is no fault here: the pacing counts from when a post is sent, the fake
    // from when it arrives, and on a loaded machine the first of a burst arrive late. It is
    // retried; what must hold is above: each message posted once, none lost.
    expect(messages.pending.waitingForTurn).toBe(0);
  });

  it('lets a burst of runs wait as rows too: each run card and review request posted once, none lost', async () => {
    const channel = 'CRUNTURNS';
    h.fake.setChannelMembers(channel, [AUTHOR]);
    const api = await ApiClient.connect(h.app.url);
    const { token } = await createApiToken(h.database.db, AUTHOR, 'turns');
    const runIds: number[] = [];
    for (let i = 0; i < 6; i++) {
      const started = await api.call('POST', '/runbooks/turn-check/start', { token, body: { message: `burst ${i}`, channel } });
      expect(started.status, JSON.stringify(started.body)).toBe(201);
      runIds.push(started.body.run.id);
    }
    const runMessages = h.app.runMessages!;
    await waitingAsRows(runMessages, 1, 'run cards waiting with no redraw open');
    await waitFor(
      async () => {
        const rows = await h.database.db('runs').whereIn('id', runIds).select('card_ts', 'review_ts');
        return rows.every((row) => row.card_ts && row.review_ts);
      },
      20_000,
      'every run card and review request posted',
    );
    await runMessages.idle(5_000);
    const rows = await h.database.db('runs').whereIn('id', runIds).select('card_ts', 'review_ts');
    const cards = h.fake.messages(channel).filter((m) => !m.thread_ts);
    expect(cards.map((m) => m.ts).sort()).toEqual(rows.map((row) => row.card_ts).sort());
    const requests = new Set(rows.map((row) => row.review_ts));
    expect(h.fake.messages(REVIEW_CHANNEL).filter((m) => requests.has(m.ts))).toHaveLength(runIds.length);
    // Nothing left waiting once every turn has come (the links' redraws may still be finishing).
    await h.fake.waitFor(() => runMessages.pending.waitingForTurn === 0 && runMessages.pending.redrawing === 0, 10_000, 'run messages settled');
  });

  it('lets review DMs wait for their DM channel as rows: each reviewer DMed once per task, their DM channel opened once', async () => {
    // Nine tasks over three targets from three channels: their cards and review requests go out at
    // once (three per channel), and each of the two reviewers is owed nine DMs in one DM channel,
    // three at once, then one a second.
    const ids: number[] = [];
    for (const [index] of DM_REVIEW_CHANNELS.entries())
      for (let i = 0; i < 3; i++) ids.push(await createIn(`CDMTURNS${index}`, `dm turn ${index} ${i}`, `dm-turns-${index}`));
    const dmsSent = async () =>
      (await h.database.db('tasks').whereIn('id', ids).where({ review_dms_sent: true }).count<{ count: string }[]>('id as count'))[0]!.count;
    const messages = h.app.messages!;
    const gateway = h.app.slackGateway!;
    // Every request posted and linked, DMs still owed, and nothing being drawn: the DMs wait as rows.
    await waitFor(
      async () => {
        const requests = await h.database.db('tasks').whereIn('id', ids).whereNotNull('review_permalink').count<{ count: string }[]>('id as count');
        return (
          Number(requests[0]!.count) === ids.length &&
          Number(await dmsSent()) < ids.length &&
          messages.pending.waitingForTurn > 0 &&
          messages.pending.redrawing === 0
        );
      },
      8_000,
      'review DMs waiting with no redraw open',
    );
    // One of Alice's waiting DMs is sent by another process meanwhile (as its ledger says): the turn
    // promised here for it goes to the next DM, and this process does not send it again.
    const sentHere = await h.database.db('review_dms').whereIn('task_id', ids).where({ user_id: ALICE }).pluck('task_id');
    const elsewhere = ids.findLast((id) => !sentHere.includes(id))!;
    expect(elsewhere).toBeDefined();
    await h.database
      .db('review_dms')
      .insert({ task_id: elsewhere, user_id: ALICE, claimed_at: h.database.db.fn.now(), sent_at: h.database.db.fn.now(), channel_id: 'DALICE' });
    await waitFor(async () => Number(await dmsSent()) === ids.length, 20_000, 'every review DM sent');
    for (const reviewer of [ALICE, BOB]) {
      const dms = h.fake.messages(`D${reviewer.slice(1)}`);
      for (const id of ids)
        expect(
          dms.filter((m) => (m.text ?? '').startsWith(`Review requested: #${id} on`)),
          `${reviewer}'s DMs about #${id}`,
        ).toHaveLength(reviewer === ALICE && id === elsewhere ? 0 : 1);
      // Their DM channel asked for once, not at every try of every task.
      expect(h.fake.callsTo('conversations.open').filter((c) => c.args.users === reviewer && c.status === 200)).toHaveLength(1);
    }
    await h.fake.waitFor(() => messages.pending.waitingForTurn === 0 || undefined, 10_000, 'nothing left waiting');
    // No turn left promised: not even the one the DM sent elsewhere was promised.
    expect(gateway.turnsPromised).toBe(0);
  });

  it('tells the author of a refused card when its turn comes, and posts it once it can', async () => {
    const channel = 'CTURNS3';
    // Five before it: three go out at once, two wait, and this card waits behind them.
    for (let i = 0; i < 5; i++) await createIn(channel, `filler ${i}`);
    // Its post is refused, as Slack refuses a post to a channel the app is not in.
    // Only the card's post: its review request (same message, another channel) may get its turn first.
    h.fake.failNext(
      'chat.postMessage',
      { error: 'not_in_channel' },
      1,
      (args) => args.channel === channel && JSON.stringify(args).includes('refused when its turn comes'),
    );
    const before = h.fake.responses.length;
    const sent = Date.now();
    const id = await createIn(channel, 'refused when its turn comes');
    // Waiting for its turn: nothing to tell yet.
    await h.fake.waitFor(() => h.app.messages!.pending.waitingForTurn >= 1 || undefined, 5_000, 'the card waiting');
    expect(h.responsesSince(before)).toEqual([]);
    const warning = await h.fake.waitFor(
      () => h.responsesSince(before).find((text) => text.includes('could not post its card here')),
      10_000,
      'the warning to the author',
    );
    expect(warning).toContain(`#${id}`);
    expect(warning).toContain('`not_in_channel`');
    // Told when the post was tried, at the channel's turn, not when the task was made.
    const refused = h.fake.callsTo('chat.postMessage').find((c) => c.args.channel === channel && c.response.ok === false);
    expect(refused!.at - sent).toBeGreaterThanOrEqual(500);
    // The card follows once Slack takes it, and the author is told once.
    await h.fake.waitFor(() => topLevel(channel, id).length === 1 || undefined, 15_000, 'the card posted after the refusal');
    await h.app.messages!.idle(5_000);
    expect(topLevel(channel, id)).toHaveLength(1);
    expect(h.responsesSince(before).filter((text) => text.includes('could not post'))).toHaveLength(1);
  });
});

describe('a review request shown before its card waited', () => {
  let h: Harness;
  beforeAll(async () => {
    // Retries far off: what this test sees is done by the draw at the card's turn, not by a retry.
    h = await Harness.start({ slackRetryBaseMs: 10_000 });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('still gets its whole script in the thread at the card’s turn when the first upload failed', async () => {
    const channel = 'CSCRIPTTURN';
    // Unreviewed tasks fill the card channel's burst without touching the review channel's.
    for (let i = 0; i < 3; i++) {
      const filler = await h.command(`run sandbox -m "filler ${i}" true`, undefined, { channel });
      expect(String(filler.json?.text)).toMatch(/Created/);
    }
    // The upload fails once, and Slack will not link either message (no redraw follows for the links).
    h.fake.failNext('files.getUploadURLExternal', { error: 'internal_error' });
    h.fake.failNext('chat.getPermalink', { error: 'message_not_found' }, 10);
    const lines = Array.from({ length: 400 }, (_, i) => `echo "step ${i}"`);
    const sent = Date.now();
    const response = await h.command(`run web-prod -m "long script, card waits" \`\`\`\n${lines.join('\n')}\n\`\`\``, undefined, { channel });
    const id = Number(/#(\d+)/.exec(String(response.json?.text))?.[1]);
    const request = await h.reviewRequest(id);
    expect(blocksText(request)).toContain('is in this thread');
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.thread_ts === request.ts), 8_000, 'the whole script in the review thread');
    expect(file.content.toString('utf8')).toBe(lines.join('\n'));
    // Before the failed upload's own retry (10 s): the draw at the card's turn did it.
    expect(Date.now() - sent).toBeLessThan(9_000);
    expect(h.fake.messages(channel).filter((m) => !m.thread_ts && blocksText(m).includes(`*#${id}*`))).toHaveLength(1);
  });
});

describe('updates waiting for the workspace’s chat.update budget', () => {
  let h: Harness;
  beforeAll(async () => {
    // Two updates a second after a burst of ten, for the whole workspace (Slack's Tier 3 is about 50 a minute).
    h = await Harness.start({ chatUpdatesPerMinute: 120 });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('wait as rows too, then update each message once', { timeout: 60_000 }, async () => {
    const ids: number[] = [];
    for (const channel of ['CUPD1', 'CUPD2', 'CUPD3', 'CUPD4']) {
      for (let i = 0; i < 2; i++) {
        const response = await h.command(`run web-prod -m "update turn ${channel} ${i}" uptime`, undefined, { channel });
        ids.push(Number(/Created \*#(\d+)\*/.exec(String(response.json?.text))?.[1]));
      }
    }
    const messages = h.app.messages!;
    const settled = async () => {
      const rows = await h.database
        .db('tasks')
        .whereIn('id', ids)
        .select('view_version', 'card_version', 'review_version', 'card_permalink', 'review_permalink');
      return rows.every(
        (row) =>
          row.card_permalink &&
          row.review_permalink &&
          Number(row.card_version) === Number(row.view_version) &&
          Number(row.review_version) === Number(row.view_version),
      );
    };
    await waitFor(settled, 30_000, 'every task linked and drawn');
    await messages.idle(5_000);
    const updatesBefore = h.fake.callsTo('chat.update').length;

    // A change to every task (as a review or a claim makes: the version moves), sixteen updates at
    // once: more than the budget's burst, so most wait for their turn.
    await h.database.db('tasks').whereIn('id', ids).increment('view_version', 1);
    for (const id of ids) messages.changed(id);
    await h.fake.waitFor(() => messages.pending.waitingForTurn >= 2 && messages.pending.redrawing === 0, 5_000, 'updates waiting with no redraw open');
    await h.fake.waitFor(() => h.fake.callsTo('chat.update').length >= updatesBefore + 2 * ids.length || undefined, 30_000, 'every message updated');
    await h.fake.waitFor(() => (messages.pending.waitingForTurn === 0 && messages.pending.redrawing === 0) || undefined, 10_000, 'nothing left waiting');
    const updates = h.fake.callsTo('chat.update').slice(updatesBefore);
    // Each message once: a message updated before its task's other one waited is not updated again.
    const perMessage = new Map<string, number>();
    for (const call of updates)
      perMessage.set(`${String(call.args.channel)} ${String(call.args.ts)}`, (perMessage.get(`${String(call.args.channel)} ${String(call.args.ts)}`) ?? 0) + 1);
    expect(perMessage.size).toBe(2 * ids.length);
    expect([...perMessage.values()].every((n) => n === 1)).toBe(true);
    // Paced: the last ones half a second apart, never refused.
    expect(updates.every((call) => call.status === 200 && call.response.ok === true)).toBe(true);
    expect(updates.at(-1)!.at - updates[0]!.at).toBeGreaterThanOrEqual(1_000);
  });
});
