/**
 * One claim per task made ready in the claiming process (issue 12). Its ready NOTIFY and the
 * process's own word for it both wake the runner, usually while the claim that takes it is in
 * flight; a second claim then found nothing, and cost a round trip and a commit on the path of
 * every Run. Polling is set to a minute, so only those wakes start claims here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTHOR, Harness } from '../support/harness.js';

describe('claims per task', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start({ runner: { pollMs: 60_000 } });
    await new Promise((resolve) => setTimeout(resolve, 300));
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('claims each task made ready here once, though two wakes name it', async () => {
    const before = h.app.runner.claimsSent;
    const rounds = 10;
    for (let i = 0; i < rounds; i++) {
      const created = await h.app.service.create({
        author: AUTHOR,
        target: 'sandbox',
        message: null,
        type: null,
        script: 'true',
        source: 'api',
        sourceKey: null,
        channelId: null,
      });
      if (!created.ok) throw new Error(created.message);
      await h.waitForStatus(created.task.id, 'success', 10_000);
    }
    const claims = h.app.runner.claimsSent - before;
    // Two per task before; a wake that lands after its claim answered still costs one more.
    expect(claims).toBeGreaterThanOrEqual(rounds);
    expect(claims).toBeLessThanOrEqual(rounds + 3);
  });
});
