/**
 * Schedules that start runbooks (issue 11): `/task schedule add --runbook <reference> "<cron>"
 * --arg name=value` through a signed Slack command, refusals that name the problem, and firings
 * (two schedulers racing under a controlled clock) that each start one run, which runs on a real
 * sshd with the schedule's values.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextFireTimes } from '../../src/domain/schedule.js';
import { createLogger } from '../../src/log.js';
import { Scheduler } from '../../src/service/scheduler.js';
import { getSchedule } from '../../src/store/schedules.js';
import { getRun } from '../../src/store/runs.js';
import { AUTHOR, Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

describe('schedules that start runbooks', () => {
  let h: Harness;
  let scratch: string;
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'countersign-runbook-schedules-'));
    chmodSync(scratch, 0o1777);
    h = await Harness.start({
      extraYaml: () => `runbooks:
  nightly-rb:
    triggeredBy: [manual, schedule]
    arguments:
      - { name: note, kind: input, required: true }
    steps:
      - { id: write, script: { target: sandbox, script: "echo \\"$1\\" >> ${scratch}/nightly" } }
  by-hand:
    steps:
      - { id: x, script: { target: sandbox, script: "true" } }
`,
    });
  });
  afterAll(async () => {
    await h?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const answer = async (text: string) => String((await h.command(text)).json?.text ?? '');

  it('refuses a runbook that is not started by schedules, values that do not fit, and a script', async () => {
    expect(await answer('schedule add --runbook by-hand "0 0 1 1 *"')).toMatch(/by-hand cannot be started by a schedule/);
    expect(await answer('schedule add --runbook nightly-rb "0 0 1 1 *"')).toMatch(/note is required/);
    expect(await answer('schedule add --runbook nightly-rb "0 0 1 1 *" --arg note=x echo hi')).toMatch(/takes no script/);
    expect(await answer('schedule add --runbook nope "0 0 1 1 *"')).toMatch(/There is no runbook `nope`/);
    expect(await h.count('schedules')).toBe(0);
  });

  it("each firing starts one run with the schedule values, in the author's name, exactly once across two schedulers", async () => {
    const text = await answer('schedule add --runbook nightly-rb "0 0 1 1 *" --arg "note=from the schedule" -m "yearly"');
    expect(text).toMatch(/Created schedule \*S(\d+)\*: it starts the runbook `nightly-rb`/);
    const id = Number(/\*S(\d+)\*/.exec(text)?.[1]);
    const schedule = (await getSchedule(h.database.db, id))!;
    expect(schedule).toMatchObject({ status: 'active', runbook: 'nightly-rb', arguments: { note: 'from the schedule' }, target: 'runbook:nightly-rb' });

    const fireAt = nextFireTimes(schedule.cron, schedule.tz, schedule.firedThrough!, 1)[0]!;
    const now = () => new Date(fireAt.getTime() + 100);
    const log = createLogger('silent');
    const a = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now, post: null });
    const b = new Scheduler(h.database.db, h.config, h.app.bus, h.app.schedules, log, { now, post: null });
    const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
    expect([...ra.decided, ...rb.decided].filter((d) => d.scheduleId === id)).toHaveLength(1);
    const firings = await h.database.db('schedule_firings').where({ schedule_id: id });
    expect(firings).toHaveLength(1);
    expect(firings[0]).toMatchObject({ outcome: 'fired', task_id: null });
    const runId = Number(firings[0].run_id);
    const run = await waitFor(
      async () => {
        const r = await getRun(h.database.db, runId);
        return r?.status === 'success' ? r : null;
      },
      15_000,
      'the scheduled run succeeded',
    );
    expect(run).toMatchObject({ creator: AUTHOR, trigger: { kind: 'schedule', schedule: id }, reference: 'nightly-rb', message: 'yearly' });
    expect(readFileSync(join(scratch, 'nightly'), 'utf8')).toBe('from the schedule\n');
    // A runbook schedule is not edited in place.
    expect(await answer(`schedule edit ${id} --cron "0 0 2 1 *"`)).toMatch(/starts the runbook `nightly-rb`: remove it and add it again/);
  });
});
