/**
 * A schedule's approval is checked again at each firing (issue 10 point 7), end to end: real
 * app processes (replicas started in this process with their own config or user group cache),
 * a real Postgres, a real sshd and the fake Slack.
 *
 * - Review added to a target after its schedule became active, and a group's approvals raised,
 *   between two app starts: the next firing is skipped, the schedule goes back to review with the
 *   reason in the audit trail and on a new review request, and fires again once approved anew.
 * - An approver removed from the Slack user group: the same.
 * - Slack unable to name a user group's members: the firing is skipped, nothing else changes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { loadConfigFile } from '../../src/config/load.js';
import { SCHEDULE_ACTION } from '../../src/slack/render/schedule.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, SIGNING_SECRET, sleep } from '../support/harness.js';
import { SlackDriver } from '../support/slackDriver.js';
import { waitFor } from '../support/waitFor.js';

const CAROL = 'UCAROL';
const OPS_GROUP = 'S0OPS';
const RECHECK_REVIEW = 'CRECHECK';

describe('approvals re-checked at each firing', () => {
  let h: Harness;
  /** The config as changed for the second start: review added to `late-review`, two approvals on `raised`. */
  let changedConfigPath: string;
  const replicas: RunningApp[] = [];

  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) => {
        const host = `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`;
        const sshBlock = `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`;
        return [
          '  late-review:',
          '    hosts:',
          host,
          sshBlock,
          '    # review: added later',
          '  raised:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${RECHECK_REVIEW}`,
          `      groups: [{ name: sre, users: [${ALICE}, ${BOB}, ${CAROL}], approvals: 1 }]`,
          '  ug-prod:',
          '    hosts:',
          host,
          sshBlock,
          '    review:',
          `      channel: ${RECHECK_REVIEW}`,
          `      groups: [{ name: ops, usergroup: ${OPS_GROUP}, approvals: 1 }]`,
        ].join('\n');
      },
    });
    h.fake.setUsergroup(OPS_GROUP, [ALICE, BOB]);
    changedConfigPath = h.configPath.replace(/\.yml$/, '.changed.yml');
    writeFileSync(
      changedConfigPath,
      readFileSync(h.configPath, 'utf8')
        .replace(
          '    # review: added later',
          `    review:\n      channel: ${RECHECK_REVIEW}\n      groups: [{ name: sre, users: [${ALICE}, ${BOB}], approvals: 1 }]`,
        )
        .replace(`users: [${ALICE}, ${BOB}, ${CAROL}], approvals: 1 }]`, `users: [${ALICE}, ${BOB}, ${CAROL}], approvals: 2 }]`),
    );
    // Only the replicas below fire, each as one app start.
    await h.app.scheduler.stop();
  });
  afterAll(async () => {
    for (const replica of replicas) await replica.stop(1000).catch(() => undefined);
    await h?.stop();
  });

  const db = () => h.database.db;
  const row = (id: number) => db()('schedules').where({ id }).first();
  const firingsOf = (id: number): Promise<Array<{ fire_at: Date; outcome: string; task_id: string | null }>> =>
    db()('schedule_firings').where({ schedule_id: id }).orderBy('fire_at');
  const eventsOf = (id: number, type: string) => db()('events').where({ type }).whereRaw("(data->>'schedule')::int = ?", [id]).orderBy('id');
  const requestsOf = (id: number) => h.fake.messages(RECHECK_REVIEW).filter((m) => !m.thread_ts && blocksText(m).includes(`*S${id}*`));
  const newestRequest = (id: number, contains: string | RegExp): Promise<FakeMessage> =>
    h.fake.waitFor(
      () => {
        const all = requestsOf(id);
        const m = all[all.length - 1];
        if (!m) return undefined;
        const text = blocksText(m);
        return (typeof contains === 'string' ? text.includes(contains) : contains.test(text)) ? structuredClone(m) : undefined;
      },
      10_000,
      `review request of S${id} showing ${String(contains)}`,
    );
  const startReplica = async (extra: Parameters<Harness['startReplica']>[0] = {}) => {
    const replica = await h.startReplica(extra);
    replicas.push(replica);
    return replica;
  };
  const stopReplica = async (replica: RunningApp) => {
    await replica.stop(1000);
    replicas.splice(replicas.indexOf(replica), 1);
  };
  const everySecond = async (target: string, script: string) => {
    const created = await h.app.schedules.add({
      target,
      cron: '*/1 * * * * *',
      tz: 'UTC',
      channel: null,
      message: `re-check ${target}`,
      type: null,
      notify: 'failure',
      overlap: 'allow',
      catchUp: 'run',
      script,
      author: AUTHOR,
      originChannel: null,
      sourceKey: null,
    });
    if (!created.ok) throw new Error(created.message);
    return created.schedule.id;
  };
  const firedOnce = (id: number) => waitFor(async () => (await firingsOf(id)).some((f) => f.outcome === 'fired') || null, 15_000, `a firing of S${id}`);

  it('skips the firing and asks for a new review when the config changed between app starts (review added, approvals raised)', async () => {
    const before = await startReplica();
    const late = await everySecond('late-review', 'echo late');
    const raised = await everySecond('raised', 'echo raised');
    expect((await row(late)).status).toBe('active');
    await h.click(await newestRequest(raised, /\*S\d+\*/), SCHEDULE_ACTION.approve, ALICE);
    await waitFor(async () => (await row(raised)).status === 'active', 5000, 'raised approved');
    await Promise.all([firedOnce(late), firedOnce(raised)]);
    await stopReplica(before);

    // The next start reads the changed config.
    const after = await startReplica({ config: loadConfigFile(changedConfigPath) });
    await waitFor(
      async () => (await row(late)).status === 'pending-review' && (await row(raised)).status === 'pending-review',
      10_000,
      'both sent back to review',
    );
    for (const id of [late, raised]) {
      const firings = await firingsOf(id);
      const skipped = firings.filter((f) => f.outcome === 'skipped-unapproved');
      expect(skipped).toHaveLength(1);
      expect(skipped[0]!.task_id).toBeNull();
      // Nothing fired after the skipped one.
      expect(firings.filter((f) => f.fire_at > skipped[0]!.fire_at)).toHaveLength(0);
    }
    const [lateSkip] = await eventsOf(late, 'schedule.firing.skipped-unapproved');
    expect(lateSkip.data.reason).toMatch(/it was never approved by \*sre\*, whose review its target now requires/);
    const [raisedBack] = await eventsOf(raised, 'schedule.pending-review');
    expect(raisedBack).toMatchObject({ actor: null, data: { from: 'active', reason: 'approval-no-longer-holds' } });
    expect(raisedBack.data.detail).toMatch(new RegExp(`\\*sre\\* needs 2 approvals from its current members and has 1 \\(<@${ALICE}>\\)`));

    // New requests say why; nothing fires meanwhile.
    const lateRequest = await newestRequest(late, 'Reviewed again');
    expect(blocksText(lateRequest)).toContain('never approved by *sre*');
    const raisedRequest = await newestRequest(raised, 'needs 2 approvals');
    expect(requestsOf(raised)).toHaveLength(2);
    const counts = await Promise.all([late, raised].map(async (id) => (await firingsOf(id)).length));
    await sleep(1500);
    expect(await Promise.all([late, raised].map(async (id) => (await firingsOf(id)).length))).toEqual(counts);

    // Approved under the new rules (clicks reach the process that runs them), they fire again.
    const driver = new SlackDriver({ appUrl: after.url, signingSecret: SIGNING_SECRET, fake: h.fake });
    await driver.clickButton({ message: raisedRequest, actionId: SCHEDULE_ACTION.approve, user: BOB });
    await driver.clickButton({ message: lateRequest, actionId: SCHEDULE_ACTION.approve, user: ALICE });
    await waitFor(async () => (await row(late)).status === 'active' && (await row(raised)).status === 'active', 5000, 'approved again');
    for (const [index, id] of [late, raised].entries()) {
      await waitFor(async () => (await firingsOf(id)).slice(counts[index]).some((f) => f.outcome === 'fired') || null, 10_000, `S${id} fires again`);
    }
    const fired = (await firingsOf(raised)).filter((f) => f.outcome === 'fired').at(-1)!;
    const ready = await db()('events').where({ task_id: fired.task_id, type: 'task.ready' }).first();
    expect(ready.data.approvedBy).toEqual([ALICE, BOB]);
    await h.app.schedules.remove(late, AUTHOR);
    await h.app.schedules.remove(raised, AUTHOR);
    await stopReplica(after);
  }, 90_000);

  it('skips the firing and asks for a new review when an approver leaves the Slack user group', async () => {
    const replica = await startReplica({ usergroupCacheMs: 200 });
    const id = await everySecond('ug-prod', 'echo ug');
    await h.click(await newestRequest(id, /\*S\d+\*/), SCHEDULE_ACTION.approve, ALICE);
    await firedOnce(id);
    h.fake.setUsergroup(OPS_GROUP, [BOB]);
    await waitFor(async () => (await row(id)).status === 'pending-review', 10_000, 'sent back to review');
    const [skip] = await eventsOf(id, 'schedule.firing.skipped-unapproved');
    expect(skip.data.reason).toMatch(
      new RegExp(`\\*ops\\* needs 1 approval from its current members and has 0; <@${ALICE}> is no longer in its review groups`),
    );
    const fresh = await newestRequest(id, 'is no longer in its review groups');
    expect(requestsOf(id)).toHaveLength(2);
    // BOB, still a member, approves; the replica (which knows ALICE left) fires it again.
    const atApproval = (await firingsOf(id)).length;
    await new SlackDriver({ appUrl: replica.url, signingSecret: SIGNING_SECRET, fake: h.fake }).clickButton({
      message: fresh,
      actionId: SCHEDULE_ACTION.approve,
      user: BOB,
    });
    await waitFor(async () => (await firingsOf(id)).slice(atApproval).some((f) => f.outcome === 'fired') || null, 10_000, 'fires again');
    await h.app.schedules.remove(id, AUTHOR);
    await stopReplica(replica);
    h.fake.setUsergroup(OPS_GROUP, [ALICE, BOB]);
  }, 60_000);

  it('skips the firing without sending it back when Slack cannot name the user group members', async () => {
    const id = await everySecond('ug-prod', 'echo unknown');
    await h.click(await newestRequest(id, /\*S\d+\*/), SCHEDULE_ACTION.approve, BOB);
    await waitFor(async () => (await row(id)).status === 'active', 5000, 'active');
    // A process that never learned the members, while Slack fails.
    h.fake.failNext('usergroups.users.list', { status: 500 }, 1000);
    const replica = await startReplica({ usergroupCacheMs: 200 });
    try {
      await waitFor(async () => (await firingsOf(id)).filter((f) => f.outcome === 'skipped-unverified').length >= 2 || null, 10_000, 'unverified firings');
      expect((await row(id)).status).toBe('active');
      expect((await firingsOf(id)).filter((f) => f.outcome === 'fired')).toHaveLength(0);
      expect(requestsOf(id)).toHaveLength(1);
      const [skip] = await eventsOf(id, 'schedule.firing.skipped-unverified');
      expect(skip.data.reason).toMatch(/Slack could not name a user group's members just now/);
      h.fake.clearFailures('usergroups.users.list');
      await waitFor(async () => (await firingsOf(id)).some((f) => f.outcome === 'fired') || null, 10_000, 'fires once Slack answers');
    } finally {
      h.fake.clearFailures('usergroups.users.list');
      await h.app.schedules.remove(id, AUTHOR);
      await stopReplica(replica);
    }
  }, 60_000);
});
