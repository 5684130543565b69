// The Block Kit renderers, pure: every status with and without review, hostile inputs at their
// largest, each message checked against Slack's limits (test/support/slackLimits.ts) and for
// what it must show, offer and never do (ping people from user text).
import { describe, expect, it } from 'vitest';
import { MAX_MESSAGE_CHARS, MAX_SCRIPT_BYTES } from '../../src/domain/command.js';
import { TASK_STATUSES, type TaskStatus } from '../../src/domain/lifecycle.js';
import type { ReviewDecision, ReviewPolicy } from '../../src/domain/review.js';
import type { Execution, ExecutionStep, StepPhase, Task, TaskView } from '../../src/domain/task.js';
import { ACTION, REJECT_MODAL_CALLBACK, REJECT_REASON_BLOCK, REJECT_REASON_INPUT, type SlackMessage } from '../../src/slack/render/blocks.js';
import { clip, codeBlock, safeText, safeTextWithMentions, STATUS_LABEL } from '../../src/slack/render/format.js';
import { renderRejectModal } from '../../src/slack/render/rejectModal.js';
import { renderReviewDm, renderReviewRequest, REVIEW_SCRIPT_CHARS } from '../../src/slack/render/reviewRequest.js';
import { CARD_SCRIPT_CHARS, renderTaskCard, type CardContext } from '../../src/slack/render/taskCard.js';
import { escapeLogText, labelLines, LOG_MESSAGE_CHARS, logMessageText, splitToFit } from '../../src/slack/render/threadLog.js';
import { checkMessage, checkView, validateMessage, validateView } from '../support/slackLimits.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

const AUTHOR = 'UAUTHOR01';
const ALICE = 'UALICE001';
const BOB = 'UBOB00001';
const T0 = new Date('2025-03-04T05:06:07.000Z');
const later = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

const policy: ReviewPolicy = {
  channel: 'CREVIEW01',
  autoRun: false,
  groups: [{ name: 'sre', users: [ALICE, BOB, AUTHOR], approvals: 1 }],
};

/** 5 groups of 200 users each, with long names full of characters that need escaping. */
const hugePolicy: ReviewPolicy = {
  channel: 'CREVIEW01',
  autoRun: true,
  groups: Array.from({ length: 5 }, (_, g) => ({
    name: `group-${g}-${'<&>'.repeat(60)}`,
    users: Array.from({ length: 200 }, (_, u) => `U${String(g)}${String(u).padStart(8, '0')}`),
    approvals: 3,
  })),
};

const decision = (userId: string, verdict: 'approve' | 'reject', reason: string | null = null, seconds = 60): ReviewDecision => ({
  userId,
  verdict,
  reason,
  at: later(seconds),
});

function makeTask(status: TaskStatus, over: Partial<Task> = {}): Task {
  const finished = status === 'success' || status === 'failure' || status === 'killed';
  return {
    id: 42,
    createdAt: T0,
    statusChangedAt: later(120),
    status,
    author: AUTHOR,
    target: 'web-prod',
    type: 'bash',
    script: 'df -h /var\nuptime',
    message: 'disk full on web-3?',
    source: 'slack',
    channelId: 'CCHAN0001',
    cardTs: '1700000000.000100',
    reviewChannel: 'CREVIEW01',
    reviewTs: '1700000000.000200',
    viewVersion: 7,
    reviewScriptPosted: false,
    result: {
      exitCode: status === 'success' ? 0 : status === 'failure' ? 2 : null,
      signal: status === 'killed' ? 'TERM' : null,
      durationMs: finished ? 4_321 : null,
      failureMessage: status === 'failure' ? 'the script exited with code 2' : status === 'killed' ? `killed by <@${ALICE}>` : null,
      lastLine: finished ? '/dev/sda1 93% /var' : null,
    },
    startedAt: status === 'running' || finished ? later(200) : null,
    finishedAt: finished ? later(205) : null,
    runAfter: null,
    contentVersion: 'c'.repeat(64),
    recipe: null,
    ...over,
  };
}

function makeStep(index: number, phase: StepPhase, over: Partial<ExecutionStep> = {}): ExecutionStep {
  return {
    runToken: '0123456789abcdef0123',
    id: 1000 + index,
    groupIndex: 0,
    host: `10.0.${Math.floor(index / 250)}.${index % 250}`,
    port: index % 2 === 0 ? 22 : 2222,
    user: 'deploy',
    phase,
    exitCode: phase === 'succeeded' ? 0 : phase === 'failed' ? 1 : null,
    signal: null,
    failureMessage: phase === 'failed' ? 'the script exited with code 1' : null,
    startedAt: phase === 'pending' ? null : later(200),
    finishedAt: phase === 'pending' || phase === 'running' ? null : later(205),
    ...over,
  };
}

