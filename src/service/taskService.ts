/**
 * The use cases on a task (create, approve, reject, run, kill), shared by every surface (Slack
 * today, the HTTP API later). Each checks the rules, changes Postgres through the lifecycle's
 * guarded transitions, and then tells the bus so views and runners look again.
 */
import type { Config, Target } from '../config/config.js';
import type { TaskStatus } from '../domain/lifecycle.js';
import {
  isApproved,
  decisionsOnVersion,
  isReviewer,
  mayAskAgain,
  mayOperate,
  mayReview,
  reviewExpiresAt,
  stuckGroups,
  type Permission,
  type ReviewPolicy,
} from '../domain/review.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import type { RecipeRef } from '../domain/contentVersion.js';
import { taskRef, type Task, type TaskSource } from '../domain/task.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { requestStop, runningExecutionFor } from '../store/executions.js';
import { decisionsFor, taskReviews } from '../store/reviews.js';
import { recordDecision, type Reviewed } from './reviewDecisions.js';
import pg from 'pg';
import { SharedWrites } from '../store/sharedWrites.js';
import { readTaskView } from '../store/taskView.js';
import {
  bumpViewVersion,
  getTask,
  getTaskForUpdate,
  bornOrExisting,
  insertTask,
  insertTasks,
  insertTasksStatement,
  transitionTask,
  transitionTaskAlong,
  updateTaskContent,
  type TaskBirth,
} from '../store/tasks.js';
import type { Bus } from './bus.js';
import { refuse, type Outcome } from './outcome.js';
import { Reviewers, type ResolvedPolicy } from './reviewers.js';

export interface CreateTaskInput {
  author: string;
  target: string;
  message: string | null;
  type: ScriptType | null;
  script: string;
  source: TaskSource;
  /** Idempotency key: the same key returns the same task. */
  sourceKey: string | null;
  channelId: string | null;
  /** A grace delay: not run before this (`--in 10m`). */
  /** A grace delay in ms (`--in 10m`): not run before now + this, by the database's clock. */
  delayMs?: number | null;
  /** Started from a recipe: the resolved arguments, in declared order. */
  arguments?: Array<{ name: string; kind: 'fixed' | 'options' | 'input'; value: string }> | null;
  /** Started from a recipe: its name and the hash of the definition it was started from. */
  recipe?: RecipeRef | null;
}

/** Why an approval or edit named a version that is not the task's current one (Slack: a stale button; API: If-Match). */
export const CHANGED_SINCE_DRAWN = 'changed_since_drawn';

const STATUS_WORDS: Readonly<Record<TaskStatus, string>> = {
  created: 'being created',
  'pending-review': 'waiting for review',
  approved: 'approved and waiting for Run',
  rejected: 'rejected',
  ready: 'queued to run',
  running: 'running',
  success: 'finished (success)',
  failure: 'finished (failure)',
  killed: 'killed',
  cancelled: 'cancelled',
};

/** A task as reviewed: its decisions in `reviews`, its events on the task. */
const reviewedTask = (task: Task): Reviewed => ({
  subject: taskReviews(task.id),
  ref: taskRef(task.id),
  author: task.author,
  contentVersion: task.contentVersion,
  audit: { taskId: task.id, prefix: 'review' },
});

/** What the service asks of this process's runner (Runner.runApproved). */
export interface LocalRunner {
  /** Makes the approved task ready and claims it here in one statement; the running task, or null when it did not. */
  runApproved(taskId: number, actor: string): Promise<Task | null>;
  /** runApproved threw: told before the Run falls back to the ready path (for the log). */
  failed(error: unknown, taskId: number): void;
}

export class TaskService {
  /**
   * New tasks' births, sharing a statement and a commit when commands come in together (a burst
   * of `/task run`s, an API client creating many): see SharedWrites and insertTasks.
   */
  private readonly births: SharedWrites<TaskBirth, { task: Task; created: boolean }, Task | null>;

