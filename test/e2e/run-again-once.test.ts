/**
 * Run again starts once per click (review 11, F5), and run buttons do not tell people who may
 * not see a run anything about it (F6).
 *
 * Run again is deduplicated by the clicked drawing of the card: (the original run or task, the
 * clicking user, the message's ts, the view version the button was drawn at). A double click or
 * Slack's redelivery of the same click starts one run; the card is redrawn after each Run again
 * (a new view version on its button), so clicking the redrawn card starts another one, on purpose.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, RUN_ACTION } from '../../src/slack/render/blocks.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { AUTHOR, blocksText, Harness, MALLORY, TASKS_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const yaml = () => ['runbooks:', '  quick:', '    steps:', '      - { id: one, script: { target: sandbox, script: "true" } }'].join('\n');

interface Button {
  action_id?: string;
  value?: string;
  confirm?: { title?: { text?: string }; text?: { text?: string }; confirm?: { text?: string } };
}

/** The button a message was drawn with. */
const buttonOf = (message: FakeMessage, actionId: string): Button => {
  for (const block of (message.blocks ?? []) as Array<{ type: string; elements?: Button[] }>)
    for (const element of block.elements ?? []) if (element.action_id === actionId) return element;
  throw new Error(`no ${actionId} button`);
};
/** The value a button was drawn with. */
const buttonValue = (message: FakeMessage, actionId: string): string => String(buttonOf(message, actionId).value);

