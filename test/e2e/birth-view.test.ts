/**
 * A new task's messages are drawn without reading the task back: the first drawing from the row
 * its insert returned, and the redraw that adds each message's link to the other from what the
 * first one drew, once the statement storing the links answers that nothing else changed the
 * task meanwhile. Safe only while that row is the whole view, and while any other change still
 * makes the redraw read Postgres; both are held here.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Task } from '../../src/domain/task.js';
import { insertTask, type Birth, type NewTask } from '../../src/store/tasks.js';
import { bornTaskView, readTaskView } from '../../src/store/taskView.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { AUTHOR, blocksText, Harness, REVIEW_CHANNEL, TASKS_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const VIEW_READ = /^SELECT t\.\*,\s+coalesce\(\(SELECT json_agg\(r ORDER BY r\.id\)/;

describe('the view a task is born with', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
  });

  const base: NewTask = {
    author: AUTHOR,
    target: 'web-prod',
    type: 'sh',
    script: 'uptime',
    message: 'why',
    source: 'slack',
    sourceKey: null,
    channelId: 'C1',
    reviewChannel: 'C2',
  };
  const shapes: Array<[string, NewTask, Birth]> = [
    ['waiting for review', base, { actor: AUTHOR, enter: 'pending-review', data: {} }],
    ['ready, with a grace delay and no message', { ...base, message: null, delayMs: 30_000, reviewChannel: null }, { actor: AUTHOR, enter: 'ready', data: {} }],
    [
      'from a recipe, with arguments',
      {
        ...base,
        sourceKey: 'slack:trigger-1',
        arguments: [{ name: 'service', kind: 'options', value: 'nginx' }],
        recipe: { name: 'restart', hash: 'a'.repeat(64), writtenBy: 'UWRITER' },
      },
      { actor: AUTHOR, enter: 'pending-review', data: { recipe: 'restart' } },
    ],
  ];
  for (const [name, task, birth] of shapes) {
    it(`is what reading it back answers: ${name}`, async () => {
      const inserted = await insertTask(database.db, task, birth);
      expect(inserted.created).toBe(true);
      expect(bornTaskView(inserted.task)).toEqual(await readTaskView(database.db, inserted.task.id));
    });
  }
});

describe('a new task in Slack', () => {
  let h: Harness;
  /** Each read of a task's view: which task, and whether its card and review request were posted by then. */
  const reads: Array<{ taskId: number; cardPosted: boolean; requestPosted: boolean }> = [];
  const original = pg.Client.prototype.query;
  const posted = (channel: string, taskId: number) => h.fake.messages(channel).some((m) => !m.thread_ts && blocksText(m).includes(`*#${taskId}*`));

  beforeAll(async () => {
    h = await Harness.start();
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const config = args[0] as string | { text?: string; values?: unknown[] };
      const text = typeof config === 'string' ? config : (config?.text ?? '');
      if (VIEW_READ.test(text) && typeof config !== 'string') {
        const taskId = Number(config.values?.[0]);
        reads.push({ taskId, cardPosted: posted(TASKS_CHANNEL, taskId), requestPosted: posted(REVIEW_CHANNEL, taskId) });
      }
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
  });
  afterAll(async () => {
    pg.Client.prototype.query = original;
    await h?.stop();
  });

  /** Both links stored and both messages redrawn with the version that stored them. */
  const linked = async (id: number) => {
    const row = await h.database.db('tasks').where({ id }).first('card_permalink', 'review_permalink', 'card_version', 'review_version', 'view_version');
    return Boolean(row.card_permalink && row.review_permalink && row.card_version === row.view_version && row.review_version === row.view_version);
  };

  it('gets its card, its review request and their links to each other without its view being read back', async () => {
    const id = await h.createTask('run web-prod -m "born whole" uptime');
    expect(blocksText(await h.card(id))).toContain('born whole');
    expect(blocksText(await h.reviewRequest(id))).toContain('born whole');
    await waitFor(() => linked(id), 10_000, `#${id}'s messages linked`);
    const { card_permalink: cardLink, review_permalink: reviewLink } = await h.database.db('tasks').where({ id }).first('card_permalink', 'review_permalink');
    expect(JSON.stringify((await h.card(id)).blocks)).toContain(reviewLink);
    expect(JSON.stringify((await h.reviewRequest(id)).blocks)).toContain(cardLink);
    expect(reads.filter((read) => read.taskId === id)).toEqual([]);
  });

  it('draws the links from what a read of the task would answer', async () => {
    const id = await h.createTask('run web-prod -m "same either way" uptime');
    await h.card(id, 'same either way');
    await waitFor(() => linked(id), 10_000, `#${id}'s messages linked`);
    await h.app.messages!.idle(5_000);
    expect(reads.filter((read) => read.taskId === id)).toEqual([]);
    // The task page's link is signed anew each time it is drawn.
    const drawn = async () => JSON.stringify([(await h.card(id)).blocks, (await h.reviewRequest(id)).blocks]).replace(/\?[^"|>\s]*sig=[^"|>\s]*/g, '?signed');
    const fromWhatWasKnown = await drawn();
    const updates = h.fake.callsTo('chat.update').length;
    h.app.messages!.changed(id);
    await waitFor(async () => h.fake.callsTo('chat.update').length >= updates + 2, 10_000, 'both messages redrawn');
    await h.app.messages!.idle(5_000);
    expect(reads.filter((read) => read.taskId === id)).toHaveLength(1);
    expect(await drawn()).toBe(fromWhatWasKnown);
  });

  it('reads the task back for the links if something else changed it while they were looked up', async () => {
    const side = await h.sideConnection();
    h.fake.delay('chat.getPermalink', 1_500);
    try {
      const id = await h.createTask('run web-prod -m "as first drawn" uptime');
      await h.card(id, 'as first drawn');
      await h.reviewRequest(id, 'as first drawn');
      // Another process's change (this process hears of it only from view_version, not from changed()).
      await side.query(`UPDATE tasks SET message = 'changed meanwhile', view_version = view_version + 1 WHERE id = $1`, [id]);
      await waitFor(() => linked(id), 15_000, `#${id}'s messages linked`);
      // Drawn from what was known before the change, it would show the old message as the newest version for good.
      expect(blocksText(await h.card(id))).toContain('changed meanwhile');
      expect(blocksText(await h.reviewRequest(id))).toContain('changed meanwhile');
      expect(reads.filter((read) => read.taskId === id).length).toBeGreaterThan(0);
    } finally {
      h.fake.delay('chat.getPermalink', 0);
      await side.end();
    }
  });

  it('draws what the database holds when the task changed again before its first drawing', async () => {
    const id = await h.createTask('run web-prod -m "as typed" uptime');
    await h.card(id, 'as typed');
    await h.app.messages!.idle(5_000);
    const task = (await h.task(id)) as Task;
    const made: Task = { ...task, message: 'never typed' };

    // The born row alone is drawn as it is, without a read: the check below would otherwise prove nothing.
    h.app.bus.emit('task-changed', id, made, true, made);
    await h.card(id, 'never typed');
    await h.app.messages!.idle(5_000);

    // Born, then changed in the same turn (a claim, a review): the redraw reads the task.
    h.app.bus.emit('task-changed', id, made, true, made);
    h.app.bus.emit('task-changed', id, task);
    await h.card(id, 'as typed');
    await h.app.messages!.idle(5_000);
    expect(blocksText(await h.card(id))).not.toContain('never typed');
  });
});
