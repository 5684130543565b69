/**
 * Fleets: a 40-host target rolled out in batches, stopOnFailure, connections pooled per host
 * and reused across tasks, OpenSSH's MaxSessions respected by queueing, and a link that drops
 * mid-run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blocksText, Harness, TASKS_CHANNEL } from '../support/harness.js';
import { isProcessAlive, startSshd, type SshServer } from '../support/sshd.js';
import { startTcpProxy, type TcpProxy } from '../support/tcpProxy.js';

/** Four sshds, each answering on ten loopback addresses: forty hosts. */
async function startFleet(): Promise<SshServer[]> {
  return Promise.all(
    [0, 1, 2, 3].map((i) => startSshd({ host: `127.0.0.${10 + i * 10}`, extraHosts: Array.from({ length: 9 }, (_, j) => `127.0.0.${11 + i * 10 + j}`) })),
  );
}

function fleetTarget(name: string, fleet: SshServer[], extra: string[]): string {
  const hosts = fleet.flatMap((ssh) => ssh.hosts.map((address) => `      - { host: ${address}, port: ${ssh.port}, user: ${ssh.user} }`));
  // Every sshd has its own host key and client key; the fleet shares one client key here.
  return [
    `  ${name}:`,
    '    hosts:',
    ...hosts,
    '    ssh:',
    `      privateKeyFile: ${fleet[0]!.privateKeyPath}`,
    '      knownHosts:',
    ...fleet.map((ssh) => `        - "${ssh.knownHosts}"`),
    ...extra,
  ].join('\n');
}

/** Which fleet address a step ran on, from the SSH connection the script saw. */
const WHERE = 'set -- $SSH_CONNECTION; echo "on $3"';

