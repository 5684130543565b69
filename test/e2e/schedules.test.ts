/**
 * Schedules end to end: `/task schedule add` through signed Slack requests, a review request
 * with schedule buttons and the task rules (no self-approval, group members only), firings
 * that run on a real sshd without a new review, results posted to the schedule's channel, and
 * the firing rules under a controlled clock: exactly once with two schedulers on one database,
 * overlap skip/queue/allow, catch-up run/skip after downtime, pause and reject never firing.
 */
import { getTasks } from 'node-cron';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.js';
import { Scheduler } from '../../src/service/scheduler.js';
import { SCHEDULE_ACTION, SCHEDULE_REASON_BLOCK, SCHEDULE_REASON_INPUT, SCHEDULE_REJECT_CALLBACK } from '../../src/slack/render/schedule.js';
import { startAppProcess } from '../support/appProcess.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, MALLORY, REVIEW_CHANNEL, sleep } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const RESULTS = 'CRESULTS';
const TARGET_RESULTS = 'CTARGETRES';

describe('schedules', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) =>
        [
          '  nightly:',
          `    channel: ${TARGET_RESULTS}`,
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`,
        ].join('\n'),
    });
    // A results channel lets its members see the schedule: its author must be in it.
    h.fake.setChannelMembers(RESULTS, [AUTHOR]);
  });
  afterAll(async () => {
    await h?.stop();
  });

  const scheduleId = (text: string) => Number(/\*S(\d+)\*/.exec(text)?.[1]);
  const firingsOf = (id: number) => h.database.db('schedule_firings').where({ schedule_id: id }).orderBy('fire_at');

  it('refuses an invalid cron or time zone with the reason and an example', async () => {
    const bad = await h.command('schedule add sandbox "*/70 * * * *" uptime');
    expect(bad.json.text).toMatch(/not a valid cron: .*e\.g\. `"\*\/15 \* \* \* \*"`/);
    const tz = await h.command('schedule add sandbox "* * * * *" --tz Europe/Pariss uptime');
    expect(tz.json.text).toMatch(/`Europe\/Pariss` is not a time zone/);
    expect(await h.count('schedules')).toBe(0);
  });

  it('reviews a schedule once with the task rules, then each firing runs without review and posts its result', async () => {
    // As Slack sends a channel picked from its list: `<#C…|name>` markup, not escaped.
    const ack = await h.driver.command({
      text: `schedule add web-prod "*/1 * * * * *" --channel <#${RESULTS}|results> -m "heartbeat" echo beat-$((1+1))`,
      user: AUTHOR,
      channel: 'CTASKS',
    });
    expect(ack.status).toBe(200);
    expect(ack.ms).toBeLessThan(3000);
    expect(ack.json.text).toMatch(/Created schedule \*S\d+\* on `web-prod`.*waits for review by \*sre\*/);
    const id = scheduleId(ack.json.text);

    const request = structuredClone(
      await h.fake.waitFor(() => h.fake.messages(REVIEW_CHANNEL).find((m) => blocksText(m).includes(`*S${id}*`)), 10_000, 'schedule review request'),
    );
    expect(buttonIds(request)).toEqual([SCHEDULE_ACTION.approve, SCHEDULE_ACTION.reject]);
    expect(blocksText(request)).toContain('heartbeat');

    let seen = h.fake.responses.length;
    await h.click(request, SCHEDULE_ACTION.approve, AUTHOR);
    await h.click(request, SCHEDULE_ACTION.approve, MALLORY);
    await h.fake.waitFor(() => h.fake.responses.length >= seen + 2 || undefined, 5000, 'two refusals');
    const refusals = h.responsesSince(seen);
    expect(refusals).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/You wrote S\d+, so you cannot review it/),
        expect.stringMatching(/Only members of \*sre\* can review S\d+/),
      ]),
    );
    await sleep(1500);
    expect(await firingsOf(id)).toHaveLength(0);
    expect((await h.database.db('schedules').where({ id }).first()).status).toBe('pending-review');

    await h.click(request, SCHEDULE_ACTION.approve, ALICE);
    const firing = await waitFor(async () => (await firingsOf(id)).find((f: { task_id: string | null }) => f.task_id !== null), 10_000, 'a firing');
    const taskId = Number(firing.task_id);
    const task = await h.waitForStatus(taskId, 'success', 15_000);
    expect(task.source).toBe('schedule');
    const events = await h.database.db('events').where({ task_id: taskId }).orderBy('id');
    expect(events.map((e: { type: string }) => e.type)).not.toContain('review.approved');
    const ready = events.find((e: { type: string }) => e.type === 'task.ready');
    expect(ready.data).toMatchObject({ coveredBy: 'schedule-approval', schedule: id, approvedBy: [ALICE] });
    // The redrawn request shows the approval and has no buttons left.
    await h.fake.waitFor(
      () => {
        const now = h.fake.messages(REVIEW_CHANNEL).find((m) => blocksText(m).includes(`*S${id}*`));
        return now && buttonIds(now).length === 0 && blocksText(now).includes(`Approved by <@${ALICE}>`);
      },
      10_000,
      'the request redrawn',
    );

    const result = await h.fake.waitFor(() => h.fake.messages(RESULTS).find((m) => blocksText(m).includes(`#${taskId}`)), 10_000, 'the result line');
    expect(blocksText(result)).toMatch(new RegExp(`:white_check_mark: S${id} .*success`));

    // Active: a node-cron task in this process fires it (its run coordinator decides in Postgres).
    const onNodeCron = () => [...getTasks().values()].some((task) => task.name === `schedule-${id}` && task.getStatus() !== 'destroyed');
    expect(onNodeCron()).toBe(true);

    // Paused: no new firing; resumed fires again; removed never fires.
    seen = h.fake.responses.length;
    // Mallory may not see it (no reviewer, not in its channel): she is told it does not exist.
    const paused = await h.command(`schedule pause ${id}`, MALLORY);
    expect(paused.json.text).toMatch(/There is no schedule S\d+/);
    expect((await h.command(`schedule pause ${id}`)).json.text).toMatch(/Paused S\d+/);
    await sleep(300);
    const atPause = (await firingsOf(id)).length;
    await sleep(2500);
    expect((await firingsOf(id)).length).toBe(atPause);
    expect(onNodeCron()).toBe(false);
    const list = await h.command('schedule list');
    expect(blocksText(list.json)).toMatch(new RegExp(`S${id}.*paused`));
    expect((await h.command(`schedule resume ${id}`, BOB)).json.text).toMatch(/Resumed S\d+/);
    await waitFor(async () => (await firingsOf(id)).length > atPause, 5000, 'a firing after resume');
    expect((await h.command(`schedule remove ${id}`)).json.text).toMatch(/Removed S\d+/);
    await sleep(300);
    const atRemove = (await firingsOf(id)).length;
    await sleep(2000);
    expect((await firingsOf(id)).length).toBe(atRemove);
    // Every firing made at most one task, each its own.
    const tasks = await h.database.db('tasks').where({ source: 'schedule' }).pluck('source_key');
    expect(new Set(tasks).size).toBe(tasks.length);
  }, 60_000);

  it('fires every second exactly once, with no gap, while two app processes share the database', async () => {
    const other = await startAppProcess(h.processEnv());
    try {
      const created = await h.app.schedules.add({
        target: 'sandbox',
        cron: '* * * * * *',
        tz: 'UTC',
        channel: null,
        message: 'two replicas',
        type: null,
        notify: 'failure',
        overlap: 'allow',
        catchUp: 'skip',
        script: 'echo tick',
        author: AUTHOR,
        originChannel: null,
        sourceKey: null,
      });
      if (!created.ok) throw new Error(created.message);
      const id = created.schedule.id;
      await waitFor(async () => (await firingsOf(id)).length >= 8 || null, 20_000, 'eight firings');
      await h.app.schedules.remove(id, AUTHOR);
      await sleep(1500);
      const firings: Array<{ fire_at: Date; outcome: string; task_id: string }> = await firingsOf(id);
      const seconds = firings.map((f) => f.fire_at.getTime() / 1000);
      // Consecutive seconds: none missed, none twice (the key forbids it; the tasks below show it too).
      expect(seconds).toEqual(seconds.map((_, i) => (seconds[0] as number) + i));
      expect(firings.every((f) => f.outcome === 'fired' && f.task_id !== null)).toBe(true);
      const keys = await h.database.db('tasks').where('source_key', 'like', `schedule:${id}:%`).pluck('id');
      expect(keys).toHaveLength(firings.length);
      const created_ = await h.database.db('events').whereIn('task_id', keys).where({ type: 'task.created' }).count<{ count: string }[]>('* as count');
      expect(Number(created_[0]?.count)).toBe(firings.length);
    } finally {
      await other.stop();
    }
  }, 60_000);

  it('never fires a rejected schedule', async () => {
    const ack = await h.command('schedule add web-prod "*/1 * * * * *" -m "never" echo no');
    const id = scheduleId(ack.json.text);
    const live = await h.fake.waitFor(() => h.fake.messages(REVIEW_CHANNEL).find((m) => blocksText(m).includes(`*S${id}*`)), 10_000, 'request');
    const request = structuredClone(live);
    let seen = h.fake.responses.length;
    await h.click(request, SCHEDULE_ACTION.reject, AUTHOR);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/You wrote S\d+, so you cannot review it/);
    await h.click(request, SCHEDULE_ACTION.reject, BOB);
    const modal = await h.fake.waitFor(() => h.fake.lastView(SCHEDULE_REJECT_CALLBACK), 5000, 'reject modal');
    const submitted = await h.driver.submitView({
      view: modal,
      user: BOB,
      values: { [SCHEDULE_REASON_BLOCK]: { [SCHEDULE_REASON_INPUT]: 'not <every> second' } },
    });
    expect(submitted.status).toBe(200);
    await waitFor(async () => (await h.database.db('schedules').where({ id }).first()).status === 'rejected', 5000, 'rejected');
    await h.fake.waitFor(
      () => {
        const now = h.fake.messages(REVIEW_CHANNEL).find((m) => blocksText(m).includes(`*S${id}*`));
        return now && buttonIds(now).length === 0 && blocksText(now).includes('not &lt;every&gt; second');
      },
      5000,
      'the request shows the rejection and its reason',
    );
    await sleep(2000);
    expect(await firingsOf(id)).toHaveLength(0);
    // A late approval changes nothing.
    seen = h.fake.responses.length;
    await h.click(request, SCHEDULE_ACTION.approve, ALICE);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'refusal');
    expect(h.responsesSince(seen)[0]).toMatch(/S\d+ is rejected; it can no longer be reviewed/);
  });

  it('posts failures with exit code, last lines and the log link to the target channel, and stays quiet on success with notify failure', async () => {
    const failing = scheduleId(
      (await h.command('schedule add nightly "*/1 * * * * *" --overlap skip echo first-line; echo second-line >&2; exit 3')).json.text,
    );
    const quiet = scheduleId((await h.command('schedule add nightly "*/1 * * * * *" --notify failure echo fine')).json.text);
    const failure = await h.fake.waitFor(() => h.fake.messages(TARGET_RESULTS).find((m) => blocksText(m).includes(`S${failing} `)), 15_000, 'a failure post');
    const text = blocksText(failure);
    expect(text).toContain('exit code 3');
    expect(text).toContain('second-line');
    expect(text).toMatch(/Full log of #\d+/);
    expect(text).toMatch(/\/tasks\/\d+\?/);
    await waitFor(
      async () =>
        (await h.database
          .db('schedule_firings as f')
          .join('tasks as t', 't.id', 'f.task_id')
          .where('f.schedule_id', quiet)
          .where('t.status', 'success')
          .whereNotNull('f.notified_at')
          .first()) ?? null,
      15_000,
      'a quiet success handled',
    );
    await h.command(`schedule remove ${failing}`);
    await h.command(`schedule remove ${quiet}`);
    await sleep(500);
    expect(h.fake.messages(TARGET_RESULTS).filter((m) => blocksText(m).includes(`S${quiet} `))).toHaveLength(0);
  }, 40_000);
});

