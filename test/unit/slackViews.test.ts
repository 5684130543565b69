/**
 * The issue-5 renderers at their largest: 200 tasks, a 64 KiB script, a 40-host target, long
 * hostile names. Every message and view must pass the fake Slack's limit checks (the same
 * checks that answer invalid_blocks / msg_too_long in the e2e tests).
 */
import { describe, expect, it } from 'vitest';
import type { TaskStatus } from '../../src/domain/lifecycle.js';
import type { Task } from '../../src/domain/task.js';
import { renderHome } from '../../src/slack/render/homeView.js';
import type { ScheduleSummary } from '../../src/store/schedules.js';
import { logTail, renderLogsAnswer } from '../../src/slack/render/logsAnswer.js';
import { renderTargetsList, type TargetSummary } from '../../src/slack/render/targetsList.js';
import { renderTaskList } from '../../src/slack/render/taskList.js';
import { MODAL_SCRIPT_CHARS, renderLoadingModal, renderTaskModal } from '../../src/slack/render/taskModal.js';
import { validateMessage, validateView } from '../support/slackLimits.js';

const HOSTILE = '<!channel> *bold* `tick` ```fence``` &amp; <@U123|x> ';
const BIG_SCRIPT = `${HOSTILE}\n${'echo "a long line of script text" && true\n'.repeat(1600)}`.slice(0, 64 * 1024);
const STATUSES: TaskStatus[] = ['pending-review', 'running', 'success', 'failure', 'killed', 'rejected', 'cancelled', 'ready', 'approved'];

function task(id: number, over: Partial<Task> = {}): Task {
  const at = new Date(Date.UTC(2026, 0, 1, 0, 0, id));
  return {
    id,
    createdAt: at,
    statusChangedAt: at,
    status: STATUSES[id % STATUSES.length]!,
    author: 'UAUTHOR',
    target: `${'t'.repeat(60)}-${id}`,
    type: 'bash',
    script: BIG_SCRIPT,
    message: HOSTILE.repeat(30),
    source: 'slack',
    channelId: 'CTASKS',
    cardTs: null,
    reviewChannel: null,
    reviewTs: null,
    viewVersion: 1,
    reviewScriptPosted: false,
    result: { exitCode: null, signal: null, durationMs: null, failureMessage: null, lastLine: null },
    startedAt: null,
    finishedAt: null,
    runAfter: null,
    contentVersion: 'c'.repeat(64),
    recipe: null,
    ...over,
  };
}

const many = (n: number, over: Partial<Task> = {}) => Array.from({ length: n }, (_, i) => task(i + 1, over));

