/**
 * What an imported runbook may make the bot do (review 11, F3 and F4), through Slack and the API:
 * - only an admin may import an approval step naming a usergroup, `dm: true` or a channel (else
 *   anyone's runbook could mention a group and DM people in a channel it picks); without them the
 *   request goes to the run card's channel; one step DMs at most 25 approvers;
 * - the start form's hash covers the runbook and every runbook it depends on: a dependency
 *   replaced while the form is open is refused at submit; the API's `hash` is that plan hash.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { MAX_STEP_DMS } from '../../src/slack/render/runStepRequest.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { getRun } from '../../src/store/runs.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, MALLORY, TASKS_CHANNEL, ackText, unescapeSlack } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const GENERAL = 'CGENERAL';

describe('imported runbooks: approval steps and dependencies', () => {
  let h: Harness;
  let api: ApiClient;
  const tokens: Record<string, string> = {};
  const answerText = (response: { json?: unknown }) => unescapeSlack(ackText(response));
  const runbookJson = (reference: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      format: 'countersign.runbook/v1',
      reference,
      arguments: [],
      steps: [{ id: 'one', script: { target: 'sandbox', script: 'echo one' } }],
      ...extra,
    });
  const importAs = async (user: string, json: string, replace = false) =>
    answerText(await h.command(`runbook import ${replace ? '--replace ' : ''}\`\`\`${json}\`\`\``, user));
  const openForm = async (reference: string, user = AUTHOR) => {
    const before = h.fake.views.list.length;
    await h.command(`start ${reference}`, user);
    return h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      `the ${reference} form`,
    );
  };
  const dmsOf = (user: string) => h.fake.messages(`D${user.slice(1)}`);

  beforeAll(async () => {
    h = await Harness.start({ extraYaml: () => `admins: { users: [${ALICE}] }`, runner: { pollMs: 200 } });
    h.fake.setChannelMembers(GENERAL, [AUTHOR, ALICE, BOB, MALLORY]);
    h.fake.setUsergroup('SEVERYONE', [ALICE, BOB, AUTHOR]);
    api = await ApiClient.connect(h.app.url);
    for (const [user, name] of [
      [ALICE, 'alice'],
      [MALLORY, 'mallory'],
      [AUTHOR, 'author'],
    ] as const)
      tokens[user] = (await createApiToken(h.database.db, user, name)).token;
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it("a non-admin's imported approval step may not name a usergroup, dm or channel (Slack); without them the request goes to the card's channel", async () => {
    const aimed = runbookJson('ping', {
      steps: [{ id: 'go', approval: { users: [ALICE, BOB], usergroup: 'SEVERYONE', channel: GENERAL, dm: true } }],
    });
    const refused = await importAs(MALLORY, aimed);
    expect(refused).toContain('Only the countersign admins may import an approval step with a usergroup, `dm: true` or a channel');
    expect(refused).toContain('`steps[0].approval.usergroup`, `steps[0].approval.dm`, `steps[0].approval.channel`');
    expect(await h.app.runbooks.find('ping')).toBeNull();
    // One field alone is refused too, in a group as well.
    const inGroup = runbookJson('ping', {
      steps: [
        [
          { id: 'go', approval: { users: [ALICE], channel: GENERAL } },
          { id: 'x', script: { target: 'sandbox', script: 'true' } },
        ],
      ],
    });
    expect(await importAs(MALLORY, inGroup)).toContain('`steps[0][0].approval.channel`');
    // An input step asking a user group would mention it in the card's thread: the same rule.
    const askGroup = runbookJson('ping', { steps: [{ id: 'why', input: { fields: [{ name: 'ticket', kind: 'input' }], from: { usergroup: 'SEVERYONE' } } }] });
    expect(await importAs(MALLORY, askGroup)).toContain('`steps[0].input.from.usergroup`');

    // Named users only: imported; the request goes to the card's channel, nothing to GENERAL, no DMs.
    expect(await importAs(MALLORY, runbookJson('ping', { steps: [{ id: 'go', approval: { users: [ALICE, BOB] } }] }))).toContain('Imported the runbook `ping`');
    const started = await h.app.runbooks.start('ping', {
      starter: MALLORY,
      values: {},
      message: 'urgent',
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!started.ok || started.kind !== 'run') throw new Error(`not started: ${JSON.stringify(started)}`);
    await h.fake.waitFor(
      () => h.fake.messages(TASKS_CHANNEL).find((m) => blocksText(m).includes('Approval needed') && blocksText(m).includes(`run ${started.run.id}*`)),
      10_000,
      "the approval request in the card's channel",
    );
    // The step marks its DMs done (none wanted), then count them: nothing to GENERAL, nobody DMed.
    await waitFor(
      async () => {
        const row = await h.database.db('run_steps').where({ run_id: started.run.id, kind: 'approval' }).first('message_dms_sent');
        return row?.message_dms_sent === true ? true : null;
      },
      20_000,
      'the DMs done',
    );
    expect(h.fake.messages(GENERAL)).toHaveLength(0);
    expect(dmsOf(ALICE).length + dmsOf(BOB).length).toBe(0);

    // An admin may aim it: countersign's admins are trusted with whom the bot pings, as with fixed values.
    expect(await importAs(ALICE, aimed.replace('"ping"', '"ping-admin"'))).toContain('Imported the runbook `ping-admin`');
  });

  it('the API import refuses the same fields with 403 notify_not_allowed; an admin imports them', async () => {
    const body = {
      format: 'countersign.runbook/v1',
      reference: 'api-ping',
      arguments: [],
      steps: [{ id: 'go', approval: { users: [ALICE], dm: true } }],
    };
    const refused = await api.call('POST', '/runbooks', { token: tokens[MALLORY]!, body });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe('notify_not_allowed');
    expect(refused.body.error.message).toContain('`steps[0].approval.dm`');
    // Not by replacing an admin's either: an editor who is no admin must drop them.
    const byAdmin = await api.call('POST', '/runbooks', { token: tokens[ALICE]!, body: { ...body, editors: { users: [MALLORY] } } });
    expect(byAdmin.status).toBe(201);
    const replaced = await api.call('PUT', '/runbooks/api-ping', {
      token: tokens[MALLORY]!,
      body: { ...body, editors: { users: [MALLORY] }, steps: [{ id: 'go', approval: { users: [BOB], usergroup: 'SEVERYONE' } }] },
    });
    expect(replaced.status).toBe(403);
    expect(replaced.body.error.message).toContain('`steps[0].approval.usergroup`');
  });

  it(`one approval step DMs at most ${MAX_STEP_DMS} approvers, and its request says so`, async () => {
    const many = Array.from({ length: 30 }, (_, i) => `U0CAP${String(i).padStart(2, '0')}`);
    const json = runbookJson('many', { steps: [{ id: 'go', approval: { users: many, dm: true } }] });
    expect(await importAs(ALICE, json)).toContain('Imported the runbook `many`');
    const started = await h.app.runbooks.start('many', {
      starter: AUTHOR,
      values: {},
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!started.ok || started.kind !== 'run') throw new Error(`not started: ${JSON.stringify(started)}`);
    const request = await h.fake.waitFor(
      () => h.fake.messages(TASKS_CHANNEL).find((m) => blocksText(m).includes('Approval needed') && blocksText(m).includes(`run ${started.run.id}*`)),
      10_000,
      'the approval request',
    );
    expect(blocksText(request)).toContain(`At most ${MAX_STEP_DMS} approvers get a DM`);
    // Every DM sent (the step marks its DMs done), then count them: the first 25 named, nobody else.
    await waitFor(
      async () => {
        const row = await h.database.db('run_steps').where({ run_id: started.run.id, kind: 'approval' }).first('message_dms_sent');
        return row?.message_dms_sent === true ? true : null;
      },
      20_000,
      'the DMs sent',
    );
    const dmed = many.filter((user) => dmsOf(user).length > 0);
    expect(dmed).toEqual(many.slice(0, MAX_STEP_DMS));
    const [ledger] = await h.database.db('run_dms').where({ run_id: started.run.id }).count({ n: '*' });
    expect(Number(ledger?.n)).toBe(MAX_STEP_DMS);
  });

  it('a form submit after a dependency (dependsOn) changed is refused; without a change it starts', async () => {
    expect(await importAs(MALLORY, runbookJson('dep', { steps: [{ id: 'one', script: { target: 'sandbox', script: 'echo harmless-dep' } }] }))).toContain(
      'Imported',
    );
    expect(await importAs(AUTHOR, runbookJson('main', { dependsOn: ['dep'] }))).toContain('Imported');
    const form = await openForm('main');
    expect(JSON.stringify(form.blocks)).toContain('harmless-dep');
    const shownHash = JSON.parse(form.private_metadata as string).hash as string;
    // The dependency's owner changes it while the starter reads the form.
    expect(await importAs(MALLORY, runbookJson('dep', { steps: [{ id: 'one', script: { target: 'sandbox', script: 'echo EVIL-dep' } }] }), true)).toContain(
      'Replaced',
    );
    const before = await h.count('runs');
    const submitted = await h.driver.submitView({ view: form, user: AUTHOR, values: {} });
    expect(submitted.json).toMatchObject({ response_action: 'errors' });
    expect(JSON.stringify(submitted.json)).toContain('The runbook main or a runbook it depends on changed since this form opened');
    expect(await h.count('runs')).toBe(before);

    // A fresh form shows the new plan and starts it.
    const fresh = await openForm('main');
    expect(JSON.stringify(fresh.blocks)).toContain('EVIL-dep');
    // The form carries and shows the plan hash (over main and dep), not main's own hash, which did not change.
    const planHash = (await h.app.runbooks.planHash('main'))!;
    expect(planHash).not.toBe(shownHash);
    expect(planHash).not.toBe((await h.app.runbooks.find('main'))!.hash);
    expect(JSON.parse(fresh.private_metadata as string)).toMatchObject({ reference: 'main', hash: planHash });
    expect(JSON.stringify(fresh.blocks)).toContain(`plan version (with what runs first) \`${planHash.slice(0, 12)}\``);
    const ok = await h.driver.submitView({ view: fresh, user: AUTHOR, values: {} });
    expect(ok.json).toMatchObject({ response_action: 'update' });
    const id = await waitFor(
      async () => {
        const row = await h.database.db('runs').where({ reference: 'main' }).orderBy('id', 'desc').first('id');
        return row?.id ?? null;
      },
      5000,
      'the run of main',
    );
    expect(JSON.stringify((await getRun(h.database.db, Number(id)))!.plan)).toContain('EVIL-dep');
  });

  it("the API's hash is the plan hash: a runbook's own hash is refused once it has dependencies, the plan hash changes with them", async () => {
    const got = await api.call('GET', '/runbooks/main', { token: tokens[AUTHOR]! });
    expect(got.status).toBe(200);
    const { hash, planHash } = got.body.runbook as { hash: string; planHash: string };
    expect(planHash).toBe(await h.app.runbooks.planHash('main'));
    expect(planHash).not.toBe(hash);
    const stale = await api.call('POST', '/runbooks/main/start', { token: tokens[AUTHOR]!, body: { hash } });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('runbook_changed');
    // Without dependencies the plan hash is the runbook's hash: old clients sending the ETag keep working.
    const dep = await api.call('GET', '/runbooks/dep', { token: tokens[AUTHOR]! });
    expect(dep.body.runbook.planHash).toBe(dep.body.runbook.hash);
    expect((await api.call('POST', '/runbooks/dep/start', { token: tokens[AUTHOR]!, body: { hash: dep.body.runbook.hash } })).status).toBe(201);
    // The list carries it too.
    const listed = await api.call('GET', '/runbooks?search=main', { token: tokens[AUTHOR]! });
    expect(listed.body.runbooks.find((r: { reference: string }) => r.reference === 'main').planHash).toBe(planHash);
    // A dependency replaced: the plan hash read before is refused; the new one starts.
    expect((await api.call('PUT', '/runbooks/dep', { token: tokens[MALLORY]!, body: JSON.parse(runbookJson('dep', { description: 'v3' })) })).status).toBe(200);
    const refused = await api.call('POST', '/runbooks/main/start', { token: tokens[AUTHOR]!, body: { hash: planHash } });
    expect(refused.status).toBe(409);
    const newPlan = (await api.call('GET', '/runbooks/main', { token: tokens[AUTHOR]! })).body.runbook.planHash;
    expect(newPlan).not.toBe(planHash);
    expect((await api.call('POST', '/runbooks/main/start', { token: tokens[AUTHOR]!, body: { hash: newPlan } })).status).toBe(201);
  });
});