function makeExecution(steps: ExecutionStep[], over: Partial<Execution> = {}): Execution & { steps: ExecutionStep[] } {
  return {
    id: 7,
    taskId: 42,
    phase: 'running',
    desiredPhase: null,
    stopRequestedBy: null,
    statusVersion: 3,
    plan: [steps.map(({ host, port, user }) => ({ host, port, user }))],
    runnerId: 'runner-1',
    leaseUntil: later(300),
    startedAt: later(200),
    finishedAt: null,
    exitCode: null,
    failureMessage: null,
    outputBytes: 0,
    ...over,
    steps,
  };
}

const EXECUTION_PHASE: Partial<Record<TaskStatus, Execution['phase']>> = {
  running: 'running',
  success: 'succeeded',
  failure: 'failed',
  killed: 'killed',
};
const STEP_PHASE: Partial<Record<TaskStatus, StepPhase>> = {
  running: 'running',
  success: 'succeeded',
  failure: 'failed',
  killed: 'killed',
};

/** A plausible view of a task in `status`: decisions that led there, an execution once it ran. */
function viewFor(status: TaskStatus, opts: { reviewed?: boolean; task?: Partial<Task>; steps?: number; decisions?: ReviewDecision[] } = {}): TaskView {
  const reviewed = opts.reviewed ?? true;
  let decisions: ReviewDecision[] = [];
  if (reviewed && status === 'rejected') decisions = [decision(ALICE, 'reject', 'use the runbook instead')];
  else if (reviewed && !['created', 'pending-review'].includes(status)) decisions = [decision(ALICE, 'approve')];
  const stepPhase = STEP_PHASE[status];
  const executionPhase = EXECUTION_PHASE[status];
  const execution =
    stepPhase && executionPhase
      ? makeExecution(
          Array.from({ length: opts.steps ?? 1 }, (_, i) => makeStep(i, stepPhase)),
          { phase: executionPhase, finishedAt: status === 'running' ? null : later(205) },
        )
      : null;
  return { task: makeTask(status, opts.task), decisions: opts.decisions ?? decisions, execution };
}

const ctxFor = (withPolicy: boolean, p: ReviewPolicy = policy): CardContext => ({
  targetDescription: 'Production web servers',
  policy: withPolicy ? p : null,
});

// Hostile inputs ------------------------------------------------------------------------------

/** Text that would ping, link or break out of code blocks if it reached Slack unescaped. */
const NASTY = '```<!channel> <!here> <@UEVIL0001> <https://evil.example|click> & &amp; &lt; > < "q" \\ \t';

/** Exactly MAX_SCRIPT_BYTES of script: ``` runs, <, >, & and lines of every length up to 9000. */
const hostileScript = (() => {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < MAX_SCRIPT_BYTES; i++) {
    const line =
      i % 7 === 0
        ? `echo "${'<&>```'.repeat(1500)}"` // a ~9000-char line
        : i % 3 === 0
          ? '```'.repeat(40)
          : `echo ${i} ${NASTY} ${'&'.repeat(i % 50)}`;
    parts.push(line);
    size += line.length + 1;
  }
  return parts.join('\n').slice(0, MAX_SCRIPT_BYTES);
})();

/** Many short lines: the JSON of a code block grows by a `\n` escape per line. */
const shortLinesScript = Array.from({ length: 20_000 }, (_, i) => (i % 2 === 0 ? '&' : '"'))
  .join('\n')
  .slice(0, MAX_SCRIPT_BYTES);
/** Quotes and backslashes: JSON doubles every one of them. */
const quoteScript = '"\\'.repeat(MAX_SCRIPT_BYTES / 2);
/** One 64 KiB line with no newline at all. */
const oneLineScript = '&<>`'.repeat(MAX_SCRIPT_BYTES / 4);

const hostileMessage = `${NASTY}\n`.repeat(Math.ceil(MAX_MESSAGE_CHARS / (NASTY.length + 1))).slice(0, MAX_MESSAGE_CHARS);
const hostile3000 = `${NASTY} `.repeat(60).slice(0, 3000);
/**
 * Failure messages keep user mentions on purpose ("killed by <@U…>" is ours), so the hostile one
 * mentions a user the checks allow, and still tries channel pings and links.
 */
const FAIL_USER = 'UFAIL0001';
const hostileFailure = hostile3000.replaceAll('<@UEVIL0001>', `<@${FAIL_USER}>`);
const fortyDecisions = Array.from({ length: 40 }, (_, i) =>
  decision(`U${String(i).padStart(8, '0')}`, i % 3 === 0 ? 'reject' : 'approve', i % 3 === 0 ? NASTY.repeat(20).slice(0, 1000) : null, i),
);

const SCRIPTS: Record<string, string> = {
  hostile: hostileScript,
  'short lines': shortLinesScript,
  'one line': oneLineScript,
};

// ---------------------------------------------------------------------------------------------
// Helpers

const METHODS = ['chat.postMessage', 'chat.update'] as const;

function expectWithinSlackLimits(msg: SlackMessage): void {
  for (const method of METHODS) {
    // checkMessage gives the reason in the failure output; validateMessage is what callers use.
    expect(checkMessage(msg, method), method).toBeNull();
    expect(validateMessage(msg, method), method).toBeNull();
  }
}