describe('firing rules under a controlled clock', () => {
  let h: Harness;
  const log = createLogger('silent');
  beforeAll(async () => {
    h = await Harness.start();
    // Only the schedulers below fire, each on its own fake clock.
    await h.app.scheduler.stop();
  });
  afterAll(async () => {
    await h?.stop();
  });

  async function schedule(script: string, options: { overlap?: 'skip' | 'queue' | 'allow'; catchUp?: 'run' | 'skip'; cron?: string } = {}) {
    const created = await h.app.schedules.add({
      target: 'sandbox',
      cron: options.cron ?? '* * * * * *',
      tz: 'UTC',
      channel: null,
      message: null,
      type: null,
      notify: 'always',
      overlap: options.overlap ?? 'skip',
      catchUp: options.catchUp ?? 'run',
      script,
      author: AUTHOR,
      originChannel: null,
      sourceKey: null,
    });
    if (!created.ok) throw new Error(created.message);
    return created.schedule;
  }

  /** A clock that starts at a whole second after the schedule's start and only moves when told. */
  function clockFrom(start: Date) {
    let now = Math.ceil(start.getTime() / 1000) * 1000 + 100;
    return { now: () => new Date(now), advance: (ms: number) => (now += ms), set: (ms: number) => (now = ms) };
  }

  it('fires each of 20 firings exactly once with two schedulers racing on one database', async () => {
    const s = await schedule('true');
    const clock = clockFrom(s.firedThrough!);
    const a = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now: clock.now, post: null });
    const b = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now: clock.now, post: null });
    let firedByA = 0;
    let firedByB = 0;
    for (let i = 0; i < 20; i++) {
      clock.advance(1000);
      const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
      firedByA += ra.decided.filter((d) => d.scheduleId === s.id).length;
      firedByB += rb.decided.filter((d) => d.scheduleId === s.id).length;
      // Runs finish between firings, so overlap: skip never skips here.
      for (const d of [...ra.decided, ...rb.decided]) if (d.taskId) await h.waitForStatus(d.taskId, 'success', 10_000);
    }
    expect(firedByA + firedByB).toBe(20);
    const firings = await h.database.db('schedule_firings').where({ schedule_id: s.id });
    expect(firings).toHaveLength(20);
    expect(firings.every((f: { outcome: string }) => f.outcome === 'fired')).toBe(true);
    const taskIds = firings.map((f: { task_id: string }) => Number(f.task_id));
    expect(new Set(taskIds).size).toBe(20);
    expect(Number((await h.database.db('tasks').whereIn('id', taskIds).where({ status: 'success' }).count<{ count: string }[]>('* as count'))[0]?.count)).toBe(
      20,
    );
    // One run each.
    expect(Number((await h.database.db('executions').whereIn('task_id', taskIds).count<{ count: string }[]>('* as count'))[0]?.count)).toBe(20);
    await h.app.schedules.remove(s.id, AUTHOR);
  }, 60_000);

  it('follows overlap: skip, queue and allow while the previous run still runs', async () => {
    const dir = h.scratchDir();
    const results: Record<string, string[]> = {};
    for (const overlap of ['skip', 'queue', 'allow'] as const) {
      const s = await schedule(`sleep 1.5; echo ${overlap} >> ${dir}/${overlap}`, { overlap });
      const clock = clockFrom(s.firedThrough!);
      const scheduler = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now: clock.now, post: null });
      clock.advance(1000);
      await scheduler.tick(); // fires: nothing runs yet
      clock.advance(1000);
      await scheduler.tick(); // the first still runs
      const firings = await h.database.db('schedule_firings').where({ schedule_id: s.id }).orderBy('fire_at');
      results[overlap] = firings.map((f: { outcome: string }) => f.outcome);
      const firstTask = Number(firings[0].task_id);
      await h.waitForStatus(firstTask, 'success', 15_000);
      await scheduler.tick(); // a queued firing starts now (no new fire time: the clock stood still)
      const after = await h.database.db('schedule_firings').where({ schedule_id: s.id }).orderBy('fire_at');
      results[`${overlap}-after`] = after.map((f: { outcome: string }) => f.outcome);
      for (const f of after) if (f.task_id) await h.waitForStatus(Number(f.task_id), 'success', 15_000);
      await h.app.schedules.remove(s.id, AUTHOR);
    }
    expect(results).toEqual({
      skip: ['fired', 'skipped-overlap'],
      'skip-after': ['fired', 'skipped-overlap'],
      queue: ['fired', 'queued'],
      'queue-after': ['fired', 'fired'],
      allow: ['fired', 'fired'],
      'allow-after': ['fired', 'fired'],
    });
  }, 60_000);

  it('after downtime runs only the most recent missed firing once (catch-up run), or none (catch-up skip)', async () => {
    const run = await schedule('echo caught-up', { cron: '0 * * * * *', catchUp: 'run' });
    const skip = await schedule('echo never', { cron: '0 * * * * *', catchUp: 'skip' });
    const clock = clockFrom(run.firedThrough!);
    // Every process was down for ten minutes: then two come up at once.
    clock.set(Math.ceil(clock.now().getTime() / 60_000) * 60_000 + 10 * 60_000 + 30_000); // 30 s past a minute: that firing is late too
    const a = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now: clock.now, post: null, lateToleranceMs: 2000 });
    const b = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now: clock.now, post: null, lateToleranceMs: 2000 });
    await Promise.all([a.tick(), b.tick(), a.tick()]);
    const ran = await h.database.db('schedule_firings').where({ schedule_id: run.id });
    expect(ran).toHaveLength(1);
    expect(ran[0]).toMatchObject({ outcome: 'fired', catch_up: true });
    await h.waitForStatus(Number(ran[0].task_id), 'success', 15_000);
    const skipped = await h.database.db('schedule_firings').where({ schedule_id: skip.id });
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toMatchObject({ outcome: 'skipped-missed', task_id: null });
    const missed = await h.database.db('events').where({ type: 'schedule.missed' }).whereRaw("(data->>'schedule')::int = ?", [run.id]);
    expect(missed).toHaveLength(1);
    // Ten or eleven earlier minutes went by (the clock started just before a minute or not), counted one by one.
    expect(missed[0].data).toMatchObject({ atLeast: false });
    expect(missed[0].data.count).toBeGreaterThanOrEqual(10);
    expect(missed[0].data.count).toBeLessThanOrEqual(11);
    // Back on time: the next minute fires normally for both.
    clock.set(Math.ceil(clock.now().getTime() / 60_000) * 60_000 + 100); // just past the next minute
    await a.tick();
    expect((await h.database.db('schedule_firings').where({ schedule_id: skip.id }).orderBy('fire_at')).map((f: { outcome: string }) => f.outcome)).toEqual([
      'skipped-missed',
      'fired',
    ]);
    await h.app.schedules.remove(run.id, AUTHOR);
    await h.app.schedules.remove(skip.id, AUTHOR);
  }, 40_000);

  it('decides a fire time that passed while no process ran, once a process starts (its housekeeping pass, node-cron’s matcher)', async () => {
    // A cron naming one second a few seconds ahead (UTC), while no scheduler runs here.
    const at = new Date(Math.ceil((Date.now() + 3000) / 1000) * 1000);
    const s = await schedule('echo late-start', { cron: `${at.getUTCSeconds()} ${at.getUTCMinutes()} ${at.getUTCHours()} * * *`, catchUp: 'run' });
    await sleep(Math.max(0, at.getTime() - Date.now()) + 2500);
    expect(await h.database.db('schedule_firings').where({ schedule_id: s.id })).toHaveLength(0);
    const replica = await h.startReplica();
    try {
      const firing = await waitFor(
        async () => (await h.database.db('schedule_firings').where({ schedule_id: s.id }).first()) ?? null,
        10_000,
        'the missed firing',
      );
      expect(firing.fire_at).toEqual(at);
      expect(firing.outcome).toBe('fired');
      await h.waitForStatus(Number(firing.task_id), 'success', 15_000);
    } finally {
      await replica.stop(1000);
    }
    await h.app.schedules.remove(s.id, AUTHOR);
  }, 40_000);
});