describe('fleets', () => {
  let h: Harness;
  let fleet: SshServer[];
  let small: SshServer;
  let proxy: TcpProxy;
  beforeAll(async () => {
    fleet = await startFleet();
    // All four sshds accept the first one's client key.
    const { writeFileSync, readFileSync } = await import('node:fs');
    const key = readFileSync(`${fleet[0]!.privateKeyPath}.pub`, 'utf8');
    for (const ssh of fleet.slice(1)) writeFileSync(`${ssh.dir}/authorized_keys`, key);
    small = await startSshd({ maxSessions: 3 });
    h = await Harness.start({
      // A link silent for ~3 keepalives (1.5 s here, 15 s by default) is declared dead.
      sshKeepaliveMs: 500,
      extraTargets: (ssh) =>
        [
          fleetTarget('fleet-quarters', fleet, ['    rollout: { batch: "25%" }']),
          fleetTarget('fleet-careful', fleet, ['    rollout: { batch: 5, stopOnFailure: true }']),
          '  pooled:',
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "${ssh.knownHosts}"`,
          '  narrow:',
          '    maxSessions: 3',
          '    hosts:',
          `      - { host: ${small.host}, port: ${small.port}, user: ${small.user} }`,
          '    ssh:',
          `      privateKeyFile: ${small.privateKeyPath}`,
          `      knownHosts: "${small.knownHosts}"`,
        ].join('\n'),
    });
    // The same sshd again, behind a proxy that can go silent.
    proxy = await startTcpProxy({ host: h.ssh.host, port: h.ssh.port });
  }, 60_000);
  afterAll(async () => {
    await h.stop();
    await Promise.all([...fleet.map((ssh) => ssh.stop()), small.stop(), proxy.close()]);
  });

  it('rolls out over 40 hosts in batches of a quarter, one batch after another', async () => {
    // Long enough per batch (0.8 s) for the card's throttled redraws to catch it mid-way.
    const id = await h.createTask(`run fleet-quarters -m "everywhere" ${WHERE}; sleep 0.8`);
    const task = await h.waitForStatus(id, ['success', 'failure'], 60_000);
    expect(task.status).toBe('success');
    const steps = await h.database
      .db('execution_steps as s')
      .join('executions as e', 'e.id', 's.execution_id')
      .where('e.task_id', id)
      .orderBy('s.id')
      .select('s.*');
    expect(steps).toHaveLength(40);
    expect(steps.every((s: { phase: string }) => s.phase === 'succeeded')).toBe(true);
    expect(new Set(steps.map((s: { group_index: number }) => s.group_index))).toEqual(new Set([0, 1, 2, 3]));
    // Batch n+1 starts only after every step of batch n finished.
    for (let group = 1; group < 4; group++) {
      const previousEnd = Math.max(
        ...steps.filter((s: { group_index: number }) => s.group_index === group - 1).map((s: { finished_at: Date }) => s.finished_at.getTime()),
      );
      const start = Math.min(...steps.filter((s: { group_index: number }) => s.group_index === group).map((s: { started_at: Date }) => s.started_at.getTime()));
      expect(start).toBeGreaterThanOrEqual(previousEnd);
    }
    // Each host ran the script on itself, and its output is labelled with it.
    const output = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data');
    for (const ssh of fleet) for (const address of ssh.hosts) expect(output.join('')).toContain(`on ${address}\n`);

    // Every step change bumped the run's status_version: two per step (one for the first batch,
    // whose steps the claim writes running), one for the result.
    const execution = await h.database.db('executions').where({ task_id: id }).first('status_version');
    expect(execution.status_version).toBeGreaterThanOrEqual(71);

    const card = await h.card(id, 'success');
    expect(blocksText(card)).toContain('40/40 hosts succeeded');
    // While it ran, the card followed the rollout (throttled redraws, not one per host).
    const progress = card.history
      .map((version) => blocksText(version).match(/(\d+)\/40 hosts done/)?.[1])
      .filter((done): done is string => done !== undefined)
      .map(Number);
    expect(progress.some((done) => done > 0 && done < 40)).toBe(true);
    expect(card.updates).toBeLessThan(30);
    // A 40-host run keeps its thread readable: a per-host summary and the whole log as a file.
    const summary = await h.fake.waitFor(
      () => h.fake.thread(TASKS_CHANNEL, card.ts).find((m) => blocksText(m).includes('on 40 hosts')),
      15_000,
      'host summary',
    );
    expect(blocksText(summary)).toContain(':white_check_mark: 40 succeeded');
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.thread_ts === card.ts), 15_000, 'fleet log');
    expect(file.content.toString('utf8')).toMatch(/^\[root@127\.0\.0\.10:\d+\] on 127\.0\.0\.10$/m);
    expect(h.fake.thread(TASKS_CHANNEL, card.ts).filter((m) => (m.text ?? '').includes('```'))).toHaveLength(0);
  });

  it('stops the rollout at the first failing batch, leaving later batches unstarted', async () => {
    const failing = '127.0.0.17';
    const id = await h.createTask(`run fleet-careful -m "careful" ${WHERE}; [ "$3" = "${failing}" ] && { echo "disk full on $3" >&2; exit 3; }; true`);
    const task = await h.waitForStatus(id, ['success', 'failure'], 60_000);
    expect(task.status).toBe('failure');
    const steps = await h.database
      .db('execution_steps as s')
      .join('executions as e', 'e.id', 's.execution_id')
      .where('e.task_id', id)
      .orderBy('s.id')
      .select('s.host', 's.phase', 's.group_index', 's.failure_message');
    const byPhase = (phase: string) => steps.filter((s: { phase: string }) => s.phase === phase);
    expect(byPhase('failed').map((s: { host: string }) => s.host)).toEqual([failing]);
    expect(byPhase('succeeded')).toHaveLength(9);
    expect(byPhase('skipped')).toHaveLength(30);
    expect(byPhase('skipped').every((s: { group_index: number }) => s.group_index >= 2)).toBe(true);
    expect(byPhase('skipped')[0].failure_message).toMatch(/a host in batch 2 failed and the rollout stops on failure/);
    expect(task.result.failureMessage).toMatch(
      new RegExp(`^1 of 40 hosts failed, 30 not started \\(root@${failing.replace(/\./g, '\\.')}:\\d+: the script exited with code 3\\)$`),
    );

    const card = await h.card(id, 'failure');
    const summary = await h.fake.waitFor(
      () => h.fake.thread(TASKS_CHANNEL, card.ts).find((m) => blocksText(m).includes('on 40 hosts')),
      15_000,
      'host summary',
    );
    expect(blocksText(summary)).toContain(':x: 1 failed');
    expect(blocksText(summary)).toContain(':fast_forward: 30 not started');
    expect(blocksText(summary)).toContain(`disk full on ${failing}`);
  });

  it('reuses one connection per host across tasks: the second task pays no handshake', async () => {
    const accepted = () => (h.ssh.log().match(/Accepted publickey/g) ?? []).length;
    const first = await h.createTask('run pooled echo one');
    await h.waitForStatus(first, 'success');
    const afterFirst = accepted();
    const second = await h.createTask('run pooled echo two');
    await h.waitForStatus(second, 'success');
    expect(accepted()).toBe(afterFirst);
    expect(h.app.pool.stats().connections).toBeGreaterThanOrEqual(1);
  });

  it('queues steps beyond the host’s MaxSessions instead of failing them, and still kills at once', async () => {
    // MaxSessions 3: two runs at a time, one channel kept for control commands.
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await h.createTask(`run narrow -m "queue ${i}" echo "start $(date +%s%N)"; sleep 1; echo "end $(date +%s%N)"`));
    const blocker = await h.createTask('run narrow -m "kill me" sleep 300');
    const tasks = await Promise.all(ids.map((id) => h.waitForStatus(id, ['success', 'failure'], 30_000)));
    expect(tasks.map((t) => t.status)).toEqual(['success', 'success', 'success', 'success', 'success']);
    // Never more than two at once on that host.
    const spans: Array<readonly [number, number]> = [];
    for (const id of ids) {
      const out = (await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).pluck('o.data')).join('');
      const [, start, end] = /start (\d+)\nend (\d+)/.exec(out) ?? [];
      spans.push([Number(start) / 1e6, Number(end) / 1e6] as const);
    }
    const overlapAt = (t: number) => spans.filter(([s, e]) => s <= t && t < e).length;
    expect(Math.max(...spans.map(([s]) => overlapAt(s)))).toBeLessThanOrEqual(2);
    expect(small.log()).not.toMatch(/open failed|no more sessions/i);

    // The blocker holds a run slot; Kill goes through the reserved control channel at once.
    await h.waitForStatus(blocker, 'running');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const started = Date.now();
    expect((await h.app.service.kill(blocker, 'UAUTHOR')).ok).toBe(true);
    expect((await h.waitForStatus(blocker, ['killed', 'failure'], 10_000)).status).toBe('killed');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('fails a step whose connection drops mid-run, with the reason, without hanging', async () => {
    const pidFile = `${h.scratchDir()}/dropped`;
    const id = await h.createTask(`run pooled -m "link drops" echo started; sleep 300 & echo $! > ${pidFile}; wait`);
    await h.waitForStatus(id, 'running');
    const deadline = Date.now() + 5000;
    while (!(await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).first())) {
      if (Date.now() > deadline) throw new Error('no output');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Kill sshd's per-connection processes (the privileged monitor and the user's network
    // process): the TCP link dies under the running script.
    const { execFileSync } = await import('node:child_process');
    const { readFileSync } = await import('node:fs');
    const connectionProcesses = h.ssh.sessionPids().filter((pid) => {
      try {
        return execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).trim() === 'sshd';
      } catch {
        return false;
      }
    });
    expect(connectionProcesses.length).toBeGreaterThan(0);
    for (const pid of connectionProcesses) process.kill(pid, 'SIGKILL');
    const task = await h.waitForStatus(id, ['failure', 'success', 'killed'], 30_000);
    expect(task.status).toBe('failure');
    expect(task.result.failureMessage).toMatch(new RegExp(`lost the connection to ${h.ssh.user}@127\\.0\\.0\\.1:\\d+ mid-run`));
    // The next task on that host gets a fresh connection.
    const next = await h.createTask('run pooled echo back');
    expect((await h.waitForStatus(next, ['success', 'failure'], 15_000)).status).toBe('success');
    // The host was reachable again: what the run left behind was killed over a fresh connection.
    expect(task.result.failureMessage).toMatch(/; the run's processes left on the host were killed$/);
    expect(isProcessAlive(Number(readFileSync(pidFile, 'utf8').trim()))).toBe(false);
  });

  it('finds a link that went silent (no RST, no FIN) by keepalive, and fails the step', async () => {
    // A short connectTimeout: the cleanup's fresh connection goes through the frozen proxy too.
    const target = `  silent:\n    connectTimeout: 2s\n    hosts:\n      - { host: 127.0.0.1, port: ${proxy.port}, user: ${h.ssh.user} }\n    ssh:\n      privateKeyFile: ${h.ssh.privateKeyPath}\n      knownHosts: "[127.0.0.1]:${proxy.port} ${h.ssh.hostPublicKey}"`;
    const { parseConfig } = await import('../../src/config/load.js');
    const silentTarget = parseConfig(`targets:\n${target}\n`, 'silent.yml').targets.get('silent')!;
    (h.config.targets as Map<string, typeof silentTarget>).set('silent', silentTarget);
    const pidFile = `${h.scratchDir()}/silent`;
    const id = await h.createTask(`run silent -m "link goes silent" sleep 300 & echo $! > ${pidFile}; echo started; wait`);
    const deadline = Date.now() + 10_000;
    while (!(await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).first())) {
      if (Date.now() > deadline) throw new Error('no output');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const frozenAt = Date.now();
    proxy.freeze();
    const task = await h.waitForStatus(id, ['failure', 'success', 'killed'], 20_000);
    expect(task.status).toBe('failure');
    expect(task.result.failureMessage).toMatch(/lost the connection to .*127\.0\.0\.1:\d+ mid-run \(Keepalive timeout\)/);
    expect(Date.now() - frozenAt).toBeLessThan(10_000);
    const { readFileSync } = await import('node:fs');
    process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGKILL');
  });
});
