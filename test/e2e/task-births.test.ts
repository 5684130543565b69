/**
 * New tasks born together share a statement and a commit (issue 12: with ten senders, a round
 * trip, a write and a commit per `/task run` were most of what a command cost the machine beyond
 * Bolt). Each birth must still be its own: its row in its state, its two audit events in order,
 * its answer, its NOTIFY when it is ready, its source key's idempotency, and no other birth's
 * trouble. Rows written in one transaction share its id (xmin), which is how these tests see
 * which births shared a commit. On a real Postgres; the burst goes through signed requests.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contentVersion } from '../../src/domain/contentVersion.js';
import { TaskService } from '../../src/service/taskService.js';
import { contentKey } from '../../src/store/contentKey.js';
import { createDb } from '../../src/store/db.js';
import { CHANNEL_READY, CHANNEL_TASK } from '../../src/store/notify.js';
import { getTask, insertTasks, type TaskBirth } from '../../src/store/tasks.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { AUTHOR, Harness, REVIEW_CHANNEL, TASKS_CHANNEL } from '../support/harness.js';
import { startTcpProxy } from '../support/tcpProxy.js';
import { waitFor } from '../support/waitFor.js';

/** The transaction that wrote each task's birth: its created event's (events are never updated; a task's row is, by its cards). */
async function birthTransactions(db: TestDatabase['db'], ids: readonly number[]): Promise<Map<number, string>> {
  const rows = await db('events')
    .whereIn('task_id', ids)
    .where({ type: 'task.created' })
    .select<Array<{ task_id: number; xmin: string }>>('task_id', db.raw('xmin::text AS xmin'));
  return new Map(rows.map((row) => [Number(row.task_id), row.xmin]));
}

async function count(db: TestDatabase['db'], table: string, where: Record<string, unknown>): Promise<number> {
  const [row] = await db(table).where(where).count<Array<{ count: string | number }>>('* AS count');
  return Number(row!.count);
}

const birth = (key: string | null, enter: 'pending-review' | 'ready', extra: Partial<TaskBirth['task']> = {}): TaskBirth => ({
  task: {
    author: AUTHOR,
    target: 'web-prod',
    type: 'sh',
    script: `echo ${key ?? 'no key'}`,
    message: `birth ${key ?? 'without a key'}`,
    source: 'api',
    sourceKey: key,
    channelId: 'CTASKS',
    reviewChannel: enter === 'ready' ? null : 'CREVIEW',
    ...extra,
  },
  birth: { actor: AUTHOR, enter, data: { target: 'web-prod', reviewed: enter !== 'ready' } },
});