describe('Slack views at their largest', () => {
  it('/task list with 200 tasks of 64 KiB scripts stays inside a message and says how many are left out', () => {
    for (const scope of ['mine', 'pending', 'running', 'all'] as const) {
      const message = renderTaskList(scope, many(200), true);
      expect(validateMessage(message, 'chat.postEphemeral')).toBeNull();
      expect(message.blocks.length).toBeLessThanOrEqual(50);
      expect(JSON.stringify(message.blocks)).toMatch(/\d+\+ more not shown/);
      // Nothing the user wrote can ping the channel or break out of inline code.
      expect(JSON.stringify(message.blocks)).not.toContain('<!channel>');
    }
    expect(JSON.stringify(renderTaskList('pending', [], false).blocks)).toContain('Nothing waits for your review');
  });

  it('the Home tab with 200 pending, running and own tasks stays under 100 blocks and the view limits', () => {
    const view = renderHome({ pendingMyReview: many(200), running: many(200, { status: 'running' }), mine: many(200), notice: HOSTILE.repeat(200) });
    expect(validateView(view)).toBeNull();
    expect(view.blocks.length).toBeLessThanOrEqual(100);
    expect(JSON.stringify(view.blocks)).toContain('190 more');
    // 64 KiB scripts are not shown whole on Home, so they cannot be approved from there.
    expect(JSON.stringify(view.blocks)).not.toContain('"action_id":"task_approve"');
    const short = renderHome({ pendingMyReview: many(3, { script: 'uptime', message: 'routine' }), running: [], mine: [] });
    expect(JSON.stringify(short.blocks).match(/"action_id":"task_approve"/g)).toHaveLength(3);
    const empty = renderHome({ pendingMyReview: [], running: [], mine: [] });
    expect(validateView(empty)).toBeNull();
    expect(JSON.stringify(empty.blocks)).toContain('Nothing waits for you');
  });

  it('the Home tab with 200 tasks per list and 200 schedules to review and of my own stays under 100 blocks, every section shown', () => {
    const summary = (id: number, over: Partial<ScheduleSummary> = {}): ScheduleSummary => ({
      id,
      status: 'pending-review',
      author: 'UAUTHOR',
      target: `${'t'.repeat(60)}-${id}`,
      cron: '*/5 * * * *',
      tz: 'Europe/Paris',
      type: 'bash',
      message: HOSTILE.repeat(30),
      contentVersion: 'd'.repeat(64),
      reviewRound: 0,
      channelId: 'C0OPS',
      originChannel: null,
      statusReason: null,
      script: BIG_SCRIPT.slice(0, 1200),
      scriptCut: true,
      ...over,
    });
    const schedules = (n: number, over: Partial<ScheduleSummary> = {}) => Array.from({ length: n }, (_, i) => summary(i + 1, over));
    const view = renderHome({
      pendingMyReview: many(200),
      pendingCount: 1000,
      running: many(200, { status: 'running' }),
      mine: many(200),
      notice: HOSTILE.repeat(200),
      schedulesToReview: schedules(200),
      schedulesToReviewCount: 1000,
      mySchedules: schedules(200, { status: 'active' }),
    });
    expect(validateView(view)).toBeNull();
    expect(view.blocks.length).toBeLessThanOrEqual(100);
    const text = JSON.stringify(view.blocks);
    // Every section keeps its place: the schedules to review get the blocks the rest leaves, and say where the others are.
    for (const title of ['Waiting for your review (1000)', 'Schedules waiting for your review (1000)', 'Running now', 'Your recent tasks', 'Your schedules'])
      expect(text).toContain(title);
    expect(text).toMatch(/\d+ (more|wait): `\/task schedule list`/);
    // With fewer tasks waiting, five schedules show and the rest are counted.
    const fewer = renderHome({
      pendingMyReview: many(2),
      running: many(10, { status: 'running' }),
      mine: many(15),
      schedulesToReview: schedules(200),
      schedulesToReviewCount: 1000,
      mySchedules: schedules(200, { status: 'active' }),
    });
    expect(validateView(fewer)).toBeNull();
    expect(JSON.stringify(fewer.blocks)).toContain('995 more: `/task schedule list`');
    expect(JSON.stringify(fewer.blocks)).toContain('Your schedules');
    // What people wrote in a schedule cannot ping a channel (the notice at the top is our own text).
    expect(JSON.stringify(view.blocks.slice(1))).not.toContain('<!channel>');
    // Heads of scripts cannot be approved from Home; whole short ones can, naming their version.
    expect(text).not.toContain('"action_id":"schedule_approve"');
    const short = renderHome({
      pendingMyReview: [],
      running: [],
      mine: [],
      schedulesToReview: schedules(2, { script: 'uptime', scriptCut: false, message: 'nightly' }),
    });
    expect(JSON.stringify(short.blocks).match(/"action_id":"schedule_approve"/g)).toHaveLength(2);
    expect(JSON.stringify(short.blocks)).toContain(`"value":"1:${'d'.repeat(64)}"`);
    // What the version covers besides the script is said next to Approve: interpreter, target, version, why.
    expect(JSON.stringify(short.blocks)).toContain('Runs as *bash* on');
    expect(JSON.stringify(short.blocks)).toContain('*Why* nightly');
    // A message longer than Home shows, or characters the reader cannot see, keep Approve off Home.
    for (const over of [{ message: 'x'.repeat(600) }, { script: 'echo ok\u202E#' }, { message: 'fine\u200Bthen' }]) {
      const held = renderHome({
        pendingMyReview: [],
        running: [],
        mine: [],
        schedulesToReview: schedules(1, { script: 'uptime', scriptCut: false, message: 'nightly', ...over }),
      });
      expect(JSON.stringify(held.blocks), JSON.stringify(over)).not.toContain('"action_id":"schedule_approve"');
    }
    // Nobody with no schedules sees schedule sections at all.
    expect(JSON.stringify(renderHome({ pendingMyReview: [], running: [], mine: [] }).blocks)).not.toContain('schedule');
  });

  it('/task targets with a 40-host target and 60 targets of long names stays inside a message', () => {
    const hosts = Array.from({ length: 40 }, (_, i) => ({ host: `10.0.${i}.${i}`, port: 22, user: 'deploy' }));
    const users = Array.from({ length: 50 }, (_, i) => `U${String(i).padStart(8, '0')}`);
    const target = (i: number): TargetSummary => ({
      name: `fleet-${i}-${'x'.repeat(70)}`,
      description: HOSTILE.repeat(20),
      type: 'bash',
      hosts,
      rollout: '25% at a time, stops on failure',
      review: {
        channel: 'CREVIEW',
        autoRun: false,
        groups: [
          { name: 'sre', users, approvals: 2 },
          { name: 'dba', users: users.slice(0, 3), approvals: 1 },
        ],
      },
      usergroups: new Map([['sre', 'S0SRE']]),
    });
    const message = renderTargetsList(Array.from({ length: 60 }, (_, i) => target(i)));
    expect(validateMessage(message, 'chat.postEphemeral')).toBeNull();
    const text = JSON.stringify(message.blocks);
    expect(text).toContain('40 hosts');
    expect(text).toContain('and 35 more');
    expect(text).toContain('and 38 more');
    expect(text).toContain('<!subteam^S0SRE>');
    expect(text).toMatch(/\d+ more targets not shown/);
  });

  it('the task form holds 150 targets (Slack allows 100 options) and refuses to prefill a script it cannot hold', () => {
    const targets = Array.from({ length: 150 }, (_, i) => ({ name: `target-${i}-${'n'.repeat(90)}`, description: HOSTILE.repeat(10) }));
    const view = renderTaskModal(
      targets,
      { channel: 'CTASKS', resubmitOf: 123456789 },
      { target: targets[3]!.name, script: BIG_SCRIPT, message: HOSTILE.repeat(100), type: 'python3' },
    );
    expect(validateView(view)).toBeNull();
    // The script is not prefilled (it cannot fit); the message is, clipped to the field's 1000.
    const script = (view.blocks.find((b) => b.block_id === 'script') as { element: { initial_value?: string } }).element;
    expect(script.initial_value).toBeUndefined();
    const message = (view.blocks.find((b) => b.block_id === 'message') as { element: { initial_value?: string } }).element;
    expect(message.initial_value?.length).toBe(1000);
    expect(JSON.stringify(view.blocks)).toContain(`longer than a form holds (${MODAL_SCRIPT_CHARS} characters)`);
    expect(JSON.stringify(view.blocks)).toContain('Showing 100 of 150 targets');
    expect(validateView(renderLoadingModal())).toBeNull();
    expect(validateView(renderTaskModal([], { channel: null, resubmitOf: null }))).toBeNull();
  });

  it('/task logs keeps the last lines of a huge log inside a message', () => {
    const log = Array.from({ length: 100_000 }, (_, i) => `line ${i} ${'x'.repeat(i % 300)}`).join('\n');
    const message = renderLogsAnswer(
      task(7, { status: 'failure', startedAt: new Date() }),
      `${log}\n`,
      'https://countersign.example.com/tasks/7?expires=1&sig=abc',
    );
    expect(validateMessage(message, 'chat.postEphemeral')).toBeNull();
    const text = JSON.stringify(message.blocks);
    expect(text).toContain('line 99999');
    expect(text).not.toContain('line 0 ');
    const tail = logTail('a\nb\nc\n');
    expect(tail).toEqual({ text: 'a\nb\nc', cut: false });
    // Given only the end of a log: its first line may be a piece of one, so it goes, and the size is the whole log's.
    const partial = JSON.stringify(
      renderLogsAnswer(task(7, { status: 'success', startedAt: new Date() }), 'ece of a line\nline 2\nline 3\n', null, { partial: true, totalBytes: 5_000_000 })
        .blocks,
    );
    expect(partial).toContain('line 2\\nline 3');
    expect(partial).not.toContain('ece of a line');
    expect(partial).toContain('The last lines of 5,000,000 bytes of output');
  });
});
