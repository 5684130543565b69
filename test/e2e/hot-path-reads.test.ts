/**
 * Side effects stay off the hot path (issue 12): a task with nothing in Slack (started over the
 * API without a channel) is run without the Slack views reading it. Before, every change of such
 * a task (running, then done) made the card view read the task, its decisions, its run and its
 * steps, App Home read its recent users and the task, and the thread streamer read the task
 * twice: about ten reads per task, on the path a queue of small tasks runs through. Counted here
 * on the app's own pool through the real API, runner, sshd and Postgres; the test polls on a
 * connection of its own so its reads are not counted.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { AUTHOR, Harness } from '../support/harness.js';

describe('reads a task with nothing in Slack costs the views', () => {
  let h: Harness;
  let api: ApiClient;
  let token: string;
  let poller: pg.Client;
  beforeAll(async () => {
    h = await Harness.start();
    api = await ApiClient.connect(h.app.url);
    token = (await createApiToken(h.database.db, AUTHOR, 'author')).token;
    poller = await h.sideConnection();
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('runs API tasks without a channel with no view reading their decisions, runs, steps or Home users', async () => {
    // Ids no limit, day count or flag of another statement could be mistaken for.
    await poller.query('ALTER SEQUENCE tasks_id_seq RESTART WITH 7340001');
    const statements: Array<{ sql: string; bindings: unknown[]; at: number }> = [];
    const record = (query: { sql: string; bindings?: unknown[] }) => statements.push({ sql: query.sql, bindings: query.bindings ?? [], at: Date.now() });
    h.database.db.on('query', record);
    const ids: number[] = [];
    try {
      for (let i = 0; i < 5; i++) {
        const created = await api.call('POST', '/tasks', { token, body: { target: 'sandbox', script: `echo run ${i}`, message: 'quiet' } });
        expect(created.status).toBe(201);
        ids.push(Number(created.body.task.id));
      }
      for (const id of ids) {
        const deadline = Date.now() + 20_000;
        for (;;) {
          const { rows } = await poller.query<{ status: string }>('SELECT status FROM tasks WHERE id = $1', [id]);
          if (rows[0]?.status === 'success') break;
          if (Date.now() > deadline) throw new Error(`task ${id} is ${rows[0]?.status} after 20 s`);
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
      // The window ends on something that must happen after what the API tasks' changes set off: a
      // task with a channel, started after them, going through the same views to its card showing
      // success. Its own statements are not counted below (they name its id, not the API tasks').
      const sentinel = await h.createTask('run sandbox -m "sentinel" true');
      expect(ids).not.toContain(sentinel);
      await h.card(sentinel, 'success');
    } finally {
      h.database.db.off('query', record);
    }
    const aboutOurs = statements.filter((s) => s.bindings.some((b) => ids.includes(Number(b))));
    const reads = (table: RegExp) => aboutOurs.filter((s) => /^select/i.test(s.sql.trim()) && table.test(s.sql));
    // knex's quoted names and hand-written SQL alike (the card view's one read is the latter).
    expect(reads(/\b(from|join)\s+"?(reviews|executions|execution_steps|run_steps)"?(\s|$)/i), 'decisions, runs, steps').toEqual([]);
    expect(
      aboutOurs.filter((s) => s.sql.includes('AS view_decisions')),
      'the card view',
    ).toEqual([]);
    // The API's own answer to POST may read the task it made; nothing reads it again.
    const taskReads = reads(/\bfrom\s+"?tasks"?(\s|$)/i);
    expect(taskReads.length, JSON.stringify(taskReads.map((s) => s.sql))).toBeLessThanOrEqual(ids.length);
    // Home's recent users are read at most once per 5 s (RECENT_USERS_MS in src/slack/home.ts),
    // not once per change: the window now also holds the sentinel's changes, which may come more
    // than 5 s after the first read, so no two reads may be closer than that (less the time a
    // query may wait for a connection after the read was decided on). One read per change would
    // put them milliseconds apart.
    const homeUserReads = statements.filter((s) => /home_users/.test(s.sql)).map((s) => s.at);
    const gaps = homeUserReads.slice(1).map((at, i) => at - homeUserReads[i]!);
    expect(
      gaps.filter((gap) => gap < 4500),
      'Home users read per change',
    ).toEqual([]);
  }, 60_000);
});