/** Every string inside the blocks (texts of sections, fields, contexts, buttons...). */
function blockTexts(msg: SlackMessage): string[] {
  const texts: string[] = [];
  const walk = (value: unknown): void => {
    if (typeof value === 'string') texts.push(value);
    else if (Array.isArray(value)) value.forEach(walk);
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk(msg.blocks);
  return texts;
}

const allText = (msg: SlackMessage) => blockTexts(msg).join('\n');

/** The action_ids of every button in the message. */
function actionIds(msg: SlackMessage): string[] {
  return msg.blocks.flatMap((block) => (block.type === 'actions' ? block.elements.map((e) => ('action_id' in e ? (e.action_id ?? '') : '')) : []));
}

/**
 * Every `<...>` Slack would treat as markup: only our own mentions (author, reviewers) and
 * `<!date^...>` may appear; nothing from user text may ping, link or mention.
 */
function markupTokens(msg: SlackMessage): string[] {
  return [...allText(msg).matchAll(/<[^<>\n]*>/g)].map((m) => m[0]);
}

function expectNoForeignMarkup(msg: SlackMessage, allowedUsers: readonly string[]): void {
  const allowed = new Set(allowedUsers.map((u) => `<@${u}>`));
  for (const token of markupTokens(msg)) {
    if (token.startsWith('<!date^')) continue;
    expect(allowed.has(token), `unexpected markup ${token}`).toBe(true);
  }
  const text = allText(msg);
  expect(text).not.toContain('<!channel>');
  expect(text).not.toContain('<!here>');
  expect(text).not.toContain('<@UEVIL0001>');
  expect(text).not.toContain('<https://evil.example');
}

/** The bodies of the ``` code blocks in a mrkdwn text. */
function codeBodies(text: string): string[] {
  return [...text.matchAll(/```\n([\s\S]*?)\n```/g)].map((m) => m[1] ?? '');
}

// ---------------------------------------------------------------------------------------------

describe('task card', () => {
  for (const status of TASK_STATUSES) {
    for (const withPolicy of [true, false]) {
      const label = `${status}, ${withPolicy ? 'with' : 'without'} review`;

      it(`${label}: shows id, author, target, status and message, within Slack's limits`, () => {
        const view = viewFor(status, { reviewed: withPolicy });
        const msg = renderTaskCard(view, ctxFor(withPolicy));
        expectWithinSlackLimits(msg);
        const text = allText(msg);
        expect(text).toContain('#42');
        expect(text).toContain(`<@${AUTHOR}>`);
        expect(text).toContain('`web-prod`');
        expect(text).toContain(STATUS_LABEL[status]);
        expect(text).toContain('disk full on web-3?');
        expect(text).toContain('df -h /var\nuptime');
        expect(msg.text).toBe(`#42 on web-prod: ${status}`);
        // The review section appears exactly when the target has a review policy.
        expect(text.includes('*Review*')).toBe(withPolicy);
      });

      it(`${label}: the only buttons are the ones the state allows`, () => {
        const msg = renderTaskCard(viewFor(status, { reviewed: withPolicy }), ctxFor(withPolicy));
        const expected =
          status === 'approved'
            ? [ACTION.run]
            : status === 'ready' || status === 'running'
              ? [ACTION.kill]
              : status === 'rejected'
                ? [ACTION.resubmit]
                : ['success', 'failure', 'killed'].includes(status)
                  ? [ACTION.again]
                  : [];
        expect(actionIds(msg)).toEqual(expected);
        // Buttons carry the task id, so a click names its task; Run again also the view version it was drawn at, and asks first.
        for (const block of msg.blocks) {
          if (block.type !== 'actions') continue;
          for (const element of block.elements) {
            if (element.type === 'button' && element.action_id === ACTION.again) {
              expect(element.value).toMatch(/^42:\d+$/);
              expect(element.confirm?.title?.text).toBe('Run it again?');
              expect(JSON.stringify(element.confirm)).toContain('#42');
            } else expect(element).toMatchObject({ value: '42' });
          }
        }
      });

      for (const [scriptName, script] of Object.entries(SCRIPTS)) {
        it(`${label}: hostile inputs at their largest (${scriptName} script) stay within limits and cannot ping`, () => {
          const view = viewFor(status, {
            reviewed: withPolicy,
            steps: 40,
            decisions: withPolicy ? fortyDecisions : [],
            task: {
              script,
              message: hostileMessage,
              result: {
                exitCode: status === 'success' ? 0 : status === 'failure' ? 255 : null,
                signal: status === 'killed' ? 'KILL' : null,
                durationMs: ['success', 'failure', 'killed'].includes(status) ? 123_456_789 : null,
                failureMessage: ['failure', 'killed'].includes(status) ? hostileFailure : null,
                lastLine: ['success', 'failure', 'killed'].includes(status) ? hostile3000 : null,
              },
            },
          });
          const msg = renderTaskCard(view, { targetDescription: hostile3000, policy: withPolicy ? hugePolicy : null });
          expectWithinSlackLimits(msg);
          expectNoForeignMarkup(msg, [AUTHOR, FAIL_USER, ...fortyDecisions.map((d) => d.userId)]);
          expect(allText(msg)).toContain('#42');
          expect(allText(msg)).toContain(STATUS_LABEL[status]);
        });
      }
    }
  }

  it('offers no Kill once a stop was requested, and says it is stopping', () => {
    const view = viewFor('running');
    expect(actionIds(renderTaskCard(view, ctxFor(true)))).toEqual([ACTION.kill]);
    const stopping: TaskView = { ...view, execution: { ...view.execution!, desiredPhase: 'stopped', stopRequestedBy: ALICE } };
    const msg = renderTaskCard(stopping, ctxFor(true));
    expect(actionIds(msg)).toEqual([]);
    expect(allText(msg)).toContain('stopping');
    expectWithinSlackLimits(msg);
  });

  it('points a resubmitted task to the new one instead of offering to resubmit it again', () => {
    const rejected = viewFor('rejected', { reviewed: true });
    expect(actionIds(renderTaskCard(rejected, ctxFor(true)))).toEqual([ACTION.resubmit]);
    const linked = renderTaskCard(rejected, { ...ctxFor(true), resubmittedAs: { id: 43, permalink: 'https://fake.slack/archives/C1/p1' } });
    expect(actionIds(linked)).toEqual([]);
    expect(allText(linked)).toContain('Resubmitted as <https://fake.slack/archives/C1/p1|#43>');
    // Before Slack gave a permalink (or given something that is not one): the id, unlinked.
    for (const permalink of [null, 'javascript:alert(1)', 'https://x|<!channel>']) {
      const text = allText(renderTaskCard(rejected, { ...ctxFor(true), resubmittedAs: { id: 43, permalink } }));
      expect(text).toContain('Resubmitted as *#43*');
      expect(text).not.toContain('<!channel>');
    }
    // Only a rejected task can have been resubmitted.
    expect(allText(renderTaskCard(viewFor('success'), { ...ctxFor(true), resubmittedAs: { id: 43, permalink: null } }))).not.toContain('Resubmitted');
    expectWithinSlackLimits(linked);
  });

  it('shows the result at the end: exit code, signal, duration, failure and last line', () => {
    const failure = allText(renderTaskCard(viewFor('failure'), ctxFor(true)));
    expect(failure).toContain('exit code *2*');
    expect(failure).toContain('in 4.3s');
    expect(failure).toContain('the script exited with code 2');
    expect(failure).toContain('Last line: `/dev/sda1 93% /var`');

    const killed = allText(renderTaskCard(viewFor('killed'), ctxFor(true)));
    expect(killed).toContain('signal TERM');
    // Our own mention of who killed it stays a mention.
    expect(killed).toContain(`killed by <@${ALICE}>`);

    // No result before the task has run.
    expect(allText(renderTaskCard(viewFor('approved'), ctxFor(true)))).not.toContain('*Result*');
  });

  it('counts hosts for a run on several hosts', () => {
    const running = viewFor('running', { steps: 40 });
    running.execution!.steps.forEach((step, i) => {
      step.phase = i < 10 ? 'succeeded' : i < 13 ? 'failed' : 'running';
    });
    expect(allText(renderTaskCard(running, ctxFor(true)))).toContain('13/40 hosts done, 3 failed');

    const done = viewFor('failure', { steps: 40 });
    done.execution!.steps.forEach((step, i) => {
      step.phase = i < 37 ? 'succeeded' : 'failed';
    });
    expect(allText(renderTaskCard(done, ctxFor(true)))).toContain('37/40 hosts succeeded');
  });

  it('shows who approved or rejected, and why', () => {
    const rejected = allText(renderTaskCard(viewFor('rejected'), ctxFor(true)));
    expect(rejected).toContain(`Rejected by <@${ALICE}>`);
    expect(rejected).toContain('use the runbook instead');
    const approved = allText(renderTaskCard(viewFor('approved'), ctxFor(true)));
    expect(approved).toContain(`Approved by <@${ALICE}>`);
    expect(approved).toContain('1/1');
  });

  it('shortens a long script and says how many lines were left out', () => {
    const lines = Array.from({ length: 2000 }, (_, i) => `echo line ${i}`);
    const msg = renderTaskCard(viewFor('pending-review', { task: { script: lines.join('\n') } }), ctxFor(true));
    const code = blockTexts(msg).find((t) => t.startsWith('```'));
    expect(code).toBeDefined();
    expect(code!.length).toBeLessThanOrEqual(CARD_SCRIPT_CHARS);
    const match = /\n… (\d+) more lines\n```$/.exec(code!);
    expect(match).not.toBeNull();
    const body = code!.slice(4, match!.index);
    const shown = body.split('\n');
    // The lines shown are the script's first lines, whole, and the count covers the rest exactly.
    expect(shown).toEqual(lines.slice(0, shown.length));
    expect(Number(match![1])).toBe(lines.length - shown.length);
    expectWithinSlackLimits(msg);
  });

  it('escapes user text: the message, script, reasons, description and last line cannot ping', () => {
    const view = viewFor('failure', {
      decisions: [decision(ALICE, 'approve'), decision(BOB, 'reject', NASTY)],
      task: {
        message: NASTY,
        script: NASTY,
        result: { exitCode: 1, signal: null, durationMs: 10, failureMessage: `boom <!channel> <https://evil.example|x> <@${BOB}>`, lastLine: NASTY },
      },
    });
    const msg = renderTaskCard(view, { targetDescription: NASTY, policy });
    expectNoForeignMarkup(msg, [AUTHOR, ALICE, BOB]);
    const text = allText(msg);
    expect(text).toContain('&lt;!channel&gt;');
    expect(text).toContain('&lt;@UEVIL0001&gt;');
    // The failure message keeps mentions of users (we write "killed by <@U…>" ourselves), nothing else.
    expect(text).toContain(`:warning: boom &lt;!channel&gt; &lt;https://evil.example|x&gt; <@${BOB}>`);
  });
});

