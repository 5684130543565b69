/**
 * Requests from another workspace or organisation are refused (issue 10 point 9): correctly
 * signed commands, clicks, view submissions and events whose team, enterprise or acting user is
 * not ours reach no listener. Our workspace is learned from auth.test of the bot token (the fake
 * answers T0TEST), or set with SLACK_TEAM_ID, which then wins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { FAKE_TEAM_ID } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, BOT_TOKEN, Harness, SIGNING_SECRET, TASKS_CHANNEL } from '../support/harness.js';
import { SlackDriver } from '../support/slackDriver.js';

const OTHER_TEAM = 'T0OTHER';

describe('requests from outside our workspace', () => {
  let h: Harness;
  /** Drivers signing with our secret, as Slack does for every workspace the app is installed in. */
  const driver = (opts: { teamId?: string; enterpriseId?: string; userTeamId?: string }, appUrl = h.app.url) =>
    new SlackDriver({ appUrl, signingSecret: SIGNING_SECRET, fake: h.fake, ...opts });

  beforeAll(async () => {
    h = await Harness.start({
      extraYaml: () => ['recipes:', '  hello:', '    target: sandbox', '    script: echo hello'].join('\n'),
    });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('a slash command from another workspace is answered with a refusal and creates nothing', async () => {
    const before = await h.count('tasks');
    const foreign = await driver({ teamId: OTHER_TEAM }).command({ text: 'run sandbox -m "hi" echo from-elsewhere', user: AUTHOR, channel: TASKS_CHANNEL });
    expect(foreign.status).toBe(200);
    expect(foreign.json).toEqual({ response_type: 'ephemeral', text: expect.stringContaining('serves another Slack workspace') });
    const grid = await driver({ enterpriseId: 'E0OTHER' }).command({ text: 'run sandbox -m "hi" echo from-an-org', user: AUTHOR, channel: TASKS_CHANNEL });
    expect(grid.json.text).toContain('serves another Slack workspace');
    expect(await h.count('tasks')).toBe(before);
    // Ours still works.
    const ours = await h.command('run sandbox -m "hi" echo from-home');
    expect(ours.json.text).toMatch(/Created \*#\d+\*/);
    expect(await h.count('tasks')).toBe(before + 1);
  });

  it('a click from another workspace, organisation, or a Slack Connect stranger approves nothing', async () => {
    const id = await h.createTask('run web-prod -m "check" echo approved-at-home');
    const request = await h.reviewRequest(id);
    const strangers = [driver({ teamId: OTHER_TEAM }), driver({ enterpriseId: 'E0OTHER' }), driver({ userTeamId: 'T0STRANGER' })];
    for (const stranger of strangers) {
      const click = await stranger.clickButton({ message: request, actionId: ACTION.approve, user: ALICE });
      expect(click.status).toBe(200);
    }
    expect((await h.task(id))?.status).toBe('pending-review');
    // ALICE's own click is the barrier: after it, exactly one review, so the foreign ones made none.
    await h.click(request, ACTION.approve, ALICE);
    await h.waitForStatus(id, 'approved');
    expect(await h.count('reviews', { task_id: id })).toBe(1);
  });

  it('a view submission from another workspace creates nothing and says why', async () => {
    const before = h.fake.views.list.length;
    await h.command('start hello');
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      'the hello form',
    );
    const tasks = await h.count('tasks');
    const refused = await driver({ teamId: OTHER_TEAM }).submitView({ view: form, user: AUTHOR });
    expect(refused.json).toMatchObject({
      response_action: 'update',
      view: { blocks: [{ text: { text: expect.stringContaining('serves another Slack workspace') } }] },
    });
    expect(await h.count('tasks')).toBe(tasks);
    const accepted = await h.driver.submitView({ view: form, user: AUTHOR });
    expect(JSON.stringify(accepted.json)).toMatch(/#\d+/);
    expect(await h.count('tasks')).toBe(tasks + 1);
  });

  it('an event from another workspace draws no App Home', async () => {
    const publishes = h.fake.callsTo('views.publish').length;
    const answer = await driver({ teamId: OTHER_TEAM }).event({ event: { type: 'app_home_opened', user: 'USTRANGER', channel: 'DSTRANGER', tab: 'home' } });
    expect(answer.status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(
      h.fake
        .callsTo('views.publish')
        .slice(publishes)
        .filter((call) => call.args.user_id === 'USTRANGER'),
    ).toEqual([]);
    await h.driver.event({ event: { type: 'app_home_opened', user: 'UHOMEBODY', channel: 'DHOMEBODY', tab: 'home' } });
    await h.fake.waitFor(() => h.fake.homeOf('UHOMEBODY'), 5000, "our user's App Home");
  });

  it('SLACK_TEAM_ID, when set, is the only workspace served, whatever auth.test says', async () => {
    const replica = await h.startReplica({
      env: { slack: { signingSecret: SIGNING_SECRET, botToken: BOT_TOKEN }, slackMissing: [], slackApiUrl: h.fake.url, port: 0, slackTeamId: 'T0CONFIGURED' },
    });
    try {
      const before = await h.count('tasks');
      const fromFake = await driver({}, replica.url).command({ text: 'run sandbox echo x', user: AUTHOR, channel: TASKS_CHANNEL });
      expect(FAKE_TEAM_ID).not.toBe('T0CONFIGURED');
      expect(fromFake.json.text).toContain('serves another Slack workspace');
      expect(await h.count('tasks')).toBe(before);
      const fromConfigured = await driver({ teamId: 'T0CONFIGURED' }, replica.url).command({
        text: 'run sandbox -m "configured" echo y',
        user: AUTHOR,
        channel: TASKS_CHANNEL,
      });
      expect(fromConfigured.json.text).toMatch(/Created \*#\d+\*/);
    } finally {
      await replica.stop(1000);
    }
  });
});
