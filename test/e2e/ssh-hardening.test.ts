/**
 * The SSH layer on a real sshd, below the runner: stopping a run whose script exited but left a
 * child holding its output, a stop that races the channel open, the pool's slot hand-off and
 * closing connections, control commands that fail, links that drop mid-run, and when the run's
 * clock starts. Every check of what is left on the host looks at /proc for the run's token.
 */
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { getEventListeners } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'ssh2';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseKnownHosts } from '../../src/exec/knownHosts.js';
import { newRunToken } from '../../src/exec/remoteCommand.js';
import { SshPool, type PoolOptions, type SessionHandle, type SshEndpoint } from '../../src/exec/sshPool.js';
import { runSshStep, type SshStepOptions, type StepOutcome } from '../../src/exec/sshStep.js';
import { connectionPids, freePort, isProcessAlive, startSshd, type SshServer } from '../support/sshd.js';
import { startTcpProxy } from '../support/tcpProxy.js';

/** As in the e2e harness: an ordinary login user with /bin/sh, as production logs in as `deploy`. */
const LOGIN_USER = 'countersign-test';
const POOL_OPTIONS: PoolOptions = { idleMs: 60_000, keepaliveMs: 1000, keepaliveCountMax: 3 };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Live processes on this machine (the host) carrying the run's token in their environment. */
function runProcesses(token: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (environ.includes(`COUNTERSIGN_RUN=${token}`) && isProcessAlive(Number(entry))) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function execText(client: Client, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.exec(command, (error, stream) => {
      if (error) return reject(error);
      let out = '';
      stream.on('data', (data: Buffer) => (out += data.toString()));
      stream.stderr.resume();
      stream.on('close', () => resolve(out));
    });
  });
}

/** A pool that aborts `stopper` the moment a run's session is handed over: after its exec is sent, before its channel opens. */
class StopOnExecPool extends SshPool {
  constructor(private readonly stopper: AbortController) {
    super(POOL_OPTIONS);
  }

  override withSession<T>(
    endpoint: SshEndpoint,
    use: (client: Client, connection: SessionHandle) => Promise<T>,
    options: { control?: boolean; signal?: AbortSignal } = {},
  ): Promise<T> {
    return super.withSession(
      endpoint,
      (client, connection) => {
        const result = use(client, connection);
        if (!options.control) this.stopper.abort('kill');
        return result;
      },
      options,
    );
  }
}

