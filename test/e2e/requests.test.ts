/**
 * What arrives at /slack/events that should not change anything: forged, stale or unsigned
 * requests; replayed commands; and every kind of bad input, each answered within 3 s.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HELP_TEXT } from '../../src/domain/command.js';
import { AUTHOR, Harness, SIGNING_SECRET, slackEscape } from '../support/harness.js';

describe('requests at /slack/events', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('answers 401 to forged, stale and unsigned requests, and creates nothing', async () => {
    const text = slackEscape('run sandbox touch /tmp/countersign-forged');
    const forged = await h.driver.command({ text, user: AUTHOR }, { secret: 'not-the-secret' });
    const stale = await h.driver.command({ text, user: AUTHOR }, { timestamp: Math.floor(Date.now() / 1000) - 6 * 60 });
    const unsigned = await h.driver.command({ text, user: AUTHOR }, { omit: true });
    const garbage = await h.driver.command({ text, user: AUTHOR }, { signature: 'v0=deadbeef' });
    expect([forged.status, stale.status, unsigned.status, garbage.status]).toEqual([401, 401, 401, 401]);
    // Still fine just inside the 5-minute window.
    const recent = await h.driver.command(
      { text: slackEscape('run sandbox true'), user: AUTHOR },
      { timestamp: Math.floor(Date.now() / 1000) - 4 * 60, secret: SIGNING_SECRET },
    );
    expect(recent.status).toBe(200);
    expect(await h.count('tasks')).toBe(1);
    expect(await h.count('events', { type: 'task.created' })).toBe(1);
    await h.waitForStatus(1, 'success');
  });

  it('creates one task when the same command is delivered twice', async () => {
    const before = await h.count('tasks');
    const triggerId = '1234567890.trigger.replayed';
    const [first, second] = await Promise.all([
      h.command('run web-prod -m "once" uptime', AUTHOR, { triggerId }),
      h.command('run web-prod -m "once" uptime', AUTHOR, { triggerId }),
    ]);
    const third = await h.command('run web-prod -m "once" uptime', AUTHOR, { triggerId });
    expect(await h.count('tasks')).toBe(before + 1);
    const texts = [first.json.text, second.json.text, third.json.text];
    expect(texts.filter((t: string) => /^:white_check_mark: Created/.test(t))).toHaveLength(1);
    expect(texts.filter((t: string) => /already created \*#\d+\*/.test(t))).toHaveLength(2);
    const ids = new Set(texts.map((t: string) => /#(\d+)/.exec(t)?.[1]));
    expect(ids.size).toBe(1);
    // One card, one review request.
    const id = Number([...ids][0]);
    // Both posted (they go out side by side), then a moment for any duplicate to arrive.
    await h.reviewRequest(id);
    await h.card(id);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(h.fake.callsTo('chat.postMessage').filter((c) => JSON.stringify(c.args.blocks ?? []).includes(`*#${id}*`))).toHaveLength(2);
  });

  const badInputs: Array<[string, RegExp]> = [
    ['run nowhere uptime', /There is no target `nowhere`\. Targets: `web-prod`, `auto-prod`, `sandbox`/],
    ['run web-prod', /The script is empty/],
    ['run web-prod -m "why"', /The script is empty/],
    [`run web-prod \`\`\`\n${'echo 0123456789abcdef\n'.repeat(3300)}\`\`\``, /the limit is 64 KiB/],
    ['run web-prod -m "why uptime', /no closing " quote/],
    ['run web-prod echo "oops', /unclosed " quote/],
    ['run web-prod ```\nuptime', /fence is not closed/],
    ['deploy web-prod', /Unknown subcommand `deploy`/],
    ['run', /Which target\?/],
  ];

  it.each(badInputs)('answers %#: a clear ephemeral error within 3 s, creating nothing', async (text, expected) => {
    const before = await h.count('tasks');
    const response = await h.command(text);
    expect(response.status).toBe(200);
    expect(response.ms).toBeLessThan(3000);
    expect(response.json.response_type).toBe('ephemeral');
    expect(response.json.text).toMatch(expected);
    expect(await h.count('tasks')).toBe(before);
  });

  it('shows the grammar for /task help, and keeps serving after all that', async () => {
    const help = await h.command('help');
    expect(help.json).toMatchObject({ response_type: 'ephemeral', text: HELP_TEXT });
    const health = await fetch(`${h.app.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', slack: 'configured' });
    const id = await h.createTask('run sandbox echo still-alive');
    expect((await h.waitForStatus(id, ['success', 'failure'])).status).toBe('success');
  });

  it('answers payloads it does not handle without crashing', async () => {
    const junk = await h.driver.post('payload=%7Bnot-json', 'application/x-www-form-urlencoded');
    expect(junk.status).toBeGreaterThanOrEqual(400);
    const health = await fetch(`${h.app.url}/healthz`);
    expect(health.status).toBe(200);
  });
});