describe('review request', () => {
  for (const status of TASK_STATUSES) {
    it(`${status}: Approve and Reject only while pending review; within Slack's limits`, () => {
      const msg = renderReviewRequest(viewFor(status), policy);
      expectWithinSlackLimits(msg);
      expect(actionIds(msg)).toEqual(status === 'pending-review' ? [ACTION.approve, ACTION.reject] : []);
      const text = allText(msg);
      expect(text).toContain('#42');
      expect(text).toContain(`<@${AUTHOR}>`);
      expect(text).toContain('`web-prod`');
      expect(text).toContain(STATUS_LABEL[status]);
      expect(text).toContain('disk full on web-3?');
      expect(text).toContain('df -h /var\nuptime');
      expect(msg.text).toContain('#42');
    });

    for (const [scriptName, script] of Object.entries(SCRIPTS)) {
      it(`${status}: hostile inputs at their largest (${scriptName} script) stay within limits and cannot ping`, () => {
        const view = viewFor(status, { decisions: fortyDecisions, task: { script, message: hostileMessage } });
        const msg = renderReviewRequest(view, hugePolicy);
        expectWithinSlackLimits(msg);
        expectNoForeignMarkup(msg, [AUTHOR, ...fortyDecisions.map((d) => d.userId), ...hugePolicy.groups.flatMap((g) => g.users)]);
        expect(allText(msg)).toContain(':page_facing_up: The script is too long to show here');
        expect(actionIds(msg)).toEqual(status === 'pending-review' ? [ACTION.approve, ACTION.reject] : []);
      });
    }
  }

  it('shows at most 10 decisions and counts the rest', () => {
    const text = allText(renderReviewRequest(viewFor('pending-review', { decisions: fortyDecisions }), policy));
    expect(text).toContain('… and 30 more');
    expect(text.match(/(Approved|Rejected) by/g)).toHaveLength(10);
  });

  it('names each group, its members and how many approvals it needs', () => {
    const twoGroups: ReviewPolicy = {
      ...policy,
      groups: [
        { name: 'sre', users: [ALICE, BOB], approvals: 1 },
        { name: 'dba', users: ['UCAROL001', 'UDAVE0001'], approvals: 2 },
      ],
    };
    const text = allText(renderReviewRequest(viewFor('pending-review', { decisions: [decision(ALICE, 'approve')] }), twoGroups));
    expect(text).toContain(`*sre* (1 of <@${ALICE}>, <@${BOB}>)`);
    expect(text).toContain('*dba* (2 of <@UCAROL001>, <@UDAVE0001>)');
    expect(text).toContain(':white_check_mark: *sre* 1/1');
    expect(text).toContain(':white_circle: *dba* 0/2');
  });

  it('says the whole script is in the thread only when it is clipped', () => {
    expect(allText(renderReviewRequest(viewFor('pending-review'), policy))).not.toContain('too long to show here');
    const long = renderReviewRequest(viewFor('pending-review', { task: { script: hostileScript } }), policy);
    expect(allText(long)).toContain('too long to show here');
  });

  it('scriptClipped: true for a long script, false for a short one, counting escapes', () => {
    const reviewScriptIsClipped = (script: string) => renderReviewRequest(viewFor('pending-review', { task: { script } }), policy).scriptClipped;
    expect(reviewScriptIsClipped('uptime')).toBe(false);
    expect(reviewScriptIsClipped(hostileScript)).toBe(true);
    // The budget is the code block's characters after escaping, not the raw length.
    const budget = REVIEW_SCRIPT_CHARS - 8;
    expect(reviewScriptIsClipped('a'.repeat(budget))).toBe(false);
    expect(reviewScriptIsClipped('a'.repeat(budget + 1))).toBe(true);
    expect(reviewScriptIsClipped('&'.repeat(Math.floor(budget / 5)))).toBe(false);
    expect(reviewScriptIsClipped('&'.repeat(Math.floor(budget / 5) + 1))).toBe(true);
    // It agrees with what the request shows: a clipped script is not shown whole.
    for (const script of ['uptime', 'a'.repeat(budget), 'a'.repeat(budget + 1), hostileScript]) {
      const shown = codeBlock(script, REVIEW_SCRIPT_CHARS);
      expect(shown.includes(escapeLogText(script))).toBe(!reviewScriptIsClipped(script));
    }
  });
});

