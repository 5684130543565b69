/**
 * Recipes through signed Slack requests: `/task start <recipe>` opens a form (loading view, then
 * views.update) asking for the options and inputs; bad values are refused on their field; the
 * task follows its target's review rules and the script on a real sshd gets the arguments as
 * "$1"… and ARG_<NAME>, literally. `/task recipe list | export | import` round-trips the JSON.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { validateView } from '../support/slackLimits.js';
import { ALICE, AUTHOR, Harness, TASKS_CHANNEL, ackText, unescapeSlack } from '../support/harness.js';

async function storedOutput(h: Harness, taskId: number): Promise<string> {
  const rows = await h.database
    .db('output_chunks as o')
    .join('executions as e', 'e.id', 'o.execution_id')
    .where('e.task_id', taskId)
    .orderBy('o.id')
    .pluck('o.data');
  return rows.join('');
}

const TRICKY = `'; rm -rf / # $(id)`;

describe('recipes in Slack', () => {
  let h: Harness;
  const openForm = async (name: string, user = AUTHOR) => {
    const before = h.fake.views.list.length;
    const response = await h.command(`start ${name}`, user);
    expect(response.status).toBe(200);
    expect(response.ms).toBeLessThan(3000);
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
      extraYaml: (_ssh, dir) => {
        mkdirSync(`${dir}/recipes`);
        writeFileSync(
          `${dir}/recipes/greet.json`,
          JSON.stringify({
            format: 'countersign.recipe/v1',
            name: 'greet',
            target: 'sandbox',
            type: 'node',
            script: 'console.log(`hi ${process.argv[2]} ${process.env.ARG_WHO}`)',
            arguments: [{ name: 'who', kind: 'input', required: true }],
          }),
        );
        return [
          // An admin may import fixed arguments (reviewers never see their values); others may not.
          `admins: { users: [${ALICE}] }`,
          'recipeFiles: recipes',
          'recipes:',
          '  echo-args:',
          '    description: Prints its arguments',
          '    target: sandbox',
          '    message: echo the arguments',
          '    script: |',
          '      printf "1=[%s] 2=[%s] 3=[%s] n=%s\\n" "$1" "$2" "$3" "$#"',
          '      printf "ENV=[%s][%s][%s]\\n" "$ARG_TOKEN" "$ARG_REGION" "$ARG_VERSION"',
          '    arguments:',
          '      - { name: token, kind: fixed, value: "fixed-secretish" }',
          '      - { name: region, kind: options, options: [eu, us], default: eu }',
          '      - { name: version, kind: input, required: true, hint: "any text" }',
          '  restart:',
          '    target: web-prod',
          '    script: systemctl restart "$1"',
          '    arguments:',
          '      - { name: service, kind: input, pattern: "[a-z][a-z0-9-]*", required: true, hint: "a unit name such as nginx" }',
        ].join('\n');
      },
    });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('/task recipe list lists config and file recipes', async () => {
    const text = ackText(await h.command('recipe list'));
    expect(text).toMatch(/`echo-args` @ `[0-9a-f]{12}` on `sandbox` \(region: eu\|us, version\)/);
    expect(text).toMatch(/`greet` @ `[0-9a-f]{12}` on `sandbox`/);
    expect(text).toMatch(/`restart` @ `[0-9a-f]{12}` on `web-prod`/);
    expect(text).not.toContain('fixed-secretish');
  });

  it('/task start opens the form within 3 s and asks for options and inputs, never the fixed value', async () => {
    const form = await openForm('echo-args');
    expect(h.fake.callsTo('views.open').length).toBeGreaterThan(0);
    expect(validateView(form)).toBeNull();
    const json = JSON.stringify(form.blocks);
    expect(json).toContain('"block_id":"arg:region"');
    expect(json).toContain('"type":"static_select"');
    expect(json).toContain('"block_id":"arg:version"');
    expect(json).not.toContain('arg:token');
    expect(json).not.toContain('fixed-secretish');
    expect(json).toContain('1 fixed argument is set by the runbook');
  });

  it('submitting runs the script with the arguments as "$1"… and ARG_<NAME>, literally; a double submit makes one task', async () => {
    const form = await openForm('echo-args');
    const before = await h.count('tasks');
    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'us' }, 'arg:version': { value: TRICKY } } });
    expect(good.json).toMatchObject({ response_action: 'update', view: { title: { text: 'Task created' } } });
    expect(JSON.stringify(good.json)).toContain('token=•••');
    expect(JSON.stringify(good.json)).not.toContain('fixed-secretish');
    const id = Number(/#(\d+)/.exec(JSON.stringify(good.json))?.[1]);
    await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'us' }, 'arg:version': { value: TRICKY } } });
    expect(await h.count('tasks')).toBe(before + 1);
    const task = await h.waitForStatus(id, ['success', 'failure'], 20_000);
    expect(task).toMatchObject({ status: 'success', author: AUTHOR, message: 'echo the arguments', channelId: TASKS_CHANNEL });
    const output = await storedOutput(h, id);
    // The fixed value arrives exactly (the mask replaces that string only), masked like a secret.
    expect(output).toContain(`1=[*****] 2=[us] 3=[${TRICKY}] n=3\n`);
    expect(output).toContain(`ENV=[*****][us][${TRICKY}]\n`);
    expect(output).not.toContain('fixed-secretish');
    await h.card(id);
  }, 30_000);

  it('refuses bad values on their field, naming the expected form, and creates nothing', async () => {
    const form = await openForm('restart');
    const before = await h.count('tasks');
    const bad = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:service': { value: 'nginx; id' } } });
    expect(bad.json).toMatchObject({
      response_action: 'errors',
      errors: { 'arg:service': expect.stringMatching(/expected a value matching \/\[a-z\]\[a-z0-9-\]\*\/ \(a unit name such as nginx\)/) },
    });
    expect(await h.count('tasks')).toBe(before);
    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:service': { value: 'nginx' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(good.json))?.[1]);
    // The target's review rules apply as to any task.
    expect((await h.task(id))?.status).toBe('pending-review');
    await h.reviewRequest(id);
  });

  it('refuses half of a character in a free input on its field, before any statement, and creates nothing', async () => {
    const form = await openForm('echo-args');
    const before = await h.count('tasks');
    // A value cut inside an emoji: Postgres could not store it as given, and the script must get what was approved.
    const bad = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'us' }, 'arg:version': { value: 'v1 \ud83d' } } });
    expect(bad.json).toMatchObject({ response_action: 'errors', errors: { 'arg:version': expect.stringMatching(/half of a character/) } });
    expect(await h.count('tasks')).toBe(before);
  });

  it('an unknown recipe gets a form saying so, and /task start alone says how', async () => {
    const form = await openForm('nope');
    expect(JSON.stringify(form.blocks)).toContain('There is no runbook');
    expect(ackText(await h.command('start'))).toContain('Name the runbook');
  });

  it('exports as JSON and imports it back (refusing config names; replacing only with --replace)', async () => {
    const exported = ackText(await h.command('recipe export echo-args'));
    const json = unescapeSlack(/```([\s\S]*)```/.exec(exported)?.[1] ?? '');
    expect(JSON.parse(json)).toMatchObject({ format: 'countersign.recipe/v1', name: 'echo-args', target: 'sandbox' });
    // Fixed values never leave the server: the export leaves them out and says so.
    expect(exported).not.toContain('fixed-secretish');
    expect(JSON.parse(json).arguments[0]).toEqual({ name: 'token', kind: 'fixed' });
    expect(exported).toContain('Fixed values are left out (`token`)');
    // An import without the value is refused, naming the field to fill in.
    expect(ackText(await h.command(`recipe import \`\`\`${JSON.stringify({ ...JSON.parse(json), name: 'echo-unfilled' })}\`\`\``))).toContain(
      'arguments[0].value: a fixed argument needs its value',
    );
    const filled = JSON.parse(json);
    filled.arguments[0].value = 'fixed-secretish';
    // The same name as a config recipe: refused.
    expect(ackText(await h.command(`recipe import\n\`\`\`${JSON.stringify(filled)}\`\`\``))).toContain('recipe of countersign.yml');
    const copy = JSON.stringify({ ...filled, name: 'echo-copy' });
    // A fixed value would run unseen by reviewers: only an admin may import one.
    expect(ackText(await h.command(`recipe import\n\`\`\`json\n${copy}\n\`\`\``))).toContain(
      'Only the countersign admins may import fixed arguments (`token`)',
    );
    expect(ackText(await h.command(`recipe import\n\`\`\`json\n${copy}\n\`\`\``, ALICE))).toContain('Imported the recipe `echo-copy`');
    expect(ackText(await h.command(`recipe import \`\`\`${copy}\`\`\``, ALICE))).toContain('--replace');
    const changed = JSON.stringify({ ...JSON.parse(copy), description: 'changed' });
    expect(ackText(await h.command(`recipe import --replace \`\`\`${changed}\`\`\``, ALICE))).toContain('Replaced the recipe `echo-copy`');
    expect(ackText(await h.command('recipe list'))).toMatch(/`echo-copy` @ `[0-9a-f]{12}` on `sandbox`.*changed.*imported, owner <@UALICE>/);
    // Invalid recipes are refused with the field named.
    const broken = JSON.stringify({ name: 'broken', target: 'sandbox', script: 'true', arguments: [{ name: 'x', kind: 'input', pattern: '(' }] });
    expect(ackText(await h.command(`recipe import \`\`\`${broken}\`\`\``))).toContain('arguments[0].pattern: not a valid pattern for the linear-time engine');
    expect(await h.count('runbooks')).toBe(1);
    // The imported one starts like any other.
    const form = await openForm('echo-copy');
    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:region': { value: 'eu' }, 'arg:version': { value: '$(id)' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(good.json))?.[1]);
    const output = await storedOutput(h, (await h.waitForStatus(id, ['success', 'failure'], 20_000)).id);
    expect(output).toContain('1=[*****] 2=[eu] 3=[$(id)] n=3');
  }, 30_000);

  it('exports a long recipe as a file in the channel', async () => {
    const long = JSON.stringify({
      name: 'long-one',
      target: 'sandbox',
      script: `echo start\n${'# padding line for a long script\n'.repeat(120)}echo end`,
      arguments: [],
    });
    expect(ackText(await h.command(`recipe import \`\`\`${long}\`\`\``))).toContain('Imported the recipe `long-one`');
    await h.command('recipe export long-one');
    const file = await h.fake.waitFor(() => h.fake.files.find((f) => f.filename === 'long-one.recipe.json'), 5000, 'the exported file');
    expect(file.channel_id).toBe(TASKS_CHANNEL);
    // Slack escapes &, < and > in command text: the stored pattern is the one typed.
    const angled = JSON.stringify({ name: 'angled', target: 'sandbox', script: 'echo "$1"', arguments: [{ name: 'x', kind: 'input', pattern: '[^<>&]+' }] });
    expect(ackText(await h.command(`recipe import \`\`\`${angled}\`\`\``))).toContain('Imported the recipe `angled`');
    const shown = /```([\s\S]*)```/.exec(ackText(await h.command('recipe export angled')))?.[1] ?? '{}';
    expect(shown).toContain('[^&lt;&gt;&amp;]+');
    expect(JSON.parse(unescapeSlack(shown))).toMatchObject({ arguments: [{ pattern: '[^<>&]+' }] });
    expect(JSON.parse(file.content.toString('utf8'))).toMatchObject({ name: 'long-one', script: expect.stringContaining('echo end') });
  });

  it('a recipe from recipeFiles runs under its interpreter with argv', async () => {
    const form = await openForm('greet');
    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:who': { value: '`whoami`' } } });
    const id = Number(/#(\d+)/.exec(JSON.stringify(good.json))?.[1]);
    await h.waitForStatus(id, ['success', 'failure'], 20_000);
    expect(await storedOutput(h, id)).toContain('hi `whoami` `whoami`');
  }, 30_000);
});
