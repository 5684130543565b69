/**
 * Content versions and recipe hashes as pure functions, and the renderers that show them (the
 * review request, the start form) at their largest against Slack's limits.
 */
import { describe, expect, it } from 'vitest';
import { contentVersion, FULL_HASH, recipeContentHash, sealFixedValue, type TaskContent } from '../../src/domain/contentVersion.js';
import { contentHash } from '../../src/domain/digest.js';
import { MAX_ARGUMENT_BYTES, MAX_ARGUMENTS, recipeDefinition, type Recipe, type TaskArgument } from '../../src/domain/recipe.js';
import type { ReviewPolicy } from '../../src/domain/review.js';
import type { Task } from '../../src/domain/task.js';
import { renderHome } from '../../src/slack/render/homeView.js';
import { renderRunbookModal } from '../../src/slack/render/runbookModal.js';
import { runbookFromRecipe } from '../../src/domain/runbook/index.js';
import { renderReviewRequest } from '../../src/slack/render/reviewRequest.js';
import { renderTaskCard } from '../../src/slack/render/taskCard.js';
import { validateMessage, validateView } from '../support/slackLimits.js';

const KEY = 'test-key';
const HOSTILE = '<!channel> *bold* `tick` ```fence``` &amp; <@U123|x> ';
const BASE: TaskContent = { target: 'web-prod', type: 'bash', script: 'uptime', message: 'why', arguments: null, recipe: null };

describe('contentVersion', () => {
  it('is 64 hex digits and changes with every part of what runs', () => {
    const base = contentVersion(BASE, KEY);
    expect(base).toMatch(FULL_HASH);
    const variants: TaskContent[] = [
      { ...BASE, target: 'web-stage' },
      { ...BASE, type: 'sh' },
      { ...BASE, script: 'uptime ' },
      { ...BASE, message: 'why?' },
      { ...BASE, message: null },
      { ...BASE, arguments: [{ name: 'region', kind: 'options', value: 'eu' }] },
      { ...BASE, recipe: { name: 'r', hash: 'a'.repeat(64) } },
      { ...BASE, recipe: { name: 'r', hash: 'b'.repeat(64) } },
    ];
    const versions = variants.map((v) => contentVersion(v, KEY));
    expect(new Set([base, ...versions]).size).toBe(variants.length + 1);
    // The same content always hashes the same, whatever order its fields were built in.
    expect(contentVersion({ recipe: null, arguments: null, message: 'why', script: 'uptime', type: 'bash', target: 'web-prod' }, KEY)).toBe(base);
  });

  it('seals fixed values with the server key: the version reveals nothing about them without it', () => {
    const withFixed = (value: string, key = KEY) => contentVersion({ ...BASE, arguments: [{ name: 'token', kind: 'fixed', value }] }, key);
    expect(withFixed('s3cret')).not.toBe(withFixed('s3cret2'));
    // Another key, another version: someone guessing values cannot check a guess without the key.
    expect(withFixed('s3cret', 'other-key')).not.toBe(withFixed('s3cret'));
    const inClear = contentHash('countersign.task/v1', { ...BASE, arguments: [{ name: 'token', kind: 'fixed', value: 's3cret' }] });
    expect(withFixed('s3cret')).not.toBe(inClear);
    expect(sealFixedValue(KEY, 'recipe-a', 's3cret')).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
    expect(sealFixedValue(KEY, 'recipe-a', 's3cret')).not.toContain('s3cret');
    // Bound to its recipe: a recipe of one's own with a guessed value never hashes like another's.
    expect(sealFixedValue(KEY, 'recipe-b', 's3cret')).not.toBe(sealFixedValue(KEY, 'recipe-a', 's3cret'));
    expect(sealFixedValue(KEY, 'a', 'b\u0000c')).not.toBe(sealFixedValue(KEY, 'a\u0000b', 'c'));
    // Non-fixed values enter as they are (they are shown to reviewers anyway).
    expect(contentVersion({ ...BASE, arguments: [{ name: 'r', kind: 'input', value: 'x' }] }, KEY)).toBe(
      contentVersion({ ...BASE, arguments: [{ name: 'r', kind: 'input', value: 'x' }] }, 'other-key'),
    );
  });

  it('hashes a recipe definition with its fixed values sealed, and only its definition', () => {
    const recipe: Recipe = {
      name: 'r',
      description: null,
      target: 't',
      type: null,
      script: 'echo "$1"',
      message: null,
      arguments: [{ name: 'token', kind: 'fixed', value: 'v1' }],
      origin: 'imported',
    };
    const hash = recipeContentHash(recipeDefinition(recipe), KEY);
    expect(hash).toMatch(FULL_HASH);
    expect(recipeContentHash(recipeDefinition({ ...recipe, arguments: [{ name: 'token', kind: 'fixed', value: 'v2' }] }), KEY)).not.toBe(hash);
    expect(recipeContentHash(recipeDefinition({ ...recipe, script: 'echo "$2"' }), KEY)).not.toBe(hash);
    // Who may edit it is not what it runs.
    expect(recipeContentHash(recipeDefinition({ ...recipe, editors: { users: ['U1'], usergroup: null } }), KEY)).toBe(hash);
    expect(recipeContentHash(recipeDefinition({ ...recipe, origin: 'config' }), KEY)).toBe(hash);
  });
});

