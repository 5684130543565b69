/**
 * A Run on a host with no open connection (issue 12, cold Run -> remote start): the runner starts
 * the SSH handshake when the Run has passed its checks, so the handshake overlaps the Run's
 * commit and the claim. A runner that connected only once it had claimed would have no
 * connection when the Run returns; nothing runs before the claim, and a Run that is refused
 * opens nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, AUTHOR, Harness } from '../support/harness.js';

describe('connections opened for a coming run', () => {
  let h: Harness;
  beforeAll(async () => {
    // Polling a minute away: only the wakes named below claim.
    h = await Harness.start({ runner: { pollMs: 60_000 } });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  async function approvedTask(script: string): Promise<number> {
    const id = await h.serviceTask(script, { target: 'web-prod', message: 'warm' });
    const approved = await h.app.service.approve(id, ALICE);
    if (!approved.ok) throw new Error(approved.message);
    return id;
  }

  /** The runner holds its lock and no drain is under way: a wake now sends its claim at once. */
  async function runnerIdle(): Promise<void> {
    const deadline = Date.now() + 10_000;
    while (!h.app.liveness.holds || h.app.runner.claiming || h.app.runner.runningCount > 0) {
      if (Date.now() > deadline) throw new Error('the runner never became idle');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  it('starts the handshake before the claim, and the run uses that connection', async () => {
    const id = await approvedTask('echo warmed');
    await runnerIdle();
    h.app.pool.closeAll();
    const handshakes = h.app.pool.stats().handshakes;
    const claims = h.app.runner.claimsSent;
    const run = await h.app.service.run(id, AUTHOR);
    // Read at once, before any I/O: the claim was only just sent (the Run's own commit woke the
    // runner), and until it answers, a runner that connects when it claims has no connection.
    const sent = h.app.runner.claimsSent;
    const pool = h.app.pool.stats();
    expect(run.ok).toBe(true);
    expect(sent).toBe(claims + 1);
    expect(pool).toMatchObject({ connections: 1, sessionsInUse: 0, handshakes: handshakes + 1 });
    await h.waitForStatus(id, 'success', 10_000);
    // The run found the connection open: no second handshake.
    expect(h.app.pool.stats().handshakes).toBe(handshakes + 1);
  });

  it('opens nothing for a Run that is refused', async () => {
    const pending = await h.serviceTask('true', { target: 'web-prod', message: 'not approved' });
    await runnerIdle();
    h.app.pool.closeAll();
    const handshakes = h.app.pool.stats().handshakes;
    // Not approved yet, and then by someone who may not run it.
    expect((await h.app.service.run(pending, AUTHOR)).ok).toBe(false);
    const approved = await approvedTask('true');
    expect((await h.app.service.run(approved, 'UNOBODY')).ok).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(h.app.pool.stats()).toMatchObject({ connections: 0, handshakes });
  });
});