describe('messages full of characters JSON escapes', () => {
  // Slack counts the blocks' JSON (slackLimits: msg_blocks_too_long past 12,000), where each `"`,
  // backslash, newline and tab takes two characters. Every field below is at its largest and made
  // of them. Budgeting raw characters per block (2800 + 2900 + 2000 + 3000 in the review request)
  // leaves too little room for that.
  const quotes1000 = '"\\'.repeat(MAX_MESSAGE_CHARS / 2);
  const quotes3000 = '"\\\t\n'.repeat(750);
  const quoteDecisions = fortyDecisions.map((d) => ({ ...d, reason: d.reason === null ? null : quotes1000 }));
  const quoteView = (status: TaskStatus): TaskView =>
    viewFor(status, {
      steps: 40,
      decisions: quoteDecisions,
      task: {
        script: quoteScript,
        message: quotes1000,
        result: { exitCode: 1, signal: null, durationMs: 1000, failureMessage: quotes3000, lastLine: quotes3000 },
      },
    });

  /** Status -> Slack's refusal, for every status where the message is refused. */
  function refusals(render: (view: TaskView) => SlackMessage): Record<string, string> {
    const found: Record<string, string> = {};
    for (const status of TASK_STATUSES) {
      for (const method of METHODS) {
        const problem = checkMessage(render(quoteView(status)), method);
        if (problem) found[`${status} ${method}`] = problem.reason;
      }
    }
    return found;
  }

  it('the task card stays within Slack limits', () => {
    expect(refusals((view) => renderTaskCard(view, { targetDescription: quotes3000, policy: hugePolicy }))).toEqual({});
  });

  it('the review request stays within Slack limits', () => {
    expect(refusals((view) => renderReviewRequest(view, hugePolicy))).toEqual({});
  });
});

