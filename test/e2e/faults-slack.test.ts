/**
 * Fault: Slack answers every call with HTTP 500 for 15 s and then with 429 for 15 s, while tasks
 * stream output into their threads and end. Postgres keeps the truth meanwhile; once Slack is
 * back every card shows its task's final state and every thread holds every line of its output
 * (in its messages or in the uploaded log): no write is dropped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FakeSlack } from '../support/fakeSlack.js';
import { blocksText, Harness, TASKS_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

/** Every method the app calls while tasks run and end, and the upload URL. */
const METHODS = [
  'chat.postMessage',
  'chat.update',
  'chat.getPermalink',
  'files.getUploadURLExternal',
  'upload',
  'files.completeUploadExternal',
  'views.publish',
  'conversations.members',
  'usergroups.users.list',
];

function slackFails(fake: FakeSlack, failure: { status: number; retryAfter?: number }): void {
  for (const method of METHODS) fake.failNext(method, failure, 1_000_000);
}

describe('fault: Slack answers 500 and 429 for 30 s', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({ threadFlushMs: 500 });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('brings every card and thread up to date once Slack is back', async () => {
    // Four runs end during the outage (one of them failing), one after it.
    const plans = [
      { lines: 24, every: 0.5, exit: 0 },
      { lines: 30, every: 0.4, exit: 0 },
      { lines: 12, every: 1, exit: 1 },
      { lines: 200, every: 0.05, exit: 0 },
      { lines: 45, every: 1, exit: 0 },
    ];
    const ids: number[] = [];
    for (const [i, plan] of plans.entries()) {
      ids.push(
        await h.createTask(
          `run sandbox -m "slack fault ${i}" for k in $(seq 1 ${plan.lines}); do echo "line-${i}-$k"; sleep ${plan.every}; done; exit ${plan.exit}`,
        ),
      );
    }
    const cards = await Promise.all(ids.map((id) => h.card(id)));
    await Promise.all(ids.map((id) => h.waitForStatus(id, 'running', 10_000)));
    await new Promise((resolve) => setTimeout(resolve, 1500));

    const failedBefore = h.fake.calls.filter((call) => call.status !== 200).length;
    const outageAt = Date.now();
    slackFails(h.fake, { status: 500 });
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    h.fake.clearFailures();
    slackFails(h.fake, { status: 429, retryAfter: 1 });
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    h.fake.clearFailures();
    const backAt = Date.now();
    const refusedCalls = h.fake.calls.filter((call) => call.status !== 200).length - failedBefore;

    const finished = await Promise.all(ids.map((id) => h.waitForStatus(id, ['success', 'failure'], 60_000)));
    const endedDuringOutage = finished.filter((task) => (task.finishedAt?.getTime() ?? Infinity) < backAt).length;
    // Every card shows its final state, and every thread every line.
    for (const [i, task] of finished.entries()) {
      const expected = plans[i]!.exit === 0 ? 'success' : 'failure';
      expect(task.status).toBe(expected);
      await h.card(task.id, `exit code *${plans[i]!.exit}*`);
    }
    const threadsCaughtUpAt = await waitFor(
      async () => {
        for (const [i, card] of cards.entries()) {
          const shown = threadText(h.fake, card.ts);
          for (let k = 1; k <= plans[i]!.lines; k++) if (!shown.includes(`line-${i}-${k}\n`)) return undefined;
        }
        return Date.now();
      },
      90_000,
      'every thread to hold every line',
      250,
    );
    const cardsCurrent = ids.map((id) => h.fake.messages(TASKS_CHANNEL).find((m) => !m.thread_ts && blocksText(m).includes(`*#${id}*`))!);
    process.stdout.write(
      [
        'FAULT Slack answered 500 (15 s) then 429 (15 s) while 5 tasks streamed output',
        `  calls Slack refused during the outage: ${refusedCalls}`,
        `  tasks that ended during the outage: ${endedDuringOutage}`,
        `  outage (s): ${((backAt - outageAt) / 1000).toFixed(1)}`,
        `  every thread complete (s after Slack was back): ${((threadsCaughtUpAt - backAt) / 1000).toFixed(1)}`,
        `  cards showing the final state: ${cardsCurrent.filter((card, i) => blocksText(card).includes(`exit code *${plans[i]!.exit}*`)).length} of ${ids.length}`,
        '',
      ].join('\n'),
    );
    expect(endedDuringOutage).toBeGreaterThan(0);
    expect(refusedCalls).toBeGreaterThan(0);
  }, 180_000);
});

/** What a thread shows: its messages' text and the content of any log uploaded into it. */
function threadText(fake: FakeSlack, ts: string): string {
  const messages = fake.thread(TASKS_CHANNEL, ts).map((m) => (m.text ?? '').replace(/```/g, '\n'));
  const files = fake.files.filter((file) => file.thread_ts === ts).map((file) => file.content.toString('utf8'));
  return `${messages.join('\n')}\n${files.join('\n')}\n`;
}
