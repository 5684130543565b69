/**
 * RunService: the use cases on a run, shared by every surface (API today, Slack in WP8b). Each
 * checks the rules, changes Postgres through the guarded transitions of src/store/runs.ts, and
 * then wakes the engine (src/runbook/advancer.ts) and the views.
 *
 *   start         plan the runbook (pinned content), create the run and its steps, ask for
 *                 review when it touches reviewed targets, else queue it
 *   approve       one review request for every reviewed target (groups `<target>/<group>`),
 *   reject        bound to the run's content version (buttons carry it, the API's If-Match);
 *                 nobody approves their own run
 *   cancel        before it starts (pending review, approved, waiting out its grace)
 *   stop          Kill: a stop request the engine carries out (running steps stopped, pending
 *                 steps never started, paused steps ended)
 *   decideStep    an approval step's Approve / Reject (named approvers, not the run's creator)
 *   submitInput   an input step's form (who started the run, or the step's `from`)
 *   again         a new run with the same pinned content, reviewed again where needed
 *
 * Interface for the surfaces (WP8b builds Slack on it): see the methods' comments; every one
 * answers an Outcome (ok, or refused with a code and a message a person can act on).
 */
import type { Knex } from 'knex';
import type { Config } from '../config/config.js';
import {
  expiryMessage,
  isReviewer,
  mayAskAgain,
  mayOperate,
  mayReview,
  progress,
  reviewExpiresAt,
  stuckGroups,
  type GroupProgress,
  type ReviewDecision,
  type ReviewPolicy,
} from '../domain/review.js';
import { includesUser } from '../domain/people.js';
import { runRef, runSubject, type Run, type RunStatus, type RunStep, type RunTrigger } from '../domain/run.js';
import { runReviewPolicy } from '../domain/runReview.js';
import { planRun, resolveInputValues, type PlannedStep, type Runbook, type RunPlan } from '../domain/runbook/index.js';
import { markFixedCopies, type ArgumentError, type TaskArgument } from '../domain/recipe.js';
import { contentKey } from '../store/contentKey.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { runReviews, subjectDecisions } from '../store/reviews.js';
import { recordDecision, type Reviewed } from './reviewDecisions.js';
import {
  getRun,
  insertRun,
  runsByIds,
  insertStepDecision,
  lockRun,
  requestRunStop,
  stepDecisions,
  stepsOfRun,
  transitionRun,
  transitionRunStep,
} from '../store/runs.js';
import type { Bus } from './bus.js';
import { refuse, type Outcome } from './outcome.js';
import { Reviewers, type ResolvedPolicy } from './reviewers.js';
import type { Viewer } from './access.js';
import { scanVisible, type Page } from './taskQueries.js';

/** Why an approval named a version that is not the run's (a stale button; a stale If-Match). */
export const RUN_CHANGED_SINCE_DRAWN = 'changed_since_drawn';

export interface StartRunInput {
  runbooks: ReadonlyMap<string, Runbook>;
  reference: string;
  values: Readonly<Record<string, unknown>>;
  creator: string;
  trigger: RunTrigger;
  message: string | null;
  /** Where the run's card goes; the first script target's channel otherwise. */
  channelId: string | null;
  sourceKey: string | null;
  runbookHash: string | null;
}

/** Everything a card, review request or API answer shows about one run. */
export interface RunView {
  run: Run;
  steps: RunStep[];
  decisions: ReviewDecision[];
  /** Per reviewed group (`<target>/<group>`): approvals needed and given, on the current version. */
  review: GroupProgress[] | null;
  /** Per approval step (by row id): its decisions. */
  stepDecisions: Record<number, Array<{ userId: string; verdict: 'approve' | 'reject'; reason: string | null; at: Date }>>;
}

export type StartRunOutcome =
  | { ok: true; run: Run; created: boolean }
  | { ok: false; code: 'invalid_arguments'; message: string; errors: ArgumentError[] }
  | { ok: false; code: string; message: string; errors?: undefined };