describe('Run again starts once per click', () => {
  let h: Harness;

  const finishedRun = async (): Promise<{ id: number; card: FakeMessage }> => {
    const started = await h.app.runbooks.start('quick', {
      starter: AUTHOR,
      values: {},
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!started.ok || started.kind !== 'run') throw new Error('no run');
    const id = started.run.id;
    return { id, card: await runCard(id) };
  };
  /** The run's card as a user's screen shows it once it offers Run again (`after`: drawn with another value than that). */
  const runCard = (id: number, after?: string) =>
    h.fake.waitFor(
      () => {
        const m = h.fake
          .messages(TASKS_CHANNEL)
          .find((msg) => !msg.thread_ts && blocksText(msg).includes(`*Run ${id}* of runbook`) && blocksText(msg).includes('Run again'));
        return m && (after === undefined || buttonValue(m, RUN_ACTION.again) !== after) ? structuredClone(m) : undefined;
      },
      20_000,
      `the finished card of run ${id}`,
    );
  const answers = async (clicks: () => Promise<unknown>, count: number): Promise<string[]> => {
    const seen = h.fake.responses.length;
    await clicks();
    await h.fake.waitFor(() => h.fake.responses.length >= seen + count || undefined, 10_000, `${count} answers`);
    return h.responsesSince(seen);
  };
  const newestRun = async () => Number((await h.database.db('runs').max<{ max: number }[]>('id as max'))[0]?.max);

  beforeAll(async () => {
    h = await Harness.start({ extraYaml: yaml, runner: { pollMs: 200 } });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('Q5: a double click on Run again starts one run, not two', async () => {
    const { card } = await finishedRun();
    const before = await h.count('runs');
    await Promise.all([h.click(card, RUN_ACTION.again, AUTHOR), h.click(card, RUN_ACTION.again, AUTHOR)]);
    await waitFor(async () => ((await h.count('runs')) > before ? true : null), 5000, 'a new run');
    await new Promise((r) => setTimeout(r, 1000));
    expect(await h.count('runs')).toBe(before + 1);
  });

  it('two concurrent signed clicks start one run; the second is told which run it already started', async () => {
    const { id, card } = await finishedRun();
    const before = await h.count('runs');
    const said = await answers(() => Promise.all([h.click(card, RUN_ACTION.again, AUTHOR), h.click(card, RUN_ACTION.again, AUTHOR)]), 2);
    expect(await h.count('runs')).toBe(before + 1);
    const next = await newestRun();
    expect(said.filter((text) => text.includes(`Started run ${next} `)).length).toBe(1);
    expect(said.filter((text) => text.includes(`already started as run ${next}`)).length).toBe(1);
    // Slack redelivering the same click later (a retry) still starts nothing new.
    const retried = await answers(() => h.click(card, RUN_ACTION.again, AUTHOR), 1);
    expect(retried[0]).toContain(`already started as run ${next}`);
    expect(await h.count('runs')).toBe(before + 1);
    expect(await h.count('events', { subject: `run:${id}`, type: 'run.again' })).toBe(1);
  });

  it('Run again on the card redrawn after the first one starts another run, on purpose', async () => {
    const { id, card } = await finishedRun();
    const first = await answers(() => h.click(card, RUN_ACTION.again, AUTHOR), 1);
    expect(first[0]).toMatch(/Started run \d+ /);
    // The card is redrawn after a Run again: its button carries a new view version.
    const redrawn = await runCard(id, buttonValue(card, RUN_ACTION.again));
    const before = await h.count('runs');
    const second = await answers(() => h.click(redrawn, RUN_ACTION.again, AUTHOR), 1);
    expect(second[0]).toMatch(/Started run \d+ /);
    expect(await h.count('runs')).toBe(before + 1);
  });

  it('the Run again button asks first, saying what it runs', async () => {
    const { id, card } = await finishedRun();
    // The Run again button's own dialog (the card's header names the runbook too: look only at the button).
    const { confirm } = buttonOf(card, RUN_ACTION.again);
    expect(confirm?.title?.text).toBe('Run it again?');
    expect(confirm?.text?.text).toContain('Starts a new run of runbook quick on sandbox');
    expect(confirm?.text?.text).toContain(`as run ${id}`);
    expect(confirm?.confirm?.text).toBe('Run again');
  });

  it("a task's Run again: two concurrent clicks make one task; the redrawn card makes another", async () => {
    const id = await h.createTask('run sandbox -- echo once');
    await h.waitForStatus(id, ['success', 'failure']);
    const card = await h.card(id, 'Run again');
    expect(JSON.stringify(card.blocks)).toContain('Run it again?');
    const before = await h.count('tasks');
    const said = await answers(() => Promise.all([h.click(card, ACTION.again, AUTHOR), h.click(card, ACTION.again, AUTHOR)]), 2);
    expect(await h.count('tasks')).toBe(before + 1);
    expect(said.filter((text) => /Started #\d+ /.test(text)).length).toBe(1);
    expect(said.filter((text) => /already started as #\d+/.test(text)).length).toBe(1);
    const redrawn = await h.fake.waitFor(
      () => {
        const m = h.fake.messages(TASKS_CHANNEL).find((msg) => !msg.thread_ts && blocksText(msg).includes(`*#${id}*`));
        return m && buttonValue(m, ACTION.again) !== buttonValue(card, ACTION.again) ? structuredClone(m) : undefined;
      },
      10_000,
      'the redrawn task card',
    );
    const again = await answers(() => h.click(redrawn, ACTION.again, AUTHOR), 1);
    expect(again[0]).toMatch(/Started #\d+ /);
    expect(await h.count('tasks')).toBe(before + 2);
  });

  it('F6: a forged run button from someone who may not see the run answers only "There is no run N."', async () => {
    const { id, card } = await finishedRun();
    // MALLORY is in no review group and not in the card's channel: the run is not theirs to see.
    const forged = structuredClone(card);
    const said: string[] = [];
    for (const actionId of [RUN_ACTION.again, RUN_ACTION.cancel, RUN_ACTION.kill, RUN_ACTION.approve, RUN_ACTION.reject]) {
      const blocks = forged.blocks as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>;
      const actionsBlock = blocks.find((b) => b.type === 'actions');
      if (!actionsBlock?.elements?.[0]) throw new Error('no buttons');
      actionsBlock.elements[0] = { ...actionsBlock.elements[0], action_id: actionId, value: `${id}:x` };
      said.push(...(await answers(() => h.click(forged, actionId, MALLORY), 1)));
    }
    for (const actionId of [RUN_ACTION.stepApprove, RUN_ACTION.stepReject, RUN_ACTION.input]) {
      const blocks = forged.blocks as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>;
      const actionsBlock = blocks.find((b) => b.type === 'actions');
      if (!actionsBlock?.elements?.[0]) throw new Error('no buttons');
      actionsBlock.elements[0] = { ...actionsBlock.elements[0], action_id: actionId, value: `${id}:one` };
      said.push(...(await answers(() => h.click(forged, actionId, MALLORY), 1)));
    }
    // Exactly what a run that does not exist answers: no creator, no review group, no state.
    const missing = await answers(() => {
      const blocks = forged.blocks as Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>;
      const actionsBlock = blocks.find((b) => b.type === 'actions');
      if (!actionsBlock?.elements?.[0]) throw new Error('no buttons');
      actionsBlock.elements[0] = { ...actionsBlock.elements[0], action_id: RUN_ACTION.cancel, value: '999999' };
      return h.click(forged, RUN_ACTION.cancel, MALLORY);
    }, 1);
    expect(missing).toEqual(['There is no run 999999.']);
    expect(said).toEqual(said.map(() => `There is no run ${id}.`));
    expect(said.join('\n')).not.toContain(AUTHOR);
    expect(h.fake.views.list.filter((v) => JSON.stringify(v).includes(`run ${id}`) || JSON.stringify(v).includes(`Run ${id}`))).toEqual([]);
  });
});
