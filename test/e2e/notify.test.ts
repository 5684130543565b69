/**
 * LISTEN/NOTIFY between replicas: a process hears of a task made ready, and of a Kill, by
 * another process within milliseconds, not at its next poll or lease renewal. Both of those are
 * set to a minute here, so only a notification can explain a prompt start or stop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { CHANNEL_TASK } from '../../src/store/notify.js';
import { AUTHOR, Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const SLOW = { pollMs: 60_000, leaseMs: 180_000 };

describe('notifications between replicas', () => {
  let h: Harness;
  let claimer: RunningApp;
  beforeAll(async () => {
    // The harness's own process never claims: it only creates tasks and asks for kills.
    h = await Harness.start({ runner: { ...SLOW, maxConcurrent: 0 } });
    claimer = await h.startReplica({ runner: { ...SLOW, maxConcurrent: 4, killGraceMs: 1000 } });
    // Let the claimer's first wake (at start) pass, so it is idle and waiting.
    await new Promise((resolve) => setTimeout(resolve, 300));
  });
  afterAll(async () => {
    await claimer.stop(1000);
    await h.stop();
  });

  it('starts a task made ready by another process at once, and kills it at once when asked there', async () => {
    const created = Date.now();
    const id = await h.serviceTask('echo started; sleep 60');
    await h.waitForStatus(id, 'running', 5_000);
    const startedAfter = Date.now() - created;
    // The claim's commit is visible to other sessions a moment before its reply reaches the
    // claimer (on a busy machine its backend can be descheduled in between): wait for that too.
    await waitFor(async () => claimer.runner.runningCount > 0, 5_000, 'the claimer to start the run').catch(() => undefined);
    const execution = await h.database.db('executions').where({ task_id: id }).first('runner_id');
    expect(execution.runner_id).not.toBeNull();
    // Read with the counts, so a failure says what became of the run.
    const now = await h.task(id);
    const events = await h.database.db('events').where({ task_id: id }).orderBy('id').pluck('type');
    expect({
      here: h.app.runner.runningCount,
      there: claimer.runner.runningCount,
      status: now?.status,
      failure: now?.result.failureMessage,
      events,
    }).toMatchObject({
      here: 0,
      there: 1,
      status: 'running',
      failure: null,
    });
    expect(startedAfter).toBeLessThan(2_000);

    // Wait until the script is really running, then kill through the non-owning process.
    await waitForOutput(h, id, 'started');
    const asked = Date.now();
    expect(await h.app.service.kill(id, AUTHOR)).toMatchObject({ ok: true, stopping: true });
    const task = await h.waitForStatus(id, ['killed', 'failure'], 10_000);
    expect(task.status).toBe('killed');
    expect(Date.now() - asked).toBeLessThan(5_000);
  });

  it("tells every process's followers of a run's start and end in the claim's and the result's own statements, with no NOTIFY of their own", async () => {
    const listener = await h.sideConnection();
    const heard: Array<{ payload: string; pid: number }> = [];
    listener.on('notification', (n) => {
      if (n.channel === CHANNEL_TASK) heard.push({ payload: n.payload ?? '', pid: n.processId });
    });
    await listener.query(`LISTEN ${CHANNEL_TASK}`);
    const id = await h.serviceTask('sleep 0.3');
    await h.waitForStatus(id, 'success', 10_000);
    // Both heard (however slow the machine), then a moment for any extra one to arrive.
    const deadline = Date.now() + 10_000;
    while (heard.filter((n) => n.payload === String(id)).length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Which pool sent each: the runner's statements run on its own pool ('countersign-runner');
    // a separate NOTIFY goes out on the main pool ('countersign').
    const backends = new Map(
      (await h.database.db.raw<{ rows: Array<{ pid: number; application_name: string }> }>('SELECT pid, application_name FROM pg_stat_activity')).rows.map(
        (row) => [row.pid, row.application_name],
      ),
    );
    const senders = heard.filter((n) => n.payload === String(id)).map((n) => backends.get(n.pid));
    // The claim and the result, from the runner's pool. Not the birth: nobody can follow a task
    // before it commits (insertTasks), and the runners hear of a ready one on their own channel.
    expect(senders.sort()).toEqual(['countersign-runner', 'countersign-runner']);
  });
});

async function waitForOutput(h: Harness, id: number, text: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const out = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data');
    if (out.join('').includes(text)) return;
    if (Date.now() > deadline) throw new Error(`no "${text}" in the output of task ${id}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
