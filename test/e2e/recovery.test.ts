/**
 * When parts fail: a runner that vanished mid-run, a database that refuses output for a moment,
 * Slack rate-limiting output, and Slack messages left behind by a process that stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION } from '../../src/slack/render/blocks.js';
import { ALICE, blocksText, Harness, TASKS_CHANNEL } from '../support/harness.js';

describe('recovery', () => {
  let h: Harness;
  beforeAll(async () => {
    // A short lease: the sweeper looks every second, live runs renew every ~0.7 s.
    h = await Harness.start({ runner: { leaseMs: 2000 } });
  });
  afterAll(async () => {
    await h.stop();
  });

  it('ends a run whose runner vanished as a failure saying so, and leaves live runs alone', async () => {
    // A live run that outlasts several lease periods: renewals keep it ours.
    const live = await h.createTask('run sandbox -m "long but alive" sleep 5; echo survived');

    // A run whose process died: running, with a lease nobody renews.
    const ghost = await h.createTask('run web-prod -m "runner will vanish" uptime');
    await h.app.service.approve(ghost, ALICE);
    await h.database.db.transaction(async (trx) => {
      await trx('tasks').where({ id: ghost }).update({ status: 'running', started_at: trx.fn.now() });
      await trx('executions').insert({ task_id: ghost, plan: '[]', runner_id: 'ghost-host:4242', lease_until: trx.raw("now() - interval '1 second'") });
    });

    const lost = await h.waitForStatus(ghost, ['failure'], 10_000);
    expect(lost.result.failureMessage).toMatch(/^runner lost: the process running it \(ghost-host:4242\) stopped responding/);
    const event = await h.database.db('events').where({ task_id: ghost, type: 'task.failure' }).first();
    expect(event.data).toMatchObject({ reason: 'runner-lost', runner: 'ghost-host:4242' });
    await h.card(ghost, 'runner lost');

    const survivor = await h.waitForStatus(live, ['success', 'failure'], 15_000);
    expect(survivor.status).toBe('success');
    expect(survivor.result.lastLine).toBe('survived');
  });

  it('keeps every byte of output when the database refuses it for a moment', async () => {
    await h.database.db.raw(`
      CREATE SEQUENCE flaky_output_seq;
      CREATE FUNCTION flaky_output() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        -- A sequence is not rolled back with the failed insert, so exactly three inserts fail.
        IF nextval('flaky_output_seq') <= 3 THEN RAISE EXCEPTION 'simulated outage'; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER flaky_output BEFORE INSERT ON output_chunks FOR EACH ROW EXECUTE FUNCTION flaky_output();
    `);
    try {
      const id = await h.createTask('run sandbox for i in $(seq 1 30); do echo "line $i"; sleep 0.05; done');
      const task = await h.waitForStatus(id, ['success', 'failure'], 15_000);
      expect(task.status).toBe('success');
      const rows = await h.database
        .db('output_chunks as o')
        .join('executions as e', 'e.id', 'o.execution_id')
        .where('e.task_id', id)
        .orderBy('o.id')
        .pluck('o.data');
      expect(rows.join('')).toBe(Array.from({ length: 30 }, (_, i) => `line ${i + 1}\n`).join(''));
      const failed = await h.database.db.raw(`SELECT last_value FROM flaky_output_seq`);
      expect(Number(failed.rows[0].last_value)).toBeGreaterThan(3);
    } finally {
      await h.database.db.raw('DROP TRIGGER flaky_output ON output_chunks; DROP FUNCTION flaky_output(); DROP SEQUENCE flaky_output_seq;');
    }
  });

  it('retries a result the database refuses for longer than the lease until it is stored, and keeps the run its own meanwhile', async () => {
    // The result's write (a run leaving `running` with no "runner lost" message) fails for 15 s,
    // over seven lease periods; a sweeper's "runner lost" would still go through.
    await h.database.db.raw(`
      CREATE TABLE result_outage (until timestamptz NOT NULL);
      CREATE FUNCTION refuse_results() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.phase = 'running' AND NEW.phase <> 'running' AND coalesce(NEW.failure_message, '') NOT LIKE 'runner lost%'
           AND EXISTS (SELECT 1 FROM result_outage WHERE until > now()) THEN
          RAISE EXCEPTION 'simulated outage of result writes';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_results BEFORE UPDATE ON executions FOR EACH ROW EXECUTE FUNCTION refuse_results();
      INSERT INTO result_outage VALUES (now() + interval '15 seconds');
    `);
    try {
      const id = await h.createTask('run sandbox -m "result outage" sleep 1; echo finished-fine');
      await new Promise((resolve) => setTimeout(resolve, 8000));
      // The script ended long ago; its result waits, and the run is still this runner's.
      expect((await h.task(id))?.status).toBe('running');
      expect(h.app.runner.runningCount).toBe(1);
      const task = await h.waitForStatus(id, ['success', 'failure', 'killed'], 20_000);
      expect(task.status).toBe('success');
      expect(task.result.lastLine).toBe('finished-fine');
      expect(await h.database.db('events').where({ task_id: id, type: 'task.failure' }).count<{ count: string }[]>('* as count')).toEqual([{ count: 0 }]);
      const step = await h.database
        .db('execution_steps as s')
        .join('executions as e', 'e.id', 's.execution_id')
        .where('e.task_id', id)
        .first('s.phase', 's.exit_code');
      expect(step).toMatchObject({ phase: 'succeeded', exit_code: 0 });
    } finally {
      await h.database.db.raw('DROP TRIGGER refuse_results ON executions; DROP FUNCTION refuse_results(); DROP TABLE result_outage;');
    }
  }, 40_000);

  it('shows output after Slack rate-limits a thread post', async () => {
    const id = await h.createTask('run sandbox sleep 1.5; echo after-the-429');
    const card = await h.card(id);
    h.fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const reply = await h.fake.waitFor(
      () => h.fake.thread(TASKS_CHANNEL, card.ts).find((m) => (m.text ?? '').includes('after-the-429')),
      15_000,
      'output after a 429',
    );
    expect(reply.text).toContain('after-the-429');
    expect(h.fake.callsTo('chat.postMessage').some((c) => c.status === 429 && c.args.thread_ts === card.ts)).toBe(true);
  });

  it('brings messages up to date after a restart, when they fell behind while Slack was failing', async () => {
    const id = await h.createTask('run web-prod -m "slack outage" uptime');
    const request = await h.reviewRequest(id);
    await h.card(id);
    // Slack refuses every update for a while; the approval is stored anyway.
    h.fake.failNext('chat.update', { error: 'service_unavailable' }, 1000);
    await h.click(request, ACTION.approve, ALICE);
    await h.waitForStatus(id, 'approved');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(blocksText(h.fake.message(TASKS_CHANNEL, (await h.task(id))!.cardTs!)!)).toContain('waiting for review');

    // This process stops; Slack recovers; a new process starts on the same database.
    await h.app.stop(1000);
    h.fake.clearFailures('chat.update');
    const restarted = await h.startReplica();
    try {
      const card = await h.fake.waitFor(
        () => {
          const message = h.fake.messages(TASKS_CHANNEL).find((m) => blocksText(m).includes(`*#${id}*`));
          return message && blocksText(message).includes(`Approved by <@${ALICE}>`) ? message : undefined;
        },
        10_000,
        'card caught up after restart',
      );
      expect(blocksText(card)).toContain(':white_check_mark: approved');
      const row = await h.database.db('tasks').where({ id }).first('view_version', 'card_version', 'review_version');
      expect(Number(row.card_version)).toBe(Number(row.view_version));
      expect(Number(row.review_version)).toBe(Number(row.view_version));
    } finally {
      await restarted.stop(1000);
    }
  });
});
