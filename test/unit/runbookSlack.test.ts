/**
 * The Slack side of runbooks, purely: `/task start` and `/task runbook …` parsed, and the start
 * form, the list and the show answer inside Slack's limits however many steps, arguments and
 * runbooks, with everything user-written escaped and fixed values never shown.
 */
import { describe, expect, it } from 'vitest';
import { parseRunbookCommand } from '../../src/domain/runbookCommand.js';
import { parseRunbookJson, type Runbook } from '../../src/domain/runbook/index.js';
import { renderRunbookModal } from '../../src/slack/render/runbookModal.js';
import { renderRunbookList, renderRunbookShow } from '../../src/slack/render/runbookList.js';
import { renderHome } from '../../src/slack/render/homeView.js';
import type { HomeWaitingRun } from '../../src/slack/render/homeRunbooks.js';
import type { Task } from '../../src/domain/task.js';
import { validateMessage, validateView } from '../support/slackLimits.js';

const HASH = 'ab'.repeat(32);

function runbook(body: Record<string, unknown>): Runbook {
  const parsed = parseRunbookJson({ format: 'countersign.runbook/v1', arguments: [], ...body });
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.runbook;
}

const longScript = (n: number) => Array.from({ length: 400 }, (_, i) => `echo "step ${n} line ${i} ${'x'.repeat(40)}"`).join('\n');

const big = runbook({
  reference: 'big',
  name: 'Big <!channel> & co',
  description: 'Pages <!here> when *bold*',
  tags: ['web', 'restart'],
  arguments: [
    { name: 'token', kind: 'fixed', value: 'fixed-secret-value' },
    ...Array.from({ length: 18 }, (_, i) => ({ name: `arg${i}`, kind: 'input', pattern: '[a-z]+', hint: 'lower case' })),
    { name: 'region', kind: 'options', options: ['eu', 'us'] },
  ],
  steps: [
    { id: 'why', input: { fields: [{ name: 'ticket', kind: 'input', pattern: 'INC-[0-9]+' }] } },
    { id: 'go', approval: { users: ['U0123'], usergroup: 'S0456', approvals: 1 } },
    {
      id: 'health',
      http: {
        url: 'https://status.example/health?x=<b>',
        method: 'POST',
        target: 'web',
        headers: { Authorization: 'Bearer ${{ secrets.TOKEN }}' },
        body: { ok: '<!channel>' },
      },
    },
    ...Array.from({ length: 90 }, (_, n) => ({ id: `s${n}`, script: { target: 'web', script: longScript(n) } })),
    [
      { id: 'a', script: { target: 'web', script: 'systemctl restart web ```; <@U999>' } },
      { id: 'b', script: { target: 'web', script: 'systemctl restart web' } },
    ],
  ],
});

describe('parseRunbookCommand', () => {
  it('reads start and the runbook subcommands, and leaves the rest alone', () => {
    expect(parseRunbookCommand('start restart-web')).toEqual({ kind: 'start', reference: 'restart-web' });
    expect(parseRunbookCommand('start')).toMatchObject({ kind: 'error', message: expect.stringContaining('Name the runbook') });
    expect(parseRunbookCommand('start a b')).toMatchObject({ kind: 'error' });
    expect(parseRunbookCommand('start <!channel>')).toMatchObject({ kind: 'error', message: expect.not.stringContaining('<!channel>') });
    expect(parseRunbookCommand('runbook')).toEqual({ kind: 'list', tag: null });
    expect(parseRunbookCommand('runbook list --tag web')).toEqual({ kind: 'list', tag: 'web' });
    expect(parseRunbookCommand('runbooks list --tag=web')).toEqual({ kind: 'list', tag: 'web' });
    expect(parseRunbookCommand('runbook list web')).toMatchObject({ kind: 'error' });
    expect(parseRunbookCommand('runbook show deploy')).toEqual({ kind: 'show', reference: 'deploy' });
    expect(parseRunbookCommand('runbook export deploy')).toEqual({ kind: 'export', reference: 'deploy' });
    expect(parseRunbookCommand('runbook remove deploy')).toEqual({ kind: 'remove', reference: 'deploy' });
    expect(parseRunbookCommand('runbook remove')).toMatchObject({ kind: 'error', message: expect.stringContaining('/task runbook remove') });
    expect(parseRunbookCommand('runbook frobnicate')).toMatchObject({ kind: 'error', message: expect.stringContaining('Unknown runbook command') });
    expect(parseRunbookCommand('recipe list')).toBeNull();
    expect(parseRunbookCommand('run web-prod uptime')).toBeNull();
    expect(parseRunbookCommand('list')).toBeNull();
  });

  it('reads an import in a fenced block, with --replace, undoing Slack’s escapes and smart quotes', () => {
    expect(parseRunbookCommand('runbook import --replace\n```json\n{\u201ca\u201d: "&lt;b&gt; &amp;"}\n```')).toEqual({
      kind: 'import',
      json: '{"a": "<b> &"}',
      replace: true,
    });
    expect(parseRunbookCommand('runbook import ```{}```')).toEqual({ kind: 'import', json: '{}', replace: false });
    expect(parseRunbookCommand('runbook import')).toMatchObject({ kind: 'error', message: expect.stringContaining('Paste the runbook') });
  });
});

