/**
 * The Slack surface of issue 5 through signed requests against the fake Slack: the task form
 * (loading view then the real one, field errors, creation), list/show/logs/kill/targets, the
 * grace delay with Cancel, resubmitting after a reject, and the App Home tab with its buttons.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, TASK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { validateView } from '../support/slackLimits.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, MALLORY, REVIEW_CHANNEL, TASKS_CHANNEL, ackText, targetYaml } from '../support/harness.js';

describe('Slack surface', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({
      // A target only ALICE reviews: ALICE's own tasks there could never be approved.
      extraTargets: (ssh) =>
        targetYaml(ssh, 'solo', [
          'description: Reviewed by Alice alone',
          'review:',
          `  channel: ${REVIEW_CHANNEL}`,
          '  groups: [{ name: alice, users: [UALICE], approvals: 1 }]',
        ]),
      runner: { pollMs: 200 },
    });
    // The team's channel, where cards go: its members see its tasks (Mallory is not in it).
    h.fake.setChannelMembers(TASKS_CHANNEL, [AUTHOR, ALICE, BOB]);
  });
  afterAll(async () => {
    await h.stop();
  });

  it('/task opens the form at once, then lists only the targets the user may use', async () => {
    const response = await h.command('', ALICE);
    expect(response.status).toBe(200);
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.lastView(TASK_MODAL_CALLBACK);
        return view && view.updates > 0 ? view : undefined;
      },
      5000,
      'the form filled in',
    );
    // views.open used the trigger (a loading view), views.update filled it in.
    expect(h.fake.callsTo('views.open')).toHaveLength(1);
    expect(validateView(form)).toBeNull();
    const targets = JSON.stringify(form.blocks);
    for (const name of ['web-prod', 'sandbox', 'auto-prod']) expect(targets).toContain(`"value":"${name}"`);
    // Alice is solo's only reviewer: her task there could never be approved.
    expect(targets).not.toContain('"value":"solo"');
    expect(targets).toContain('Production web servers');
  });

  it('shows field errors in the form and creates the task when it is right', async () => {
    await h.command('new', AUTHOR);
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.lastView(TASK_MODAL_CALLBACK);
        return view && view.updates > 0 && JSON.stringify(view.blocks).includes('"value":"solo"') ? view : undefined;
      },
      5000,
      'the author’s form',
    );
    const before = await h.count('tasks');
    const bad = await h.driver.submitView({
      view: form,
      user: AUTHOR,
      values: { target: { value: 'web-prod' }, script: { value: '   ' }, delay: { value: 'soon' } },
    });
    expect(bad.status).toBe(200);
    expect(bad.json).toMatchObject({
      response_action: 'errors',
      errors: { script: expect.stringMatching(/Write the script/), delay: expect.stringMatching(/10m, 2h or 1d/) },
    });
    expect(await h.count('tasks')).toBe(before);

    const good = await h.driver.submitView({
      view: form,
      user: AUTHOR,
      values: { target: { value: 'web-prod' }, script: { value: 'echo from-the-form\nuptime' }, message: { value: 'asked in a form' } },
    });
    expect(good.json).toMatchObject({ response_action: 'update', view: { title: { text: 'Task created' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(good.json))?.[1]);
    const task = await h.task(id);
    expect(task).toMatchObject({
      status: 'pending-review',
      author: AUTHOR,
      script: 'echo from-the-form\nuptime',
      message: 'asked in a form',
      channelId: TASKS_CHANNEL,
    });
    await h.card(id, 'asked in a form');
    await h.reviewRequest(id, 'from-the-form');
    // A double submit of the same form makes no second task.
    await h.driver.submitView({
      view: form,
      user: AUTHOR,
      values: { target: { value: 'web-prod' }, script: { value: 'echo from-the-form\nuptime' }, message: { value: 'asked in a form' } },
    });
    expect(await h.count('tasks', { script: 'echo from-the-form\nuptime' })).toBe(1);
  });

  it('lists, shows, reads logs of and kills tasks, and lists targets, all ephemerally', async () => {
    const done = await h.createTask('run sandbox -m "with output" for i in $(seq 1 60); do echo "line $i"; done');
    await h.waitForStatus(done, 'success');
    const waiting = await h.createTask('run web-prod -m "needs eyes" uptime');
    const running = await h.createTask('run sandbox -m "long" echo started; sleep 30');
    await h.waitForStatus(running, 'running');

    const mine = await h.command('list', AUTHOR);
    expect(mine.json).toMatchObject({ response_type: 'ephemeral' });
    for (const id of [done, waiting, running]) expect(ackText(mine)).toContain(`*#${id}*`);
    const pending = ackText(await h.command('list pending', ALICE));
    expect(pending).toContain(`*#${waiting}*`);
    expect(pending).not.toContain(`*#${done}*`);
    expect(ackText(await h.command('list pending', AUTHOR))).toContain('Nothing waits for your review');
    const now = ackText(await h.command('list running', BOB));
    expect(now).toContain(`*#${running}*`);
    expect(now).not.toContain(`*#${waiting}*`);

    const shown = ackText(await h.command(`show ${waiting}`, BOB));
    expect(shown).toContain('needs eyes');
    expect(shown).toContain('waiting for review');
    expect(ackText(await h.command('show 99999', BOB))).toContain('There is no task #99999');

    const logs = ackText(await h.command(`logs #${done}`, BOB));
    expect(logs).toContain('line 60');
    expect(logs).toContain('line 21');
    expect(logs).not.toContain('line 20\\n');
    expect(logs).toMatch(new RegExp(`/tasks/${done}\\?expires=\\d+&sig=`));

    expect(ackText(await h.command(`kill ${running}`, MALLORY))).toMatch(/:warning:/);
    expect(ackText(await h.command(`kill ${running}`, AUTHOR))).toContain(`Stopping #${running}`);
    await h.waitForStatus(running, 'killed');

    const targets = ackText(await h.command('targets', MALLORY));
    expect(targets).toContain('*web-prod*');
    expect(targets).toContain('needs 1 approval from <@UALICE> <@UBOB>');
    expect(targets).toContain('no review: tasks run as soon as they are asked for');
  });

  it('waits out a grace delay with a Cancel button; a cancelled task never runs', async () => {
    // Long enough that the card (paced behind earlier ones in the channel) shows it still waiting.
    const cancelled = await h.createTask('run sandbox --in 60s -m "maybe" echo should-not-run');
    const card = await h.card(cancelled, 'Runs');
    expect(buttonIds(card)).toEqual([ACTION.cancel]);
    expect(blocksText(card)).toMatch(/<!date\^\d+\^\{ago\}/);
    await h.click(card, ACTION.cancel, AUTHOR);
    await h.waitForStatus(cancelled, 'cancelled');
    const after = await h.card(cancelled, 'cancelled');
    expect(buttonIds(after)).toEqual([]);

    const started = Date.now();
    const delayed = await h.createTask('run sandbox --in 1s -m "soon" echo ran-late');
    const ran = await h.waitForStatus(delayed, 'success', 10_000);
    expect(ran.startedAt!.getTime()).toBeGreaterThanOrEqual(started + 900);
    // Cancelled is final: the claim only takes `ready` tasks, so it never runs.
    expect(await h.count('executions', { task_id: cancelled })).toBe(0);
    expect((await h.task(cancelled))?.status).toBe('cancelled');
  });

  it('lets the author edit and resubmit a rejected task; nobody else', async () => {
    const id = await h.createTask('run web-prod -m "first try" echo v1');
    await h.click(await h.reviewRequest(id, 'Approve'), ACTION.reject, BOB);
    const modal = await h.fake.waitFor(() => h.fake.lastView('task_reject_reason'), 5000, 'reject modal');
    await h.driver.submitView({ view: modal, user: BOB, values: { reason: { reason_input: 'use v2' } } });
    const card = await h.card(id, 'rejected');
    expect(buttonIds(card)).toEqual([ACTION.resubmit]);

    const seen = h.fake.responses.length;
    await h.click(card, ACTION.resubmit, MALLORY);
    await h.fake.waitFor(() => h.responsesSince(seen).length > 0, 5000, 'a refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/There is no task #\d+\./); // MALLORY may not see it: nothing named

    await h.click(card, ACTION.resubmit, AUTHOR);
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.lastView(TASK_MODAL_CALLBACK);
        return view && view.updates > 0 && view.title && JSON.stringify(view.title).includes(`Resubmit #${id}`) ? view : undefined;
      },
      5000,
      'the resubmit form',
    );
    expect(JSON.stringify(form.blocks)).toContain('"initial_value":"echo v1"');
    const submitted = await h.driver.submitView({
      view: form,
      user: AUTHOR,
      values: { target: { value: 'web-prod' }, script: { value: 'echo v2' }, message: { value: 'second try' } },
    });
    const newId = Number(/#(\d+)/.exec(JSON.stringify(submitted.json))?.[1]);
    expect(newId).toBeGreaterThan(id);
    expect(await h.task(newId)).toMatchObject({ status: 'pending-review', script: 'echo v2', channelId: TASKS_CHANNEL });
  });

  it('refuses an approval of a script edited after the reviewer’s request was drawn', async () => {
    const id = await h.createTask('run web-prod -m "harmless" echo harmless');
    const seenByAlice = await h.reviewRequest(id, 'echo harmless');
    const edited = await h.app.service.update(id, AUTHOR, { script: 'echo something-else' });
    expect(edited.ok).toBe(true);
    const seen = h.fake.responses.length;
    await h.click(seenByAlice, ACTION.approve, ALICE);
    await h.fake.waitFor(() => h.responsesSince(seen).length > 0, 5000, 'a refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/changed since this request was drawn; the request now shows the new version/);
    expect((await h.task(id))?.status).toBe('pending-review');
    // The redrawn request shows the new script, and approving that works.
    const redrawn = await h.reviewRequest(id, 'echo something-else');
    await h.click(redrawn, ACTION.approve, ALICE);
    await h.waitForStatus(id, 'approved');
  });

  it('App Home shows what waits for my review with working buttons, and redraws when things change', async () => {
    const id = await h.createTask('run web-prod -m "home review" echo from-home');
    await h.driver.event({ event: { type: 'app_home_opened', user: ALICE, channel: 'DALICE', tab: 'home', event_ts: `${Date.now() / 1000}` } });
    const home = await h.fake.waitFor(
      () => {
        const view = h.fake.homeOf(ALICE);
        return view && JSON.stringify(view.blocks).includes(`*#${id}*`) ? view : undefined;
      },
      5000,
      'Alice’s Home',
    );
    expect(validateView(home)).toBeNull();
    expect(JSON.stringify(home.blocks)).toContain('Waiting for your review');

    await h.driver.clickViewButton({ view: home, actionId: ACTION.approve, user: ALICE, value: String(id) });
    await h.waitForStatus(id, 'approved');
    // Redrawn: the task no longer waits for Alice.
    await h.fake.waitFor(
      () => {
        const view = h.fake.homeOf(ALICE);
        return view && !JSON.stringify(view.blocks).includes(`Approve #${id}`) ? view : undefined;
      },
      5000,
      'Home redrawn after the approval',
    );

    // A refusal from Home (Mallory clicks a button she should not have) lands at the top of her Home.
    const other = await h.createTask('run web-prod -m "not hers" echo x');
    await h.driver.event({ event: { type: 'app_home_opened', user: MALLORY, channel: 'DMALLORY', tab: 'home', event_ts: `${Date.now() / 1000}` } });
    const malloryHome = await h.fake.waitFor(() => h.fake.homeOf(MALLORY), 5000, 'Mallory’s Home');
    expect(JSON.stringify(malloryHome.blocks)).not.toContain(`Approve #${other}`);
    const forged = {
      ...malloryHome,
      blocks: [
        {
          type: 'actions',
          block_id: 'x',
          elements: [{ type: 'button', action_id: ACTION.approve, text: { type: 'plain_text', text: 'Approve' }, value: String(other) }],
        },
      ],
    };
    await h.driver.clickViewButton({ view: forged, actionId: ACTION.approve, user: MALLORY, value: String(other) });
    await h.fake.waitFor(() => JSON.stringify(h.fake.homeOf(MALLORY)?.blocks ?? []).includes(`There is no task #${other}.`), 5000, 'the refusal on Home');
    expect((await h.task(other))?.status).toBe('pending-review');
  });
});
