/**
 * Fault: a TCP partition between one replica (B, a separate process) and Postgres, for twice the
 * lease. Nothing passes either way meanwhile, and nothing is reset: B's sessions, and its
 * liveness lock, stay alive at the server. The other replica (A) must not take B's runs for lost;
 * B's scripts go on over SSH, their results wait in B until the link heals and are then stored;
 * B starts no new rollout batch while it cannot confirm the run is still its own; A keeps running
 * its own tasks throughout.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { startAppProcess, type AppProcess } from '../support/appProcess.js';
import { assessRuns, markedScript, openGate, printFigures, type PlannedRun } from '../support/faultFigures.js';
import { Harness, LOGIN_USER } from '../support/harness.js';
import { startSshd, type SshServer } from '../support/sshd.js';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy.js';
import { waitFor } from '../support/waitFor.js';

const LEASE_MS = 3000;

describe('fault: a replica partitioned from Postgres for twice the lease', () => {
  let h: Harness;
  let pair: SshServer;
  let proxy: TcpProxy;
  let b: AppProcess;
  let a: RunningApp;
  beforeAll(async () => {
    // Two addresses on one sshd: a two-host target rolled out one host at a time.
    pair = await startSshd({ host: '127.0.0.41', extraHosts: ['127.0.0.42'], loginUser: LOGIN_USER });
    h = await Harness.start({
      // This process only watches (and sweeps); B and A run.
      runner: { maxConcurrent: 0 },
      runnerYaml: `  leaseTimeout: ${LEASE_MS / 1000}s\n  livenessTimeout: 20s\n  pollInterval: 1s\n  killGrace: 1s\n  shutdownGrace: 3s`,
      extraTargets: () =>
        [
          '  rolling:',
          '    rollout: { batch: 1 }',
          '    hosts:',
          ...pair.hosts.map((address) => `      - { host: ${address}, port: ${pair.port}, user: ${pair.user} }`),
          '    ssh:',
          `      privateKeyFile: ${pair.privateKeyPath}`,
          `      knownHosts: "${pair.knownHosts}"`,
        ].join('\n'),
    });
    const url = new URL(h.database.url);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    url.host = `${proxy.host}:${proxy.port}`;
    b = await startAppProcess(h.processEnv({ DATABASE_URL: url.toString() }));
  }, 90_000);
  afterAll(async () => {
    proxy?.heal();
    await b?.stop().catch(() => undefined);
    await a?.stop(1000);
    await h.stop();
    await Promise.all([proxy?.close(), pair?.stop()]);
  });

  it("keeps B's runs B's, holds its results and its next batch until the link heals, and A runs on", async () => {
    const dir = h.scratchDir();
    // B's runs: scripts of 2-9 s (some end during the partition), and a two-host rollout whose
    // first host ends during the partition.
    const runs: PlannedRun[] = [2, 4, 6, 9].map((_, index) => ({ index, exitCode: index === 2 ? 3 : 0 }));
    const sleeps = [2, 4, 6, 9];
    for (const run of runs) run.taskId = await h.createTask(`run sandbox -m "partition ${run.index}" ${markedScript(dir, run, sleeps[run.index]!, true)}`);
    const rollTrace = `${dir}/rolling`;
    const rolling = await h.createTask(
      `run rolling -m "two hosts" while [ ! -e ${dir}/go ]; do sleep 0.1; done; set -- $SSH_CONNECTION; echo "$3 $(date +%s%3N)" >> ${rollTrace}; sleep 2; echo rolled`,
    );
    const ids = [...runs.map((run) => run.taskId!), rolling];
    await waitFor(
      async () =>
        Number((await h.database.db('tasks').whereIn('id', ids).where({ status: 'running' }).count<{ count: string }[]>('* as count'))[0]?.count) ===
        ids.length,
      20_000,
      'B running all five',
    );
    const owners = new Set(await h.database.db('executions').whereIn('task_id', ids).pluck('runner_id'));
    expect([...owners].every((owner) => String(owner).includes(`:${b.pid}:`))).toBe(true);
    // A replica that runs, started once B holds its runs.
    a = await h.startReplica();

    openGate(dir);
    await waitFor(
      async () => runs.every((run) => existsText(`${dir}/run-${run.index}`).includes('start')) && existsText(rollTrace) !== '',
      10_000,
      'every script started',
    );
    const partitionedAt = Date.now();
    proxy.partition();

    // A runs a task of its own while B is cut off.
    const aRun: PlannedRun = { index: 10, exitCode: 0 };
    aRun.taskId = await h.createTask(`run sandbox -m "A during the partition" ${markedScript(dir, aRun, 1)}`);
    const aTask = await h.waitForStatus(aRun.taskId, ['success', 'failure'], 15_000);
    expect(aTask.status).toBe('success');
    expect((await h.database.db('executions').where({ task_id: aRun.taskId }).first('runner_id')).runner_id).not.toContain(`:${b.pid}:`);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, partitionedAt + 2 * LEASE_MS - Date.now())));
    // Twice the lease: B's leases lapsed long ago; its runs are still running, still B's.
    const during = await h.database.db('tasks').whereIn('id', ids).pluck('status');
    expect(during.every((status: string) => status === 'running')).toBe(true);
    const secondHostBefore = existsText(rollTrace).trim().split('\n').length;
    const healedAt = Date.now();
    proxy.heal();

    const finished = await Promise.all(ids.map((id) => h.waitForStatus(id, ['success', 'failure', 'killed'], 30_000)));
    const lastStored = Math.max(...finished.map((task) => task.finishedAt?.getTime() ?? 0));
    const figures = await assessRuns(h.database.db, dir, [...runs, aRun]);

    // The rollout: host 1 ran before and during the partition; host 2 started only after the heal.
    const rolled = finished[finished.length - 1]!;
    const starts = existsText(rollTrace)
      .trim()
      .split('\n')
      .map((line) => Number(line.split(' ')[1]));
    const heldBatchFor = (starts[1] ?? 0) - healedAt;
    printFigures('a TCP partition between one replica and Postgres for twice the lease (6 s; lease 3 s)', figures, {
      'partition (s)': ((healedAt - partitionedAt) / 1000).toFixed(1),
      "B's tasks (4 + a 2-host rollout) ended as": finished.map((task) => task.status).join(', '),
      'results held in B, all stored within (s after the heal)': ((lastStored - healedAt) / 1000).toFixed(1),
      "rollout's second batch started (s after the heal)": (heldBatchFor / 1000).toFixed(1),
      "A's own task during the partition": aTask.status,
    });
    expect(figures.problems).toEqual([]);
    expect([figures.doubleRuns, figures.lostTasks, figures.wrongResults, figures.healthyRunsKilled]).toEqual([0, 0, 0, 0]);
    expect(rolled.status).toBe('success');
    expect(rolled.result.lastLine).toBe('rolled');
    expect(secondHostBefore).toBe(1);
    expect(starts).toHaveLength(2);
    expect(starts[1]).toBeGreaterThanOrEqual(healedAt);
    const events = await h.database.db('events').whereIn('task_id', ids).where({ type: 'task.failure' }).pluck('data');
    expect(events.filter((data: { reason?: string }) => data.reason === 'runner-lost')).toEqual([]);
  }, 120_000);
});

function existsText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
