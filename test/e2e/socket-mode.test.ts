/**
 * Socket Mode (SLACK_APP_TOKEN set): the same commands, clicks and modals as over HTTP, arriving
 * as envelopes on a WebSocket the app opened with apps.connections.open, acknowledged on it within
 * Slack's 3 s; no /slack/events endpoint; and the link survives Slack's refresh requests and drops.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { ACTION, REJECT_REASON_BLOCK, REJECT_REASON_INPUT } from '../../src/slack/render/blocks.js';
import { APP_TOKEN, startFakeSocketMode, SocketModeDriver, type FakeSocketMode } from '../support/fakeSocketMode.js';
import {
  ALICE,
  AUTHOR,
  BOB,
  blocksText,
  BOT_TOKEN,
  buttonIds,
  Harness,
  REVIEW_CHANNEL,
  SIGNING_SECRET,
  slackEscape,
  TASKS_CHANNEL,
} from '../support/harness.js';
import { SlackDriver, type DriverResponse } from '../support/slackDriver.js';

/** Well inside Slack's 3 s: an ack this slow would mean the listener does its work before acking. */
const ACK_MS = 1000;

describe('Socket Mode', () => {
  let h: Harness;
  let slack: FakeSocketMode;
  let app: RunningApp;
  let driver: SocketModeDriver;

  beforeAll(async () => {
    h = await Harness.start();
    // The harness's own app is in HTTP mode and would claim runs and draw cards too: stop it, so
    // everything below is done by the Socket Mode process alone.
    await h.app.stop(1000);
    slack = await startFakeSocketMode(h.fake, { appToken: APP_TOKEN });
    app = await h.startReplica({
      env: {
        // The signing secret stays set so the 404 below shows the endpoint is gone, not unverifiable.
        slack: { signingSecret: SIGNING_SECRET, botToken: BOT_TOKEN },
        slackMissing: [],
        slackAppToken: APP_TOKEN,
        // apps.connections.open goes to SLACK_API_URL like every other call.
        slackApiUrl: slack.apiUrl,
        port: 0,
      },
    });
    driver = new SocketModeDriver(slack, h.fake);
  });

  afterAll(async () => {
    await app?.stop(2000);
    await slack?.close();
    await h?.stop();
  });

  /** `/task <text>` typed by `user` in the tasks channel, as a slash_commands envelope. */
  const command = (text: string, user = AUTHOR) => driver.command({ text: slackEscape(text), user, channel: TASKS_CHANNEL });

  const taskIdOf = (ack: DriverResponse) => Number(/#(\d+)/.exec(String(ack.json?.text))?.[1]);

  /** Runs `/task run sandbox ...` and waits for its success, with `marker` in the card's thread. */
  async function runSandboxTask(marker: string): Promise<number> {
    const ack = await command(`run sandbox -m "why" echo ${marker}`);
    expect(ack.ms).toBeLessThan(ACK_MS);
    expect(ack.json).toEqual({
      response_type: 'ephemeral',
      text: expect.stringMatching(/Created \*#\d+\* on `sandbox`\. This target has no review, so it runs now/),
    });
    const id = taskIdOf(ack);
    const card = await h.card(id);
    const done = await h.waitForStatus(id, ['success', 'failure']);
    expect(done.status).toBe('success');
    await h.fake.waitFor(() => h.fake.thread(TASKS_CHANNEL, card.ts).some((m) => (m.text ?? '').includes(marker)), 10_000, `${marker} in the thread`);
    await h.card(id, 'success');
    return id;
  }

  it('connects with the app token, and serves no /slack/events', async () => {
    // startApp returned only after Slack's hello: one apps.connections.open, one connection.
    expect(slack.connectionsOpened).toBe(1);
    expect(slack.connections).toBe(1);
    expect(h.fake.callsTo('apps.connections.open')).toHaveLength(1);
    // Through countersign's own HTTP client, as every Slack call (test/e2e/slack-http.test.ts).
    expect(h.fake.callsTo('apps.connections.open')[0]?.headers['accept-encoding']).toBeUndefined();

    // A correctly signed request to the HTTP endpoint finds nothing there.
    const http = new SlackDriver({ appUrl: app.url, signingSecret: SIGNING_SECRET, fake: h.fake });
    const posted = await http.command({ text: 'help', user: AUTHOR, channel: TASKS_CHANNEL });
    expect(posted.status).toBe(404);
    const health = await fetch(`${app.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', slack: 'configured' });

    // Like Slack, the fake hands a WebSocket URL only for the right app-level token.
    const open = async (token: string) =>
      (await (await fetch(`${slack.apiUrl}apps.connections.open`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json()) as {
        ok: boolean;
        error?: string;
      };
    expect(await open(BOT_TOKEN)).toEqual({ ok: false, error: 'not_allowed_token_type' });
    expect(await open('xapp-1-someone-else')).toEqual({ ok: false, error: 'invalid_auth' });
  });

  it('answers /task help in the ack, and acks Events API envelopes', async () => {
    const help = await command('help');
    expect(help.ms).toBeLessThan(ACK_MS);
    expect(help.json).toEqual({ response_type: 'ephemeral', text: expect.stringContaining('/task run') });
    // No listener for it: Bolt acks events itself, with an empty payload.
    const event = await driver.event({ event: { type: 'app_home_opened', user: AUTHOR, channel: 'DHOME', tab: 'home' } });
    expect(event.json).toEqual({});
    expect(event.ms).toBeLessThan(ACK_MS);
  });

  it('runs an unreviewed task from a slash command, answering in the ack', async () => {
    const before = h.fake.responses.length;
    await runSandboxTask('hi-from-socket-mode');
    // The answer came in the ack itself, not through the response_url.
    expect(h.fake.responses.length).toBe(before);
  });

  it('takes Approve and Run as interactive envelopes', async () => {
    const created = await command('run web-prod -m "check before deploy" echo approved-over-socket');
    expect(created.ms).toBeLessThan(ACK_MS);
    expect(created.json.text).toMatch(/Created \*#\d+\* on `web-prod`.*waits for review by \*sre\*/);
    const id = taskIdOf(created);
    const request = await h.reviewRequest(id);
    expect(request.channel).toBe(REVIEW_CHANNEL);
    expect(buttonIds(request)).toEqual([ACTION.approve, ACTION.reject]);

    // A refusal: acked at once (empty payload), the reason follows through the response_url.
    let seen = h.fake.responses.length;
    const refused = await driver.clickButton({ message: request, actionId: ACTION.approve, user: AUTHOR });
    expect(refused.json).toEqual({});
    expect(refused.ms).toBeLessThan(ACK_MS);
    await h.fake.waitFor(() => h.fake.responses.length > seen, 5000, 'the refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/You wrote #\d+, so you cannot review it/);
    expect((await h.task(id))?.status).toBe('pending-review');

    const approved = await driver.clickButton({ message: request, actionId: ACTION.approve, user: ALICE });
    expect(approved.json).toEqual({});
    expect(approved.ms).toBeLessThan(ACK_MS);
    await h.waitForStatus(id, 'approved');
    const card = await h.card(id, `Approved by <@${ALICE}>`);
    expect(buttonIds(card)).toEqual([ACTION.run]);

    seen = h.fake.responses.length;
    const run = await driver.clickButton({ message: card, actionId: ACTION.run, user: AUTHOR });
    expect(run.ms).toBeLessThan(ACK_MS);
    const done = await h.waitForStatus(id, ['success', 'failure']);
    expect(done.status).toBe('success');
    await h.fake.waitFor(
      () => h.fake.thread(TASKS_CHANNEL, card.ts).some((m) => (m.text ?? '').includes('approved-over-socket')),
      10_000,
      'output in the thread',
    );
    expect(await h.count('executions', { task_id: id })).toBe(1);
    expect(h.fake.responses.length).toBe(seen); // Run said nothing back: it just ran
  });

  it('rejects through the modal: the click opens it, view_submission answers in the ack', async () => {
    const id = taskIdOf(await command('run web-prod -m "cleanup" echo never'));
    const request = await h.reviewRequest(id);
    const viewsBefore = h.fake.views.list.length;
    // Two reviewers open the reason modal (each click's trigger_id is exchanged within 3 s).
    await driver.clickButton({ message: request, actionId: ACTION.reject, user: ALICE });
    await driver.clickButton({ message: request, actionId: ACTION.reject, user: BOB });
    const [aliceModal, bobModal] = await h.fake.waitFor(
      () => (h.fake.views.list.length >= viewsBefore + 2 ? h.fake.views.list.slice(viewsBefore) : undefined),
      5000,
      'two reject modals',
    );

    const submitted = await driver.submitView({
      view: aliceModal!,
      user: ALICE,
      values: { [REJECT_REASON_BLOCK]: { [REJECT_REASON_INPUT]: 'use the runbook' } },
    });
    expect(submitted.json).toEqual({}); // closes the modal
    expect(submitted.ms).toBeLessThan(ACK_MS);
    await h.waitForStatus(id, 'rejected');
    expect(blocksText(await h.card(id, 'Rejected by'))).toContain('use the runbook');

    // The second rejection is refused inside the modal: the errors travel in the ack payload.
    const late = await driver.submitView({ view: bobModal!, user: BOB });
    expect(late.json).toEqual({
      response_action: 'errors',
      errors: { [REJECT_REASON_BLOCK]: expect.stringMatching(/is rejected; it can no longer be reviewed/) },
    });
    expect(await h.count('reviews', { task_id: id })).toBe(1);
    expect(await h.count('executions', { task_id: id })).toBe(0);
  });

  it('reconnects when Slack asks for a refresh, and keeps working', async () => {
    const connections = slack.connections;
    slack.disconnect('refresh_requested');
    // The client closes cleanly, asks apps.connections.open for a new URL, and gets a new hello
    // (socket-mode waits clientPingTimeout, 5 s, before reconnecting).
    await slack.waitForConnections(connections + 1);
    expect(slack.history[connections - 1]).toMatchObject({ endedBy: 'client', clientCloseCode: 1000 });
    expect(slack.connectionsOpened).toBe(connections + 1);
    expect(h.fake.callsTo('apps.connections.open').filter((c) => c.response.ok === true)).toHaveLength(connections + 1);
    expect(slack.openConnections).toBe(1);

    await runSandboxTask('after-refresh');
    expect(slack.acks.at(-1)?.connection).toBe(connections + 1);
  }, 30_000);

  it('reconnects after the connection drops without a close frame', async () => {
    const connections = slack.connections;
    slack.dropConnection();
    await slack.waitForConnections(connections + 1);
    expect(slack.history[connections - 1]?.endedBy).toBe('server');
    expect(slack.openConnections).toBe(1);

    await runSandboxTask('after-drop');
    // Every envelope of this file was acked, each once, well within Slack's 3 s.
    expect(slack.acks.map((a) => a.envelopeId).sort()).toEqual(slack.sent.map((e) => e.envelope_id).sort());
    expect(Math.max(...slack.acks.map((a) => a.ms))).toBeLessThan(ACK_MS);
    // The client's keepalive ran (the fake answered its pings), and it reconnected only when told to.
    expect(slack.pings).toBeGreaterThan(0);
    expect(slack.connectionsOpened).toBe(3);
  }, 30_000);
});
