/**
 * Fault (review of issue 10, H3): a live replica's connections to Postgres are reset (RST, as a
 * PgBouncer or Cloud SQL proxy restart, a firewall or a failover does) and new ones are refused
 * for 3 s. Its liveness lock goes with its session, as a dead process's would; before the fix
 * another replica took the free lock for death after ~1.5 s, failed the run as "runner lost" and
 * killed its healthy script on the host. Now a free lock is given a reconnect grace: the replica
 * takes its lock back as soon as it can reconnect, and the run ends with its real result.
 */
import { existsSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heldRunnerKeys } from '../../src/store/executions.js';
import { startAppProcess, type AppProcess } from '../support/appProcess.js';
import { assessRuns, markedScript, printFigures, type PlannedRun } from '../support/faultFigures.js';
import { AUTHOR, Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

/** A TCP proxy that can reset every connection and refuse (RST) new ones for a while. */
async function resettableProxy(target: { host: string; port: number }) {
  let refusingUntil = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    if (Date.now() < refusingUntil) return void client.resetAndDestroy();
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    /** RST every connection now; refuse (RST) new ones for `ms`. */
    reset(ms: number) {
      refusingUntil = Date.now() + ms;
      for (const s of sockets) s.resetAndDestroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

describe("fault: a live replica's database connections are reset", () => {
  let h: Harness;
  let b: AppProcess;
  let proxy: Awaited<ReturnType<typeof resettableProxy>>;
  beforeAll(async () => {
    h = await Harness.start({
      runner: { maxConcurrent: 0 }, // this process only sweeps; B runs
      runnerYaml: '  leaseTimeout: 3s\n  livenessTimeout: 20s\n  pollInterval: 1s\n  killGrace: 1s\n  shutdownGrace: 3s',
    });
    const url = new URL(h.database.url);
    proxy = await resettableProxy({ host: url.hostname, port: Number(url.port) });
    url.host = `127.0.0.1:${proxy.port}`;
    b = await startAppProcess(h.processEnv({ DATABASE_URL: url.toString() }));
  }, 90_000);
  afterAll(async () => {
    await b?.stop().catch(() => undefined);
    await h?.stop();
    await proxy?.close();
  });

  it('keeps a run whose runner was reset and refused for 3 s: it ends with its real result, nothing killed', async () => {
    const dir = h.scratchDir();
    const run: PlannedRun = { index: 0, exitCode: 0 };
    const created = await h.app.service.create({
      author: AUTHOR,
      target: 'sandbox',
      message: null,
      type: null,
      script: markedScript(dir, run, 12),
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    run.taskId = created.task.id;
    await h.waitForStatus(run.taskId, 'running', 20_000);
    const owner = (await h.database.db('executions').where({ task_id: run.taskId }).first('runner_id', 'runner_key')) as {
      runner_id: string;
      runner_key: number;
    };
    expect(owner.runner_id).toContain(`:${b.pid}:`);
    await waitFor(async () => existsSync(`${dir}/run-0`), 10_000, 'the script started');
    // Let this process's sweeper see B's lock held first, as in production.
    await new Promise((resolve) => setTimeout(resolve, 1500));

    const resetAt = Date.now();
    proxy.reset(3000);
    // B's lock is free while it cannot reconnect: the run must still be running well past the
    // old 1 s confirmation, past the refusal, and until B holds its lock again.
    await waitFor(async () => !(await heldRunnerKeys(h.database.db)).has(owner.runner_key), 5_000, "B's lock freed by the reset");
    const backAfter = await waitFor(
      async () => ((await heldRunnerKeys(h.database.db)).has(owner.runner_key) ? Date.now() - resetAt : undefined),
      15_000,
      'B holding its lock again',
    );
    const during = await h.task(run.taskId);
    const task = await h.waitForStatus(run.taskId, ['success', 'failure', 'killed'], 30_000);
    const figures = await assessRuns(h.database.db, dir, [run]);
    printFigures("a live runner's connections reset (RST) and refused for 3 s mid-run (lease 3 s)", figures, {
      'runner back on Postgres after': `${(backAfter / 1000).toFixed(2)} s`,
      'status once back': during?.status ?? 'missing',
      'ended as': `${task.status} (exit ${task.result.exitCode}) after ${((Date.now() - resetAt) / 1000).toFixed(1)} s`,
    });
    expect(during?.status).toBe('running');
    expect(task.status).toBe('success');
    expect(task.result.failureMessage ?? '').not.toMatch(/runner lost/);
    expect([figures.doubleRuns, figures.lostTasks, figures.wrongResults, figures.healthyRunsKilled]).toEqual([0, 0, 0, 0]);
  }, 90_000);
});
