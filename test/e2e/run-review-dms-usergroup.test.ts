/**
 * A run's review DMs to a `dm: true` group backed by a Slack user group: while Slack cannot list
 * the group's members, the listed users get theirs and the DMs are not marked done; once Slack
 * answers, the group's members get theirs too (as tasks and schedules do).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRun } from '../../src/store/runs.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, TASKS_CHANNEL, targetYaml } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const OPS_GROUP = 'S0OPS';
const UG_REVIEW = 'CUGRUNREVIEW';

describe("a run's review DMs to a Slack user group Slack could not list at first", () => {
  let h: Harness;
  const dmChannel = (userId: string) => `D${userId.slice(1)}`;
  const reviewDm = (userId: string, runId: number) => h.fake.messages(dmChannel(userId)).find((m) => blocksText(m).includes(`review of *run ${runId}*`));

  beforeAll(async () => {
    h = await Harness.start({
      extraTargets: (ssh) =>
        targetYaml(ssh, 'ug-run', [
          'review:',
          `  channel: ${UG_REVIEW}`,
          '  groups:',
          `    - { name: ops, users: [${ALICE}], usergroup: ${OPS_GROUP}, approvals: 1, dm: true }`,
        ]),
      extraYaml: () => ['runbooks:', '  ug-deploy:', '    steps:', '      - { id: go, script: { target: ug-run, script: "true" } }'].join('\n'),
    });
    h.fake.setUsergroup(OPS_GROUP, [BOB]);
  });
  afterAll(async () => {
    h.fake.clearFailures();
    await h?.stop();
  });

  it('DMs the listed reviewer at once, keeps the DMs pending while the group is unknown, and DMs its member once Slack answers', async () => {
    // Slack cannot list the group's members (and nothing was known before).
    h.fake.failNext('usergroups.users.list', { error: 'fatal_error' }, 1_000_000);
    const started = await h.app.runbooks.start('ug-deploy', {
      starter: AUTHOR,
      values: {},
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!started.ok || started.kind !== 'run') throw new Error(`not started: ${JSON.stringify(started)}`);
    const id = started.run.id;
    expect(started.run.status).toBe('pending-review');

    // The listed ALICE is DMed; BOB, known only through the user group, is not yet.
    await h.fake.waitFor(() => reviewDm(ALICE, id), 15_000, 'the review DM to Alice');
    // Slack is asked again (and fails again) after her DM: the redraw that sent it is over, and the DMs are still not done.
    const asked = h.fake.callsTo('usergroups.users.list').length;
    await h.fake.waitFor(() => h.fake.callsTo('usergroups.users.list').length > asked || undefined, 15_000, 'Slack asked again for the members');
    expect(reviewDm(BOB, id)).toBeUndefined();
    const row = await h.database.db('runs').where({ id }).first('review_dms_sent');
    expect(row?.review_dms_sent).toBe(false);

    // Slack answers again: BOB gets his DM, once, and the DMs are done.
    h.fake.clearFailures('usergroups.users.list');
    await h.fake.waitFor(() => reviewDm(BOB, id), 20_000, 'the review DM to Bob once Slack lists the group');
    await waitFor(
      async () => ((await h.database.db('runs').where({ id }).first('review_dms_sent'))?.review_dms_sent === true ? true : null),
      10_000,
      'the review DMs done',
    );
    expect(h.fake.messages(dmChannel(ALICE)).filter((m) => blocksText(m).includes(`review of *run ${id}*`))).toHaveLength(1);
    expect(h.fake.messages(dmChannel(BOB)).filter((m) => blocksText(m).includes(`review of *run ${id}*`))).toHaveLength(1);
    expect((await getRun(h.database.db, id))?.status).toBe('pending-review');
  }, 60_000);
});