describe('reject modal', () => {
  for (const id of [1, 42, 9_999_999, 2_147_483_647]) {
    it(`is a valid view with a title of at most 24 characters for task ${id}`, () => {
      const view = renderRejectModal(id);
      expect(checkView(view)).toBeNull();
      expect(validateView(view)).toBeNull();
      expect(view.title.text.length).toBeLessThanOrEqual(24);
      expect(view.title.text).toContain(`#${id}`);
      expect(view.callback_id).toBe(REJECT_MODAL_CALLBACK);
      expect(JSON.parse(view.private_metadata ?? '')).toEqual({ taskId: id });
      const input = view.blocks.find((b) => b.type === 'input');
      expect(input).toMatchObject({ block_id: REJECT_REASON_BLOCK, optional: true, element: { action_id: REJECT_REASON_INPUT } });
    });
  }
});

describe('format helpers', () => {
  it('clip keeps short text and marks a cut within the limit', () => {
    expect(clip('hello', 5)).toBe('hello');
    expect(clip('hello!', 5)).toBe('hell…');
    expect(clip('hello!', 5)).toHaveLength(5);
    expect(clip('abc', 0).length).toBeLessThanOrEqual(1);
  });

  it('safeText escapes &, < and > and clips after escaping', () => {
    expect(safeText('<!channel> & <@U123>', 100)).toBe('&lt;!channel&gt; &amp; &lt;@U123&gt;');
    const escaped = safeText('<'.repeat(100), 50);
    expect(escaped.length).toBeLessThanOrEqual(50);
    expect(escaped.length).toBeGreaterThan(40);
    expect(escaped).not.toContain('<');
    // The cut never leaves half an entity behind.
    expect(escaped).toMatch(/^(&lt;)+…$/);
  });

  it('safeTextWithMentions keeps user mentions but not channel pings or links', () => {
    const out = safeTextWithMentions('killed by <@U123ABC> and <@W0EXT> <!channel> <!subteam^S1> <https://x|y>', 500);
    expect(out).toContain('<@U123ABC>');
    expect(out).toContain('<@W0EXT>');
    expect(out).toContain('&lt;!channel&gt;');
    expect(out).toContain('&lt;!subteam^S1&gt;');
    expect(out).toContain('&lt;https://x|y&gt;');
    // Not a user id: stays escaped.
    expect(safeTextWithMentions('<@channel>', 100)).toBe('&lt;@channel&gt;');
    expect(safeTextWithMentions('x'.repeat(100), 10)).toHaveLength(10);
  });

  it('codeBlock fences the text, escapes it and stays within max', () => {
    expect(codeBlock('a < b && c', 100)).toBe('```\na &lt; b &amp;&amp; c\n```');
    for (const script of Object.values(SCRIPTS)) {
      for (const max of [100, 1500, 2900]) {
        const block = codeBlock(script, max);
        expect(block.length).toBeLessThanOrEqual(max);
        expect(block.startsWith('```\n')).toBe(true);
        expect(block.endsWith('\n```')).toBe(true);
      }
    }
  });

  it('codeBlock: no run of backticks inside can close the block early', () => {
    for (let run = 1; run <= 12; run++) {
      const text = `a${'`'.repeat(run)}b\n${'`'.repeat(run)}`;
      const block = codeBlock(text, 2900);
      const inner = block.slice(4, -4);
      expect(inner, `a run of ${run} backticks`).not.toContain('```');
    }
  });
});

