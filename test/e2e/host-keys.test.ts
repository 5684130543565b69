/** Host keys are pinned: a changed or unknown key is a refusal, and nothing runs. */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blocksText, Harness } from '../support/harness.js';

describe('pinned host keys', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await Harness.start();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('fails a task whose host presents a key other than the pinned one, running nothing', async () => {
    const marker = `/tmp/countersign-impostor-${Date.now()}`;
    const id = await h.createTask(`run impostor touch ${marker}`);
    const task = await h.waitForStatus(id, ['success', 'failure']);
    expect(task.status).toBe('failure');
    expect(task.result.failureMessage).toMatch(
      /host key of .*127\.0\.0\.1.* \(SHA256:.+\) does not match the key pinned in the target's ssh\.knownHosts, so nothing was run/,
    );
    expect(task.result.failureMessage).toContain(h.ssh.hostKeyFingerprint);
    expect(existsSync(marker)).toBe(false);
    // No session ever opened: sshd logged no accepted key.
    expect(h.ssh.log()).not.toMatch(/Accepted publickey/);
    const card = await h.card(id, 'failure');
    expect(blocksText(card)).toContain('does not match the key pinned');
  });

  it('fails a task whose host has no pinned key at all, without connecting', async () => {
    const marker = `/tmp/countersign-unpinned-${Date.now()}`;
    const id = await h.createTask(`run unpinned touch ${marker}`);
    const task = await h.waitForStatus(id, ['success', 'failure']);
    expect(task.status).toBe('failure');
    expect(task.result.failureMessage).toMatch(/no pinned host key for .*127\.0\.0\.1.* in the target's ssh\.knownHosts, so nothing was run/);
    expect(existsSync(marker)).toBe(false);
  });

  it('runs when the key matches, in either known_hosts form', async () => {
    const id = await h.createTask('run sandbox true');
    expect((await h.waitForStatus(id, ['success', 'failure'])).status).toBe('success');
  });
});
