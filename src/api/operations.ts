/**
 * What each API call does. Every change goes through the same use cases as Slack (TaskService),
 * acting as the token's Slack user, so the API has no rules of its own to get wrong.
 */
import type { z } from 'zod';
import type { Config } from '../config/config.js';
import type { Db } from '../store/db.js';
import { executionsOfTask, getExecution } from '../store/executions.js';
import { recentOutputByStep } from '../store/output.js';
import { decisionsFor } from '../store/reviews.js';
import { getTask } from '../store/tasks.js';
import { taskSubject } from '../domain/access.js';
import type { Access } from '../service/access.js';
import type { TaskQueries } from '../service/taskQueries.js';
import { CHANGED_SINCE_DRAWN, type TaskService } from '../service/taskService.js';
import type { Outcome } from '../service/outcome.js';
import type { Execution, ExecutionStep, Task as DomainTask } from '../domain/task.js';
import { ApiError, fromRefusal } from './errors.js';
import { handleLog, type LogDeps } from './log.js';
import { assertMayNameChannel, etag, readIfMatch } from './preconditions.js';
import type { Answer, ApiContext, Operation } from './routes.js';
import * as S from './schemas.js';
import { eventJson, executionJson, taskJson, type Links } from './serialize.js';

export interface OperationDeps extends LogDeps {
  db: Db;
  config: Config;
  service: TaskService;
  links: Links;
  /** Who may see which task: every read below answers as if a task the user may not see did not exist. */
  access: Access;
  queries: TaskQueries;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function operations(deps: OperationDeps): Operation[] {
  const { db, service, links } = deps;

  /** One task's answer: its JSON, and its content version as the ETag (what If-Match names). */
  const taskAnswer = (res: ApiContext['res'], task: DomainTask, status = 200, reviews?: Parameters<typeof taskJson>[2]): Answer => {
    res.set('ETag', etag(task.contentVersion));
    return { status, body: { task: taskJson(task, links, reviews) } };
  };
  const unwrap = <T>(outcome: Outcome<T>): T => {
    if (!outcome.ok) throw fromRefusal(outcome);
    return outcome;
  };
  /** A precondition that failed: the task is no longer the version the caller read. */
  const unwrapPrecondition = <T>(outcome: Outcome<T>, id: number): T => {
    if (!outcome.ok && outcome.code === CHANGED_SINCE_DRAWN) {
      throw new ApiError(
        412,
        'precondition_failed',
        `Task #${id} is no longer the version your If-Match names (it was edited since you read it): GET it again, read the new version, and send its ETag.`,
      );
    }
    return unwrap(outcome);
  };
  /** The task, when it exists and `userId` may see it; the same 404 otherwise, so ids cannot be probed. */
  const visibleTask = async (id: number, userId: string) => {
    const task = await getTask(db, id);
    if (!task || !(await deps.access.maySee(userId, taskSubject(task)))) throw new ApiError(404, 'not_found', `There is no task #${id}.`);
    return task;
  };
  const withTails = async (execution: Execution & { steps: ExecutionStep[] }) =>
    executionJson(execution, execution.steps, await recentOutputByStep(db, execution.id, 2000));

  const ETAG_HEADER = { ETag: "The task's content version, quoted: send it as `If-Match` to approve (or edit) exactly this version." };
  const ok = (description: string, schema: z.ZodType) => ({ description, schema });
  const task = { ...ok('The task.', S.TaskEnvelope), headers: ETAG_HEADER };
  const failedPrecondition = { description: 'The task is no longer the version `If-Match` names: it was edited since it was read.', schema: S.ErrorBody };
  const IF_MATCH_DESCRIPTION = 'The ETag of the task as read (GET /tasks/{id}): the change applies only to that version.';

  /**
   * A change asked of a task (or an execution) the token's user may not see answers 404 before
   * anything else, as for one that does not exist: ids cannot be probed through writes either.
   * Nobody who may act on a task is turned away here: authors, reviewers and those who may run
   * or kill all see it.
   */
  const hiddenFromWriter = (op: Operation): Operation => {
    if (op.method === 'get' || !op.path.includes('{id}')) return op;
    return {
      ...op,
      async handle(ctx) {
        const id = ctx.params.id!;
        if (op.path.startsWith('/executions/')) {
          const execution = await getExecution(db, id);
          const task = execution ? await getTask(db, execution.taskId) : null;
          if (!task || !(await deps.access.maySee(ctx.userId, taskSubject(task)))) throw new ApiError(404, 'not_found', `There is no execution ${id}.`);
        } else {
          await visibleTask(id, ctx.userId);
        }
        return op.handle(ctx);
      },
    };
  };

  const all: Operation[] = [
    {
      method: 'post',
      path: '/tasks',
      operationId: 'createTask',
      summary: 'Create a task',
      description:
        'The card and review request appear in Slack as for `/task run`. With `Idempotency-Key`, a retried request returns the task the first one created.',
      body: S.CreateTaskBody,
      headers: [
        {
          name: 'Idempotency-Key',
          description: 'Any printable ASCII string up to 200 characters, unique per intended task.',
          schema: { type: 'string', maxLength: 200 },
        },
      ],
      responses: {
        201: { ...ok('Created.', S.TaskEnvelope), headers: ETAG_HEADER },
        200: { ...ok('Replayed: the task an earlier request with this Idempotency-Key created.', S.TaskEnvelope), headers: ETAG_HEADER },
        422: { description: 'Unknown target, a review nobody could give, or an Idempotency-Key reused for a different task.', schema: S.ErrorBody },
      },
      async handle({ req, res, userId, body }) {
        const input = body as z.output<typeof S.CreateTaskBody>;
        const key = req.get('idempotency-key');
        if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
          throw new ApiError(400, 'invalid_request', 'Idempotency-Key must be 1 to 200 printable ASCII characters.');
        const target = deps.config.targets.get(input.target);
        await assertMayNameChannel(deps.access, userId, input.channel, target?.channel ?? null);
        const created = unwrap(
          await service.create({
            author: userId,
            target: input.target,
            script: input.script,
            message: input.message ?? null,
            type: input.type ?? null,
            source: 'api',
            // Scoped to the user, so two callers' keys never meet.
            sourceKey: key === undefined ? null : `api:${userId}:${key}`,
            channelId: input.channel ?? target?.channel ?? null,
          }),
        );
        if (!created.created && (created.task.target !== input.target || created.task.script !== input.script || created.task.author !== userId)) {
          throw new ApiError(422, 'idempotency_conflict', `This Idempotency-Key already created task #${created.task.id} with a different target or script.`);
        }
        return taskAnswer(res, created.task, created.created ? 201 : 200);
      },
    },
    {
      method: 'get',
      path: '/tasks',
      operationId: 'listTasks',
      summary: 'List tasks, newest first',
      description:
        "Only tasks the token's user may see: their own, those of targets they review or view, those whose card is in a channel they are in (admins see all). To stay fast, one request looks at a bounded number of tasks: a page may then hold fewer than `limit` (even none) while `nextCursor` says where to go on. `nextCursor: null` means there is nothing more.",
      query: S.ListTasksQuery,
      responses: { 200: ok('A page of tasks; pass `nextCursor` as `cursor` for the next.', S.TaskPage) },
      async handle({ query, userId }) {
        const q = query as z.output<typeof S.ListTasksQuery>;
        const page = await deps.queries.visibleTasks(
          {
            ...(q.status ? { status: q.status } : {}),
            ...(q.target ? { target: q.target } : {}),
            ...(q.author ? { author: q.author } : {}),
            ...(q.since ? { since: new Date(q.since) } : {}),
            ...(q.cursor ? { beforeId: Number(q.cursor) } : {}),
            limit: q.limit,
          },
          userId,
        );
        return {
          status: 200,
          body: { tasks: page.items.map((t) => taskJson(t, links)), nextCursor: page.nextCursor === null ? null : String(page.nextCursor) },
        };
      },
    },
    {
      method: 'get',
      path: '/tasks/{id}',
      operationId: 'getTask',
      summary: 'Get a task with its review decisions',
      description: "The `ETag` header is the task's content version: approving needs it as `If-Match`.",
      responses: { 200: task },
      async handle({ params, res, userId }) {
        const found = await visibleTask(params.id!, userId);
        return taskAnswer(res, found, 200, await decisionsFor(db, found.id));
      },
    },
    {
      method: 'patch',
      path: '/tasks/{id}',
      operationId: 'updateTask',
      summary: 'Edit the message or script of a task nobody has reviewed yet (author only)',
      description:
        'An edit gives the task a new content version (a new ETag): approvals drawn before it are refused and the review request is redrawn. After the first review decision, edits are refused (409). With `If-Match`, the edit applies only if the task is still that version (412 otherwise).',
      body: S.UpdateTaskBody,
      headers: [{ name: 'If-Match', description: IF_MATCH_DESCRIPTION, schema: { type: 'string' } }],
      responses: { 200: task, 412: failedPrecondition },
      async handle({ req, res, params, userId, body }) {
        const change = body as z.output<typeof S.UpdateTaskBody>;
        const ifMatch = readIfMatch(req.get('if-match'));
        const expected = ifMatch.kind === 'tag' ? (ifMatch.version ?? '') : undefined;
        const edit = {
          ...(change.message !== undefined ? { message: change.message } : {}),
          ...(change.script !== undefined ? { script: change.script } : {}),
        };
        return taskAnswer(res, unwrapPrecondition(await service.update(params.id!, userId, edit, expected), params.id!).task);
      },
    },
    {
      method: 'delete',
      path: '/tasks/{id}',
      operationId: 'deleteTask',
      summary: 'Delete a task that has not run: it ends as `cancelled` and stays in the audit trail',
      responses: { 200: task },
      async handle({ params, res, userId }) {
        return taskAnswer(res, unwrap(await service.cancel(params.id!, userId)).task);
      },
    },
    {
      method: 'post',
      path: '/tasks/{id}/approve',
      operationId: 'approveTask',
      summary: "Approve as the token's user (a reviewer who is not the author), naming the version read",
      description:
        'Send `If-Match` with the ETag of the task as you read it (GET /tasks/{id}): the approval counts for that content version only. Without it: 428. When the task was edited since: 412, and nothing is approved.',
      body: S.EmptyBody,
      headers: [{ name: 'If-Match', required: true, description: IF_MATCH_DESCRIPTION, schema: { type: 'string' } }],
      responses: {
        200: task,
        412: failedPrecondition,
        428: { description: 'No `If-Match`: say which version you approve.', schema: S.ErrorBody },
      },
      async handle({ req, res, params, userId }) {
        const ifMatch = readIfMatch(req.get('if-match'));
        if (ifMatch.kind !== 'tag') {
          throw new ApiError(
            428,
            'precondition_required',
            'Approving needs `If-Match: "<ETag>"`, the ETag of the task as you read it (GET /tasks/{id}): an approval names the exact version it approves.',
          );
        }
        return taskAnswer(res, unwrapPrecondition(await service.approve(params.id!, userId, ifMatch.version ?? ''), params.id!).task);
      },
    },
    {
      method: 'post',
      path: '/tasks/{id}/reject',
      operationId: 'rejectTask',
      summary: "Reject as the token's user, with an optional reason",
      body: S.RejectBody,
      responses: { 200: task },
      async handle({ params, res, userId, body }) {
        const reason = (body as z.output<typeof S.RejectBody>).reason ?? null;
        return taskAnswer(res, unwrap(await service.reject(params.id!, userId, reason)).task);
      },
    },
    {
      method: 'post',
      path: '/tasks/{id}/start',
      operationId: 'startTask',
      summary: 'Run an approved task (its author or a reviewer)',
      body: S.EmptyBody,
      responses: { 200: task },
      async handle({ params, res, userId }) {
        return taskAnswer(res, unwrap(await service.run(params.id!, userId)).task);
      },
    },
    {
      method: 'post',
      path: '/tasks/{id}/stop',
      operationId: 'stopTask',
      summary: 'Kill a queued or running task (its author or a reviewer)',
      description: '`stopping: true` means a running task was asked to stop; it ends as `killed` shortly after.',
      body: S.EmptyBody,
      responses: { 200: ok('Stopped or stopping.', S.StopAnswer) },
      async handle({ params, userId }) {
        const killed = unwrap(await service.kill(params.id!, userId));
        return { status: 200, body: { task: taskJson(killed.task, links), stopping: killed.stopping } };
      },
    },
    {
      method: 'get',
      path: '/tasks/{id}/executions',
      operationId: 'listTaskExecutions',
      summary: "A task's executions (runs), oldest first",
      responses: { 200: ok('Executions.', S.ExecutionList) },
      async handle({ params, userId }) {
        await visibleTask(params.id!, userId);
        const executions = await executionsOfTask(db, params.id!);
        return { status: 200, body: { executions: executions.map((e) => executionJson(e, e.steps)) } };
      },
    },
    {
      method: 'get',
      path: '/executions/{id}',
      operationId: 'getExecution',
      summary: 'An execution: plan, steps with phase, exit code, failure message and output tail, status_version',
      responses: { 200: ok('The execution.', S.ExecutionEnvelope) },
      async handle({ params, userId }) {
        const execution = await getExecution(db, params.id!);
        const task = execution ? await getTask(db, execution.taskId) : null;
        if (!execution || !task || !(await deps.access.maySee(userId, taskSubject(task))))
          throw new ApiError(404, 'not_found', `There is no execution ${params.id}.`);
        return { status: 200, body: { execution: await withTails(execution) } };
      },
    },
    {
      method: 'post',
      path: '/executions/{id}/stop',
      operationId: 'stopExecution',
      summary: 'Stop a running execution (same rule as Kill)',
      body: S.EmptyBody,
      responses: { 200: ok('Stopping.', S.StopAnswer) },
      async handle({ params, userId }) {
        const execution = await getExecution(db, params.id!);
        if (!execution) throw new ApiError(404, 'not_found', `There is no execution ${params.id}.`);
        if (execution.phase !== 'running') throw new ApiError(409, 'wrong_status', `Execution ${execution.id} already ended (${execution.phase}).`);
        const killed = unwrap(await service.kill(execution.taskId, userId));
        return { status: 200, body: { task: taskJson(killed.task, links), stopping: killed.stopping } };
      },
    },
    {
      method: 'get',
      path: '/tasks/{id}/log',
      operationId: 'getTaskLog',
      summary: "The latest run's stored output (secrets masked), as text or a live stream",
      description:
        'Supports `Range: bytes=` (206) and `?offset=`; with `?follow=1` answers `text/event-stream`: `output` events carry `{"text"}` as it is stored, one `end` event carries `{"status"}` when the task has ended. ' +
        'A stream also ends after an hour with `{"status", "timeout": true, "offset"}`: follow again from that offset, and with `{"status", "revoked": true}` once the token or its user\'s access to the task is gone (checked every 30 s). ' +
        'Live streams are capped per user, per client address and per server (429). Reads of more than 1 MiB are downloads, capped per user and per server (429 `too_many_downloads`); any range or tail is read from the chunks that hold it.',
      query: S.LogQuery,
      responses: {
        200: {
          description: 'The log (or its part from `offset`), or with follow=1 a Server-Sent Events stream.',
          content: { 'text/plain': {}, 'text/event-stream': {} },
          headers: { 'X-Log-Size': 'Bytes stored so far.' },
        },
        206: { description: 'The requested byte range.', content: { 'text/plain': {} }, headers: { 'Content-Range': 'bytes start-end/size' } },
        416: { description: 'The range starts past the end of the log.', schema: S.ErrorBody },
        429: {
          description:
            'Too many live streams (`too_many_followers`) or downloads (`too_many_downloads`) for this user or this server; close one, or read a smaller range.',
          schema: S.ErrorBody,
        },
      },
      async handle(ctx: ApiContext) {
        const found = await visibleTask(ctx.params.id!, ctx.userId);
        await handleLog(deps, ctx, found, ctx.query as z.output<typeof S.LogQuery>);
        return 'handled';
      },
    },
    {
      method: 'get',
      path: '/events',
      operationId: 'listEvents',
      summary: 'The audit trail, newest first',
      description:
        "Only events of tasks, runs and schedules the token's user may see (`subject: run:<id>`, `schedule:<id>`); events about none of them (recipes, runbooks) only to admins. A page may hold fewer than `limit` events while `nextCursor` says where to go on; `nextCursor: null` means there is nothing more.",
      query: S.ListEventsQuery,
      responses: { 200: ok('A page of events.', S.EventPage) },
      async handle({ query, userId }) {
        const q = query as z.output<typeof S.ListEventsQuery>;
        const page = await deps.queries.visibleEvents(
          {
            ...(q.task !== undefined ? { taskId: q.task } : {}),
            ...(q.actor ? { actor: q.actor } : {}),
            ...(q.type ? { type: q.type } : {}),
            ...(q.since ? { since: new Date(q.since) } : {}),
            ...(q.cursor ? { beforeId: Number(q.cursor) } : {}),
            limit: q.limit,
          },
          userId,
        );
        return { status: 200, body: { events: page.items.map(eventJson), nextCursor: page.nextCursor === null ? null : String(page.nextCursor) } };
      },
    },
  ];
  return all.map(hiddenFromWriter);
}