const STATUS_WORDS: Readonly<Record<RunStatus, string>> = {
  created: 'being created',
  'pending-review': 'waiting for review',
  approved: 'approved',
  rejected: 'rejected',
  ready: 'queued to run',
  running: 'running',
  success: 'finished (success)',
  failure: 'finished (failure)',
  killed: 'killed',
  cancelled: 'cancelled',
};

/** A run as reviewed: its decisions in `run_reviews`, its events under `run:<id>`. */
const reviewedRun = (run: Run): Reviewed => ({
  subject: runReviews(run.id),
  ref: runRef(run.id),
  author: run.creator,
  contentVersion: run.contentVersion,
  audit: { taskId: null, subject: runSubject(run.id), prefix: 'run.review' },
});

export class RunService {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    private readonly reviewers: Reviewers = new Reviewers(null),
  ) {}

  /** The run's review policy as configured (user groups not resolved); null: no reviewed target. */
  policyOf(run: Pick<Run, 'plan'> | { targets: readonly string[] }): ReviewPolicy | null {
    return runReviewPolicy('plan' in run ? run.plan.targets : run.targets, (target) => this.config.targets.get(target)?.review);
  }

  /** The run's review policy with its user groups' members in place. */
  async resolvedPolicy(run: Pick<Run, 'plan'> | { targets: readonly string[] }): Promise<ReviewPolicy | null> {
    return (await this.resolvePolicy(run))?.policy ?? null;
  }

  /** As resolvedPolicy, with the user groups whose members Slack could not list (`unknown`). */
  async resolvePolicy(run: Pick<Run, 'plan'> | { targets: readonly string[] }): Promise<ResolvedPolicy | null> {
    const policy = this.policyOf(run);
    return policy ? this.reviewers.resolve(policy) : null;
  }

  get(runId: number): Promise<Run | null> {
    return getRun(this.db, runId);
  }

  async view(runOrId: number | Run, db: Queryable = this.db): Promise<RunView | null> {
    // A run the caller read already (a page of runs.list) is not read again.
    const run = typeof runOrId === 'number' ? await getRun(db, runOrId) : runOrId;
    if (!run) return null;
    const runId = run.id;
    const [steps, decisions] = await Promise.all([stepsOfRun(db, runId), subjectDecisions(db, runReviews(runId))]);
    const policy = this.policyOf(run);
    const current = decisions.filter((d) => d.verdict === 'reject' || d.contentVersion === run.contentVersion);
    const resolved = policy ? (await this.reviewers.resolve(policy)).policy : null;
    const approvalSteps = steps.filter((s) => s.kind === 'approval');
    const perStep = await Promise.all(approvalSteps.map(async (s) => [s.id, await stepDecisions(db, s.id)] as const));
    return { run, steps, decisions, review: resolved ? progress(resolved, run.creator, current) : null, stepDecisions: Object.fromEntries(perStep) };
  }

  /** The planned step behind a step row (the pinned content: script, request, approvers, fields). */
  plannedStep(run: Run, stepId: string): PlannedStep | null {
    for (const group of run.plan.groups) for (const step of group) if (step.id === stepId) return step;
    return null;
  }

  /**
   * Plans and creates a run. A start whose `sourceKey` was seen before answers that run
   * (created: false). Refused: arguments that do not fit (errors name them), a review nobody
   * but the creator could give.
   */
  /** The pinned plan of a start (dependencies, arguments, content version), or why it cannot be planned. */
  async plan(runbooks: ReadonlyMap<string, Runbook>, reference: string, values: Readonly<Record<string, unknown>>) {
    return planRun(runbooks, reference, values, { fixedValueKey: await contentKey(this.db), targets: this.config.targets });
  }

  async start(input: StartRunInput): Promise<StartRunOutcome> {
    const planned = await this.plan(input.runbooks, input.reference, input.values);
    if (!planned.ok) return { ok: false, code: 'invalid_arguments', message: planned.errors.map((e) => e.message).join('; '), errors: planned.errors };
    const resolved = await this.resolvePolicy(planned.plan);
    if (resolved && input.trigger.kind !== 'after') {
      const stuck = stuckGroups(resolved.policy, resolved.unknown, input.creator, planned.plan.writers);
      if (stuck.length > 0) {
        return refuse(
          'unreachable_review',
          `This run could never be approved: ${stuck.map((g) => `*${g.name}*`).join(', ')} would need approvals from people other than you, and has too few. Ask someone else to start it.`,
        );
      }
    }
    const outcome = await this.db.transaction((trx) => this.create(trx, planned.plan, input, null));
    if (outcome.created) this.changed(outcome.run);
    return { ok: true, ...outcome };
  }

  /**
   * Creates a planned run in the caller's transaction (the engine's `after` triggers use it in
   * the transaction that ends the triggering run). Returns the existing run for a known sourceKey.
   */
  async create(
    trx: Knex.Transaction,
    plan: RunPlan,
    input: Omit<StartRunInput, 'runbooks' | 'reference' | 'values'>,
    parent: { runId: number; delayMs: number | null } | null,
  ): Promise<{ run: Run; created: boolean }> {
    const policy = this.policyOf(plan);
    const { arguments: args, ...stored } = plan;
    const firstScriptTarget = plan.groups.flat().find((s) => s.kind === 'script');
    const channelId =
      input.channelId ?? (firstScriptTarget?.kind === 'script' ? (this.config.targets.get(firstScriptTarget.script.target)?.channel ?? null) : null);
    const inserted = await insertRun(
      trx,
      {
        creator: input.creator,
        trigger: input.trigger,
        plan: stored,
        arguments: args,
        runbookHash: input.runbookHash,
        message: input.message,
        channelId,
        reviewChannel: policy?.channel ?? null,
        sourceKey: input.sourceKey,
        parentRunId: parent?.runId ?? null,
        delayMs: parent?.delayMs ?? null,
      },
      plan.groups,
    );
    if (!inserted.created) return inserted;
    const run = inserted.run;
    await appendEvent(trx, {
      taskId: null,
      subject: runSubject(run.id),
      type: 'run.created',
      actor: input.creator,
      data: {
        reference: plan.reference,
        trigger: input.trigger,
        contentVersion: plan.contentVersion,
        targets: plan.targets,
        reviewed: policy !== null,
        ...(input.runbookHash ? { runbookHash: input.runbookHash } : {}),
      },
    });
    const next = await transitionRun(trx, { runId: run.id, from: 'created', to: policy ? 'pending-review' : 'ready', actor: null });
    return { run: next ?? run, created: true };
  }

  /**
   * Approves the run as `userId`, naming the content version they saw (the button's value, the
   * API's If-Match): any other version is refused. Once every group of every reviewed target is
   * satisfied the run is ready (approval steps are its own gates, later).
   */
  async approve(runId: number, userId: string, seenVersion: string): Promise<Outcome<{ run: Run }>> {
    const policy = await this.policyFor(runId);
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ run: Run }>> => {
      const run = await lockRun(trx, runId);
      const checked = await this.checkReviewable(trx, run, runId, userId, policy);
      if (!checked.ok) return checked;
      const current = checked.run;
      if (seenVersion !== current.contentVersion) {
        return refuse(
          RUN_CHANGED_SINCE_DRAWN,
          `${runRef(runId)} is not the version you approved: the request you saw was drawn for another version. Read it again before approving.`,
        );
      }
      const recorded = await recordDecision(trx, reviewedRun(current), checked.policy, { userId, verdict: 'approve', reason: null });
      if (!recorded.ok) return recorded;
      if (!recorded.approved) return { ok: true, run: current };
      const approved = await transitionRun(trx, {
        runId,
        from: 'pending-review',
        to: 'approved',
        actor: userId,
        data: { contentVersion: current.contentVersion },
      });
      const ready = await transitionRun(trx, { runId, from: 'approved', to: 'ready', actor: null });
      return { ok: true, run: ready ?? approved ?? current };
    });
    if (outcome.ok) this.changed(outcome.run);
    return outcome;
  }

  async reject(runId: number, userId: string, reason: string | null): Promise<Outcome<{ run: Run }>> {
    const policy = await this.policyFor(runId);
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ run: Run }>> => {
      const run = await lockRun(trx, runId);
      const checked = await this.checkReviewable(trx, run, runId, userId, policy);
      if (!checked.ok) return checked;
      const recorded = await recordDecision(trx, reviewedRun(checked.run), checked.policy, { userId, verdict: 'reject', reason });
      if (!recorded.ok) return recorded;
      const rejected = await transitionRun(trx, {
        runId,
        from: 'pending-review',
        to: 'rejected',
        actor: userId,
        data: { reason },
        set: { failure_message: `rejected by <@${userId}>${reason ? `: ${reason}` : ''}`, finished_at: trx.fn.now() as unknown as Date },
      });
      return { ok: true, run: rejected ?? checked.run };
    });
    if (outcome.ok) this.changed(outcome.run);
    return outcome;
  }

  /** May `userId` review this run now (before opening a reject form, say)? */
  async checkMayReview(runId: number, userId: string): Promise<Outcome<{ run: Run }>> {
    const checked = await this.checkReviewable(this.db, await getRun(this.db, runId), runId, userId, await this.policyFor(runId));
    return checked.ok ? { ok: true, run: checked.run } : checked;
  }

  /** Cancels a run that has not started (its creator or a reviewer): pending review, approved, or waiting out its grace. */
  async cancel(runId: number, userId: string): Promise<Outcome<{ run: Run }>> {
    const run = await getRun(this.db, runId);
    if (!run) return this.notFound(runId);
    const allowed = await this.mayOperate(run, userId, 'cancel');
    if (!allowed.ok) return allowed;
    const cancelled = await transitionRun(this.db, {
      runId,
      from: ['pending-review', 'approved', 'ready'],
      to: 'cancelled',
      actor: userId,
      set: { failure_message: `cancelled by <@${userId}> before it started`, finished_at: this.db.fn.now() as unknown as Date },
    });
    if (!cancelled) return this.wrongStatus((await getRun(this.db, runId)) ?? run, 'be cancelled');
    this.changed(cancelled);
    return { ok: true, run: cancelled };
  }

  /**
   * Kill (its creator or a reviewer): a run that has not started is cancelled; a running one
   * gets a stop request the engine carries out on every replica.
   */
  async stop(runId: number, userId: string): Promise<Outcome<{ run: Run; stopping: boolean }>> {
    const run = await getRun(this.db, runId);
    if (!run) return this.notFound(runId);
    const allowed = await this.mayOperate(run, userId, 'kill');
    if (!allowed.ok) return allowed;
    if (run.status !== 'running') {
      const cancelled = await this.cancel(runId, userId);
      return cancelled.ok ? { ok: true, run: cancelled.run, stopping: false } : cancelled;
    }
    const asked = await this.db.transaction((trx) => requestRunStop(trx, runId, userId));
    const now = (await getRun(this.db, runId)) ?? run;
    if (!asked) {
      if (now.status !== 'running') return this.wrongStatus(now, 'be killed');
      return refuse('already_stopping', `${runRef(runId)} is already being stopped.`);
    }
    this.changed(now);
    return { ok: true, run: now, stopping: true };
  }

  /**
   * Approve or Reject of an approval step (`stepId`: its qualified id, `restart-web.go`). Only
   * its named approvers (users, user group members), never the run's creator; one decision per
   * person. Enough approvals: the step succeeds; a rejection: it fails, with the reason.
   */
  async decideStep(
    runId: number,
    stepId: string,
    userId: string,
    verdict: 'approve' | 'reject',
    reason: string | null = null,
  ): Promise<Outcome<{ run: Run; step: RunStep }>> {
    const run = await getRun(this.db, runId);
    if (!run) return this.notFound(runId);
    const planned = this.plannedStep(run, stepId);
    if (planned?.kind !== 'approval') return refuse('not_found', `${runRef(runId)} has no approval step ${stepId}.`);
    const approval = planned.approval;
    if (userId === run.creator)
      return refuse('self_review', `You started ${runRef(runId)}, so you cannot approve its step ${stepId}: ask one of its approvers.`);
    const members = approval.usergroup ? await this.reviewers.members(approval.usergroup) : [];
    const approver =
      approval.users.includes(userId) || (approval.usergroup !== null && includesUser({ users: [], usergroup: approval.usergroup }, userId, members));
    if (!approver) return refuse('not_reviewer', `Only the approvers of ${stepId} may decide it.`);
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ run: Run; step: RunStep }>> => {
      const locked = await lockRun(trx, runId);
      const step = (await stepsOfRun(trx, runId)).find((s) => s.stepId === stepId);
      if (!locked || !step) return this.notFound(runId);
      if (step.phase !== 'paused')
        return refuse(
          'not_pending',
          `${stepId} of ${runRef(runId)} is ${step.phase === 'pending' ? 'not waiting for approval yet' : 'no longer waiting for approval'}.`,
        );
      if (!(await insertStepDecision(trx, { stepId: step.id, userId, verdict, reason }))) return refuse('already_decided', `You already decided ${stepId}.`);
      await appendEvent(trx, {
        taskId: null,
        subject: runSubject(runId),
        type: `run.step.${verdict === 'approve' ? 'approved' : 'rejected'}`,
        actor: userId,
        data: { step: stepId, ...(reason ? { reason } : {}) },
      });
      const decisions = await stepDecisions(trx, step.id);
      const approvals = decisions.filter((d) => d.verdict === 'approve').length;
      let changed: RunStep | null = null;
      if (verdict === 'reject') {
        changed = await transitionRunStep(trx, {
          stepId: step.id,
          from: 'paused',
          to: 'failed',
          actor: userId,
          set: { decided_by: userId, failure_message: `rejected by <@${userId}>${reason ? `: ${reason}` : ''}` },
        });
      } else if (approvals >= approval.approvals) {
        changed = await transitionRunStep(trx, { stepId: step.id, from: 'paused', to: 'succeeded', actor: userId, set: { decided_by: userId } });
      } else {
        await trx('runs').where({ id: runId }).increment('view_version', 1);
      }
      return { ok: true, run: locked, step: changed ?? step };
    });
    if (outcome.ok) this.changed(outcome.run);
    return outcome;
  }

  /**
   * An input step's values (`values` by field name): checked against its fields, they become
   * the step's outputs. Only the step's `from` people, else whoever started the run.
   */
  async submitInput(
    runId: number,
    stepId: string,
    userId: string,
    values: Readonly<Record<string, unknown>>,
  ): Promise<Outcome<{ run: Run; step: RunStep }> | { ok: false; code: 'invalid_arguments'; message: string; errors: ArgumentError[] }> {
    const run = await getRun(this.db, runId);
    if (!run) return this.notFound(runId);
    const planned = this.plannedStep(run, stepId);
    if (planned?.kind !== 'input') return refuse('not_found', `${runRef(runId)} has no input step ${stepId}.`);
    if (!(await this.mayGiveInput(run, planned, userId))) {
      return refuse(
        'not_allowed',
        planned.input.from
          ? `Only the people named by ${stepId} may fill it in.`
          : `Only <@${run.creator}>, who started ${runRef(runId)}, may fill in ${stepId}.`,
      );
    }
    const resolved = resolveInputValues(planned, values);
    if (!resolved.ok) return { ok: false, code: 'invalid_arguments', message: resolved.errors.map((e) => e.message).join('; '), errors: resolved.errors };
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ run: Run; step: RunStep }>> => {
      const locked = await lockRun(trx, runId);
      const step = (await stepsOfRun(trx, runId)).find((s) => s.stepId === stepId);
      if (!locked || !step) return this.notFound(runId);
      const changed = await transitionRunStep(trx, {
        stepId: step.id,
        from: 'paused',
        to: 'succeeded',
        actor: userId,
        data: { fields: Object.keys(resolved.outputs) },
        set: { outputs: { outputs: resolved.outputs }, decided_by: userId },
      });
      if (!changed)
        return refuse(
          'not_pending',
          `${stepId} of ${runRef(runId)} is not waiting for input${step.phase === 'succeeded' ? ' any more: it was filled in already' : ''}.`,
        );
      return { ok: true, run: locked, step: changed };
    });
    if (outcome.ok) this.changed(outcome.run);
    return outcome;
  }

  /** May `userId` fill in this input step (App Home and the thread button ask before showing it)? */
  async mayGiveInput(run: Pick<Run, 'creator'>, planned: PlannedStep, userId: string): Promise<boolean> {
    if (planned.kind !== 'input') return false;
    const from = planned.input.from;
    if (!from) return userId === run.creator;
    if (from.users.includes(userId)) return true;
    return from.usergroup !== null && includesUser(from, userId, await this.reviewers.members(from.usergroup));
  }

  /**
   * Is `userId` named by one of the run's approval steps (an approver) or input steps (`from`)?
   * They see the run too: they are asked to act on it.
   */
  async isAskedOf(run: Run, userId: string): Promise<boolean> {
    for (const step of run.plan.groups.flat()) {
      if (step.kind === 'approval' && (await this.mayDecideStep(run, step, userId))) return true;
      if (step.kind === 'input' && step.input.from !== null && (await this.mayGiveInput(run, step, userId))) return true;
    }
    return false;
  }

  /** May `userId` decide this approval step (named approver, not the run's creator)? */
  async mayDecideStep(run: Pick<Run, 'creator'>, planned: PlannedStep, userId: string): Promise<boolean> {
    if (planned.kind !== 'approval' || userId === run.creator) return false;
    if (planned.approval.users.includes(userId)) return true;
    const group = planned.approval.usergroup;
    return group !== null && includesUser({ users: [], usergroup: group }, userId, await this.reviewers.members(group));
  }

  /**
   * Run again: a new run of the same pinned plan and arguments (the same content, so the same
   * content version), started by `userId` (its creator or a reviewer of its targets) and
   * reviewed again where its targets require review. `sourceKey` (Slack: one per click on one
   * drawing of the card; API: its Idempotency-Key) answers the run it made before (created: false).
   */
  async again(
    runId: number,
    userId: string,
    trigger: 'manual' | 'api' = 'manual',
    sourceKey: string | null = null,
  ): Promise<Outcome<{ run: Run; created: boolean }>> {
    const run = await getRun(this.db, runId);
    if (!run) return this.notFound(runId);
    const allowed = await this.mayOperate(run, userId, 'run again');
    if (!allowed.ok) return allowed;
    if (!['success', 'failure', 'killed', 'rejected', 'cancelled'].includes(run.status)) return this.wrongStatus(run, 'run again yet (it has not finished)');
    const again = mayAskAgain(run.status, run.creator, userId, runRef(runId));
    if (!again.ok) return again;
    const plan: RunPlan = { ...run.plan, arguments: run.arguments };
    const resolved = await this.resolvePolicy(run);
    const stuck = resolved ? stuckGroups(resolved.policy, resolved.unknown, userId, run.plan.writers) : [];
    if (stuck.length > 0) {
      return refuse(
        'unreachable_review',
        `Your run could never be approved: ${stuck.map((g) => `*${g.name}*`).join(', ')} would need approvals from people other than you. Ask someone else to run it again.`,
      );
    }
    const outcome = await this.db.transaction(async (trx) => {
      const created = await this.create(
        trx,
        plan,
        { creator: userId, trigger: { kind: trigger, again: runId }, message: run.message, channelId: run.channelId, sourceKey, runbookHash: run.runbookHash },
        null,
      );
      if (created.created) {
        await appendEvent(trx, { taskId: null, subject: runSubject(runId), type: 'run.again', actor: userId, data: { as: created.run.id } });
        // The original's card is redrawn with a new version on its Run again button: a click on
        // that drawing is a new start, a repeat of the click just handled is not (its sourceKey).
        await trx('runs').where({ id: runId }).increment('view_version', 1);
      }
      return created;
    });
    if (outcome.created) {
      this.changed(outcome.run);
      this.changed(run);
    }
    return { ok: true, ...outcome };
  }

  /**
   * Rejects runs whose review waited longer than their targets allow (the shortest
   * `review.expiresAfter` among them), as the task reviews' sweep does; the guarded transition
   * lets one replica, or a reviewer's last click, win. Returns the runs it rejected.
   */
  async expireReviews(limit = 100): Promise<number[]> {
    // Only runs already past the deadline of one of their targets, longest waiting first: runs
    // still within every deadline (a long one, or none) must not fill the batch and hide expired
    // ones. A run past one target's deadline is past its shortest one too. Their targets only, not their plan.
    const expiring = [...this.config.targets.values()].flatMap((t) => (t.review?.expiresAfter ? [{ name: t.name, ms: t.review.expiresAfter.ms }] : []));
    if (expiring.length === 0) return [];
    const pending = (await this.db('runs')
      .where({ status: 'pending-review' })
      .where((past) => {
        for (const target of expiring)
          past.orWhereRaw("jsonb_exists(plan->'targets', ?) AND status_changed_at <= now() - make_interval(secs => ?)", [target.name, target.ms / 1000]);
      })
      .orderBy('status_changed_at')
      .limit(limit)
      .select('id', 'status_changed_at', this.db.raw("plan->'targets' AS targets"))) as Array<{ id: number; targets: string[]; status_changed_at: Date }>;
    const expired: number[] = [];
    const now = (await this.db.raw('SELECT now() AS now')) as { rows: Array<{ now: Date }> };
    for (const row of pending) {
      const policy = this.policyOf({ targets: row.targets });
      const at = policy ? reviewExpiresAt(policy, row.status_changed_at) : null;
      if (!policy || !at || at.getTime() > (now.rows[0]?.now ?? new Date()).getTime()) continue;
      const rejected = await transitionRun(this.db, {
        runId: row.id,
        from: 'pending-review',
        to: 'rejected',
        actor: null,
        data: { reason: 'expired', after: policy.expiresAfter?.text },
        set: { failure_message: expiryMessage(policy), finished_at: this.db.fn.now() as unknown as Date },
      });
      if (rejected) {
        expired.push(row.id);
        this.changed(rejected);
      }
    }
    return expired;
  }

  /**
   * Runs newest first with filters, only those `viewer` may see (its creator, reviewers and
   * viewers of one of its targets, admins, its card channel's members): a bounded scan like the
   * task lists (src/service/taskQueries.ts), with a cursor to go on from.
   */
  async list(
    filter: { status?: RunStatus[]; reference?: string; creator?: string; beforeId?: number; limit: number },
    viewer: Pick<Viewer, 'maySee'>,
  ): Promise<Page<Run>> {
    const page = await scanVisible(
      filter,
      async (batch) =>
        (await this.db('runs')
          .modify((q) => {
            if (batch.status) q.whereIn('status', batch.status);
            if (batch.reference) q.where({ reference: batch.reference });
            if (batch.creator) q.where({ creator: batch.creator });
            if (batch.beforeId) q.where('id', '<', batch.beforeId);
          })
          .orderBy('id', 'desc')
          .limit(batch.limit)
          .select('id', 'creator', 'channel_id', this.db.raw(`plan->'targets' AS targets`))) as Array<{
          id: number;
          creator: string;
          channel_id: string | null;
          targets: string[];
        }>,
      async (row) => ({ id: row.id, visible: await viewer.maySee({ author: row.creator, targets: row.targets, channelId: row.channel_id }), item: row.id }),
    );
    // One query for the page, not one per run (each on its own pool connection).
    return { items: await runsByIds(this.db, page.items), nextCursor: page.nextCursor };
  }

  /** Is `userId` a reviewer of one of the run's targets (user groups resolved)? */
  async isReviewerOf(run: Pick<Run, 'plan'> | { targets: readonly string[] }, userId: string): Promise<boolean> {
    return isReviewer(await this.resolvedPolicy(run), userId);
  }

  /** Values a surface may show: fixed ones hidden. */
  static shownArguments(args: Record<string, TaskArgument[]>): Record<string, TaskArgument[]> {
    return Object.fromEntries(
      Object.entries(args).map(([ref, values]) => [ref, markFixedCopies(values).map((a) => ({ ...a, value: a.kind === 'fixed' ? '•••' : a.value }))]),
    );
  }

  private async policyFor(runId: number): Promise<ReviewPolicy | null> {
    const run = await getRun(this.db, runId);
    return run ? this.resolvedPolicy(run) : null;
  }

  private async checkReviewable(
    db: Queryable,
    run: Run | null,
    runId: number,
    userId: string,
    policy: ReviewPolicy | null,
  ): Promise<{ ok: true; run: Run; policy: ReviewPolicy } | { ok: false; code: string; message: string }> {
    if (!run) return this.notFound(runId);
    if (!policy) return refuse('no_review', `${runRef(runId)} touches no reviewed target.`);
    const allowed = mayReview(policy, run.creator, userId, runRef(runId));
    if (!allowed.ok) return allowed;
    // Whoever wrote an imported runbook it runs is its author too: a second pair of eyes must not be theirs.
    if (run.plan.writers?.includes(userId)) {
      return refuse(
        'self_review',
        `You wrote a runbook ${runRef(runId)} runs (${run.plan.reference} or one it depends on), so you cannot review it: ask another reviewer.`,
      );
    }
    if (run.status !== 'pending-review') return refuse('not_pending', `${runRef(runId)} is ${STATUS_WORDS[run.status]}; it can no longer be reviewed.`);
    const expiresAt = reviewExpiresAt(policy, run.statusChangedAt);
    if (expiresAt) {
      const row = (await db.raw('SELECT now() AS now')) as { rows: Array<{ now: Date }> };
      if (expiresAt.getTime() <= (row.rows[0]?.now ?? new Date()).getTime())
        return refuse('expired', `The review of ${runRef(runId)} has expired; it will not run. Start it again.`);
    }
    return { ok: true, run, policy };
  }

  /** Cancel, Kill and Run again: the creator needs no lookup; anyone else must review one of its targets now. */
  private async mayOperate(run: Run, userId: string, action: string) {
    const policy = userId === run.creator ? this.policyOf(run) : await this.resolvedPolicy(run);
    return mayOperate(policy, run.creator, userId, action, runRef(run.id));
  }

  private notFound(runId: number) {
    return refuse('not_found', `There is no ${runRef(runId)}.`);
  }

  private wrongStatus(run: Run, what: string) {
    return refuse('wrong_status', `${runRef(run.id)} is ${STATUS_WORDS[run.status]}, so it cannot ${what} now.`);
  }

  private changed(run: Run): void {
    this.bus.emit('run-changed', run.id);
  }
}