describe('the start form', () => {
  it('stays inside Slack’s limits with 95 steps and 20 arguments, shows kinds, targets, heads and the hash, never the fixed value', () => {
    const view = renderRunbookModal(big, { reference: 'big', channel: 'C1', hash: HASH });
    expect(validateView(view)).toBeNull();
    const json = JSON.stringify(view);
    expect(view.blocks.length).toBeLessThanOrEqual(100);
    expect(json).toContain(`runbook version \`${HASH.slice(0, 12)}\``);
    expect(json).toContain('`why` · input from the person who started the run: `ticket` (matching `INC-[0-9]+`)');
    expect(json).toContain('`go` · approval by <@U0123>, <!subteam^S0456> (1 needed)');
    expect(json).toContain('http `POST https://status.example/health?x=&lt;b&gt;`');
    expect(json).toContain('headers `Authorization`');
    expect(json).not.toContain('secrets.TOKEN');
    expect(json).toContain('`s0` · script on `web`');
    // Every step is named, however many (the heads shrink instead).
    expect(json).toContain('*94b* `b` · script on `web`');
    expect(json).toContain('95 steps');
    expect(json).not.toContain('not shown');
    expect(json).toContain('1 fixed argument is set by the runbook');
    expect(json).not.toContain('fixed-secret-value');
    expect(json).not.toContain('arg:token');
    expect(json).toContain('"block_id":"message"');
    expect(json).not.toMatch(/<!channel>|<!here>/);
    expect(JSON.parse(view.private_metadata!)).toEqual({ reference: 'big', channel: 'C1', hash: HASH });
  });

  it('names every step of a short runbook, groups lettered, dependencies first and qualified', () => {
    const small = runbook({
      reference: 'small',
      dependsOn: ['prep'],
      steps: [
        { id: 'one', script: { target: 'web', script: 'uptime' } },
        [
          { id: 'a', script: { target: 'web', script: 'true' } },
          { id: 'b', script: { target: 'db', script: 'false' } },
        ],
      ],
    });
    const prep = runbook({ reference: 'prep', steps: [{ id: 'mark', script: { target: 'web', script: 'touch /tmp/x' } }] });
    const view = renderRunbookModal(small, { reference: 'small', channel: null, hash: HASH }, [prep]);
    expect(validateView(view)).toBeNull();
    const json = JSON.stringify(view.blocks);
    expect(json).toContain('Runs first: `prep`');
    expect(json).toContain('*1* `prep.mark` · script on `web`');
    expect(json).toContain('*2a* `small.a`');
    expect(json).toContain('*2b* `small.b` · script on `db`');
    expect(json).toContain('touch /tmp/x');
    expect(json).toContain('4 steps');
    expect(json).not.toContain('not shown');
  });
});

describe('/task runbook list and show', () => {
  const entry = (rb: Runbook, owner: string | null = null) => ({
    runbook: rb,
    hash: HASH,
    kind: 'runbook' as const,
    source: owner ? ('imported' as const) : ('config' as const),
    owner,
  });

  it('lists 300 runbooks within one message’s limits, counting those left out', () => {
    const many = Array.from({ length: 300 }, (_, i) =>
      entry(
        runbook({
          reference: `rb-${i}`,
          description: `<!channel> ${'d'.repeat(250)}`,
          tags: ['web'],
          steps: [{ id: 'x', script: { target: 'web', script: 'true' } }],
        }),
        'U1',
      ),
    );
    const message = renderRunbookList(many, 'web');
    expect(validateMessage(message, 'chat.postEphemeral')).toBeNull();
    const json = JSON.stringify(message.blocks);
    expect(json).toContain('*Runbooks* tagged `web` (300)');
    expect(json).toMatch(/and 2\d\d more: narrow the list/);
    expect(json).not.toContain('<!channel>');
    expect(json).toContain('_(imported, owner <@U1>)_');
  });

  it('says so when nothing matches', () => {
    expect(renderRunbookList([], 'nope').text).toContain('No runbooks tagged `nope`');
    expect(renderRunbookList([], null).text).toContain('/task runbook import');
  });

  it('shows a 95-step runbook within one message’s limits, without fixed values', () => {
    const message = renderRunbookShow(entry(big, 'U1'));
    expect(validateMessage(message, 'chat.postEphemeral')).toBeNull();
    const json = JSON.stringify(message.blocks);
    expect(json).toContain('token (fixed)');
    expect(json).not.toContain('fixed-secret-value');
    expect(json).toMatch(/95 steps, \d+ not shown/);
    expect(json).toContain('Big &lt;!channel&gt; &amp; co');
    expect(json).not.toMatch(/<!channel>|<!here>|<@U999>/);
    // A fence in a script cannot close the code block early.
    expect(json).not.toContain('web ```');
  });
});