const policy: ReviewPolicy = { channel: 'CREVIEW', autoRun: false, groups: [{ name: 'sre', users: ['UALICE', 'UBOB'], approvals: 1 }] };
const bigArguments: TaskArgument[] = Array.from({ length: MAX_ARGUMENTS }, (_, i) => ({
  name: `arg_${i}_${'n'.repeat(50)}`,
  kind: i % 3 === 0 ? 'fixed' : i % 3 === 1 ? 'options' : 'input',
  value: `${HOSTILE}${'v'.repeat(MAX_ARGUMENT_BYTES)}`.slice(0, MAX_ARGUMENT_BYTES),
}));
const task: Task = {
  id: 42,
  createdAt: new Date('2026-01-01T00:00:00Z'),
  statusChangedAt: new Date('2026-01-01T00:00:00Z'),
  status: 'pending-review',
  author: 'UAUTHOR',
  target: 'web-prod',
  type: 'bash',
  script: `${HOSTILE}\n${'echo "a long line of script text" && true\n'.repeat(1600)}`.slice(0, 64 * 1024),
  message: HOSTILE.repeat(60),
  source: 'slack',
  channelId: 'CTASKS',
  cardTs: null,
  reviewChannel: 'CREVIEW',
  reviewTs: null,
  viewVersion: 1,
  reviewScriptPosted: false,
  result: { exitCode: null, signal: null, durationMs: null, failureMessage: null, lastLine: null },
  startedAt: null,
  finishedAt: null,
  runAfter: null,
  arguments: bigArguments,
  contentVersion: 'f'.repeat(64),
  recipe: { name: `recipe-${'x'.repeat(56)}`, hash: 'e'.repeat(64) },
};

describe('renderers showing versions', () => {
  it('the review request of a recipe task with 20 arguments of 4 KiB stays inside a message; its Approve button carries the full version', () => {
    const message = renderReviewRequest({ task, decisions: [], execution: null }, policy);
    expect(validateMessage(message, 'chat.postMessage')).toBeNull();
    const text = JSON.stringify(message.blocks);
    expect(text).toContain(`"value":"42:${'f'.repeat(64)}"`);
    expect(text).toContain(`From recipe \`recipe-${'x'.repeat(56)}\` @ \`eeeeeeeeeeee\``);
    expect(text).toContain('Version `ffffffffffff`');
    expect(text).toContain('*arg_0_');
    expect(text).not.toContain('<!channel>');
    const card = renderTaskCard({ task, decisions: [], execution: null }, { targetDescription: null, policy });
    expect(validateMessage(card, 'chat.postMessage')).toBeNull();
    expect(JSON.stringify(card.blocks)).toContain('From recipe');
  });

  it('the start form of a 64 KiB recipe with a hostile description stays inside a view, shows the first lines and the hash, and escapes what the author wrote', () => {
    const recipe: Recipe = {
      name: 'big-recipe',
      description: HOSTILE.repeat(5).slice(0, 300),
      target: 'web-prod',
      type: null,
      script: task.script,
      message: HOSTILE.repeat(40).slice(0, 2000),
      arguments: Array.from({ length: MAX_ARGUMENTS }, (_, i) =>
        i % 2 === 0
          ? { name: `opt_${i}`, kind: 'options' as const, options: Array.from({ length: 100 }, (_, j) => `o${j}-${'x'.repeat(70)}`), label: 'L'.repeat(75) }
          : { name: `in_${i}`, kind: 'input' as const, required: true, pattern: '[a-z]+', hint: 'h'.repeat(150) },
      ),
      origin: 'imported',
    };
    // A recipe starts from the runbooks' form: it is a one-step runbook.
    const view = renderRunbookModal(runbookFromRecipe(recipe), { reference: recipe.name, channel: 'CTASKS', hash: 'd'.repeat(64) });
    expect(validateView(view)).toBeNull();
    const text = JSON.stringify(view.blocks);
    expect(text).toContain('runbook version `dddddddddddd`');
    expect(text).toContain('`/task runbook export` the whole definition');
    expect(text).toContain('more lines');
    // Whatever is rendered as mrkdwn is escaped (plain_text fields such as the prefilled message are not mrkdwn).
    const mrkdwn = JSON.stringify(view.blocks.filter((b) => b.type === 'section' || b.type === 'context'));
    expect(mrkdwn).toContain('&lt;!channel&gt;');
    expect(mrkdwn).not.toContain('<!channel>');
    expect(JSON.parse(view.private_metadata!)).toEqual({ reference: 'big-recipe', channel: 'CTASKS', hash: 'd'.repeat(64) });
  });

  it('App Home offers Approve, with the full version, only for what it shows whole: not for a task whose arguments it does not show', () => {
    const plain = { ...task, id: 7, script: 'uptime', message: 'routine', arguments: null, recipe: null };
    const withArguments = { ...task, id: 8, script: 'uptime' };
    const home = renderHome({ pendingMyReview: [plain, withArguments], running: [], mine: [] });
    expect(validateView(home)).toBeNull();
    const text = JSON.stringify(home.blocks);
    expect(text).toContain(`"value":"7:${'f'.repeat(64)}"`);
    expect(text).not.toContain('"value":"8:');
    expect(text).toContain('This task has arguments Home does not show');
  });

  it('App Home shows beside Approve the message, the interpreter and the version; a long message or hidden characters send the reviewer to the request', () => {
    const python = { ...task, id: 7, script: 'print(1)', type: 'python3' as const, message: 'routine', arguments: null, recipe: null };
    const longWhy = { ...python, id: 8, message: 'x'.repeat(600) };
    const trojan = { ...python, id: 9, script: 'echo ok # \u202E gnp.exe' };
    const text = JSON.stringify(renderHome({ pendingMyReview: [python, longWhy, trojan], running: [], mine: [] }).blocks);
    expect(text).toContain('*Why* routine');
    expect(text).toContain('Runs as *python3*');
    expect(text).toContain(`"value":"7:${'f'.repeat(64)}"`);
    expect(text).not.toContain('"value":"8:');
    expect(text).not.toContain('"value":"9:');
    expect(text).toContain('U+202E');
  });
});