describe('insertTasks on Postgres', () => {
  let database: TestDatabase;
  const sessions: pg.Client[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    for (const session of sessions) await session.end();
    await database?.drop();
  });

  async function listen(channel: string): Promise<string[]> {
    const session = new pg.Client({ connectionString: database.url });
    await session.connect();
    sessions.push(session);
    const heard: string[] = [];
    session.on('notification', (n) => {
      if (n.channel === channel) heard.push(n.payload ?? '');
    });
    await session.query(`LISTEN ${channel}`);
    return heard;
  }

  it('inserts each birth in its state with its two audit events, in the order given, in one transaction', async () => {
    const births = [
      birth('order-1', 'pending-review'),
      birth(null, 'ready', { delayMs: 90_000, message: null }),
      birth('order-3', 'pending-review', {
        arguments: [{ name: 'service', kind: 'options', value: 'nginx' }],
        recipe: { name: 'restart', hash: 'b'.repeat(64), writtenBy: 'UWRITER' },
      }),
    ];
    const before = Date.now();
    const answers = await insertTasks(database.db, births);
    expect(answers.map((a) => a.created)).toEqual([true, true, true]);
    const ids = answers.map((a) => a.task.id);
    // Ids in the order the births were given.
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set((await birthTransactions(database.db, ids)).values()).size).toBe(1);

    const key = await contentKey(database.db);
    for (const [i, answer] of answers.entries()) {
      const given = births[i]!;
      const stored = await getTask(database.db, answer.task.id);
      // The answer is the row as stored.
      expect(answer.task).toEqual(stored);
      expect(stored).toMatchObject({
        status: given.birth.enter,
        author: AUTHOR,
        script: given.task.script,
        message: given.task.message,
        reviewChannel: given.task.reviewChannel,
        arguments: given.task.arguments ?? null,
        recipe: given.task.recipe ?? null,
      });
      expect(stored!.contentVersion).toBe(contentVersion({ ...given.task, arguments: given.task.arguments ?? null, recipe: given.task.recipe ?? null }, key));
    }
    // The grace delay counts from the database's clock.
    const delayed = answers[1]!.task.runAfter!.getTime();
    expect(delayed).toBeGreaterThanOrEqual(before + 90_000 - 2_000);
    expect(delayed).toBeLessThanOrEqual(Date.now() + 90_000 + 2_000);
    expect(answers[0]!.task.runAfter).toBeNull();

    // Each task's created event, then its move out of created, in the order of the births.
    const events = await database.db('events').whereIn('task_id', ids).orderBy('id').select('task_id', 'type', 'actor', 'data');
    expect(events.map((e) => [Number(e.task_id), e.type, e.actor])).toEqual(
      ids.flatMap((id, i) => [
        [id, 'task.created', AUTHOR],
        [id, `task.${births[i]!.birth.enter}`, null],
      ]),
    );
    for (const [i, id] of ids.entries()) {
      const created = events.find((e) => Number(e.task_id) === id && e.type === 'task.created')!;
      expect(created.data).toEqual({ ...births[i]!.birth.data, contentVersion: answers[i]!.task.contentVersion });
      expect(events.find((e) => Number(e.task_id) === id && e.type !== 'task.created')!.data).toEqual({ from: 'created' });
    }
  });

  it('tells every runner of a ready birth at commit, and sends followers nothing (nobody can follow it yet)', async () => {
    const ready = await listen(CHANNEL_READY);
    const changed = await listen(CHANNEL_TASK);
    const answers = await insertTasks(database.db, [birth('notify-1', 'pending-review'), birth('notify-2', 'ready'), birth('notify-3', 'ready')]);
    const expected = answers.slice(1).map((a) => String(a.task.id));
    const deadline = Date.now() + 5_000;
    while (ready.length < expected.length && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    // A moment more for anything else to arrive.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ready.sort()).toEqual(expected.sort());
    expect(changed).toEqual([]);
  });

  it('answers the task a source key made before, unchanged, and inserts the others', async () => {
    const [first] = await insertTasks(database.db, [birth('again-1', 'pending-review')]);
    const answers = await insertTasks(database.db, [
      birth('again-1', 'pending-review', { script: 'echo a different script' }),
      birth('again-2', 'pending-review'),
    ]);
    expect(answers[0]).toEqual({ task: first!.task, created: false });
    expect(answers[1]!.created).toBe(true);
    expect((await getTask(database.db, first!.task.id))!.script).toBe('echo again-1');
    expect(await count(database.db, 'events', { task_id: first!.task.id })).toBe(2);
  });

  it('refuses two births with one source key in one statement, inserting neither', async () => {
    await expect(insertTasks(database.db, [birth('twice', 'pending-review'), birth('twice', 'ready')])).rejects.toThrow(/one source key/);
    expect(await database.db('tasks').where({ source_key: 'twice' }).first()).toBeUndefined();
  });

  it('refuses a birth that skips the lifecycle, inserting nothing', async () => {
    const wrong = { ...birth('skips', 'ready'), birth: { actor: AUTHOR, enter: 'running' as const, data: {} } };
    await expect(insertTasks(database.db, [birth('skips-ok', 'ready'), wrong])).rejects.toThrow();
    expect(await database.db('tasks').whereIn('source_key', ['skips', 'skips-ok']).first()).toBeUndefined();
  });
});

