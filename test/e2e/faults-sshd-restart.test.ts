/**
 * Fault: sshd restarted on the target host mid-run, as `systemctl restart ssh` does: the
 * listening daemon goes away and a new one takes the port; the per-connection processes (and
 * the scripts they started) live on. Runs in flight end with their real results over their
 * open connections; a task that starts while nothing listens fails saying so (nothing of it
 * ran); tasks after the restart connect afresh to the new daemon, whose host key is the pinned one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assessRuns, markedScript, openGate, printFigures, type PlannedRun } from '../support/faultFigures.js';
import { Harness, LOGIN_USER } from '../support/harness.js';
import { descendants, sshdPath, startSshd, type SshServer } from '../support/sshd.js';
import { waitFor } from '../support/waitFor.js';

describe('fault: sshd restarted mid-run', () => {
  let h: Harness;
  let box: SshServer;
  let restarted: ChildProcess | null = null;
  beforeAll(async () => {
    box = await startSshd({ host: '127.0.0.51', extraHosts: ['127.0.0.52'], loginUser: LOGIN_USER });
    const target = (name: string, address: string) =>
      [
        `  ${name}:`,
        '    hosts:',
        `      - { host: ${address}, port: ${box.port}, user: ${box.user} }`,
        '    ssh:',
        `      privateKeyFile: ${box.privateKeyPath}`,
        `      knownHosts: "${box.knownHosts}"`,
        '    connectTimeout: 3s',
      ].join('\n');
    h = await Harness.start({ extraTargets: () => [target('box', box.hosts[0]!), target('box2', box.hosts[1]!)].join('\n') });
  });
  afterAll(async () => {
    await h.stop();
    if (restarted?.pid) {
      for (const pid of [restarted.pid, ...descendants(restarted.pid)]) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await box.stop();
  });

  it('ends the runs in flight with their real results, and connects afresh after it', async () => {
    const dir = h.scratchDir();
    const sleeps = [2, 3, 4, 5, 6, 7];
    const runs: PlannedRun[] = sleeps.map((_, index) => ({ index, exitCode: index === 4 ? 2 : 0 }));
    for (const run of runs) run.taskId = await h.createTask(`run box -m "sshd restart ${run.index}" ${markedScript(dir, run, sleeps[run.index]!, true)}`);
    await Promise.all(runs.map((run) => h.waitForStatus(run.taskId!, 'running', 15_000)));
    openGate(dir);
    await waitFor(async () => runs.every((run) => existsSync(`${dir}/run-${run.index}`)), 10_000, 'every script started');

    // The daemon goes; its connections stay.
    const stoppedAt = Date.now();
    process.kill(box.pid, 'SIGTERM');
    await waitFor(async () => !(await listening(box.hosts[0]!, box.port)), 5_000, 'sshd to stop listening');
    // A task on an address with no open connection, while nothing listens.
    const refused: PlannedRun = { index: 20, exitCode: 0 };
    refused.taskId = await h.createTask(`run box2 -m "while sshd is down" ${markedScript(dir, refused, 0)}`);
    const refusedTask = await h.waitForStatus(refused.taskId, ['success', 'failure'], 15_000);

    restarted = spawn(sshdPath(), ['-D', '-e', '-f', `${box.dir}/sshd_config`], { stdio: 'ignore' });
    await waitFor(async () => listening(box.hosts[0]!, box.port), 10_000, 'the new sshd to listen');
    const downMs = Date.now() - stoppedAt;
    const after: PlannedRun[] = [30, 31].map((index) => ({ index, exitCode: 0 }));
    for (const run of after) run.taskId = await h.createTask(`run box2 -m "after the restart" ${markedScript(dir, run, 1)}`);

    const all = [...runs, ...after];
    await Promise.all(all.map((run) => h.waitForStatus(run.taskId!, ['success', 'failure', 'killed'], 30_000)));
    const figures = await assessRuns(h.database.db, dir, all);
    printFigures('sshd restarted mid-run (daemon stopped, a new one on the same port)', figures, {
      'runs in flight': runs.length,
      'sshd down for (s)': (downMs / 1000).toFixed(1),
      'task started while nothing listened': `${refusedTask.status}: ${refusedTask.result.failureMessage}`,
      'tasks after the restart (new connections)': after.length,
    });
    expect(figures.problems).toEqual([]);
    expect([figures.doubleRuns, figures.lostTasks, figures.wrongResults, figures.healthyRunsKilled]).toEqual([0, 0, 0, 0]);
    // Refused, said so, and nothing of it ran.
    expect(refusedTask.status).toBe('failure');
    expect(refusedTask.result.failureMessage).toMatch(/refused|connect/i);
    expect(existsSync(`${dir}/run-20`) ? readFileSync(`${dir}/run-20`, 'utf8') : '').toBe('');
  }, 90_000);
});

function listening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
