/**
 * Fault: SIGTERM while something the shutdown waits on hangs. The process must end within
 * shutdownGrace + killGrace + 15 s whatever hangs: an SSH host that stopped answering mid-run,
 * or a database that stopped answering. What it could not finish is then ended by the other
 * replicas, which find its liveness lock gone (at once when its connection closes; after
 * livenessTimeout when the link to Postgres is silent).
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAppProcess, type AppProcess } from '../support/appProcess.js';
import { AUTHOR, Harness } from '../support/harness.js';
import { freePort, isProcessAlive } from '../support/sshd.js';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy.js';
import { waitFor } from '../support/waitFor.js';

const GRACE_S = 3;
const KILL_GRACE_S = 2;
const LIVENESS_S = 8;
const LIMIT_MS = (GRACE_S + KILL_GRACE_S + 15) * 1000;

describe('fault: SIGTERM with a hung SSH host or a hung database', () => {
  let h: Harness;
  let sshProxy: TcpProxy;
  const processes: AppProcess[] = [];
  const strays: number[] = [];
  beforeAll(async () => {
    // The SSH link goes through a proxy that can go silent; the proxy is started once the
    // harness's sshd is known, so the target names a port picked in advance.
    const proxyPort = await freePort();
    h = await Harness.start({
      // This process only watches and sweeps.
      runner: { maxConcurrent: 0 },
      runnerYaml: `  leaseTimeout: 3s\n  livenessTimeout: ${LIVENESS_S}s\n  pollInterval: 1s\n  killGrace: ${KILL_GRACE_S}s\n  shutdownGrace: ${GRACE_S}s`,
      extraTargets: (ssh) =>
        [
          '  hung:',
          '    hosts:',
          `      - { host: 127.0.0.1, port: ${proxyPort}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "127.0.0.1 ${ssh.hostPublicKey}"`,
          '    connectTimeout: 3s',
        ].join('\n'),
    });
    sshProxy = await startTcpProxy({ host: h.ssh.host, port: h.ssh.port }, { port: proxyPort });
  });
  afterAll(async () => {
    await Promise.all(processes.map((p) => p.kill9().catch(() => undefined)));
    for (const pid of strays) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await h.stop();
    await sshProxy?.close();
  });

  async function readyTask(target: string, script: string): Promise<number> {
    const created = await h.app.service.create({ author: AUTHOR, target, message: null, type: null, script, source: 'api', sourceKey: null, channelId: null });
    if (!created.ok) throw new Error(created.message);
    return created.task.id;
  }

  async function remotePid(file: string): Promise<number> {
    return waitFor(async () => existsSync(file) && Number(readFileSync(file, 'utf8').trim()), 15_000, 'the remote sleep');
  }

  it('ends within the limit when the SSH host stops answering mid-run', async () => {
    const owner = await startAppProcess(h.processEnv());
    processes.push(owner);
    const pidFile = `${h.scratchDir()}/hung-ssh`;
    const id = await readyTask('hung', `sleep 300 & echo $! > ${pidFile}; wait`);
    const pid = await remotePid(pidFile);
    strays.push(pid);
    expect((await h.task(id))?.status).toBe('running');

    sshProxy.freeze();
    const signalledAt = Date.now();
    const code = await owner.stop();
    const tookMs = Date.now() - signalledAt;
    processes.splice(processes.indexOf(owner), 1);
    // Its lock went with its connection: another replica ends the run at once.
    const task = await h.waitForStatus(id, ['failure', 'killed'], 10_000);
    process.stdout.write(
      `FAULT SIGTERM with a hung SSH host (shutdownGrace ${GRACE_S} s, killGrace ${KILL_GRACE_S} s, limit ${LIMIT_MS / 1000} s)\n  process exited after: ${(tookMs / 1000).toFixed(1)} s (code ${code})\n  task ended: ${task.status} (${task.result.failureMessage})\n`,
    );
    expect(tookMs).toBeLessThan(LIMIT_MS);
    expect(task.status).toBe('failure');
  }, 60_000);

  it('ends within the limit when the database stops answering, and the run is ended once Postgres gives up the silent session', async () => {
    const url = new URL(h.database.url);
    const dbProxy = await startTcpProxy({ host: url.hostname, port: Number(url.port) });
    try {
      url.host = `${dbProxy.host}:${dbProxy.port}`;
      const owner = await startAppProcess(h.processEnv({ DATABASE_URL: url.toString() }));
      processes.push(owner);
      const pidFile = `${h.scratchDir()}/hung-db`;
      const id = await readyTask('sandbox', `sleep 300 & echo $! > ${pidFile}; wait`);
      const pid = await remotePid(pidFile);
      strays.push(pid);
      await waitFor(
        async () => (await h.database.db('executions').where({ task_id: id }).first('runner_id'))?.runner_id.includes(`:${owner.pid}:`),
        10_000,
        'the owner claimed it',
      );

      // Silent: nothing passes, nothing is reset (not even the process's exit, until it heals).
      dbProxy.partition();
      const signalledAt = Date.now();
      const code = await owner.stop();
      const tookMs = Date.now() - signalledAt;
      processes.splice(processes.indexOf(owner), 1);
      if (code !== 0)
        process.stdout.write(
          `${owner
            .output()
            .split('\n')
            .filter((line) => /shutdown|did not/.test(line))
            .join('\n')}\n`,
        );
      expect(tookMs).toBeLessThan(LIMIT_MS);
      // The server still holds the dead process's session (nothing told it otherwise) until
      // idle_session_timeout (livenessTimeout) ends it; then the run is ended as lost.
      const task = await h.waitForStatus(id, ['failure', 'killed'], LIVENESS_S * 1000 + 15_000);
      const endedMs = (task.finishedAt?.getTime() ?? Date.now()) - signalledAt;
      process.stdout.write(
        `FAULT SIGTERM with a hung database (limit ${LIMIT_MS / 1000} s; livenessTimeout ${LIVENESS_S} s)\n  process exited after: ${(tookMs / 1000).toFixed(1)} s (code ${code})\n  run ended by another replica after: ${(endedMs / 1000).toFixed(1)} s (${task.result.failureMessage})\n`,
      );
      expect(task.status).toBe('failure');
      expect(task.result.failureMessage).toMatch(/^runner lost/);
      await waitFor(async () => !isProcessAlive(pid), 15_000, 'the remote script to be stopped');
    } finally {
      dbProxy.heal();
      await dbProxy.close();
    }
  }, 90_000);
});