describe('thread log', () => {
  it('escapeLogText escapes Slack markup', () => {
    expect(escapeLogText('<!channel> a && b > c')).toBe('&lt;!channel&gt; a &amp;&amp; b &gt; c');
  });

  it('escapeLogText leaves no run of three backticks, whatever the run length', () => {
    for (let run = 3; run <= 12; run++) {
      expect(escapeLogText('`'.repeat(run)), `a run of ${run} backticks`).not.toContain('```');
      expect(escapeLogText(`x${'`'.repeat(run)}\n`), `a run of ${run} backticks`).not.toContain('```');
    }
  });

  it('logMessageText wraps the body in one code block, never empty', () => {
    expect(logMessageText('hi')).toBe('```\nhi\n```');
    expect(logMessageText('')).toBe('```\n \n```');
    expect(codeBodies(logMessageText('a\nb'))).toEqual(['a\nb']);
  });

  it('a message of up to LOG_MESSAGE_CHARS escaped characters stays under chat.update’s 4000', () => {
    const samples = [
      'x'.repeat(LOG_MESSAGE_CHARS),
      '&'.repeat(LOG_MESSAGE_CHARS / 5),
      escapeLogText('```'.repeat(2000)).slice(0, LOG_MESSAGE_CHARS),
      escapeLogText(hostileScript).slice(0, LOG_MESSAGE_CHARS),
    ];
    for (const escaped of samples) {
      expect(escaped.length).toBeLessThanOrEqual(LOG_MESSAGE_CHARS);
      const text = logMessageText(escaped);
      expect(text.length).toBeLessThanOrEqual(4000);
      expect(validateMessage({ text }, 'chat.update')).toBeNull();
      expect(validateMessage({ text }, 'chat.postMessage')).toBeNull();
    }
  });

  it('splitToFit keeps short text whole and gives nothing when there is no room', () => {
    expect(splitToFit('abc', 10)).toEqual({ head: 'abc', rest: '' });
    expect(splitToFit('abc', 3)).toEqual({ head: 'abc', rest: '' });
    expect(splitToFit('abc', 0)).toEqual({ head: '', rest: 'abc' });
  });

  it('splitToFit prefers the last newline that fits', () => {
    expect(splitToFit('one\ntwo\nthree', 10)).toEqual({ head: 'one\ntwo\n', rest: 'three' });
    expect(splitToFit('one\ntwo\nthree', 8)).toEqual({ head: 'one\ntwo\n', rest: 'three' });
    expect(splitToFit('one\ntwo\nthree', 7)).toEqual({ head: 'one\n', rest: 'two\nthree' });
    // No newline in reach: cut at the room.
    expect(splitToFit('abcdefghij', 4)).toEqual({ head: 'abcd', rest: 'efghij' });
  });

  it('splitToFit never cuts inside an HTML entity', () => {
    const escaped = escapeLogText('a&b<c>d'.repeat(50));
    for (let room = 1; room < escaped.length; room++) {
      const { head, rest } = splitToFit(escaped, room);
      expect(head + rest).toBe(escaped);
      expect(head.length).toBeLessThanOrEqual(room);
      // The head ends on a whole entity and the rest starts on one.
      expect(head, `room ${room}`).not.toMatch(/&[a-z]*$/);
      expect(rest, `room ${room}`).not.toMatch(/^[a-z]*;/);
    }
    expect(splitToFit('ab&amp;cd', 4)).toEqual({ head: 'ab', rest: '&amp;cd' });
    expect(splitToFit('ab&lt;cd', 5)).toEqual({ head: 'ab', rest: '&lt;cd' });
    expect(splitToFit('ab&lt;cd', 6)).toEqual({ head: 'ab&lt;', rest: 'cd' });
  });

  it('splitting a large output into messages loses nothing and keeps every message within limits', () => {
    let pending = escapeLogText(`${hostileScript}\n${shortLinesScript}`);
    const messages: string[] = [];
    while (pending !== '') {
      const { head, rest } = splitToFit(pending, LOG_MESSAGE_CHARS);
      expect(head.length).toBeGreaterThan(0);
      messages.push(head);
      pending = rest;
    }
    expect(messages.join('')).toBe(escapeLogText(`${hostileScript}\n${shortLinesScript}`));
    for (const body of messages) {
      expect(validateMessage({ text: logMessageText(body) }, 'chat.update')).toBeNull();
      expect(body).not.toMatch(/&[a-z]*$/);
    }
  });

  it('labelLines prefixes every line that has text with its host', () => {
    expect(labelLines('a\nb\n', 'web-1', true)).toBe('[web-1] a\n[web-1] b\n');
    expect(labelLines('tail of a line\nnext', 'web-1', false)).toBe('tail of a line\n[web-1] next');
    expect(labelLines('a\n\nb', 'h', true)).toBe('[h] a\n\n[h] b');
    expect(labelLines('', 'h', false)).toBe('');
  });
});

describe('review request: user groups, expiry, links', () => {
  const SRE_GROUP = 'S0SRE0001';
  const resolvedPolicy: ReviewPolicy = {
    channel: 'CREVIEW01',
    autoRun: false,
    expiresAfter: { ms: 24 * 3600_000, text: '24h' },
    groups: [
      { name: 'sre', users: [ALICE, BOB], listed: [ALICE], usergroup: SRE_GROUP, approvals: 2, dm: true },
      { name: 'dba', users: [BOB], approvals: 1 },
    ],
  };

  it('names the user group as a mention, not its members one by one, and shows every group’s progress', () => {
    const msg = renderReviewRequest(viewFor('pending-review', { decisions: [decision(BOB, 'approve')] }), resolvedPolicy);
    expectWithinSlackLimits(msg);
    const text = allText(msg);
    expect(text).toContain(`*sre* (2 of <!subteam^${SRE_GROUP}>, <@${ALICE}>)`);
    expect(text).toContain(`*dba* (1 of <@${BOB}>)`);
    expect(text).toContain(':white_circle: *sre* 1/2   :white_check_mark: *dba* 1/1');
  });

  it('says when a pending review expires, and that an expired one did', () => {
    const pending = allText(renderReviewRequest(viewFor('pending-review'), resolvedPolicy));
    // statusChangedAt is T0 + 120 s; a day later it expires.
    expect(pending).toContain(`Expires <!date^${Math.floor(later(120).getTime() / 1000) + 86_400}^`);
    const expired = renderReviewRequest(
      viewFor('rejected', {
        reviewed: false,
        task: {
          result: { exitCode: null, signal: null, durationMs: null, failureMessage: 'review expired after 24h without enough approvals', lastLine: null },
        },
      }),
      resolvedPolicy,
    );
    expect(allText(expired)).toContain(':hourglass: review expired after 24h without enough approvals');
    expect(allText(expired)).not.toContain('Expires');
    expect(actionIds(expired)).toEqual([]);
  });

  it('links to the task card once its permalink is known, and refuses a link that is not one', () => {
    const link = 'https://acme.slack.com/archives/CCHAN0001/p1700000000000100';
    const linked = allText(renderReviewRequest(viewFor('pending-review'), policy, { cardPermalink: link }));
    expect(linked).toContain(`:speech_balloon: Asked in <#CCHAN0001>: <${link}|open the task card>`);
    expect(allText(renderReviewRequest(viewFor('pending-review'), policy))).not.toContain('Asked in');
    const forged = allText(renderReviewRequest(viewFor('pending-review'), policy, { cardPermalink: 'https://evil.example|click here' }));
    expect(forged).not.toContain('Asked in');
  });

  it('DMs a reviewer who asks, what, why, and where to click, escaping the message', () => {
    const link = 'https://acme.slack.com/archives/CREVIEW01/p1700000000000200';
    const msg = renderReviewDm(makeTask('pending-review', { message: NASTY }), ['sre'], link);
    expectWithinSlackLimits(msg);
    const text = allText(msg);
    expect(text).toContain(`<@${AUTHOR}> asks for your review of task #42 on \`web-prod\` as a member of *sre*`);
    expect(text).toContain(`<${link}|Open the review request> in <#CREVIEW01>`);
    expect(text).not.toContain('<!channel>');
    expect(text).not.toContain('<@UEVIL0001>');
    expect(allText(renderReviewDm(makeTask('pending-review'), [], null))).toContain('The review request with the script and the buttons is in <#CREVIEW01>');
  });
});

describe('what an approval covers is shown next to every Approve button', () => {
  it('the review request names the interpreter, target and version: a Python script on a bash target says so', () => {
    const script = '""":"\necho "rotating logs"; exit 0\n"""\nimport shutil';
    const text = allText(renderReviewRequest(viewFor('pending-review', { task: { type: 'python3', script } }), policy));
    expect(text).toContain('Runs as *python3* on `web-prod`');
    expect(text).toMatch(/Version `[0-9a-f]{12}`/);
  });

  it('warns of invisible and direction-changing characters in the script', () => {
    const trojan = 'echo safe\n# \u202Eevil\u2066 ; rm -rf /srv\u2069';
    const text = allText(renderReviewRequest(viewFor('pending-review', { task: { script: trojan } }), policy));
    expect(text).toContain('invisible or direction-changing characters (first: U+202E on line 2)');
    expect(allText(renderReviewRequest(viewFor('pending-review', { task: { script: 'echo ok\n\tindented' } }), policy))).not.toContain('invisible');
  });
});