  /** This process's runner (useRunner): a Run it has room for starts with one commit instead of two. */
  private localRunner: LocalRunner | null = null;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly bus: Bus,
    /** Resolves review groups' Slack user groups; without one, user groups have no members. */
    private readonly reviewers: Reviewers = new Reviewers(null),
    /** A shared birth statement failed (its tasks are inserted one by one next, or, if it may have committed, each told the error). */
    onSharedBirthFailure: (error: unknown, births: number) => void = () => undefined,
  ) {
    this.births = new SharedWrites({
      maxBatch: 32,
      stallMs: 250,
      maxInFlight: 3,
      fallbackAtOnce: 2,
      // A birth that cannot be sent for this long fails, as it did waiting for a pooled connection.
      maxWaitMs: 10_000,
      // Two births with one source key (a command sent twice) go one after the other: the second answers the first's task.
      fits: (birth, batch) => birth.task.sourceKey === null || batch.every((other) => other.task.sourceKey !== birth.task.sourceKey),
      // Keys in one order in every process: two statements waiting on each other's uncommitted keys would deadlock.
      order: (a, b) => compareKeys(a.task.sourceKey, b.task.sourceKey),
      together: (batch) => insertTasksStatement(db, batch),
      confirm: (birth, born) => bornOrExisting(db, birth, born),
      alone: async (birth) => (await insertTasks(db, [birth]))[0]!,
      // Again one by one only when Postgres refused the statement (it did not commit): a birth
      // without a source key written twice would be two tasks. A lost connection fails each.
      retryAlone: (error) => error instanceof pg.DatabaseError,
      onSharedFailure: onSharedBirthFailure,
    });
  }

  targets(): Target[] {
    return [...this.config.targets.values()];
  }

  async create(input: CreateTaskInput): Promise<Outcome<{ task: Task; created: boolean }>> {
    return this.createTask(input, null);
  }

  /**
   * The author asks again after a reject: a new task on the same target, with the script and
   * message changed as given (else as they were), reviewed from scratch. The old task records
   * what became of it (`task.resubmitted` {as}), the new one where it came from
   * (`task.created` {resubmissionOf}). A task is resubmitted once: asking again returns the
   * same new task (`created: false`).
   */
  async resubmit(
    taskId: number,
    userId: string,
    change: { script?: string; message?: string | null; delayMs?: number | null } = {},
  ): Promise<Outcome<{ task: Task; created: boolean }>> {
    const old = await getTask(this.db, taskId);
    if (!old) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
    if (old.author !== userId) return refuse('not_author', `Only the author of ${taskRef(taskId)} (<@${old.author}>) may resubmit it.`);
    if (old.status !== 'rejected') {
      return refuse('not_rejected', `${taskRef(taskId)} is ${STATUS_WORDS[old.status]}; only a rejected task can be resubmitted.`);
    }
    const script = change.script ?? old.script;
    if (script.trim() === '') return refuse('empty_script', 'The script is empty.');
    if (script !== old.script && hasFixedArguments(old)) return refuse('fixed_arguments', fixedArgumentsRefusal(old));
    return this.createTask(
      {
        author: old.author,
        target: old.target,
        message: change.message !== undefined ? change.message : old.message,
        type: old.type,
        script,
        source: old.source,
        // One resubmission per rejected task: a double submit finds the first.
        sourceKey: `resubmit:${old.id}`,
        channelId: old.channelId,
        delayMs: change.delayMs ?? null,
        // The script still takes the arguments it was started with; it is the recipe's only while unchanged.
        arguments: old.arguments ?? null,
        recipe: script === old.script ? old.recipe : null,
      },
      old.id,
    );
  }

  /**
   * Run again: a finished task (or one that never ran) asked for once more with the same content
   * (target, type, script, message, arguments, recipe), by `userId`: its author or a reviewer of
   * its target. A new task, reviewed again where the target requires review (the old approvals
   * were for the old task). A run's step is run again with its run (RunService.again).
   * `sourceKey` (Slack: one per click on one drawing of the card) answers the task it made
   * before (created: false).
   */
  async again(
    taskId: number,
    userId: string,
    source: TaskSource = 'slack',
    sourceKey: string | null = null,
  ): Promise<Outcome<{ task: Task; created: boolean }>> {
    const old = await getTask(this.db, taskId);
    if (!old) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
    if (old.runStep) return refuse('run_step', `${taskRef(taskId)} is a step of run ${old.runStep.runId}: run the run again instead.`);
    const allowed = await this.mayOperate(old, userId, 'run again');
    if (!allowed.ok) return allowed;
    if (!['success', 'failure', 'killed', 'cancelled', 'rejected'].includes(old.status)) {
      return refuse('wrong_status', `${taskRef(taskId)} is ${STATUS_WORDS[old.status]}; only a finished task can be run again.`);
    }
    const again = mayAskAgain(old.status, old.author, userId, taskRef(taskId));
    if (!again.ok) return again;
    const created = await this.createTask(
      {
        author: userId,
        target: old.target,
        message: old.message,
        type: old.type,
        script: old.script,
        source,
        sourceKey,
        channelId: old.channelId,
        arguments: old.arguments ?? null,
        recipe: old.recipe,
      },
      null,
    );
    if (created.ok && created.created) {
      await appendEvent(this.db, { taskId, type: 'task.again', actor: userId, data: { as: created.task.id } });
      // The old card is redrawn with a new version on its Run again button: a click on that
      // drawing asks anew, a repeat of the click just handled does not (its sourceKey).
      await bumpViewVersion(this.db, taskId);
      this.bus.emit('task-changed', taskId);
    }
    return created;
  }

  /** The target's review policy with its user groups' members resolved; null when the target has no review. */
  async resolvedPolicy(taskOrTarget: Task | string): Promise<ReviewPolicy | null> {
    return (await this.resolve(typeof taskOrTarget === 'string' ? taskOrTarget : taskOrTarget.target))?.policy ?? null;
  }

  /** Is `userId` in one of the target's review groups (user group members included)? */
  async isReviewerOf(target: string, userId: string): Promise<boolean> {
    return isReviewer(await this.resolvedPolicy(target), userId);
  }

  /** The targets `userId` reviews (e.g. to list the tasks waiting for their review). */
  async reviewedTargets(userId: string): Promise<string[]> {
    const names = [...this.config.targets.values()].filter((target) => target.review !== null).map((target) => target.name);
    const reviews = await Promise.all(names.map((name) => this.isReviewerOf(name, userId)));
    return names.filter((_, index) => reviews[index]);
  }

  private async createTask(input: CreateTaskInput, resubmissionOf: number | null): Promise<Outcome<{ task: Task; created: boolean }>> {
    const target = this.config.targets.get(input.target);
    if (!target) {
      const known = [...this.config.targets.keys()].map((name) => `\`${name}\``).join(', ');
      return refuse('unknown_target', `There is no target \`${input.target}\`. ${known === '' ? 'No targets are configured yet.' : `Targets: ${known}.`}`);
    }
    const resolved = await this.resolve(target.name);
    // A group whose user group Slack could not list right now is not known to be stuck: let the task wait for it.
    const writer = input.recipe?.writtenBy;
    const stuck = resolved ? stuckGroups(resolved.policy, resolved.unknown, input.author, writer ? [writer] : []) : [];
    if (stuck.length > 0) {
      const names = stuck.map((group) => `*${group.name}*`).join(', ');
      return refuse(
        'unreachable_review',
        `Your task on \`${target.name}\` could never be approved: ${names} would need approvals from people other than you${writer && writer !== input.author ? ` and <@${writer}> (who wrote the recipe)` : ''}, and has too few. Ask someone else to run it, or ask the countersign admins to add reviewers.`,
      );
    }
    const newTask = {
      author: input.author,
      target: target.name,
      type: input.type ?? target.type,
      script: input.script,
      message: input.message,
      source: input.source,
      sourceKey: input.sourceKey,
      channelId: input.channelId,
      reviewChannel: target.review?.channel ?? null,
      delayMs: input.delayMs ?? null,
      ...(input.arguments ? { arguments: input.arguments } : {}),
      recipe: input.recipe ?? null,
    };
    // Born reviewed or ready in the statement that inserts it, with both audit events: one round
    // trip and one commit on the path of the `/task run` ack.
    const birth = {
      actor: input.author,
      enter: target.review ? ('pending-review' as const) : ('ready' as const),
      data: {
        target: target.name,
        type: newTask.type,
        source: input.source,
        reviewed: target.review !== null,
        ...(input.recipe ? { recipe: input.recipe } : {}),
        ...(resubmissionOf !== null ? { resubmissionOf } : {}),
      },
    };
    const result: Outcome<{ task: Task; created: boolean }> =
      resubmissionOf === null
        ? { ok: true, ...(await this.births.write({ task: newTask, birth })) }
        : await this.db.transaction(async (trx): Promise<Outcome<{ task: Task; created: boolean }>> => {
            // Serialises with anything else done to the old task, and checks it is still rejected.
            const old = await getTaskForUpdate(trx, resubmissionOf);
            if (old?.status !== 'rejected') return refuse('not_rejected', `${taskRef(resubmissionOf)} is no longer rejected; it cannot be resubmitted.`);
            const inserted = await insertTask(trx, newTask, birth);
            if (inserted.created) {
              await appendEvent(trx, { taskId: resubmissionOf, type: 'task.resubmitted', actor: input.author, data: { as: inserted.task.id } });
              // The old card says what became of it ("resubmitted as #N"): it is behind until redrawn.
              await bumpViewVersion(trx, resubmissionOf);
            }
            return { ok: true, ...inserted };
          });
    if (result.ok && result.created) {
      // Nobody elsewhere follows it yet (insertTasks); its ready NOTIFY went out with it.
      this.changed(result.task, true, true);
      if (resubmissionOf !== null) this.bus.emit('task-changed', resubmissionOf);
    }
    return result;
  }

  /**
   * `seenVersion`: the content version the reviewer saw (the Approve button's, the API's
   * If-Match). Any other version is refused: nobody approves what they did not see. Only
   * callers with no reviewer behind them (tests, internal tools) leave it out.
   */
  async approve(taskId: number, userId: string, seenVersion?: string): Promise<Outcome<{ task: Task }>> {
    // Slack is asked (if at all) before the transaction: no row lock is held while it answers.
    const resolved = await this.resolveFor(taskId);
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ task: Task }>> => {
      // The row lock serialises concurrent approvals and edits of one task, so the checks below hold until commit.
      const task = await getTaskForUpdate(trx, taskId);
      const checked = this.checkReviewable(task, taskId, userId, resolved);
      if (!checked.ok) return checked;
      if (await this.reviewExpired(trx, checked.task, checked.policy)) {
        return refuse('expired', `The review of ${taskRef(taskId)} has expired; it will not run. Its author can resubmit it.`);
      }
      const { policy } = checked;
      const current = checked.task;
      if (seenVersion !== undefined && seenVersion !== current.contentVersion) {
        return refuse(
          CHANGED_SINCE_DRAWN,
          `${taskRef(taskId)} changed since this request was drawn; the request now shows the new version. Read it again before approving.`,
        );
      }
      const recorded = await recordDecision(trx, reviewedTask(current), policy, { userId, verdict: 'approve', reason: null });
      if (!recorded.ok) return recorded;
      if (!recorded.approved) return { ok: true, task: current };
      const approved = await transitionTask(trx, {
        taskId,
        from: 'pending-review',
        to: 'approved',
        actor: userId,
        data: { contentVersion: current.contentVersion },
      });
      if (!approved || !policy.autoRun) return { ok: true, task: approved ?? current };
      const ready = await transitionTask(trx, { taskId, from: 'approved', to: 'ready', actor: null, data: { autoRun: true } });
      return { ok: true, task: ready ?? approved };
    });
    if (outcome.ok) this.changed(outcome.task);
    return outcome;
  }

  async reject(taskId: number, userId: string, reason: string | null): Promise<Outcome<{ task: Task }>> {
    const resolved = await this.resolveFor(taskId);
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ task: Task }>> => {
      const task = await getTaskForUpdate(trx, taskId);
      const checked = this.checkReviewable(task, taskId, userId, resolved);
      if (!checked.ok) return checked;
      if (await this.reviewExpired(trx, checked.task, checked.policy)) {
        return refuse('expired', `The review of ${taskRef(taskId)} has expired; it will not run. Its author can resubmit it.`);
      }
      const recorded = await recordDecision(trx, reviewedTask(checked.task), checked.policy, { userId, verdict: 'reject', reason });
      if (!recorded.ok) return recorded;
      const rejected = await transitionTask(trx, { taskId, from: 'pending-review', to: 'rejected', actor: userId, data: { reason } });
      return { ok: true, task: rejected ?? checked.task };
    });
    if (outcome.ok) this.changed(outcome.task);
    return outcome;
  }

  /** May `userId` review this task now? Used before opening the reject modal, too. */
  async checkMayReview(taskId: number, userId: string): Promise<Outcome<{ task: Task }>> {
    const task = await getTask(this.db, taskId);
    const checked = this.checkReviewable(task, taskId, userId, task ? await this.resolve(task.target) : null);
    return checked.ok ? { ok: true, task: checked.task } : checked;
  }

  /** Runs clicked here are claimed by this process's runner when it has room (see run). */
  useRunner(runner: LocalRunner): void {
    this.localRunner = runner;
  }

  async run(taskId: number, userId: string): Promise<Outcome<{ task: Task }>> {
    // The task and its decisions in one statement (the read behind a card), so one round trip, and
    // the decisions are those of the task as read. The approvals that count are picked by its
    // version; an edit since then moved the task out of approved, which the claim below checks.
    const read = await readTaskView(this.db, taskId);
    if (!read) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
    const { task, decisions } = read.view;
    const allowed = await this.mayOperate(task, userId, 'run');
    if (!allowed.ok) return allowed;
    if (task.status !== 'approved') return this.wrongStatus(task, 'run');
    // An approval is checked again when it is used: a reviewer who left the group since, or a
    // policy made stricter, no longer counts (as a schedule's approval is checked at each firing).
    const resolved = await this.resolve(task.target);
    if (resolved && !isApproved(resolved.policy, task.author, decisionsOnVersion(decisions, task.contentVersion))) {
      if (resolved.unknown.length > 0) {
        return refuse(
          'unverified',
          `Slack cannot list the members of ${resolved.unknown.map((id) => `<!subteam^${id}>`).join(', ')} right now, so the approvals of ${taskRef(taskId)} cannot be checked. Try again in a minute.`,
        );
      }
      const back = await transitionTask(this.db, {
        taskId,
        from: 'approved',
        to: 'pending-review',
        actor: userId,
        data: { reason: 'approval-no-longer-holds' },
      });
      if (back) this.changed(back);
      return refuse(
        'review_again',
        `The approvals of ${taskRef(taskId)} no longer satisfy the review of \`${task.target}\` (a reviewer left a group, or the policy changed since), so it went back to review. It can run once approved again.`,
      );
    }
    // Nothing runs on a connection before the claim; opening it now saves the claim's wait for a handshake.
    this.bus.emit('run-coming', task.target);
    // This process's runner, when it has room, claims the task in the statement that makes it ready.
    const running = await this.runHere(taskId, userId);
    if (running) return { ok: true, task: running };
    // The other processes hear of the change from this statement: no NOTIFY of its own beside the claim.
    const { task: ready } = await transitionTaskAlong(this.db, { taskId, from: 'approved', to: 'ready', actor: userId }, null, { notifyChanged: true });
    if (!ready) return this.wrongStatus((await getTask(this.db, taskId)) ?? task, 'run');
    this.changed(ready, true);
    return { ok: true, task: ready };
  }

  /** A queued task is killed at once; a running one gets a stop request its runner acts on. */
  async kill(taskId: number, userId: string): Promise<Outcome<{ task: Task; stopping: boolean }>> {
    const task = await getTask(this.db, taskId);
    if (!task) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
    const allowed = await this.mayOperate(task, userId, 'kill');
    if (!allowed.ok) return allowed;
    if (task.status === 'ready') {
      const killed = await transitionTask(this.db, {
        taskId,
        from: 'ready',
        to: 'killed',
        actor: userId,
        set: { failure_message: `killed by <@${userId}> before it started`, finished_at: this.db.fn.now() as unknown as Date },
      });
      if (killed) {
        this.changed(killed);
        return { ok: true, task: killed, stopping: false };
      }
      return this.kill(taskId, userId);
    }
    if (task.status !== 'running') return this.wrongStatus(task, 'kill');
    const execution = await runningExecutionFor(this.db, taskId);
    if (!execution || !(await requestStop(this.db, execution.id, taskId, userId))) {
      // Either it just ended, or someone already asked.
      const now = (await getTask(this.db, taskId)) ?? task;
      if (now.status !== 'running') return this.wrongStatus(now, 'kill');
      return refuse('already_stopping', `${taskRef(taskId)} is already being stopped.`);
    }
    this.bus.emit('stop-requested', execution.id);
    this.bus.emit('task-changed', taskId);
    return { ok: true, task, stopping: true };
  }

  /**
   * Edits the message or script of a task nobody has reviewed yet: the reviewers must see what
   * they approve. Only its author may; after the first decision, create a new task instead. An
   * edit gives the task a new content version, so every Approve button and ETag drawn before it
   * is refused, and the review request is redrawn. `expectedVersion` (the API's If-Match) guards
   * against lost updates: the edit is refused when the task is no longer that version.
   */
  async update(
    taskId: number,
    userId: string,
    change: { message?: string | null; script?: string },
    expectedVersion?: string,
  ): Promise<Outcome<{ task: Task }>> {
    const outcome = await this.db.transaction(async (trx): Promise<Outcome<{ task: Task }>> => {
      const task = await getTaskForUpdate(trx, taskId);
      if (!task) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
      if (task.author !== userId) return refuse('not_author', `Only the author of ${taskRef(taskId)} (<@${task.author}>) may edit it.`);
      if (expectedVersion !== undefined && expectedVersion !== task.contentVersion) {
        return refuse(CHANGED_SINCE_DRAWN, `${taskRef(taskId)} changed since you read it; read it again and make your edit on the current version.`);
      }
      const reviewed = (await decisionsFor(trx, taskId)).length > 0;
      if (task.status !== 'pending-review' || reviewed) {
        return refuse(
          'not_editable',
          `${taskRef(taskId)} is ${reviewed ? 'already being reviewed' : STATUS_WORDS[task.status]}; only a task waiting for its first review can be edited. Create a new task instead.`,
        );
      }
      const fields: string[] = [];
      const edit: { message?: string | null; script?: string } = {};
      if (change.message !== undefined && change.message !== task.message) {
        edit.message = change.message;
        fields.push('message');
      }
      if (change.script !== undefined && change.script !== task.script) {
        if (hasFixedArguments(task)) return refuse('not_editable', fixedArgumentsRefusal(task));
        edit.script = change.script;
        fields.push('script');
      }
      if (fields.length === 0) return { ok: true, task };
      const updated = await updateTaskContent(trx, task, edit);
      await appendEvent(trx, {
        taskId,
        type: 'task.updated',
        actor: userId,
        data: { fields, contentVersion: updated.contentVersion, previousVersion: task.contentVersion },
      });
      return { ok: true, task: updated };
    });
    if (outcome.ok) this.changed(outcome.task);
    return outcome;
  }

  /** Deletes a task before it ran: it ends as `cancelled` (the audit keeps it). Same rule as Kill. */
  async cancel(taskId: number, userId: string): Promise<Outcome<{ task: Task }>> {
    const task = await getTask(this.db, taskId);
    if (!task) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
    const allowed = await this.mayOperate(task, userId, 'kill');
    if (!allowed.ok) return allowed;
    const cancelled = await transitionTask(this.db, {
      taskId,
      from: ['pending-review', 'approved', 'ready'],
      to: 'cancelled',
      actor: userId,
      set: { failure_message: `cancelled by <@${userId}> before it ran`, finished_at: this.db.fn.now() as unknown as Date },
    });
    if (!cancelled) {
      const now = (await getTask(this.db, taskId)) ?? task;
      return refuse('wrong_status', `${taskRef(taskId)} is ${STATUS_WORDS[now.status]}; only a task that has not started can be deleted.`);
    }
    this.changed(cancelled);
    return { ok: true, task: cancelled };
  }

  /**
   * The review policy as configured (user groups not resolved: fine for its channel and group
   * names). Rules are checked on `resolvedPolicy`.
   */
  task(taskId: number): Promise<Task | null> {
    return getTask(this.db, taskId);
  }

  policyOf(task: Task) {
    return this.config.targets.get(task.target)?.review ?? null;
  }

  private async resolve(targetName: string): Promise<ResolvedPolicy | null> {
    const policy = this.config.targets.get(targetName)?.review ?? null;
    return policy ? this.reviewers.resolve(policy) : null;
  }

  private async resolveFor(taskId: number): Promise<ResolvedPolicy | null> {
    const task = await getTask(this.db, taskId);
    return task ? this.resolve(task.target) : null;
  }

  /** Run and Kill: the author needs no lookup; anyone else must be a reviewer now. */
  private async mayOperate(task: Task, userId: string, action: string): Promise<Permission> {
    const policy = userId === task.author ? this.policyOf(task) : await this.resolvedPolicy(task);
    return mayOperate(policy, task.author, userId, action, taskRef(task.id));
  }

  /** A review past its deadline is over even before the sweep marks it (the database's clock decides). */
  private async reviewExpired(trx: Queryable, task: Task, policy: ReviewPolicy): Promise<boolean> {
    const expiresAt = reviewExpiresAt(policy, task.statusChangedAt);
    if (!expiresAt) return false;
    const row = (await trx.raw('SELECT now() AS now')) as { rows: Array<{ now: Date }> };
    return expiresAt.getTime() <= (row.rows[0]?.now ?? new Date()).getTime();
  }

  private checkReviewable(task: Task | null, taskId: number, userId: string, resolved: ResolvedPolicy | null) {
    if (!task) return refuse('not_found', `There is no task ${taskRef(taskId)}.`);
    // Resolved for the task's target before the lock; a task's target never changes.
    const policy = this.policyOf(task) ? (resolved?.policy ?? null) : null;
    if (!policy) return refuse('no_review', `${taskRef(taskId)} runs on \`${task.target}\`, which has no review.`);
    const allowed = mayReview(policy, task.author, userId, taskRef(taskId));
    if (!allowed.ok) return allowed;
    // Whoever imported the recipe version it runs wrote its script: the second pair of eyes must not be theirs.
    if (task.recipe?.writtenBy === userId) {
      return refuse('self_review', `You wrote the recipe ${task.recipe.name} that ${taskRef(taskId)} runs, so you cannot review it: ask another reviewer.`);
    }
    if (task.status !== 'pending-review') return refuse('not_pending', `${taskRef(taskId)} is ${STATUS_WORDS[task.status]}; it can no longer be reviewed.`);
    return { ok: true as const, task, policy };
  }

  private wrongStatus(task: Task, action: string) {
    return refuse('wrong_status', `${taskRef(task.id)} is ${STATUS_WORDS[task.status]}, so it cannot ${action === 'run' ? 'be run' : 'be killed'} now.`);
  }

  /** `notified`: the statement that changed it told every process's followers already. `born`: it inserted the task. */
  /**
   * The Run claimed by this process's runner at the click, or null. A claim that failed (the
   * runner's pool busy, a lost connection) falls back to the ready path: if it did commit after
   * all, that transition finds the task no longer approved and changes nothing, and the run its
   * lost answer left carries our key and is ended by our own orphan sweep.
   */
  private async runHere(taskId: number, userId: string): Promise<Task | null> {
    if (!this.localRunner) return null;
    try {
      return await this.localRunner.runApproved(taskId, userId);
    } catch (error) {
      this.localRunner.failed(error, taskId);
      return null;
    }
  }

  private changed(task: Task, notified = false, born = false): void {
    this.bus.emit('task-changed', task.id, task, notified, born ? task : undefined);
    if (task.status === 'ready') this.bus.emit('task-ready', task.id);
  }
}

/**
 * A recipe's fixed values were approved for its own script only, and nobody starting it may learn
 * them: a script of the starter's choosing could print them transformed (past the masking).
 */
function hasFixedArguments(task: Task): boolean {
  return (task.arguments ?? []).some((arg) => arg.kind === 'fixed');
}

function fixedArgumentsRefusal(task: Task): string {
  return `${taskRef(task.id)} carries fixed values of recipe \`${task.recipe?.name ?? '?'}\`, which belong to its script only, so its script cannot be changed. Start the recipe again, or create a new task without them.`;
}

/** Source keys in one order (none last): how births sharing a statement take their keys' locks. */
function compareKeys(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  return a < b ? -1 : 1;
}
