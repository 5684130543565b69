/**
 * What a `/task run` costs the database after its ack (issue 12: the ack's p99 suffers from the
 * work the previous command left behind). A redraw reads the task's view in one statement (the
 * task, its decisions, its latest run and steps, its links): before, each redraw read the task,
 * its decisions, its run, its steps and its links one statement at a time. A new task's messages
 * need no read at all (test/e2e/birth-view.test.ts), and their links to each other are stored
 * with the version bump that redraws them in one statement (were four).
 * Its birth sends followers no NOTIFY (nobody can follow a task before it commits);
 * a message's post is recorded with the version it shows in one statement (were three). A Run
 * click's claim notifies in its own statement too (a separate NOTIFY competed with the claim).
 * Counted on the app's pool through a signed request, the fake Slack and a real Postgres.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { CHANNEL_TASK } from '../../src/store/notify.js';
import { ALICE, AUTHOR, Harness } from '../support/harness.js';

/** A task's birth (insertTasks), and a NOTIFY sent on its own (ChangeNotices). */
const BIRTH = /INSERT INTO tasks \(id,/;
const SEPARATE_NOTIFY = /^SELECT pg_notify\(\?, payload\) FROM unnest/;

describe('the reads behind a new task’s messages', () => {
  let h: Harness;
  let poller: pg.Client;
  beforeAll(async () => {
    h = await Harness.start();
    poller = await h.sideConnection();
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('draws and links the card and the review request of a new task in seven statements after its insert, with no separate NOTIFY', async () => {
    const statements: string[] = [];
    const record = (query: { sql: string }) => statements.push(query.sql);
    h.database.db.on('query', record);
    let id: number;
    try {
      id = await h.createTask('run web-prod -m "counting reads" uptime');
      await h.card(id);
      await h.reviewRequest(id);
      // The permalinks are fetched and both messages redrawn with them: the last redraws of the birth.
      const deadline = Date.now() + 10_000;
      for (;;) {
        // On a connection of its own: the test's reads are not counted.
        const { rows } = await poller.query('SELECT card_permalink, review_permalink, card_version, review_version, view_version FROM tasks WHERE id = $1', [
          id,
        ]);
        const row = rows[0];
        if (row.card_permalink && row.review_permalink && row.card_version === row.view_version && row.review_version === row.view_version) break;
        if (Date.now() > deadline) throw new Error(`permalinks or redraws missing: ${JSON.stringify(row)}`);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    } finally {
      h.database.db.off('query', record);
    }
    // Drawn from the row the insert returned, then from what the links' statement answered.
    expect(statements.filter((sql) => sql.includes('AS view_decisions'))).toEqual([]);
    // Both links and the bump that redraws both messages: one statement, which also answered the
    // source key (a resubmission's original card shows the new card's link), and no DM bookkeeping
    // for a target without DMs.
    expect(statements.filter((sql) => sql.includes('WITH old AS (SELECT id, card_permalink, review_permalink FROM tasks'))).toHaveLength(1);
    expect(
      statements.filter((sql) => /"(card|review)_permalink" = \?|"view_version" = "view_version" \+|select "source_key"|review_dms_sent/.test(sql)),
    ).toEqual([]);
    // The insert, each message's post claimed and recorded, the links, each message's update recorded.
    const afterInsert = statements.slice(statements.findIndex((sql) => BIRTH.test(sql))).filter((sql) => /\btasks\b|"tasks"/.test(sql));
    expect(afterInsert, afterInsert.join('\n')).toHaveLength(8);
    // Nothing read the view's parts one by one.
    const piecemeal = statements.filter(
      (sql) => /from "(reviews|executions|execution_steps)"/.test(sql) || /select "card_permalink", "review_permalink"/.test(sql),
    );
    expect(piecemeal, piecemeal.join('\n')).toEqual([]);
    // Each message's post is recorded with the version it shows in one statement, and no
    // redraw reads the version back after writing it.
    const posted = statements.filter((sql) => /update "tasks" set "(card|review)_ts"/.test(sql));
    expect(posted).toHaveLength(2);
    for (const sql of posted) expect(sql).toMatch(/"(card|review)_version" = GREATEST/);
    expect(statements.filter((sql) => /^select "(card|review)_version" from "tasks"/.test(sql))).toEqual([]);
    // One birth, and no NOTIFY of its own for followers (nobody can follow a task before its
    // birth commits; task-births.test.ts hears that its statement sends none either).
    expect(statements.filter((sql) => BIRTH.test(sql))).toHaveLength(1);
    expect(statements.filter((sql) => SEPARATE_NOTIFY.test(sql))).toEqual([]);
  });

  it('tells other processes of a Run in the statement that starts it, with no separate NOTIFY', async () => {
    const id = await h.createTask('run web-prod -m "counting a run" true');
    await h.click(await h.reviewRequest(id), ACTION.approve, ALICE);
    const card = await h.card(id, /Run/);
    await h.waitForStatus(id, 'approved');
    const statements: string[] = [];
    const readied: string[] = [];
    const record = (query: { sql: string; bindings?: unknown[] }) => {
      statements.push(query.sql);
      // The transition to ready on its own (its target status is a binding).
      if (query.sql.includes('current AS (SELECT id, status FROM tasks') && query.bindings?.includes('ready')) readied.push(query.sql);
    };
    const heard: string[] = [];
    const listener = await h.sideConnection();
    listener.on('notification', (message) => {
      if (message.channel === CHANNEL_TASK) heard.push(message.payload ?? '');
    });
    await listener.query(`LISTEN ${CHANNEL_TASK}`);
    h.database.db.on('query', record);
    try {
      expect((await h.click(card, ACTION.run, AUTHOR)).status).toBe(200);
      await h.waitForStatus(id, 'success', 10_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      h.database.db.off('query', record);
    }
    // This process's runner had room: the statement that made the task ready claimed it
    // (test/e2e/claims.test.ts; a Run it has no room for is made ready on its own, and notifies in that statement).
    expect(readied).toEqual([]);
    expect(statements.filter((sql) => SEPARATE_NOTIFY.test(sql))).toEqual([]);
    // The start and the end, each from its own statement.
    expect(heard.filter((payload) => payload === String(id)).length).toBeGreaterThanOrEqual(2);
  });
});
