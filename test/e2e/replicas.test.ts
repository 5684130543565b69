/**
 * Several app processes on one database: every ready task runs exactly once whoever claims it,
 * a Kill reaches the process that owns the run whichever process received it, a process killed
 * with -9 mid-run leaves no task running forever (and no script running on its host), and
 * SIGTERM lets running tasks finish, within a grace period, before the process exits.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { startAppProcess, type AppProcess } from '../support/appProcess.js';
import { AUTHOR, Harness } from '../support/harness.js';
import { isProcessAlive } from '../support/sshd.js';
import { waitFor } from '../support/waitFor.js';

describe('replicas on one database', () => {
  let h: Harness;
  const processes: AppProcess[] = [];
  const replicas: RunningApp[] = [];
  beforeAll(async () => {
    // livenessTimeout: right after a database start (the test server may be seconds old), a runner never seen alive gets this long to reconnect.
    h = await Harness.start({ runnerYaml: '  leaseTimeout: 2s\n  pollInterval: 1s\n  killGrace: 1s\n  shutdownGrace: 3s\n  livenessTimeout: 5s' });
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill9().catch(() => undefined)));
    await Promise.all(replicas.map((r) => r.stop(1000)));
    await h.stop();
  });

  /** Creates a task on a no-review target without a Slack channel (as the API will), so it is ready at once. */
  it('runs each of 200 ready tasks exactly once while two processes race for them', async () => {
    const other = await startAppProcess(h.processEnv());
    processes.push(other);
    const ids: number[] = [];
    for (let i = 0; i < 200; i++) ids.push(await h.serviceTask(`echo run-${i}`));
    await waitFor(async () => (await h.count('tasks', { status: 'success' })) >= 200 || undefined, 90_000, '200 successes');

    const executions = await h.database.db('executions').whereIn('task_id', ids).select('task_id', 'runner_id');
    expect(executions).toHaveLength(200);
    expect(new Set(executions.map((e: { task_id: number }) => e.task_id)).size).toBe(200);
    const started = await h.database.db('events').whereIn('task_id', ids).where({ type: 'task.running' }).count<{ count: string }[]>('* as count');
    expect(Number(started[0]?.count)).toBe(200);
    // Both processes did part of the work.
    const byRunner = new Map<string, number>();
    for (const e of executions as Array<{ runner_id: string }>) byRunner.set(e.runner_id, (byRunner.get(e.runner_id) ?? 0) + 1);
    expect(byRunner.size).toBe(2);
    // Each ran its own script once: one line of output each.
    for (const [index, id] of ids.entries()) {
      const out = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data');
      expect(out.join('')).toBe(`run-${index}\n`);
    }
    await other.stop();
    processes.splice(processes.indexOf(other), 1);
  }, 120_000);

  it('kills a run from a process that does not own it', async () => {
    // From here on only the child process claims; this test's own processes only watch and kill.
    await h.app.runner.stop(1000);
    const owner = await startAppProcess(h.processEnv());
    processes.push(owner);
    const watcher = await h.startReplica({ runner: { maxConcurrent: 0 } });
    replicas.push(watcher);

    const pidFile = `${h.scratchDir()}/nonowner`;
    const id = await h.serviceTask(`sleep 300 & echo $! > ${pidFile}; wait`);
    const pid = await waitFor(async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8').trim()), 15_000, 'the remote sleep');
    const execution = await h.database.db('executions').where({ task_id: id }).first('runner_id');
    expect(execution.runner_id).toMatch(new RegExp(`:${owner.pid}:`));

    const started = Date.now();
    const kill = await watcher.service.kill(id, AUTHOR);
    expect(kill).toMatchObject({ ok: true, stopping: true });
    const task = await h.waitForStatus(id, ['killed', 'failure'], 15_000);
    expect(task.status).toBe('killed');
    // Heard through NOTIFY, not at the next lease renewal.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(isProcessAlive(pid)).toBe(false);
  });

  it('fails a run whose process was killed with -9, and stops its script on the host', async () => {
    const owner = processes[processes.length - 1]!;
    const pidFile = `${h.scratchDir()}/orphan`;
    const id = await h.serviceTask(`sleep 300 & echo $! > ${pidFile}; echo working; wait`);
    const pid = await waitFor(async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8').trim()), 15_000, 'the remote sleep');
    expect((await h.task(id))?.status).toBe('running');

    await owner.kill9();
    processes.splice(processes.indexOf(owner), 1);
    // The remote script outlives the runner that was reading its output...
    expect(isProcessAlive(pid)).toBe(true);

    // ...until a surviving process notices the expired lease (2 s) and ends the run.
    const task = await h.waitForStatus(id, ['failure'], 20_000);
    expect(task.result.failureMessage).toMatch(/^runner lost: the process running it \(.*:\d+:[0-9a-f]+\) stopped responding$/);
    // Its step ended with it, in the same transaction: nothing is left looking busy.
    const steps = await h.database
      .db('execution_steps as s')
      .join('executions as e', 'e.id', 's.execution_id')
      .where('e.task_id', id)
      .select('s.phase', 's.failure_message', 's.finished_at');
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ phase: 'failed', failure_message: task.result.failureMessage });
    expect(steps[0].finished_at).not.toBeNull();
    await waitFor(async () => !isProcessAlive(pid), 15_000, 'the orphaned script to be stopped');
    const notes = await waitFor(
      async () => {
        const rows = await h.database
          .db('output_chunks as o')
          .join('executions as e', 'e.id', 'o.execution_id')
          .where('e.task_id', id)
          .where('o.stream', 'system')
          .pluck('o.data');
        return rows.length > 0 && rows.join('');
      },
      10_000,
      'a note in the output',
    );
    expect(notes).toMatch(/stopped what was left of the run after its runner was lost/);
    const events = await h.database.db('events').where({ task_id: id }).orderBy('id').pluck('type');
    expect(events.slice(-2)).toEqual(['task.running', 'task.failure']);
  });

  it('on SIGTERM lets a running task finish, takes no new ones, and stops what outlives the grace period', async () => {
    const owner = await startAppProcess(h.processEnv());
    processes.push(owner);
    const quick = await h.serviceTask('sleep 1.5; echo finished-in-grace');
    const slowPidFile = `${h.scratchDir()}/slow`;
    const slow = await h.serviceTask(`sleep 300 & echo $! > ${slowPidFile}; wait`);
    await h.waitForStatus(quick, 'running', 10_000);
    const slowPid = await waitFor(async () => existsSync(slowPidFile) && Number(readFileSync(slowPidFile, 'utf8').trim()), 15_000, 'the slow script');

    const exited = owner.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const late = await h.serviceTask('echo should-wait');
    // Still serving during the grace period (a Kill must still land), but no longer healthy.
    expect((await fetch(`${owner.url}/healthz`)).status).toBe(503);
    expect(await exited).toBe(0);
    processes.splice(processes.indexOf(owner), 1);

    expect((await h.task(quick))?.status).toBe('success');
    const slowTask = await h.task(slow);
    expect(slowTask?.status).toBe('failure');
    expect(slowTask?.result.failureMessage).toBe('interrupted: countersign shut down while it ran');
    expect(isProcessAlive(slowPid)).toBe(false);
    // Nothing claimed after SIGTERM, nothing left running.
    expect((await h.task(late))?.status).toBe('ready');
    expect(await h.count('executions', { phase: 'running' })).toBe(0);
  });
});
