/**
 * A host that refuses a session ("open failed") while a slot our count says is free is still
 * taken: sshd frees a session's slot a moment after its channel closes, so under load a run can
 * be refused although nothing is wrong. Nothing ran, so the run waits and tries again instead of
 * failing. Forced here by a target that believes in 4 sessions on an sshd that allows 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Harness, LOGIN_USER } from '../support/harness.js';
import { startSshd, type SshServer } from '../support/sshd.js';

describe('a host refusing a session for now', () => {
  let h: Harness;
  let tight: SshServer;
  beforeAll(async () => {
    tight = await startSshd({ maxSessions: 2, loginUser: LOGIN_USER });
    h = await Harness.start({
      extraTargets: () =>
        [
          '  tight:',
          '    maxSessions: 4',
          '    hosts:',
          `      - { host: ${tight.host}, port: ${tight.port}, user: ${tight.user} }`,
          '    ssh:',
          `      privateKeyFile: ${tight.privateKeyPath}`,
          `      knownHosts: "${tight.knownHosts}"`,
        ].join('\n'),
    });
  }, 60_000);
  afterAll(async () => {
    await h.stop();
    await tight.stop();
  });

  it('runs a task the host refused at first once a session frees, instead of failing it', async () => {
    const ids = await Promise.all([0, 1, 2].map((i) => h.createTask(`run tight -m "third one waits ${i}" sleep 0.7; echo done ${i}`)));
    const tasks = await Promise.all(ids.map((id) => h.waitForStatus(id, ['success', 'failure'], 20_000)));
    expect(tasks.map((t) => [t.status, t.result.failureMessage])).toEqual(ids.map(() => ['success', null]));
    // The host did refuse one: the retry is what made it pass.
    expect(tight.log()).toMatch(/open failed|no more sessions/i);
  });
});