describe('ssh hardening', () => {
  let ssh: SshServer;
  let pool: SshPool;
  let scratch: string;
  const tokens: string[] = [];

  const endpoint = (overrides: Partial<Omit<SshEndpoint, 'address'>> & { port?: number } = {}): SshEndpoint => {
    const { port, ...rest } = overrides;
    return {
      address: { host: ssh.host, port: port ?? ssh.port, user: ssh.user },
      privateKey: ssh.privateKey,
      // `127.0.0.1 <key>` pins the host on any port, the proxy's too.
      knownHosts: parseKnownHosts(ssh.knownHosts).entries,
      connectTimeoutMs: 5000,
      maxSessions: 10,
      ...rest,
    };
  };

  /** Starts a step of an `sh` script; `done` gives its outcome and how long it took. */
  function startStep(on: SshPool, ep: SshEndpoint, script: string, overrides: Partial<SshStepOptions> = {}) {
    const token = newRunToken();
    tokens.push(token);
    let output = '';
    const started = Date.now();
    const done = runSshStep({
      pool: on,
      endpoint: ep,
      type: 'sh',
      script,
      secrets: new Map(),
      runAs: null,
      token,
      runTimeoutMs: 60_000,
      killGraceMs: 1500,
      stop: new AbortController().signal,
      onOutput: (_stream, text) => {
        output += text;
        return true;
      },
      drained: async () => undefined,
      ...overrides,
    }).then((outcome: StepOutcome) => ({ outcome, ms: Date.now() - started, at: Date.now() }));
    return { token, done, output: () => output };
  }

  beforeAll(async () => {
    ssh = await startSshd({ loginUser: LOGIN_USER });
    scratch = mkdtempSync(join(tmpdir(), 'countersign-hardening-'));
    chmodSync(scratch, 0o1777);
  });
  beforeEach(() => {
    pool = new SshPool(POOL_OPTIONS);
  });
  afterEach(() => {
    pool.closeAll();
    // Whatever a failing test left running on the host.
    for (const token of tokens.splice(0)) for (const pid of runProcesses(token)) process.kill(pid, 'SIGKILL');
  });
  afterAll(async () => {
    await ssh.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  describe('stopping a run whose script exited but left a child holding its output', () => {
    it('a timeout stops it promptly and leaves none of its processes', async () => {
      const run = startStep(pool, endpoint(), 'sleep 30 & echo started', { runTimeoutMs: 1500 });
      const { outcome, ms } = await run.done;
      expect(run.output()).toBe('started\n');
      expect(outcome).toMatchObject({ kind: 'exited', stopped: true, timedOut: true, survivors: 0 });
      expect(ms).toBeLessThan(10_000);
      expect(runProcesses(run.token)).toEqual([]);
    }, 20_000);

    it('Kill stops it promptly and leaves none of its processes', async () => {
      const stop = new AbortController();
      const run = startStep(pool, endpoint(), 'sleep 30 & echo started', { stop: stop.signal });
      await until(() => run.output().includes('started'), 'the script to start');
      // Let the script's exit status arrive first: that is the case under test.
      await sleep(300);
      expect(runProcesses(run.token)).toHaveLength(1);
      const stoppedAt = Date.now();
      stop.abort('kill');
      const { outcome, at } = await run.done;
      expect(outcome).toMatchObject({ kind: 'exited', stopped: true, timedOut: false, survivors: 0 });
      expect(at - stoppedAt).toBeLessThan(5000);
      expect(runProcesses(run.token)).toEqual([]);
    }, 20_000);
  });

  it('a stop that arrives while the exec channel is opening is not lost: the script never runs', async () => {
    const stopper = new AbortController();
    const racing = new StopOnExecPool(stopper);
    try {
      const marker = join(scratch, 'ran');
      // A grace long enough that a lost TERM would show: only KILL would end it, 5 s later.
      const run = startStep(racing, endpoint(), `touch ${marker}\necho ran\nsleep 30\n`, { stop: stopper.signal, killGraceMs: 5000 });
      const { outcome, ms } = await run.done;
      expect(outcome).toEqual({ kind: 'failed', ran: false, message: 'stopped before it started', timedOut: false });
      expect(ms).toBeLessThan(4000);
      // Nothing of the script: at most the shells' own notes that the wrapper was terminated (one
      // from each shell that saw it, so sometimes two).
      expect(run.output()).not.toContain('ran');
      expect(
        run
          .output()
          .replace(/^Terminated\s*$/gm, '')
          .trim(),
      ).toBe('');
      expect(existsSync(marker)).toBe(false);
      expect(runProcesses(run.token)).toEqual([]);
    } finally {
      racing.closeAll();
    }
  }, 20_000);

  describe('the pool', () => {
    it('takes an idle connection out of the pool before ending it, so the next session never gets a closing one', async () => {
      const idle = new SshPool({ ...POOL_OPTIONS, idleMs: 30 });
      try {
        const ep = endpoint();
        expect(await idle.withSession(ep, (client) => execText(client, 'echo one'))).toBe('one\n');
        // Same delay, set just after the idle timer: it fires right after it, before the close comes back.
        await sleep(30);
        expect(await idle.withSession(ep, (client) => execText(client, 'echo two'))).toBe('two\n');
        expect(idle.handshakes).toBe(2);
      } finally {
        idle.closeAll();
      }
    });

    it('opens a connection ahead of a run, which the run then uses, and closes it when nothing uses it', async () => {
      const warming = new SshPool({ ...POOL_OPTIONS, idleMs: 300 });
      try {
        const ep = endpoint();
        warming.warm(ep);
        warming.warm(ep); // already opening: no second handshake
        expect(await warming.withSession(ep, (client) => execText(client, 'echo used'))).toBe('used\n');
        expect(warming.handshakes).toBe(1);
        // Warmed and never used: gone after the idle time, as a released one is.
        warming.closeAll();
        warming.warm(ep);
        const deadline = Date.now() + 5_000;
        while (warming.stats().connections === 1 && Date.now() < deadline) await sleep(20);
        expect(warming.stats()).toMatchObject({ connections: 0, handshakes: 2 });
        // Warmed again while idle: its idle time starts over (1 s here).
        const again = new SshPool({ ...POOL_OPTIONS, idleMs: 1000 });
        try {
          again.warm(ep);
          await again.withSession(ep, (client) => execText(client, 'true')); // ready, then idle
          await sleep(700);
          again.warm(ep);
          await sleep(700); // past the first idle time, within the second
          expect(again.stats()).toMatchObject({ connections: 1, handshakes: 1 });
        } finally {
          again.closeAll();
        }
        // A host that cannot be reached leaves nothing behind, and nothing unhandled.
        warming.warm(endpoint({ port: 1 }));
        await sleep(200);
        expect(warming.stats().connections).toBe(0);
      } finally {
        warming.closeAll();
      }
    });

    it('starts a step on a fresh connection when the pooled one can no longer open channels', async () => {
      const ep = endpoint();
      // Its socket takes no more writes, as when it is closing, and the pool has not heard yet.
      await pool.withSession(ep, async (client) => {
        client.end();
      });
      const run = startStep(pool, ep, 'echo fresh');
      const { outcome } = await run.done;
      expect(outcome).toMatchObject({ kind: 'exited', exitCode: 0 });
      expect(run.output()).toBe('fresh\n');
      expect(pool.handshakes).toBe(2);
    });

    it('hands a freed slot to the first waiter, never to a newcomer, and drops the waiter’s abort listener', async () => {
      const ep = endpoint({ maxSessions: 2 }); // one slot for runs, one kept for control commands
      const order: string[] = [];
      let releaseFirst: () => void = () => {};
      const held = new Promise<void>((resolve) => (releaseFirst = resolve));
      const first = pool.withSession(ep, () => {
        order.push('first');
        return held;
      });
      await until(() => pool.stats().sessionsInUse === 1, 'the first session');
      const waiting = new AbortController();
      const second = pool.withSession(ep, async () => void order.push('second'), { signal: waiting.signal });
      await until(() => pool.stats().waiting === 1, 'the second to queue');
      expect(getEventListeners(waiting.signal, 'abort')).toHaveLength(1);
      releaseFirst();
      // Arrives while the slot is being freed, before the waiter has had a chance to run.
      const newcomer = pool.withSession(ep, async () => void order.push('newcomer'));
      await Promise.all([first, second, newcomer]);
      expect(order).toEqual(['first', 'second', 'newcomer']);
      expect(getEventListeners(waiting.signal, 'abort')).toHaveLength(0);
    });

    it('closes its socket when ssh2 refuses the settings before taking it: no link left open, no uncaught error', async () => {
      // Parses as PEM, but ssh2 cannot read a key from it (it throws in connect(), before it listens to the socket).
      const unreadable = '-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n';
      const uncaught: unknown[] = [];
      const onUncaught = (error: unknown) => uncaught.push(error);
      process.on('uncaughtException', onUncaught);
      try {
        const before = new Set(connectionPids(ssh));
        // A live host: the connection must not stay open until sshd's login grace time runs out.
        await expect(pool.withSession(endpoint({ privateKey: unreadable }), async () => 'ran')).rejects.toThrow(/privateKey/);
        // A closed port: the connect error must reach a listener, or it would end the process.
        await expect(pool.withSession(endpoint({ privateKey: unreadable, port: await freePort() }), async () => 'ran')).rejects.toThrow(/privateKey/);
        await sleep(300);
        expect(connectionPids(ssh).filter((pid) => !before.has(pid))).toEqual([]);
        expect(uncaught).toEqual([]);
      } finally {
        process.off('uncaughtException', onUncaught);
      }
    });

    it('sends the pieces of each SSH packet in one write: the pool connects the socket it hands ssh2', async () => {
      const { Socket } = await import('node:net');
      const cork = Socket.prototype.cork;
      let corks = 0;
      Socket.prototype.cork = function (this: InstanceType<typeof Socket>) {
        corks++;
        return cork.call(this);
      };
      try {
        const step = startStep(pool, endpoint(), 'echo hello');
        const { outcome } = await step.done;
        expect(outcome).toMatchObject({ kind: 'exited', exitCode: 0 });
        expect(step.output()).toBe('hello\n');
      } finally {
        Socket.prototype.cork = cork;
      }
      // The handshake, the channel open, the exec, stdin and its end, each corked once per turn.
      expect(corks).toBeGreaterThan(5);
    });

    it('a waiter that gives up leaves the queue', async () => {
      const ep = endpoint({ maxSessions: 2 });
      let releaseFirst: () => void = () => {};
      const first = pool.withSession(ep, () => new Promise<void>((resolve) => (releaseFirst = resolve)));
      await until(() => pool.stats().sessionsInUse === 1, 'the first session');
      const giveUp = new AbortController();
      const second = pool.withSession(ep, async () => 'ran', { signal: giveUp.signal });
      await until(() => pool.stats().waiting === 1, 'the second to queue');
      giveUp.abort(new Error('gave up'));
      await expect(second).rejects.toThrow('gave up');
      expect(pool.stats().waiting).toBe(0);
      releaseFirst();
      await first;
      expect(pool.stats().sessionsInUse).toBe(0);
    });
  });

  it('a stop whose check on the host fails says it could not verify that the run ended, never that all is well', async () => {
    const proxy = await startTcpProxy({ host: ssh.host, port: ssh.port });
    try {
      const stop = new AbortController();
      // A process that left the run's group and ignores TERM: the survivors check looks for it again for ~2 s.
      const script = 'setsid sh -c \'trap "" TERM; exec sleep 30\' > /dev/null 2>&1 < /dev/null &\necho started\nsleep 30\n';
      const run = startStep(pool, endpoint({ port: proxy.port }), script, { stop: stop.signal, killGraceMs: 10_000 });
      await until(() => run.output().includes('started'), 'the script to start');
      stop.abort('kill');
      // The link dies while the check is looking, and the host cannot be reached again.
      await sleep(500);
      await proxy.close();
      const { outcome } = await run.done;
      expect(outcome.kind).toBe('failed');
      expect(outcome.kind === 'failed' ? outcome.message : '').toMatch(/^stopped, but countersign could not verify that the run's processes ended/);
    } finally {
      await proxy.close();
    }
  }, 20_000);

  describe('a link that drops mid-run', () => {
    it('fails the step with the reason and kills the run’s leftovers over a fresh connection', async () => {
      const run = startStep(pool, endpoint(), 'sleep 30 &\necho started\nwait\n');
      await until(() => run.output().includes('started'), 'the script to start');
      expect(runProcesses(run.token).length).toBeGreaterThan(0);
      const links = connectionPids(ssh);
      expect(links.length).toBeGreaterThan(0);
      for (const pid of links) process.kill(pid, 'SIGKILL');
      const { outcome } = await run.done;
      expect(outcome).toMatchObject({ kind: 'failed', ran: true });
      const message = outcome.kind === 'failed' ? outcome.message : '';
      expect(message).toMatch(new RegExp(`^lost the connection to ${ssh.user}@127\\.0\\.0\\.1:\\d+ mid-run`));
      expect(message).toMatch(/; the run's processes left on the host were killed$/);
      expect(runProcesses(run.token)).toEqual([]);
    }, 20_000);

    it('says it could not verify that the run’s processes ended when the host cannot be reached again, within a bound', async () => {
      const proxy = await startTcpProxy({ host: ssh.host, port: ssh.port });
      try {
        const run = startStep(pool, endpoint({ port: proxy.port, connectTimeoutMs: 2000 }), 'sleep 30 &\necho started\nwait\n');
        await until(() => run.output().includes('started'), 'the script to start');
        const droppedAt = Date.now();
        await proxy.close();
        const { outcome, at } = await run.done;
        expect(outcome).toMatchObject({ kind: 'failed', ran: true });
        expect(outcome.kind === 'failed' ? outcome.message : '').toMatch(
          /^lost the connection to .* mid-run.*; countersign could not verify that the run's processes ended: check .* by hand$/,
        );
        expect(at - droppedAt).toBeLessThan(2000 + 5000);
      } finally {
        await proxy.close();
      }
    }, 20_000);
  });

  it('counts the run timeout from the start of the script, not from the wait for a session slot', async () => {
    const ep = endpoint({ maxSessions: 2 }); // one run at a time
    const first = startStep(pool, ep, 'sleep 2; echo first');
    await until(() => pool.stats().sessionsInUse === 1, 'the first run');
    const second = startStep(pool, ep, 'echo second', { runTimeoutMs: 1000 });
    const [a, b] = await Promise.all([first.done, second.done]);
    expect(a.outcome).toMatchObject({ kind: 'exited', exitCode: 0 });
    expect(b.outcome).toMatchObject({ kind: 'exited', exitCode: 0, timedOut: false });
    expect(second.output()).toBe('second\n');
    // It did wait for the slot, longer than its timeout.
    expect(b.ms).toBeGreaterThanOrEqual(1500);
  }, 20_000);
});