describe('TaskService births on Postgres', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h?.stop();
  });

  /**
   * A transaction, left open, inserting a task with each of `keys`: a birth with one of them
   * waits on its row lock until the test ends the transaction (ROLLBACK lets it go on).
   */
  async function holdSourceKeys(keys: readonly string[]): Promise<pg.Client> {
    const side = await h.sideConnection();
    await side.query('BEGIN');
    await side.query(
      `INSERT INTO tasks (status, author, target, type, script, source, source_key, content_version)
       SELECT 'created', 'UHOLD', 'web-prod', 'sh', 'true', 'api', key, repeat('0', 64) FROM unnest($1::text[]) AS key`,
      [keys],
    );
    return side;
  }

  /** Until a birth's statement waits on a row lock. */
  const untilBirthWaits = () =>
    waitFor(
      async () => (await h.database.db.raw("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WITH input AS%'")).rows.length > 0,
      5_000,
      'a birth waiting on a row lock',
      10,
    );

  /** A TaskService of its own, whose shared failures the test sees. */
  function service(failures: Array<{ births: number }>): TaskService {
    return new TaskService(h.database.db, h.config, h.app.bus, undefined, (_error, births) => failures.push({ births }));
  }
  const input = (n: number, extra: object = {}) => ({
    author: AUTHOR,
    target: 'web-prod',
    message: `together ${n}`,
    type: null,
    script: `echo together ${n}`,
    source: 'api' as const,
    sourceKey: `together:${n}:${Math.random()}`,
    // Messages of their own channel: not paced in with the burst's.
    channelId: 'CBIRTHS',
    ...extra,
  });

  it('answers each of a burst of /task runs sent together with its own task, sharing commits, and draws each one’s messages', async () => {
    // First in this block: its messages are not paced behind the other tests' (about one post a second per channel).
    const burst = 8;
    // The first command's birth waits on a row lock (another transaction inserting its source
    // key), so the others come while it is in flight, deterministically: they go together beside
    // it once it has stalled, and it goes on when the lock is let go.
    const side = await holdSourceKeys(['slack:hold-the-first']);
    const first = h.command('run web-prod -m "burst 0" echo burst 0', AUTHOR, { triggerId: 'hold-the-first' });
    await untilBirthWaits();
    const rest = Array.from({ length: burst - 1 }, (_, i) => h.command(`run web-prod -m "burst ${i + 1}" echo burst ${i + 1}`, AUTHOR));
    // Let the first one go (its key is free again) once the others have been answered or have waited past the stall.
    await new Promise((resolve) => setTimeout(resolve, 400));
    await side.query('ROLLBACK');
    const responses = await Promise.all([first, ...rest]);
    const ids = responses.map((response) => {
      const match = /Created \*#(\d+)\*/.exec(String(response.json?.text ?? ''));
      if (response.status !== 200 || !match) throw new Error(`no task created: ${response.status} ${response.text}`);
      return Number(match[1]);
    });
    expect(new Set(ids).size).toBe(burst);
    for (const [i, id] of ids.entries()) {
      const task = await h.task(id);
      expect(task).toMatchObject({ status: 'pending-review', message: `burst ${i}`, script: `echo burst ${i}` });
    }
    // The first alone; the others in fewer commits than commands.
    const transactions = await birthTransactions(h.database.db, ids);
    expect(new Set(ids.slice(1).map((id) => transactions.get(id))).size).toBeLessThan(burst - 1);
    expect(ids.slice(1).map((id) => transactions.get(id))).not.toContain(transactions.get(ids[0]!));
    // Every card and review request is drawn, from the row its birth returned.
    for (const id of ids) {
      await h.card(id);
      await h.reviewRequest(id);
    }
    expect(h.fake.messages(TASKS_CHANNEL).length).toBeGreaterThanOrEqual(burst);
    expect(h.fake.messages(REVIEW_CHANNEL).length).toBeGreaterThanOrEqual(burst);
  });

  it('inserts births that come while one is in flight together, beside it once it has waited a moment, each with its own answer', async () => {
    const failures: Array<{ births: number }> = [];
    const tasks = service(failures);
    // The first birth waits on a row lock (another transaction inserting its source key).
    const held = input(1);
    const side = await holdSourceKeys([held.sourceKey]);
    const first = tasks.create(held);
    // Asked for while it is in flight: they wait for it, then (it has stalled) go beside it.
    const others = await Promise.all([2, 3, 4, 5].map((n) => tasks.create(input(n))));
    await untilBirthWaits();
    await side.query('ROLLBACK');
    const outcomes = [await first, ...others];
    const ids = outcomes.map((outcome) => {
      if (!outcome.ok || !outcome.created) throw new Error(`not created: ${JSON.stringify(outcome)}`);
      return outcome.task.id;
    });
    for (const [i, outcome] of outcomes.entries()) expect(outcome.ok && outcome.task.message).toBe(`together ${i + 1}`);
    // The four that came meanwhile in one commit, beside the first, which went on when the lock was let go.
    const transactions = await birthTransactions(h.database.db, ids);
    expect(new Set(ids.slice(1).map((id) => transactions.get(id))).size).toBe(1);
    expect(transactions.get(ids[0]!)).not.toBe(transactions.get(ids[1]!));
    expect(failures).toEqual([]);
  });

  it('inserts the others on their own when one birth fails the shared statement, and gives that error to its caller alone', async () => {
    const failures: Array<{ births: number }> = [];
    const tasks = service(failures);
    // Half an emoji in a recipe's argument: jsonb refuses it (it is what the script would be given).
    const bad = input(3, { arguments: [{ name: 'x', kind: 'input', value: 'cut \ud83d' }] });
    const settled = await Promise.allSettled([input(1), input(2), bad, input(4)].map((each) => tasks.create(each)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    expect(failures).toEqual([{ births: 3 }]);
    const created = settled.filter((s) => s.status === 'fulfilled').map((s) => (s.value.ok && s.value.created ? s.value.task : null));
    expect(created.map((task) => task?.message)).toEqual(['together 1', 'together 2', 'together 4']);
    expect(await h.database.db('tasks').where({ source_key: bad.sourceKey }).first()).toBeUndefined();
    for (const task of created) expect(await count(h.database.db, 'events', { task_id: task!.id })).toBe(2);
  });

  it('inserts births without a source key together, each its own task', async () => {
    const failures: Array<{ births: number }> = [];
    const tasks = service(failures);
    const outcomes = await Promise.all([11, 12, 13, 14].map((n) => tasks.create(input(n, { sourceKey: null }))));
    const ids = outcomes.map((o) => (o.ok && o.created ? o.task.id : null));
    expect(new Set(ids).size).toBe(4);
    expect(outcomes.map((o) => o.ok && o.task.message)).toEqual(['together 11', 'together 12', 'together 13', 'together 14']);
    expect(await count(h.database.db, 'tasks', { message: 'together 12' })).toBe(1);
    expect(failures).toEqual([]);
  });

  it('gives each caller the error when a shared statement’s connection is lost, and inserts nothing twice (it may have committed)', async () => {
    // The app's database through a proxy that can drop its connections.
    const url = new URL(h.database.url);
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    url.port = String(proxy.port);
    const proxied = createDb(url.toString());
    const failures: Array<{ births: number }> = [];
    const tasks = new TaskService(proxied, h.config, h.app.bus, undefined, (_error, births) => failures.push({ births }));
    try {
      // Both statements wait on keys another transaction is inserting: the first birth's alone,
      // then the three that came meanwhile, together.
      const alone = input(21);
      const keyed = input(22);
      const side = await holdSourceKeys([alone.sourceKey, keyed.sourceKey]);
      const first = tasks.create(alone);
      const rest = [keyed, input(23, { sourceKey: null }), input(24, { sourceKey: null })].map((each) => tasks.create(each));
      await waitFor(
        async () =>
          (await h.database.db.raw("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%WITH input AS%'")).rows.length === 2,
        5_000,
        'both birth statements waiting on a row lock',
        10,
      );
      // The connections drop with the statements sent: whether they commit is not known here.
      proxy.cut();
      const settled = await Promise.allSettled([first, ...rest]);
      expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
      expect(failures).toEqual([{ births: 3 }]);
      // They did commit, once the keys were let go: each birth once, none written again.
      await side.query('ROLLBACK');
      await waitFor(
        async () =>
          (await h.database.db.raw("SELECT 1 FROM pg_stat_activity WHERE query LIKE '%WITH input AS%' AND state = 'active' AND pid <> pg_backend_pid()")).rows
            .length === 0,
        5_000,
        'the statements ending',
        10,
      );
      for (const n of [21, 22, 23, 24]) expect(await count(h.database.db, 'tasks', { message: `together ${n}` }), `together ${n}`).toBe(1);
    } finally {
      await proxied.destroy();
      await proxy.close();
    }
  });

  it('answers one task to two births with one source key that come together, and inserts it once', async () => {
    const failures: Array<{ births: number }> = [];
    const tasks = service(failures);
    const same = input(7);
    const outcomes = await Promise.all([tasks.create(input(6)), tasks.create(same), tasks.create(same)]);
    const answers = outcomes.map((o) => (o.ok ? { id: o.task.id, created: o.created } : null));
    expect(answers[1]!.created).toBe(true);
    expect(answers[2]).toEqual({ id: answers[1]!.id, created: false });
    expect(await count(h.database.db, 'tasks', { source_key: same.sourceKey })).toBe(1);
    // Not by luck of a failed shared statement: the second waited for the next one.
    expect(failures).toEqual([]);
  });
});