describe('App Home with runbooks', () => {
  const HOSTILE = '<!channel> *bold* `tick` ```fence``` &amp; <@U123|x> ';
  const at = new Date(Date.UTC(2026, 0, 1));
  const task = (id: number, over: Partial<Task> = {}) =>
    ({
      id,
      createdAt: at,
      statusChangedAt: at,
      status: 'pending-review',
      author: 'UAUTHOR',
      target: 'web-prod',
      type: 'bash',
      script: 'uptime',
      message: 'routine',
      source: 'slack',
      channelId: 'CTASKS',
      contentVersion: 'c'.repeat(64),
      arguments: [],
      recipe: null,
      startedAt: null,
      finishedAt: null,
      runAfter: null,
      ...over,
    }) as unknown as Task;
  const waiting = (n: number): HomeWaitingRun[] =>
    Array.from({ length: n }, (_, i) => ({
      runId: i + 1,
      reference: `ref-${i}`,
      creator: 'UAUTHOR',
      message: HOSTILE.repeat(20),
      kind: (['review', 'approval', 'input'] as const)[i % 3]!,
      stepId: i % 3 === 0 ? null : `ref-${i}.step`,
      cardPermalink: 'https://example.slack.com/archives/C1/p1',
      permalink: i % 2 === 0 ? 'https://example.slack.com/archives/C2/p2' : null,
    }));
  const startable = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ reference: `rb-${i}`, name: `${HOSTILE} ${i}`, description: HOSTILE.repeat(20), steps: 3, hash: 'e'.repeat(64) }));

  it('keeps within 100 blocks with ten reviews, many runs waiting and many runbooks, every section in its place and counted', () => {
    const tasks = Array.from({ length: 10 }, (_, i) => task(i + 1));
    const myRuns = Array.from({ length: 10 }, (_, i) => ({
      runId: i + 1,
      reference: `${HOSTILE}-${i}`,
      status: 'running' as const,
      createdAt: at,
      cardPermalink: i % 2 ? 'https://example.slack.com/archives/C1/p1' : null,
    }));
    const view = renderHome({
      pendingMyReview: tasks,
      pendingCount: 50,
      running: tasks,
      mine: tasks,
      waitingRuns: waiting(8),
      waitingRunsCount: 300,
      startable: startable(10),
      startableCount: 120,
      myRuns,
    });
    expect(validateView(view)).toBeNull();
    expect(view.blocks.length).toBeLessThanOrEqual(100);
    const text = JSON.stringify(view.blocks);
    for (const title of [
      'Waiting for your review (50)',
      'Runs waiting for you (300)',
      'Runbooks you can start (120)',
      'Running now',
      'Your recent tasks',
      'Your recent runs',
    ])
      expect(text).toContain(title);
    expect(text).toContain('<https://example.slack.com/archives/C1/p1|*run 2*>');
    expect(text).toMatch(/and \d+ more: open their cards/);
    expect(text).toMatch(/and \d+ more: `\/task runbook list`/);
    expect(text).toMatch(/\d+ more: `\/task list pending`/);
    expect(text).not.toContain('<!channel>');
    // A run's review is never approved from Home (its whole content is not shown); steps are.
    expect(text).not.toContain('"action_id":"run_approve"');
    expect(text).toContain('"action_id":"run_step_approve"');
    expect(text).toContain('"action_id":"run_step_input"');
    expect(text).toContain('"action_id":"runbook_start"');
  });

  it('shows no runbook sections when there is nothing to start or wait for', () => {
    const view = renderHome({ pendingMyReview: [], running: [], mine: [], waitingRuns: [], startable: [] });
    expect(validateView(view)).toBeNull();
    expect(JSON.stringify(view.blocks)).not.toContain('Runs waiting for you');
    expect(JSON.stringify(view.blocks)).not.toContain('Runbooks you can start');
  });
});
