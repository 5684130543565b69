/**
 * Schedule reviews end to end (issue 10 point 3 for schedules, issue 13 "Schedules everywhere"):
 * through signed Slack requests, a real Postgres and a real sshd,
 *
 * - an Approve button carries the schedule's content version (SHA-256): a request drawn before an
 *   edit, an old-style button without a version and a forged version approve nothing;
 * - `/task schedule edit`: the cron, channel and result options change at once (audited, fired on
 *   the new cron); a new script, message, type or target is reviewed again in a new round, and
 *   the schedule fires nothing until approved;
 * - review DMs to members of `dm: true` groups, once per reviewer and round across processes;
 * - `review.expiresAfter` expires a schedule's review, counted from when it was last asked for.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { ReviewExpiry } from '../../src/service/reviewExpiry.js';
import { SCHEDULE_ACTION } from '../../src/slack/render/schedule.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, MALLORY, REVIEW_CHANNEL, sleep } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const ERIN = 'UERIN';
const SRE_GROUP = 'S0SRE';
const DM_REVIEW = 'CDMREVIEW';
const EXPIRE_REVIEW = 'CEXPREVIEW';
const EDIT_RESULTS = 'CEDITRES';

describe('schedule reviews: content versions, edit, DMs, expiry', () => {
  let h: Harness;
  const log = createLogger('silent');
  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) => {
        const host = `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`;
        const sshBlock = `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`;
        return [
          '  dm-prod:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${DM_REVIEW}`,
          '      groups:',
          `        - { name: sre, users: [${ALICE}], usergroup: ${SRE_GROUP}, approvals: 1, dm: true }`,
          '  expiring:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${EXPIRE_REVIEW}`,
          '      expiresAfter: 2s',
          `      groups: [{ name: sre, users: [${ALICE}, ${BOB}], approvals: 1 }]`,
        ].join('\n');
      },
    });
    h.fake.setUsergroup(SRE_GROUP, [BOB, ERIN, AUTHOR]);
    // A results channel lets its members see the schedule: its author must be in it.
    h.fake.setChannelMembers(EDIT_RESULTS, [AUTHOR]);
  });
  afterAll(async () => {
    await h?.stop();
  });

  const db = () => h.database.db;
  const scheduleId = (text: string) => Number(/\*S(\d+)\*/.exec(text)?.[1]);
  const row = (id: number) => db()('schedules').where({ id }).first();
  const firingsOf = (id: number) => db()('schedule_firings').where({ schedule_id: id }).orderBy('fire_at');
  const eventsOf = (id: number, type: string) => db()('events').where({ type }).whereRaw("(data->>'schedule')::int = ?", [id]).orderBy('id');
  /** Every review request of S<id> in a channel, oldest first. */
  const requestsOf = (channel: string, id: number) => h.fake.messages(channel).filter((m) => !m.thread_ts && blocksText(m).includes(`*S${id}*`));
  /** The newest review request of S<id>, once it shows `contains`: a copy, as a reviewer's screen shows it. */
  const request = (channel: string, id: number, contains?: string | RegExp): Promise<FakeMessage> =>
    h.fake.waitFor(
      () => {
        const all = requestsOf(channel, id);
        const m = all[all.length - 1];
        if (!m) return undefined;
        const text = blocksText(m);
        const shows = contains === undefined || (typeof contains === 'string' ? text.includes(contains) : contains.test(text));
        return shows ? structuredClone(m) : undefined;
      },
      10_000,
      `review request of S${id} in ${channel}${contains ? ` showing ${String(contains)}` : ''}`,
    );
  const approveValue = (message: FakeMessage): string => {
    for (const block of (message.blocks ?? []) as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>) {
      for (const element of block.elements ?? []) if (element.action_id === SCHEDULE_ACTION.approve) return String(element.value);
    }
    throw new Error('no Approve button');
  };
  /** The same message with its Approve button carrying another value (what a forged click sends). */
  const withApproveValue = (message: FakeMessage, value: string): FakeMessage => {
    const copy = structuredClone(message);
    for (const block of (copy.blocks ?? []) as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>) {
      for (const element of block.elements ?? []) if (element.action_id === SCHEDULE_ACTION.approve) element.value = value;
    }
    return copy;
  };
  const answersAfter = async (seen: number, count = 1) => {
    await h.fake.waitFor(() => h.fake.responses.length >= seen + count || undefined, 5000, `${count} ephemeral answers`);
    return h.responsesSince(seen);
  };
  /** What the host printed for a task (its first execution). */
  const outputOf = async (taskId: number): Promise<string> => {
    const chunks: string[] = await db()('output_chunks as o')
      .join('executions as e', 'e.id', 'o.execution_id')
      .where('e.task_id', taskId)
      .orderBy('o.id')
      .pluck('o.data');
    return chunks.join('');
  };

  it('binds an approval to the content version its button showed: an edit voids older buttons', async () => {
    const ack = await h.command('schedule add web-prod "0 3 * * *" -m "nightly" echo version-one');
    const id = scheduleId(ack.json.text);
    const first = await request(REVIEW_CHANNEL, id, 'version-one');
    const before = await row(id);
    expect(before.content_version).toMatch(/^[0-9a-f]{64}$/);
    expect(approveValue(first)).toBe(`${id}:${before.content_version}`);

    const edited = await h.command(`schedule edit ${id} echo version-two`);
    expect(edited.json.text).toMatch(/Changed \*S\d+\* \(script\)\. What it runs changed, so it waits for a new review/);
    // Redrawn in place, with the new script and a button for the new version.
    const second = await request(REVIEW_CHANNEL, id, 'version-two');
    expect(second.ts).toBe(first.ts);
    const after = await row(id);
    expect(after.content_version).not.toBe(before.content_version);
    expect(approveValue(second)).toBe(`${id}:${after.content_version}`);

    // The request as ALICE saw it before the edit; an old-style button (no version); a forged version.
    const seen = h.fake.responses.length;
    await h.click(first, SCHEDULE_ACTION.approve, ALICE);
    await h.click(withApproveValue(second, String(id)), SCHEDULE_ACTION.approve, ALICE);
    await h.click(withApproveValue(second, `${id}:${'0'.repeat(64)}`), SCHEDULE_ACTION.approve, BOB);
    const refusals = await answersAfter(seen, 3);
    expect(refusals).toHaveLength(3);
    for (const refusal of refusals) expect(refusal).toMatch(/S\d+ changed since this request was drawn; the request now shows the new version/);
    expect((await row(id)).status).toBe('pending-review');
    expect(await db()('schedule_reviews').where({ schedule_id: id })).toHaveLength(0);

    await h.click(second, SCHEDULE_ACTION.approve, ALICE);
    await waitFor(async () => (await row(id)).status === 'active', 5000, 'approved');
    const reviews = await db()('schedule_reviews').where({ schedule_id: id });
    expect(reviews).toEqual([expect.objectContaining({ user_id: ALICE, verdict: 'approve', content_version: after.content_version, review_round: 1 })]);
    const [edit] = await eventsOf(id, 'schedule.edited');
    expect(edit.actor).toBe(AUTHOR);
    expect(edit.data).toMatchObject({
      reviewAgain: true,
      contentVersion: { from: before.content_version, to: after.content_version },
      changes: { script: expect.any(Object) },
    });
    await h.command(`schedule remove ${id}`);
  });

  it('applies cron, channel and result options at once, and sends a new script to review: nothing fires until approved', async () => {
    const ack = await h.command('schedule add web-prod "0 0 1 1 *" --notify failure -m "yearly" echo old-$((1+1))');
    const id = scheduleId(ack.json.text);
    await h.click(await request(REVIEW_CHANNEL, id), SCHEDULE_ACTION.approve, ALICE);
    await waitFor(async () => (await row(id)).status === 'active', 5000, 'active');

    // Only the author edits: a reviewer who rewrote it could approve their own words. Mallory
    // may not even see it, so for her it does not exist.
    expect((await h.command(`schedule edit ${id} --cron "* * * * *"`, MALLORY)).json.text).toMatch(/There is no schedule S\d+/);
    expect((await h.command(`schedule edit ${id} --cron "* * * * *"`, ALICE)).json.text).toMatch(/Only its author can edit S\d+/);
    expect((await h.command(`schedule edit ${id} --cron "61 * * * *"`)).json.text).toMatch(/not a valid cron: the minute field has `61` \(0-59\)/);

    // As Slack sends a channel picked from its list: `<#C…|name>` markup, not escaped.
    const changed = await h.driver.command({
      text: `schedule edit ${id} --cron "*/1 * * * * *" --channel <#${EDIT_RESULTS}|edits> --notify always --overlap allow --catch-up skip`,
      user: AUTHOR,
      channel: 'CTASKS',
    });
    expect(changed.json.text).toMatch(
      /Changed \*S\d+\* \(cron, channel, notify, overlap, catch-up\); now `\*\/1 \* \* \* \* \*` \(UTC\), :large_green_circle: active/,
    );
    expect((await row(id)).status).toBe('active');
    expect(requestsOf(REVIEW_CHANNEL, id)).toHaveLength(1);
    // The new cron fires (node-cron's task was made again), and results go to the new channel.
    const firing = await waitFor(
      async () => (await firingsOf(id)).find((f: { task_id: string | null }) => f.task_id !== null),
      10_000,
      'a firing on the new cron',
    );
    expect(await outputOf((await h.waitForStatus(Number(firing.task_id), 'success')).id)).toContain('old-2');
    await h.fake.waitFor(() => h.fake.messages(EDIT_RESULTS).find((m) => blocksText(m).includes(`S${id} `)), 10_000, 'a result in the new channel');
    const [edit] = await eventsOf(id, 'schedule.edited');
    expect(edit.data).toMatchObject({
      reviewAgain: false,
      changes: { cron: { from: '0 0 1 1 *', to: '*/1 * * * * *' }, channelId: { from: null, to: EDIT_RESULTS }, overlap: { from: 'skip', to: 'allow' } },
    });

    const script = await h.command(`schedule edit ${id} echo new-$((2+2))`);
    expect(script.json.text).toMatch(/waits for a new review by \*sre\*/);
    expect((await row(id)).status).toBe('pending-review');
    await sleep(500); // a firing decided just before the edit may still start
    const atEdit = (await firingsOf(id)).length;
    await sleep(2500);
    expect((await firingsOf(id)).length).toBe(atEdit);
    // A new request (the first one recorded the old approval); ALICE may decide again in the new round.
    await h.fake.waitFor(() => requestsOf(REVIEW_CHANNEL, id).length === 2 || undefined, 10_000, 'a second review request');
    const fresh = await request(REVIEW_CHANNEL, id, 'new-');
    expect(buttonIds(fresh)).toEqual([SCHEDULE_ACTION.approve, SCHEDULE_ACTION.reject]);
    await h.click(fresh, SCHEDULE_ACTION.approve, ALICE);
    const next = await waitFor(
      async () => (await firingsOf(id)).slice(atEdit).find((f: { task_id: string | null }) => f.task_id !== null),
      10_000,
      'a firing after the new approval',
    );
    expect(await outputOf((await h.waitForStatus(Number(next.task_id), 'success')).id)).toContain('new-4');
    const ready = await db()('events').where({ task_id: next.task_id, type: 'task.ready' }).first();
    expect(ready.data).toMatchObject({ coveredBy: 'schedule-approval', approvedBy: [ALICE], contentVersion: (await row(id)).content_version });
    const back = await eventsOf(id, 'schedule.pending-review');
    expect(back.map((e: { data: Record<string, unknown> }) => e.data)).toEqual([
      expect.objectContaining({ from: 'active', reason: 'edited', changed: ['script'] }),
    ]);
    await h.command(`schedule remove ${id}`);
  }, 60_000);

  it('keeps a schedule on a target without review active through a script edit, and reviews it when it moves to a reviewed target', async () => {
    const id = scheduleId((await h.command('schedule add sandbox "0 0 1 1 *" echo a')).json.text);
    expect((await row(id)).status).toBe('active');
    const edited = await h.command(`schedule edit ${id} -m "still open" echo b`);
    expect(edited.json.text).toMatch(/Changed \*S\d+\* \(script, message\); now .*active/);
    expect((await row(id)).status).toBe('active');
    const moved = await h.command(`schedule edit ${id} --target web-prod`);
    expect(moved.json.text).toMatch(/Changed \*S\d+\* \(target\)\. What it runs changed, so it waits for a new review/);
    expect((await row(id)).status).toBe('pending-review');
    await request(REVIEW_CHANNEL, id, 'still open');
    expect((await h.command(`schedule edit ${id} --target nowhere`)).json.text).toMatch(/There is no target `nowhere`/);
    await h.command(`schedule remove ${id}`);
    expect((await h.command(`schedule edit ${id} echo c`)).json.text).toMatch(/S\d+ is removed; add a new schedule instead/);
  });

  it('DMs each member of a dm group once per review round, never the author, with a link to the request', async () => {
    const id = scheduleId((await h.command('schedule add dm-prod "0 4 * * *" -m "please look: schedule DMs" echo dm')).json.text);
    const req = await request(DM_REVIEW, id);
    const recipients = [ALICE, BOB, ERIN];
    const dms = () => h.fake.messages().filter((m) => m.channel.startsWith('D') && blocksText(m).includes(`schedule S${id} `));
    await h.fake.waitFor(() => dms().length >= recipients.length || undefined, 10_000, 'three DMs');
    // Redraws and the reconciler in this process and in a second one send none again.
    const replica = await h.startReplica();
    try {
      await replica.scheduler.stop();
      await h.app.schedules.edit(id, AUTHOR, {
        cron: '0 5 * * *',
        tz: null,
        channel: null,
        message: null,
        type: null,
        target: null,
        notify: null,
        overlap: null,
        catchUp: null,
        script: null,
      });
      await replica.schedules.edit(id, AUTHOR, {
        cron: '0 6 * * *',
        tz: null,
        channel: null,
        message: null,
        type: null,
        target: null,
        notify: null,
        overlap: null,
        catchUp: null,
        script: null,
      });
      await sleep(1000);
    } finally {
      await replica.stop(1000);
    }
    expect(
      dms()
        .map((m) => m.channel)
        .sort(),
    ).toEqual(['DALICE', 'DBOB', 'DERIN']);
    const permalink = `https://fake.slack/archives/${DM_REVIEW}/p${req.ts.replace('.', '')}`;
    for (const dm of dms()) {
      const text = blocksText(dm);
      expect(text).toContain(`<@${AUTHOR}> asks for your review of schedule S${id} on \`dm-prod\``);
      expect(text).toContain('please look: schedule DMs');
      expect(text).toContain(`<${permalink}|Open the review request>`);
    }
    expect((await eventsOf(id, 'schedule.review.dm-sent')).map((e: { data: { user: string } }) => e.data.user).sort()).toEqual([...recipients].sort());
    expect((await row(id)).review_dms_round).toBe(0);

    // What it runs changed: a new round, and everyone hears of it again.
    await h.command(`schedule edit ${id} echo dm-two`);
    await h.fake.waitFor(() => dms().length >= 2 * recipients.length || undefined, 10_000, 'three more DMs');
    await sleep(300);
    expect(dms()).toHaveLength(6);
    expect((await row(id)).review_dms_round).toBe(1);
    await h.command(`schedule remove ${id}`);
  }, 30_000);

  it('expires a schedule review left pending, counted from when it was last asked for', async () => {
    const expiry = new ReviewExpiry(db(), h.config, h.app.bus, log, { intervalMs: 60_000, schedules: h.app.schedules });
    const stale = scheduleId((await h.command('schedule add expiring "0 4 * * *" echo stale')).json.text);
    const renewed = scheduleId((await h.command('schedule add expiring "0 4 * * *" echo first')).json.text);
    const staleRequest = await request(EXPIRE_REVIEW, stale);
    await sleep(1200);
    await h.command(`schedule edit ${renewed} echo second`); // asks again: its clock restarts
    await sleep(1000);
    // Past the deadline, an approval is refused even before the sweep marks it.
    const seen = h.fake.responses.length;
    await h.click(staleRequest, SCHEDULE_ACTION.approve, ALICE);
    expect((await answersAfter(seen))[0]).toMatch(/The review of S\d+ has expired/);
    expect(await expiry.sweep()).toEqual([]); // tasks: none
    expect((await row(stale)).status).toBe('rejected');
    expect((await row(stale)).status_reason).toMatch(/review expired after 2s without enough approvals/);
    expect((await row(renewed)).status).toBe('pending-review');
    const [rejected] = await eventsOf(stale, 'schedule.rejected');
    expect(rejected).toMatchObject({ actor: null, data: { reason: 'expired', after: '2s', from: 'pending-review' } });
    await h.fake.waitFor(
      () => {
        const now = requestsOf(EXPIRE_REVIEW, stale)[0];
        return now && buttonIds(now).length === 0 && blocksText(now).includes('review expired after 2s');
      },
      5000,
      'the request shows the expiry',
    );
    await sleep(1300);
    await expiry.sweep();
    expect((await row(renewed)).status).toBe('rejected');
    expect(await firingsOf(stale)).toHaveLength(0);
  }, 30_000);
});
