/**
 * App Home's reads are bounded (issue 10, point 8) and show only what the user may see (point
 * 6): "waiting for my review" selects the pending tasks of the targets the user reviews (not
 * the newest 500 pending rows, scanned), a redraw reads script heads instead of whole rows, and
 * a run start redraws only the Homes of users who may see the task. The runs waiting for a user
 * are read without their plans' scripts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, AUTHOR, BOB, Harness, MALLORY, REVIEW_CHANNEL, TASKS_CHANNEL, targetYaml } from '../support/harness.js';
import { insertTaskRows } from '../support/taskRows.js';
import { waitFor } from '../support/waitFor.js';

const homeText = (h: Harness, user: string) => JSON.stringify(h.fake.homeOf(user)?.blocks ?? []);

describe('App Home reads', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await Harness.start({
      // Bob alone reviews `bobs`: its pending tasks are not Alice's to review.
      extraTargets: (ssh) => targetYaml(ssh, 'bobs', ['review:', `  channel: ${REVIEW_CHANNEL}`, `  groups: [{ name: bob, users: [${BOB}], approvals: 1 }]`]),
      runner: { pollMs: 200 },
    });
    h.fake.setChannelMembers(TASKS_CHANNEL, [AUTHOR, ALICE, BOB]);
  });
  afterAll(async () => {
    await h.stop();
  });

  const openHome = (user: string) =>
    h.driver.event({ event: { type: 'app_home_opened', user, channel: `D${user.slice(1)}`, tab: 'home', event_ts: `${Date.now() / 1000}` } });

  it('finds the tasks waiting for my review however many others wait elsewhere, and counts them', async () => {
    const mine = await h.createTask('run web-prod -m "for alice" echo for-alice');
    // Newer than Alice's task: more pending tasks of a target she does not review than any scan of the newest would pass.
    await insertTaskRows(
      h.database.db,
      Array.from({ length: 600 }, (_, i) => ({ status: 'pending-review', author: AUTHOR, target: 'bobs', script: `echo bob-${i}` })),
    );

    await openHome(ALICE);
    await h.fake.waitFor(() => homeText(h, ALICE).includes(`*#${mine}*`) || undefined, 5000, 'Alice’s Home showing her review');
    expect(homeText(h, ALICE)).toContain('Waiting for your review (1)');
    const listed = (await h.command('list pending', ALICE)).json as { blocks?: unknown[] };
    expect(JSON.stringify(listed.blocks)).toContain(`*#${mine}*`);

    await openHome(BOB);
    await h.fake.waitFor(() => homeText(h, BOB).includes('Waiting for your review (601)') || undefined, 5000, 'Bob’s Home counting 601');
    // The oldest first, ten of them, and the rest counted.
    expect(homeText(h, BOB)).toContain(`*#${mine}*`);
    expect(homeText(h, BOB)).toContain('591 more');
    await h.database.db('tasks').where({ target: 'bobs' }).update({ status: 'cancelled' });
  });

  it('redraws on a run start only the Homes of those who may see the task, reading script heads, not whole scripts', async () => {
    // Pending reviews with the largest scripts allowed: a redraw that read them whole would read megabytes.
    const big = (n: number) => `echo big-${n}\n# ${'x'.repeat(63 * 1024)}`;
    const pending: number[] = [];
    for (let n = 0; n < 4; n++) {
      const created = await h.app.service.create({
        author: AUTHOR,
        target: 'web-prod',
        message: `big ${n}`,
        type: null,
        script: big(n),
        source: 'api',
        sourceKey: null,
        channelId: null,
      });
      if (!created.ok) throw new Error(created.message);
      pending.push(created.task.id);
    }
    for (const id of pending) await h.reviewRequest(id, 'big-');
    for (const user of [ALICE, BOB, AUTHOR, MALLORY]) await openHome(user);
    await h.fake.waitFor(() => pending.every((id) => homeText(h, ALICE).includes(`*#${id}*`)) || undefined, 10_000, 'Alice’s Home with the big reviews');
    expect(homeText(h, ALICE)).toContain('The script or message is longer than Home shows');
    await new Promise((resolve) => setTimeout(resolve, 2500)); // let earlier redraws settle

    let bytes = 0;
    const count = (response: unknown, query: { sql?: string }) => {
      if (query.sql?.includes('"tasks"')) bytes += JSON.stringify(response ?? null).length;
    };
    h.database.db.on('query-response', count);
    const publishesBefore = (user: string) => h.fake.callsTo('views.publish').filter((call) => call.args.user_id === user).length;
    const before = Object.fromEntries([ALICE, BOB, AUTHOR, MALLORY].map((user) => [user, publishesBefore(user)]));
    let run = 0;
    try {
      run = await h.createTask('run sandbox -m "a run" echo ran');
      await h.waitForStatus(run, 'success');
      await h.fake.waitFor(
        () => homeText(h, AUTHOR).includes(`*#${run}* :large_green_circle: success`) || undefined,
        10_000,
        `the author's Home showing #${run} done`,
      );
      for (const user of [ALICE, BOB]) await h.fake.waitFor(() => publishesBefore(user) > before[user]! || undefined, 10_000, `${user}'s Home redrawn`);
      await new Promise((resolve) => setTimeout(resolve, 2500)); // the last coalesced redraws
    } finally {
      h.database.db.off('query-response', count);
    }
    console.log(`[home] a run start and end with 4 Home users and 4 pending 63 KiB scripts: ${bytes} bytes read from tasks`);
    // Whole rows would be 4 x 63 KiB per reviewer's redraw, at least twice each for Alice and Bob (> 1 MB).
    expect(bytes).toBeLessThan(200_000);
    // Mallory may not see the run (no review, not in the channel): her Home is not redrawn, nor shows it.
    expect(publishesBefore(MALLORY)).toBe(before[MALLORY]);
    expect(homeText(h, MALLORY)).not.toContain(`*#${run}*`);
    expect(publishesBefore(ALICE)).toBeGreaterThan(before[ALICE]!);
  });

  it('redraws the runs waiting for me reading their approval and input steps, not their scripts', async () => {
    // Runs whose plans hold a 60 KiB script: two waiting for web-prod's review (Alice reviews it),
    // two paused on an approval step asking Alice after their script ran.
    const script = `echo big-run\n# ${'x'.repeat(60 * 1024)}`;
    const runbook = (reference: string, target: string) => ({
      format: 'countersign.runbook/v1',
      reference,
      arguments: [],
      steps: [
        { id: 'big', script: { target, script } },
        { id: 'go', approval: { users: [ALICE] } },
      ],
    });
    for (const [reference, target] of [
      ['big-reviewed', 'web-prod'],
      ['big-approved', 'sandbox'],
    ] as const) {
      const imported = await h.app.runbooks.import(runbook(reference, target), AUTHOR, false);
      if (!imported.ok) throw new Error(imported.message);
    }
    const started: Record<'big-reviewed' | 'big-approved', number[]> = { 'big-reviewed': [], 'big-approved': [] };
    for (const reference of ['big-reviewed', 'big-approved'] as const) {
      for (let n = 0; n < 2; n++) {
        const run = await h.app.runbooks.start(reference, {
          starter: AUTHOR,
          values: {},
          trigger: { kind: 'manual' },
          source: 'slack',
          sourceKey: `${reference}-${n}`,
          channelId: null,
        });
        if (!run.ok || run.kind !== 'run') throw new Error(run.ok ? 'not a run' : run.message);
        started[reference].push(run.run.id);
      }
    }
    await waitFor(
      async () => {
        const phases = (await h.database.db('run_steps').whereIn('run_id', started['big-approved']).where('phase', 'paused').pluck('phase')) as string[];
        return phases.length === 2 ? true : null;
      },
      20_000,
      'both big-approved runs paused on their approval',
    );
    const shown = (text: string) => [...started['big-reviewed'], ...started['big-approved']].every((id) => text.includes(`run ${id}*`));
    await openHome(ALICE);
    await h.fake.waitFor(() => shown(homeText(h, ALICE)) || undefined, 10_000, 'Alice’s Home with the big runs');
    await new Promise((resolve) => setTimeout(resolve, 2500)); // let earlier redraws settle

    let bytes = 0;
    const count = (response: unknown, query: { sql?: string }) => {
      if (query.sql?.includes('"runs"')) bytes += JSON.stringify(response ?? null).length;
    };
    const publishes = () => h.fake.callsTo('views.publish').filter((call) => call.args.user_id === ALICE).length;
    h.database.db.on('query-response', count);
    try {
      const before = publishes();
      await openHome(ALICE);
      await h.fake.waitFor(() => publishes() > before || undefined, 10_000, 'Alice’s Home redrawn');
    } finally {
      h.database.db.off('query-response', count);
    }
    expect(shown(homeText(h, ALICE))).toBe(true);
    expect(homeText(h, ALICE)).toContain('waits for your review');
    expect(homeText(h, ALICE)).toContain('waits for your approval');
    console.log(`[home] a redraw with 4 runs waiting whose plans hold 60 KiB scripts: ${bytes} bytes read from runs`);
    // Whole rows would be 4 x 60 KiB for the one redraw.
    expect(bytes).toBeLessThan(60_000);
  }, 60_000);
});
