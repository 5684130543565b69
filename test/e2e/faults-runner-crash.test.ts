/**
 * Fault: the process that owns a run dies (kill -9). Its liveness lock goes with its connection,
 * so the other replicas end the run as "runner lost" within seconds, not after a lease (the
 * target: within 5 s), and stop its script on the host. And the other side: an owner that is
 * alive but frozen (SIGSTOP, as a blocked event loop or a long GC pause looks) for longer than
 * the lease keeps its run, which ends with its real result once it goes on.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAppProcess, type AppProcess } from '../support/appProcess.js';
import { assessRuns, markedScript, printFigures, type PlannedRun } from '../support/faultFigures.js';
import { Harness } from '../support/harness.js';
import { isProcessAlive } from '../support/sshd.js';
import { waitFor } from '../support/waitFor.js';

// A long lease: detection must not come from it. A frozen process is given 30 s by Postgres.
const RUNNER_YAML = '  leaseTimeout: 30s\n  livenessTimeout: 30s\n  pollInterval: 1s\n  killGrace: 1s\n  shutdownGrace: 3s';

describe('fault: the owner of a run dies, or freezes', () => {
  let h: Harness;
  const processes: AppProcess[] = [];
  beforeAll(async () => {
    // This process only watches and sweeps; the runs belong to separate processes.
    h = await Harness.start({ runner: { maxConcurrent: 0 }, runnerYaml: RUNNER_YAML });
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill9().catch(() => undefined)));
    await h.stop();
  });

  it('fails the run of an owner killed with -9 within 5 s (lease 30 s), and stops its script', async () => {
    const owner = await startAppProcess(h.processEnv());
    processes.push(owner);
    const pidFile = `${h.scratchDir()}/orphan`;
    const id = await h.serviceTask(`sleep 300 & echo $! > ${pidFile}; echo working; wait`);
    const pid = await waitFor(async () => existsSync(pidFile) && Number(readFileSync(pidFile, 'utf8').trim()), 15_000, 'the remote sleep');
    expect((await h.database.db('executions').where({ task_id: id }).first('runner_id')).runner_id).toContain(`:${owner.pid}:`);
    // Let the sweepers see the owner's lock held first, as in production (no restart grace).
    await new Promise((resolve) => setTimeout(resolve, 1500));

    const killedAt = Date.now();
    await owner.kill9();
    processes.splice(processes.indexOf(owner), 1);
    const task = await h.waitForStatus(id, ['failure'], 20_000);
    const detectedMs = (task.finishedAt?.getTime() ?? Date.now()) - killedAt;
    await waitFor(async () => !isProcessAlive(pid), 15_000, 'the orphaned script to be stopped');
    const stoppedMs = Date.now() - killedAt;
    process.stdout.write(
      `FAULT kill -9 of the run's owner (lease 30 s)\n  task failed with "runner lost" after: ${(detectedMs / 1000).toFixed(2)} s\n  its script stopped on the host after: ${(stoppedMs / 1000).toFixed(2)} s\n`,
    );
    expect(task.result.failureMessage).toMatch(/^runner lost: the process running it \(.*:\d+:[0-9a-f]+\) stopped responding$/);
    expect(detectedMs).toBeLessThan(5000);
  });

  it('never takes the run of an owner frozen for six times its lease: it ends with its real result', async () => {
    // The owner runs with a 2 s lease: its lease row lapses early in the freeze.
    const shortLease = `${h.configPath}.short-lease.yml`;
    writeFileSync(shortLease, readFileSync(h.configPath, 'utf8').replace('leaseTimeout: 30s', 'leaseTimeout: 2s'));
    const owner = await startAppProcess(h.processEnv({ COUNTERSIGN_CONFIG: shortLease }));
    processes.push(owner);
    const dir = h.scratchDir();
    const run: PlannedRun = { index: 0, exitCode: 0 };
    run.taskId = await h.serviceTask(markedScript(dir, run, 6));
    await h.waitForStatus(run.taskId, 'running', 10_000);
    await waitFor(async () => existsSync(`${dir}/run-0`), 10_000, 'the script started');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // Frozen: no heartbeat, no lease renewal, no event loop; its connections stay open.
    process.kill(owner.pid, 'SIGSTOP');
    const frozenMs = 12_000;
    await new Promise((resolve) => setTimeout(resolve, frozenMs));
    const during = await h.task(run.taskId);
    const leaseDuring = (await h.database.db('executions').where({ task_id: run.taskId }).first('lease_until')).lease_until as Date;
    process.kill(owner.pid, 'SIGCONT');
    const task = await h.waitForStatus(run.taskId, ['success', 'failure', 'killed'], 20_000);
    const figures = await assessRuns(h.database.db, dir, [run]);
    printFigures('owner frozen (SIGSTOP) for 12 s, six times its 2 s lease, while its script runs', figures, {
      'status while frozen': during?.status ?? 'missing',
      'ended as': `${task.status} (exit ${task.result.exitCode})`,
    });
    expect(during?.status).toBe('running');
    // The lease had lapsed: only the owner's lock kept the run its own.
    expect(leaseDuring.getTime()).toBeLessThan(Date.now() - frozenMs / 2);
    expect([figures.doubleRuns, figures.lostTasks, figures.wrongResults, figures.healthyRunsKilled]).toEqual([0, 0, 0, 0]);
  }, 60_000);
});
