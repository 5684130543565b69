/**
 * Schedules in Slack beyond the command (issue 13, "Schedules everywhere"), through signed Slack
 * requests, the fake Slack, a real Postgres and a real sshd:
 *
 * - App Home: "Schedules waiting for your review" for a target's reviewers, with Approve naming
 *   the version shown (a Home drawn before an edit approves nothing) and Reject; "Your
 *   schedules" for their author; nothing of it for anybody else;
 * - the review request of a long script says so and puts the whole script in its thread (again
 *   for each new version; retried when the upload fails), and Home offers no Approve for it;
 * - `/task schedule show|list|pause|edit` answer a schedule the user may not see as one that
 *   does not exist.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEDULE_ACTION, SCHEDULE_REASON_BLOCK, SCHEDULE_REASON_INPUT, SCHEDULE_REJECT_CALLBACK } from '../../src/slack/render/schedule.js';
import type { FakeView } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, blocksText, Harness, MALLORY, REVIEW_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const homeText = (h: Harness, user: string) => JSON.stringify(h.fake.homeOf(user)?.blocks ?? []);

describe('schedules in App Home and the review thread', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h?.stop();
  });

  const scheduleId = (text: string) => Number(/\*S(\d+)\*/.exec(text)?.[1]);
  const row = (id: number) => h.database.db('schedules').where({ id }).first();
  const openHome = (user: string) =>
    h.driver.event({ event: { type: 'app_home_opened', user, channel: `D${user.slice(1)}`, tab: 'home', event_ts: `${Date.now() / 1000}` } });
  const homeShowing = (user: string, contains: string, label = contains): Promise<FakeView> =>
    h.fake.waitFor(
      () => {
        const view = h.fake.homeOf(user);
        return view && JSON.stringify(view.blocks).includes(contains) ? structuredClone(view) : undefined;
      },
      10_000,
      `${user}'s Home showing ${label}`,
    );
  const requestOf = (id: number, contains?: string) =>
    h.fake.waitFor(
      () => {
        const all = h.fake.messages(REVIEW_CHANNEL).filter((m) => !m.thread_ts && blocksText(m).includes(`*S${id}*`));
        const last = all.at(-1);
        return last && (contains === undefined || blocksText(last).includes(contains)) ? structuredClone(last) : undefined;
      },
      10_000,
      `review request of S${id}${contains ? ` showing ${contains}` : ''}`,
    );

  it('shows reviewers the schedules waiting for them with Approve for the version shown, and authors their schedules', async () => {
    const added = await h.command('schedule add web-prod "0 3 * * *" -m "nightly rotate" echo home-version-one');
    const id = scheduleId(added.json.text);
    await requestOf(id);
    for (const user of [ALICE, AUTHOR, MALLORY]) await openHome(user);

    const aliceHome = await homeShowing(ALICE, `*S${id}*`);
    const text = JSON.stringify(aliceHome.blocks);
    expect(text).toContain('Schedules waiting for your review (1)');
    expect(text).toContain('home-version-one');
    const before = await row(id);
    expect(text).toContain(`"value":"${id}:${before.content_version}"`);
    // The author sees it among their schedules, not as something to review; Mallory sees nothing of it.
    const authorHome = await homeShowing(AUTHOR, 'Your schedules');
    expect(JSON.stringify(authorHome.blocks)).toContain(`*S${id}*`);
    expect(JSON.stringify(authorHome.blocks)).not.toContain('Schedules waiting for your review');
    await h.fake.waitFor(() => h.fake.homeOf(MALLORY), 5000, "Mallory's Home");
    expect(homeText(h, MALLORY)).not.toContain(`S${id}`);

    // The author changes the script: the Home Alice has open still shows version one.
    const edited = await h.command(`schedule edit ${id} echo home-version-two`);
    expect(edited.json.text).toMatch(/What it runs changed/);
    const stale = await h.driver.clickViewButton({ view: aliceHome, actionId: SCHEDULE_ACTION.approve, user: ALICE, value: String(id) });
    expect(stale.status).toBe(200);
    await homeShowing(ALICE, 'changed since this request was drawn', 'the refusal');
    expect((await row(id)).status).toBe('pending-review');
    expect(await h.count('schedule_reviews', { schedule_id: id })).toBe(0);

    // Redrawn with the new version: that one approves.
    const fresh = await homeShowing(ALICE, 'home-version-two');
    const after = await row(id);
    expect(JSON.stringify(fresh.blocks)).toContain(`"value":"${id}:${after.content_version}"`);
    await h.driver.clickViewButton({ view: fresh, actionId: SCHEDULE_ACTION.approve, user: ALICE, value: String(id) });
    await waitFor(async () => (await row(id)).status === 'active', 5000, 'the schedule active');
    const approvals = await h.database.db('schedule_reviews').where({ schedule_id: id });
    expect(approvals).toMatchObject([{ user_id: ALICE, verdict: 'approve', content_version: after.content_version }]);
    // Both Homes follow: it leaves Alice's review list and shows active on the author's.
    await h.fake.waitFor(() => !homeText(h, ALICE).includes(`*S${id}*`) || undefined, 10_000, 'Alice’s Home without it');
    await h.fake.waitFor(() => /\*S\d+\*[^"]*active/.test(homeText(h, AUTHOR)) || undefined, 10_000, 'the author’s Home showing it active');
    await h.command(`schedule remove ${id}`);
  });

  it('rejects from Home through the reason modal', async () => {
    const id = scheduleId((await h.command('schedule add web-prod "0 4 * * *" echo reject-me')).json.text);
    await openHome(ALICE);
    const home = await homeShowing(ALICE, `*S${id}*`);
    await h.driver.clickViewButton({ view: home, actionId: SCHEDULE_ACTION.reject, user: ALICE, value: String(id) });
    const modal = await h.fake.waitFor(() => h.fake.lastView(SCHEDULE_REJECT_CALLBACK), 5000, 'the reject modal');
    await h.driver.submitView({ view: modal, user: ALICE, values: { [SCHEDULE_REASON_BLOCK]: { [SCHEDULE_REASON_INPUT]: 'not at 4' } } });
    await waitFor(async () => (await row(id)).status === 'rejected', 5000, 'the schedule rejected');
    await h.fake.waitFor(() => !homeText(h, ALICE).includes(`*S${id}*`) || undefined, 10_000, 'Alice’s Home without it');
  });

  it('puts the whole of a long script in the review thread, once per version, and keeps Approve off Home', async () => {
    const long = (tag: string) =>
      `echo ${tag}\n${Array.from({ length: 120 }, (_, i) => `echo "step ${i} of the ${tag} script"`).join('\n')}\necho end-of-${tag}`;
    const scriptOne = long('first');
    // The first upload fails: the reconciler puts it there later.
    h.fake.failNext('files.getUploadURLExternal', { status: 500 }, 1);
    const added = await h.command(`schedule add web-prod "0 5 * * *" -m "long one" \`\`\`\n${scriptOne}\n\`\`\``);
    const id = scheduleId(added.json.text);
    const request = await requestOf(id);
    const versionOne = (await row(id)).content_version.slice(0, 12);
    expect(blocksText(request)).toContain(`the whole script, version \`${versionOne}\`, is in this thread`);
    expect(blocksText(request)).not.toContain('end-of-first');
    const fileOf = (content: string) => h.fake.files.find((f) => f.thread_ts === request.ts && f.content.toString('utf8') === content);
    const first = await h.fake.waitFor(() => fileOf(scriptOne), 15_000, 'the whole first script in the thread');
    expect(first.channel_id).toBe(REVIEW_CHANNEL);
    // Named by the version Approve covers: after an edit the thread holds two, and the reviewer must tell them apart.
    expect(first.filename).toBe(`schedule-${id}-script-${versionOne}.sh`);
    expect(first.initial_comment).toContain(`version \`${versionOne}\``);

    // Home shows its head only, so it offers Reject but no Approve.
    await openHome(ALICE);
    const home = await homeShowing(ALICE, `*S${id}*`);
    expect(JSON.stringify(home.blocks)).toContain('The script or message is longer than Home shows');
    expect(JSON.stringify(home.blocks).match(/schedule_approve/g) ?? []).toHaveLength(0);

    // A new version: its whole script follows in the same thread, once.
    const scriptTwo = long('second');
    await h.command(`schedule edit ${id} \`\`\`\n${scriptTwo}\n\`\`\``);
    const second = await h.fake.waitFor(() => fileOf(scriptTwo), 15_000, 'the whole second script in the thread');
    expect(second.filename).toBe(`schedule-${id}-script-${(await row(id)).content_version.slice(0, 12)}.sh`);
    await h.app.schedules.changed(id);
    await new Promise((resolve) => setTimeout(resolve, 2500)); // a reconcile pass and a redraw
    expect(h.fake.files.filter((f) => f.thread_ts === request.ts)).toHaveLength(2);
    await h.command(`schedule remove ${id}`);
  }, 40_000);

  it('answers show, list, pause and edit of a schedule the user may not see as for one that does not exist', async () => {
    const id = scheduleId((await h.command('schedule add web-prod "0 6 * * *" -m "private" echo hidden-schedule')).json.text);
    const say = async (text: string, user: string) => blocksText((await h.command(text, user)).json as { text?: string; blocks?: unknown[] });
    const anonymous = (text: string, n: number) => text.replaceAll(`S${n}`, 'S#');
    for (const verb of ['show', 'pause', 'resume', 'remove']) {
      const hidden = await say(`schedule ${verb} ${id}`, MALLORY);
      expect(anonymous(hidden, id), verb).toBe(anonymous(await say(`schedule ${verb} 99999`, MALLORY), 99999));
      expect(hidden).not.toContain('hidden-schedule');
    }
    expect(anonymous(await say(`schedule edit ${id} --cron "0 7 * * *"`, MALLORY), id)).toBe(
      anonymous(await say('schedule edit 99999 --cron "0 7 * * *"', MALLORY), 99999),
    );
    expect(await say('schedule list', MALLORY)).not.toContain(`*S${id}*`);
    // Nor can anybody make a schedule visible to a channel they are not in.
    const before = await h.count('schedules');
    expect(await say('schedule add web-prod "0 6 * * *" --channel CSTRANGERS echo x', AUTHOR)).toMatch(/You are not a member of <#CSTRANGERS>/);
    expect(await say(`schedule edit ${id} --channel CSTRANGERS`, AUTHOR)).toMatch(/You are not a member of <#CSTRANGERS>/);
    expect(await h.count('schedules')).toBe(before);
    expect((await row(id)).channel_id).toBeNull();
    expect((await row(id)).status).toBe('pending-review');
    // Its author and the target's reviewers see it.
    expect(await say(`schedule show ${id}`, AUTHOR)).toContain('hidden-schedule');
    expect(await say(`schedule show ${id}`, ALICE)).toContain('hidden-schedule');
    expect(await say('schedule list', ALICE)).toContain(`*S${id}*`);
    await h.command(`schedule remove ${id}`);
  });
});
