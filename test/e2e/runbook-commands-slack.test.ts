/**
 * Starting and managing runbooks from Slack (issue 11's surfaces), through signed requests
 * against the fake Slack, a real Postgres and a real sshd: `/task start <reference>` opens a
 * form showing the steps and the version hash, refuses bad values on their field and a submit
 * after the runbook changed, and starts a run with a manual trigger in the channel it was asked
 * in; `/task runbook list|show|export|import|remove` with the owner/editor/admin rules; `/task
 * recipe` as an alias; App Home's runbooks to start (Start opens the form) and runs waiting for
 * the user (review, approval step, input step), within 100 blocks however many.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getRun, stepsOfRun } from '../../src/store/runs.js';
import { RUN_ACTION, RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { RECIPE_ALIAS_NOTE } from '../../src/slack/recipeForm.js';
import { validateView } from '../support/slackLimits.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, MALLORY, REVIEW_CHANNEL, TASKS_CHANNEL, ackText, targetYaml, unescapeSlack } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const FIXED = 'fixed-secret-zz';

const yaml = () =>
  [
    `admins: { users: [${ALICE}] }`,
    'recipes:',
    '  hello-recipe:',
    '    target: sandbox',
    '    script: echo hello from the recipe',
    'runbooks:',
    '  ship:',
    '    name: Ship the <b>thing</b>',
    '    description: Ships it & checks <!channel>',
    '    tags: [web]',
    '    arguments:',
    `      - { name: token, kind: fixed, value: ${FIXED} }`,
    '      - { name: region, kind: input, pattern: "[a-z]+", required: true, hint: "a region" }',
    '    steps:',
    '      - { id: hello, script: { target: sandbox, script: "echo \\"ship $ARG_REGION\\"" } }',
    `      - { id: go, approval: { users: [${BOB}] } }`,
    '  reviewed:',
    '    tags: [db]',
    '    steps:',
    '      - { id: touch, script: { target: web-prod, script: "true" } }',
    '  ask:',
    '    steps:',
    `      - { id: why, input: { fields: [{ name: ticket, kind: input }], from: { users: [${BOB}] } } }`,
    '  twice-reviewed:',
    '    steps:',
    '      - { id: touch, script: { target: twice, script: "true" } }',
    '  nightly:',
    '    triggeredBy: [schedule]',
    '    steps:',
    '      - { id: x, script: { target: sandbox, script: "true" } }',
  ].join('\n');

describe('runbooks from Slack', () => {
  let h: Harness;
  const answerText = (response: { json?: unknown }) => unescapeSlack(ackText(response));
  const openForm = async (reference: string, user = AUTHOR) => {
    const before = h.fake.views.list.length;
    const response = await h.command(`start ${reference}`, user);
    expect(response.status).toBe(200);
    expect(response.ms).toBeLessThan(3000);
    return h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      `the ${reference} form filled in`,
    );
  };
  const openHome = (user: string) =>
    h.driver.event({ event: { type: 'app_home_opened', user, channel: `D${user.slice(1)}`, tab: 'home', event_ts: `${Date.now() / 1000}` } });
  const homeText = (user: string) => JSON.stringify(h.fake.homeOf(user)?.blocks ?? []);
  const home = (user: string, what: string, check: (text: string) => boolean) =>
    h.fake.waitFor(() => (check(homeText(user)) ? structuredClone(h.fake.homeOf(user)!) : undefined), 10_000, `${user}'s Home ${what}`);
  const runbookJson = (reference: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      format: 'countersign.runbook/v1',
      reference,
      arguments: [],
      steps: [{ id: 'one', script: { target: 'sandbox', script: 'echo one' } }],
      ...extra,
    });

  beforeAll(async () => {
    h = await Harness.start({
      extraYaml: yaml,
      runner: { pollMs: 200 },
      // Two approvals needed: one reviewer's approval leaves the run waiting for the other only.
      extraTargets: (ssh) =>
        targetYaml(ssh, 'twice', ['review:', `  channel: ${REVIEW_CHANNEL}`, `  groups: [{ name: both, users: [${ALICE}, ${BOB}], approvals: 2 }]`]),
    });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('/task start opens a form with every step, its target, script head and the version hash, never the fixed value', async () => {
    const form = await openForm('ship');
    expect(validateView(form)).toBeNull();
    const json = JSON.stringify(form.blocks);
    const hash = (await h.app.runbooks.find('ship'))!.hash;
    expect(json).toContain(`runbook version \`${hash.slice(0, 12)}\``);
    expect(json).toContain('`hello` · script on `sandbox`');
    expect(json).toContain('echo \\"ship $ARG_REGION\\"');
    expect(json).toContain(`\`go\` · approval by <@${BOB}> (1 needed)`);
    expect(json).toContain('Ship the &lt;b&gt;thing&lt;/b&gt;');
    expect(json).toContain('Ships it &amp; checks &lt;!channel&gt;');
    expect(json).toContain('"block_id":"arg:region"');
    expect(json).not.toContain('arg:token');
    expect(json).not.toContain(FIXED);
    expect(json).toContain('1 fixed argument is set by the runbook');
    expect(JSON.parse(form.private_metadata as string)).toEqual({ reference: 'ship', channel: TASKS_CHANNEL, hash });
  });

  it('refuses bad values on their field; a good submit starts one run (manual, in the channel asked from) that runs on sshd', async () => {
    await openHome(BOB);
    const form = await openForm('ship');
    const runs = await h.count('runs');
    const bad = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'EU!' } } });
    expect(bad.json).toMatchObject({ response_action: 'errors', errors: { 'arg:region': expect.stringContaining('expected a value matching /[a-z]+/') } });
    const missing = await h.driver.submitView({ view: form, user: AUTHOR, values: {} });
    expect(missing.json).toMatchObject({ response_action: 'errors', errors: { 'arg:region': expect.any(String) } });
    expect(await h.count('runs')).toBe(runs);

    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'eu' } } });
    expect(good.json).toMatchObject({ response_action: 'update', view: { title: { text: 'Run started' } } });
    const runId = Number(/run (\d+)/.exec(JSON.stringify(good.json))?.[1]);
    // A double submit of one form starts one run.
    await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'eu' } } });
    expect(await h.count('runs')).toBe(runs + 1);
    const run = await getRun(h.database.db, runId);
    expect(run).toMatchObject({
      reference: 'ship',
      creator: AUTHOR,
      trigger: { kind: 'manual' },
      channelId: TASKS_CHANNEL,
      runbookHash: (await h.app.runbooks.find('ship'))!.hash,
    });
    const paused = await waitFor(
      async () => {
        const steps = await stepsOfRun(h.database.db, runId);
        return steps.find((s) => s.stepId === 'ship.go')?.phase === 'paused' ? steps : null;
      },
      20_000,
      'the approval step paused',
    );
    expect(paused.find((s) => s.stepId === 'ship.hello')?.phase).toBe('succeeded');

    // Bob is the step's approver: his Home (opened earlier) is redrawn with the run and the step's buttons.
    const bobs = await home(BOB, 'showing the approval', (text) => text.includes(`run ${runId}`));
    expect(validateView(bobs)).toBeNull();
    expect(homeText(BOB)).toContain('waits for your approval');
    expect(homeText(BOB)).toContain(`"action_id":"${RUN_ACTION.stepApprove}"`);
    expect(homeText(BOB)).toContain(`"value":"${runId}:ship.go"`);
    // Nobody approves their own run: its creator sees it among their runs, not as waiting; Mallory is not asked.
    await openHome(AUTHOR);
    await home(AUTHOR, 'listing the run as theirs', (text) => text.includes('Your recent runs') && text.includes(`run ${runId}*`));
    expect(homeText(AUTHOR)).not.toContain('Runs waiting for you');
    await openHome(MALLORY);
    await home(MALLORY, 'drawn', (text) => text.includes('Runbooks you can start'));
    expect(homeText(MALLORY)).not.toContain(`run ${runId}`);
  }, 40_000);

  it('refuses a submit after the runbook changed, and the new form shows the new version', async () => {
    expect(answerText(await h.command(`runbook import \`\`\`${runbookJson('mine')}\`\`\``))).toContain('Imported the runbook `mine`');
    const form = await openForm('mine', BOB);
    expect(JSON.stringify(form.blocks)).toContain('echo one');
    expect(
      answerText(
        await h.command(
          `runbook import --replace \`\`\`${runbookJson('mine', { steps: [{ id: 'one', script: { target: 'sandbox', script: 'echo two; rm -rf /tmp/x' } }] })}\`\`\``,
        ),
      ),
    ).toContain('Replaced the runbook `mine`');
    const runs = await h.count('runs');
    const stale = await h.driver.submitView({ view: form, user: BOB });
    expect(stale.json).toMatchObject({
      response_action: 'errors',
      errors: { message: expect.stringMatching(/changed since this form opened.*close the form and start it again/) },
    });
    expect(await h.count('runs')).toBe(runs);
    const fresh = await openForm('mine', BOB);
    expect(JSON.stringify(fresh.blocks)).toContain('rm -rf /tmp/x');
    expect(JSON.stringify(fresh.blocks)).toContain((await h.app.runbooks.find('mine'))!.hash.slice(0, 12));
  });

  it('refuses a start by hand of a runbook not started by hand, on the form', async () => {
    const form = await openForm('nightly');
    const refused = await h.driver.submitView({ view: form, user: AUTHOR });
    expect(refused.json).toMatchObject({ response_action: 'errors', errors: { message: expect.stringContaining('cannot be started by hand') } });
  });

  it('lists, shows and exports runbooks ephemerally, without fixed values', async () => {
    const list = await h.command('runbook list');
    expect(list.json.response_type).toBe('ephemeral');
    for (const ref of ['ship', 'reviewed', 'ask', 'nightly', 'hello-recipe']) expect(answerText(list)).toContain(`\`${ref}\` @`);
    expect(answerText(list)).toContain('_(recipe)_');
    const tagged = answerText(await h.command('runbook list --tag web'));
    expect(tagged).toContain('`ship` @');
    expect(tagged).not.toContain('`reviewed` @');
    expect(answerText(await h.command('runbook list --tag nope'))).toContain('No runbooks tagged `nope`');

    const show = await h.command('runbook show ship');
    expect(show.json.response_type).toBe('ephemeral');
    expect(answerText(show)).toContain('token (fixed)');
    expect(answerText(show)).toContain('`hello` · script on `sandbox`');
    expect(JSON.stringify(show.json)).not.toContain(FIXED);
    expect(answerText(await h.command('runbook show nope'))).toContain('There is no runbook `nope`');

    const exported = await h.command('runbook export ship');
    expect(exported.json.response_type).toBe('ephemeral');
    const text = answerText(exported);
    expect(text).not.toContain(FIXED);
    expect(text).toContain('Fixed values are left out (`token`)');
    const json = JSON.parse(/```([\s\S]*)```/.exec(text)?.[1] ?? '{}');
    expect(json).toMatchObject({ format: 'countersign.runbook/v1', reference: 'ship', arguments: [{ name: 'token', kind: 'fixed' }, { name: 'region' }] });
    expect(json.arguments[0].value).toBeUndefined();
  });

  it('exports a long runbook as a file in the user’s own DM, not in the channel', async () => {
    const long = runbookJson('long-one', {
      steps: [{ id: 'one', script: { target: 'sandbox', script: `echo start\n${'# padding line for a long script\n'.repeat(150)}echo end` } }],
    });
    expect(answerText(await h.command(`runbook import \`\`\`${long}\`\`\``, BOB))).toContain('Imported the runbook `long-one`');
    const answer = await h.command('runbook export long-one', MALLORY);
    expect(answerText(answer)).toContain('sent it to you as a file in our direct messages');
    // A fence in a script would end the code block early: that one goes as a file too.
    const fenced = runbookJson('fenced', { steps: [{ id: 'one', script: { target: 'sandbox', script: 'cat <<EOF\n```\nEOF' } }] });
    expect(answerText(await h.command(`runbook import \`\`\`${fenced}\`\`\``, BOB))).toContain('Imported the runbook `fenced`');
    expect(answerText(await h.command('runbook export fenced', BOB))).toContain('sent it to you as a file');
    await h.fake.waitFor(
      () => h.fake.files.find((f) => f.filename === 'fenced.runbook.json' && f.channel_id === `D${BOB.slice(1)}`),
      5000,
      'the fenced export',
    );
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.filename === 'long-one.runbook.json'), 5000, 'the exported file');
    expect(file.channel_id).toBe(`D${MALLORY.slice(1)}`);
    expect(JSON.parse(file.content.toString('utf8'))).toMatchObject({
      reference: 'long-one',
      steps: [{ id: 'one', script: { script: expect.stringContaining('echo end') } }],
    });
  });

  it('imports, replaces and removes with the owner, editor and admin rules, and says what to do when refused', async () => {
    const withFixed = runbookJson('fixed-one', { arguments: [{ name: 'key', kind: 'fixed', value: 'v' }] });
    expect(answerText(await h.command(`runbook import \`\`\`${withFixed}\`\`\``, MALLORY))).toMatch(
      /Only the countersign admins may import fixed arguments \(`key`\).*Make them `input` or `options` arguments, or ask an admin/,
    );
    expect(answerText(await h.command(`runbook import \`\`\`${withFixed}\`\`\``, ALICE))).toContain('Imported the runbook `fixed-one`');
    // Not the owner, an editor or an admin: refused, and told what to do instead.
    expect(answerText(await h.command(`runbook import --replace \`\`\`${runbookJson('fixed-one')}\`\`\``, MALLORY))).toMatch(
      /Only the owner of `fixed-one` \(<@UALICE>\), its editors or the countersign admins may replace it\. Import your version under another name instead\./,
    );
    expect(answerText(await h.command(`runbook import \`\`\`${runbookJson('fixed-one')}\`\`\``, ALICE))).toContain('--replace');
    expect(answerText(await h.command('runbook remove fixed-one', MALLORY))).toContain('Only the owner of `fixed-one`');
    // An editor may.
    const edited = runbookJson('shared', { editors: { users: [MALLORY] } });
    expect(answerText(await h.command(`runbook import \`\`\`${edited}\`\`\``, BOB))).toContain('Imported the runbook `shared`');
    expect(
      answerText(
        await h.command(`runbook import --replace \`\`\`${runbookJson('shared', { editors: { users: [MALLORY] }, description: 'v2' })}\`\`\``, MALLORY),
      ),
    ).toContain('Replaced the runbook `shared`');
    expect(answerText(await h.command('runbook remove shared', MALLORY))).toContain('Removed the runbook `shared`');
    // The config's are read-only.
    expect(answerText(await h.command('runbook remove ship', ALICE))).toContain('defined in countersign.yml: remove it there');
    expect(answerText(await h.command(`runbook import \`\`\`${runbookJson('ship')}\`\`\``, ALICE))).toContain('is defined in countersign.yml');
    expect(answerText(await h.command('runbook remove fixed-one', ALICE))).toContain('Removed the runbook `fixed-one`');
    expect(await h.count('runbooks', { reference: 'fixed-one' })).toBe(0);
    // Broken input is refused with what to do.
    expect(answerText(await h.command('runbook import ```{not json```'))).toContain('That is not JSON');
    expect(
      answerText(await h.command(`runbook import \`\`\`${runbookJson('bad', { steps: [{ id: 'x', http: { url: 'https://example.com/' } }] })}\`\`\``)),
    ).toContain("an imported runbook's http steps name a target");
    expect(answerText(await h.command('runbook frobnicate'))).toContain('Unknown runbook command');
    // However many problems, the answer stays inside one message.
    const manyProblems = runbookJson('many-problems', {
      steps: Array.from({ length: 60 }, (_, i) => ({ id: `h${i}`, http: { url: 'https://example.com/' } })),
    });
    const cut = await h.command(`runbook import \`\`\`${manyProblems}\`\`\``);
    expect(cut.json.response_type).toBe('ephemeral');
    expect(String(cut.json.text).length).toBeLessThanOrEqual(3900);
    expect(answerText(cut)).toContain('steps[0].http.target');
    expect(answerText(cut)).toContain('(cut: fix the first problems and try again)');
  });

  it('keeps /task recipe working as an alias with a one-line note, and starts a recipe from the same form', async () => {
    const list = answerText(await h.command('recipe list'));
    expect(list).toContain('`hello-recipe`');
    expect(list).toContain(unescapeSlack(RECIPE_ALIAS_NOTE));
    const form = await openForm('hello-recipe');
    expect(JSON.stringify(form.blocks)).toContain('echo hello from the recipe');
    const started = await h.driver.submitView({ view: form, user: AUTHOR });
    expect(started.json).toMatchObject({ response_action: 'update', view: { title: { text: 'Task created' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(started.json))?.[1]);
    expect(await h.waitForStatus(id, 'success', 20_000)).toMatchObject({ recipe: { name: 'hello-recipe' }, channelId: TASKS_CHANNEL });
  }, 30_000);

  it('App Home: Start opens the form; a run to review and an input step show for the people asked', async () => {
    await openHome(AUTHOR);
    const authorHome = await home(AUTHOR, 'listing runbooks', (text) => text.includes('Runbooks you can start'));
    const text = JSON.stringify(authorHome.blocks);
    expect(text).toContain(`"action_id":"${RUN_ACTION.start}"`);
    expect(text).toContain('"value":"ship"');
    expect(text).toContain('"value":"hello-recipe"');
    // Started only by a schedule: no Start button.
    expect(text).not.toContain('"value":"nightly"');
    const before = h.fake.views.list.length;
    await h.driver.clickViewButton({ view: authorHome, actionId: RUN_ACTION.start, user: AUTHOR, value: 'ask' });
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      'the ask form from Home',
    );
    expect(JSON.stringify(form.blocks)).toContain('`why` · input from <@UBOB>: `ticket`');

    // A run needing web-prod's review: Alice reviews it; its creator does not.
    const reviewed = await h.app.runbooks.start('reviewed', {
      starter: AUTHOR,
      values: {},
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!reviewed.ok || reviewed.kind !== 'run') throw new Error('not started');
    expect(reviewed.run.status).toBe('pending-review');
    await openHome(ALICE);
    await home(ALICE, 'showing the review', (t) => t.includes(`run ${reviewed.run.id}`) && t.includes('waits for your review'));
    expect(homeText(ALICE)).not.toContain(`"action_id":"${RUN_ACTION.approve}"`);
    // The author's Home, drawn after the run exists (it lists it among their runs), does not ask them to review it.
    await openHome(AUTHOR);
    await home(AUTHOR, 'listing the reviewed run', (t) => t.includes(`*run ${reviewed.run.id}* :hourglass_flowing_sand: waiting for review`));
    expect(homeText(AUTHOR)).not.toContain('waits for your review');

    // Two approvals needed: once Alice approved, it waits for Bob only.
    const twice = await h.app.runbooks.start('twice-reviewed', {
      starter: AUTHOR,
      values: {},
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!twice.ok || twice.kind !== 'run') throw new Error('not started');
    await openHome(BOB);
    await home(ALICE, 'showing the second review', (t) => t.includes(`run ${twice.run.id}*`));
    await home(BOB, 'showing the second review', (t) => t.includes(`run ${twice.run.id}*`));
    // Alice clicks Approve on the review request, through Slack.
    const twiceRequest = await h.fake.waitFor(
      () => h.fake.messages(REVIEW_CHANNEL).find((m) => !m.thread_ts && blocksText(m).includes(`wants to start *run ${twice.run.id}*`)),
      10_000,
      'the review request of the twice-reviewed run',
    );
    await h.click(twiceRequest, RUN_ACTION.approve, ALICE);
    await h.fake.waitFor(
      () =>
        h.fake
          .messages(REVIEW_CHANNEL)
          .find((m) => !m.thread_ts && blocksText(m).includes(`wants to start *run ${twice.run.id}*`) && blocksText(m).includes(`Approved by <@${ALICE}>`)),
      10_000,
      "Alice's approval on the review request",
    );
    expect((await getRun(h.database.db, twice.run.id))?.status).toBe('pending-review');
    await home(ALICE, 'no longer asking her', (t) => !t.includes(`run ${twice.run.id}*`));
    await openHome(BOB);
    await home(BOB, 'still asking him', (t) => t.includes(`run ${twice.run.id}*`) && t.includes('waits for your review'));

    // The input step asks Bob (not its creator).
    const submitted = await h.driver.submitView({ view: form, user: AUTHOR });
    const askId = Number(/run (\d+)/.exec(JSON.stringify(submitted.json))?.[1]);
    await home(BOB, 'showing the input', (t) => t.includes(`run ${askId}`) && t.includes('waits for your input'));
    expect(homeText(BOB)).toContain(`"action_id":"${RUN_ACTION.input}"`);
    expect(homeText(BOB)).toContain(`"value":"${askId}:ask.why"`);
  }, 30_000);

  it('App Home stays within 100 blocks with many runbooks and many runs waiting, and counts the rest', async () => {
    for (let i = 0; i < 30; i++) {
      const imported = await h.app.runbooks.import(
        JSON.parse(runbookJson(`many-${String(i).padStart(2, '0')}`, { description: `<!here> number ${i}` })),
        MALLORY,
        false,
      );
      expect(imported.ok).toBe(true);
    }
    const started: number[] = [];
    for (let i = 0; i < 25; i++) {
      const run = await h.app.runbooks.start('ask', {
        starter: AUTHOR,
        values: {},
        trigger: { kind: 'manual' },
        source: 'slack',
        sourceKey: `many-${i}`,
        channelId: null,
      });
      if (!run.ok || run.kind !== 'run') throw new Error('not started');
      started.push(run.run.id);
    }
    await waitFor(
      async () => {
        const phases = (await h.database.db('run_steps').whereIn('run_id', started).pluck('phase')) as string[];
        return phases.filter((p) => p === 'paused').length === 25 ? true : null;
      },
      40_000,
      'every ask run paused',
    );
    await openHome(BOB);
    const view = await home(BOB, 'counting the waiting runs', (t) => /Runs waiting for you \((2[6-9]|3\d)\)/.test(t));
    expect(validateView(view)).toBeNull();
    expect((view.blocks as unknown[]).length).toBeLessThanOrEqual(100);
    const text = homeText(BOB);
    expect(text).toMatch(/and \d+ more: open their cards/);
    expect(text).toMatch(/Runbooks you can start \(\d+\)/);
    expect(text).toMatch(/and \d+ more: `\/task runbook list` shows them all/);
    expect(text).not.toContain('<!here>');
    // The sections after them keep their place.
    expect(text).toContain('Your recent tasks');
  }, 90_000);
});
