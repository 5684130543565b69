/**
 * The API of runbooks and runs (issue 11): the same use cases as Slack (RunbookService,
 * RunService, TaskService.again), acting as the token's Slack user. A run's ETag is its content
 * version: approving needs it as If-Match (428 without, 412 when the run is another version).
 */
import type { z } from 'zod';
import type { Config } from '../config/config.js';
import { namedFromOrdered } from '../domain/runbook/index.js';
import { planHashOf, runbooksOf, type RunbookService } from '../service/runbooks.js';
import { RUN_CHANGED_SINCE_DRAWN, type RunService } from '../service/runs.js';
import type { TaskService } from '../service/taskService.js';
import type { Outcome } from '../service/outcome.js';
import type { Db } from '../store/db.js';
import type { Access } from '../service/access.js';
import { runAccessSubject } from '../domain/run.js';
import { getRun } from '../store/runs.js';
import { getTask } from '../store/tasks.js';
import { taskSubject } from '../domain/access.js';
import { ApiError, fromRefusal } from './errors.js';
import { assertMayNameChannel, etag, readIfMatch } from './preconditions.js';
import type { Answer, ApiContext, Operation } from './routes.js';
import * as R from './runSchemas.js';
import * as S from './schemas.js';
import { runbookJson, runJson } from './runSerialize.js';
import { taskJson, type Links } from './serialize.js';

export interface RunOperationDeps {
  db: Db;
  config: Config;
  runs: RunService;
  runbooks: RunbookService;
  tasks: TaskService;
  /** Who may see a run (its creator, reviewers and viewers of its targets, admins, its card channel): every run answer asks. */
  access: Access;
  links: Links & { runStatusUrl(runId: number): string };
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;

export function runOperations(deps: RunOperationDeps): Operation[] {
  const { runs, runbooks, links, config } = deps;
  const ok = (description: string, schema: z.ZodType) => ({ description, schema });
  const unwrap = <T>(outcome: Outcome<T>): T => {
    if (!outcome.ok) throw fromRefusal(outcome);
    return outcome;
  };
  const runAnswer = async (res: ApiContext['res'], runId: number, status = 200, extra: Record<string, unknown> = {}): Promise<Answer> => {
    const view = await runs.view(runId);
    if (!view) throw new ApiError(404, 'not_found', `There is no run ${runId}.`);
    res.set('ETag', etag(view.run.contentVersion));
    return { status, body: { run: runJson(view, config, links.runStatusUrl), ...extra } };
  };
  /** A run the caller may not see answers as one that does not exist: ids cannot be probed. */
  const visibleRun = async (runId: number, userId: string) => {
    const found = await getRun(deps.db, runId);
    if (!found || !((await deps.access.maySee(userId, runAccessSubject(found))) || (await runs.isAskedOf(found, userId))))
      throw new ApiError(404, 'not_found', `There is no run ${runId}.`);
    return found;
  };
  const runbookAnswer = async (res: ApiContext['res'], reference: string, status = 200): Promise<Answer> => {
    // One catalog for the runbook and its plan hash.
    const catalog = await runbooks.catalog();
    const entry = catalog.get(reference);
    if (!entry) throw new ApiError(404, 'not_found', `There is no runbook ${reference}.`);
    res.set('ETag', etag(entry.hash));
    return { status, body: { runbook: runbookJson(entry, planHashOf(catalog, reference) ?? entry.hash) } };
  };
  const idempotencyKey = (ctx: ApiContext, scope: string): string | null => {
    const key = ctx.req.get('idempotency-key');
    if (key === undefined) return null;
    if (!IDEMPOTENCY_KEY.test(key)) throw new ApiError(400, 'invalid_request', 'Idempotency-Key must be 1 to 200 printable ASCII characters.');
    return `api:${ctx.userId}:${scope}:${key}`;
  };
  const IDEMPOTENCY = [
    {
      name: 'Idempotency-Key',
      description: 'Any printable ASCII string up to 200 characters: a retried request answers what the first one made.',
      schema: { type: 'string', maxLength: 200 },
    },
  ];
  const RUN_ETAG = { ETag: "The run's content version, quoted: send it as `If-Match` to approve exactly this version." };
  const run = { ...ok('The run.', R.RunEnvelope), headers: RUN_ETAG };
  const invalid = { description: 'Arguments that do not fit, a review nobody could give, or an invalid definition.', schema: S.ErrorBody };

  return [
    {
      method: 'get',
      path: '/runbooks',
      operationId: 'listRunbooks',
      summary: 'Runbooks (recipes included, as one-step runbooks), with search by name and tag',
      query: R.ListRunbooksQuery,
      responses: { 200: ok('The runbooks, by reference.', R.RunbookList) },
      async handle({ query }) {
        const q = query as z.output<typeof R.ListRunbooksQuery>;
        const tags = q.tag
          ? q.tag
              .split(',')
              .map((t) => t.trim())
              .filter((t) => t !== '')
          : [];
        // One catalog per request, and its runbook map built once for every plan hash.
        const catalog = await runbooks.catalog();
        const found = await runbooks.list({ ...(q.search ? { search: q.search } : {}), tags }, catalog);
        const all = runbooksOf(catalog);
        return { status: 200, body: { runbooks: found.map((entry) => runbookJson(entry, planHashOf(catalog, entry.runbook.reference, all) ?? entry.hash)) } };
      },
    },
    {
      method: 'get',
      path: '/runbooks/{reference}',
      operationId: 'getRunbook',
      summary: 'A runbook: its definition (fixed values left out) and hash',
      responses: { 200: { ...ok('The runbook.', R.RunbookEnvelope), headers: { ETag: 'The hash of its definition.' } } },
      async handle({ names, res }) {
        return runbookAnswer(res, names.reference!);
      },
    },
    {
      method: 'post',
      path: '/runbooks',
      operationId: 'createRunbook',
      summary: 'Import a runbook (you become its owner)',
      description:
        'The body is the `countersign.runbook/v1` format. Its http steps must name a target (whose review then covers them). Only the admins may import fixed arguments (403 `fixed_not_allowed`) or an approval step naming a `usergroup`, `dm: true` or a `channel`, or an input step `from` a `usergroup` (403 `notify_not_allowed`). Audited with its hash.',
      body: R.RunbookDefinitionBody,
      bodyRequired: true,
      responses: { 201: ok('Imported.', R.RunbookEnvelope), 422: invalid },
      async handle({ body, userId, res }) {
        const imported = unwrap(await runbooks.import(body, userId, false));
        return runbookAnswer(res, imported.entry.runbook.reference, 201);
      },
    },
    {
      method: 'put',
      path: '/runbooks/{reference}',
      operationId: 'updateRunbook',
      summary: 'Replace an imported runbook (its owner, an editor or an admin)',
      description: 'Runs started before keep their pinned plan. Audited with the new and previous hash.',
      body: R.RunbookDefinitionBody,
      bodyRequired: true,
      responses: { 200: ok('Replaced.', R.RunbookEnvelope), 422: invalid },
      async handle({ body, names, userId, res }) {
        const definition = body as Record<string, unknown>;
        if (definition.reference !== names.reference) throw new ApiError(422, 'invalid_runbook', `The body's reference must be ${names.reference}.`);
        if (!(await runbooks.find(names.reference!))) throw new ApiError(404, 'not_found', `There is no runbook ${names.reference}.`);
        unwrap(await runbooks.import(body, userId, true));
        return runbookAnswer(res, names.reference!);
      },
    },
    {
      method: 'delete',
      path: '/runbooks/{reference}',
      operationId: 'deleteRunbook',
      summary: 'Remove an imported runbook (its owner, an editor or an admin)',
      responses: { 200: ok('Removed.', R.RemovedAnswer) },
      async handle({ names, userId }) {
        const removed = unwrap(await runbooks.remove(names.reference!, userId));
        return { status: 200, body: { reference: removed.name, hash: removed.hash } };
      },
    },
    {
      method: 'post',
      path: '/runbooks/{reference}/start',
      operationId: 'startRunbook',
      summary: 'Start a runbook with named arguments or TheEye-style ordered task_arguments',
      description:
        'A runbook starts a run (reviewed as one request when it touches reviewed targets); a recipe starts a task, as it always has. With `Idempotency-Key`, a retried request answers what the first one started.',
      body: R.StartRunbookBody,
      headers: IDEMPOTENCY,
      responses: {
        201: ok('Started.', R.StartAnswer),
        200: ok('Replayed: what an earlier request with this Idempotency-Key started.', R.StartAnswer),
        409: { description: 'The runbook, or a runbook it depends on, changed since the `hash` you name (`runbook_changed`).', schema: S.ErrorBody },
        422: invalid,
      },
      async handle(ctx) {
        const input = ctx.body as z.output<typeof R.StartRunbookBody>;
        const reference = ctx.names.reference!;
        let values: Record<string, unknown> = input.arguments ?? {};
        if (input.task_arguments) {
          const entry = await runbooks.find(reference);
          if (!entry) throw new ApiError(404, 'not_found', `There is no runbook ${reference}.`);
          const named = namedFromOrdered(reference, entry.runbook.arguments, input.task_arguments);
          if (!named.ok) throw new ApiError(422, 'invalid_arguments', named.errors.map((e) => e.message).join('; '));
          values = named.given;
        }
        await assertMayNameChannel(deps.access, ctx.userId, input.channel);
        const started = await runbooks.start(reference, {
          starter: ctx.userId,
          values,
          message: input.message ?? null,
          trigger: { kind: 'api' },
          source: 'api',
          sourceKey: idempotencyKey(ctx, `start:${reference}`),
          channelId: input.channel ?? null,
          ...(input.hash ? { expectedHash: input.hash } : {}),
        });
        if (!started.ok) {
          if (started.code === 'unknown_runbook') throw new ApiError(404, 'not_found', started.message);
          if (started.code === 'runbook_changed') throw new ApiError(409, started.code, started.message);
          throw new ApiError(
            422,
            started.code,
            started.message,
            started.errors?.map((e) => ({ path: e.name, message: e.message })),
          );
        }
        const status = started.created ? 201 : 200;
        if (started.kind === 'task') return { status, body: { kind: 'task', task: taskJson(started.task, links) } };
        const answer = await runAnswer(ctx.res, started.run.id, status);
        return { status, body: { kind: 'run', ...(answer as { body: Record<string, unknown> }).body } };
      },
    },
    {
      method: 'get',
      path: '/runs',
      operationId: 'listRuns',
      summary: "Runs the token's user may see, newest first, with filters",
      description:
        'A page may hold fewer than `limit` runs while `nextCursor` says where to go on (the scan is bounded); `nextCursor: null` means there is nothing more.',
      query: R.ListRunsQuery,
      responses: { 200: ok('A page of runs; pass `nextCursor` as `cursor` for the next.', R.RunPage) },
      async handle({ query, userId }) {
        const q = query as z.output<typeof R.ListRunsQuery>;
        const page = await runs.list(
          {
            ...(q.status ? { status: q.status } : {}),
            ...(q.reference ? { reference: q.reference } : {}),
            ...(q.creator ? { creator: q.creator } : {}),
            ...(q.cursor ? { beforeId: Number(q.cursor) } : {}),
            limit: q.limit,
          },
          deps.access.viewer(userId),
        );
        const views = (await Promise.all(page.items.map((r) => runs.view(r)))).filter((v) => v !== null);
        return {
          status: 200,
          body: { runs: views.map((v) => runJson(v, config, links.runStatusUrl)), nextCursor: page.nextCursor === null ? null : String(page.nextCursor) },
        };
      },
    },
    {
      method: 'get',
      path: '/runs/{id}',
      operationId: 'getRun',
      summary: 'A run: its pinned steps with phase, outputs and failure messages, its review',
      description: "The `ETag` header is the run's content version: approving needs it as `If-Match`.",
      responses: { 200: run },
      async handle({ params, res, userId }) {
        await visibleRun(params.id!, userId);
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/approve',
      operationId: 'approveRun',
      summary: "Approve the run's review as the token's user, naming the version read",
      description:
        'Send `If-Match` with the ETag of the run as you read it. Without it: 428; when it is another version: 412, and nothing is approved. Nobody approves their own run.',
      body: S.EmptyBody,
      headers: [{ name: 'If-Match', required: true, description: 'The ETag of the run as read (GET /runs/{id}).', schema: { type: 'string' } }],
      responses: {
        200: run,
        412: { description: 'The run is not the version `If-Match` names.', schema: S.ErrorBody },
        428: { description: 'No `If-Match`.', schema: S.ErrorBody },
      },
      async handle({ req, res, params, userId }) {
        await visibleRun(params.id!, userId);
        const ifMatch = readIfMatch(req.get('if-match'));
        if (ifMatch.kind !== 'tag')
          throw new ApiError(428, 'precondition_required', 'Approving needs `If-Match: "<ETag>"`, the ETag of the run as you read it (GET /runs/{id}).');
        const outcome = await runs.approve(params.id!, userId, ifMatch.version ?? '');
        if (!outcome.ok && outcome.code === RUN_CHANGED_SINCE_DRAWN)
          throw new ApiError(412, 'precondition_failed', `Run ${params.id} is not the version your If-Match names: GET it again and send its ETag.`);
        unwrap(outcome);
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/reject',
      operationId: 'rejectRun',
      summary: "Reject the run's review, with an optional reason",
      body: R.ReasonBody,
      responses: { 200: run },
      async handle({ res, params, userId, body }) {
        await visibleRun(params.id!, userId);
        unwrap(await runs.reject(params.id!, userId, (body as z.output<typeof R.ReasonBody>).reason ?? null));
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/stop',
      operationId: 'stopRun',
      summary: 'Kill a run (its creator or a reviewer): running steps stopped, pending ones never started',
      description: '`stopping: true`: the run was running and ends `killed` shortly; otherwise it had not started and is cancelled.',
      body: S.EmptyBody,
      responses: { 200: ok('Stopping or cancelled.', R.RunStopAnswer) },
      async handle({ res, params, userId }) {
        await visibleRun(params.id!, userId);
        const stopped = unwrap(await runs.stop(params.id!, userId));
        return runAnswer(res, params.id!, 200, { stopping: stopped.stopping });
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/cancel',
      operationId: 'cancelRun',
      summary: 'Cancel a run that has not started (pending review, or waiting out its grace)',
      body: S.EmptyBody,
      responses: { 200: run },
      async handle({ res, params, userId }) {
        await visibleRun(params.id!, userId);
        unwrap(await runs.cancel(params.id!, userId));
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/again',
      operationId: 'runAgain',
      summary: 'Run a finished run again: the same pinned content, reviewed again where needed',
      body: S.EmptyBody,
      headers: IDEMPOTENCY,
      responses: { 201: run, 200: run },
      async handle(ctx) {
        await visibleRun(ctx.params.id!, ctx.userId);
        const again = unwrap(await runs.again(ctx.params.id!, ctx.userId, 'api', idempotencyKey(ctx, `again:${ctx.params.id}`)));
        return runAnswer(ctx.res, again.run.id, again.created ? 201 : 200);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/steps/{step}/approve',
      operationId: 'approveRunStep',
      summary: 'Approve an approval step (its named approvers; not the run’s creator)',
      body: S.EmptyBody,
      responses: { 200: run },
      async handle({ res, params, names, userId }) {
        await visibleRun(params.id!, userId);
        unwrap(await runs.decideStep(params.id!, names.step!, userId, 'approve'));
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/steps/{step}/reject',
      operationId: 'rejectRunStep',
      summary: 'Reject an approval step: it fails, and with it the run (unless continueOnFailure)',
      body: R.ReasonBody,
      responses: { 200: run },
      async handle({ res, params, names, userId, body }) {
        await visibleRun(params.id!, userId);
        unwrap(await runs.decideStep(params.id!, names.step!, userId, 'reject', (body as z.output<typeof R.ReasonBody>).reason ?? null));
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/runs/{id}/steps/{step}/input',
      operationId: 'giveRunStepInput',
      summary: "Fill in an input step's fields (who started the run, or the step's `from` people)",
      body: R.InputBody,
      responses: { 200: run, 422: invalid },
      async handle({ res, params, names, userId, body }) {
        await visibleRun(params.id!, userId);
        const outcome = await runs.submitInput(params.id!, names.step!, userId, (body as z.output<typeof R.InputBody>).values);
        if (!outcome.ok && outcome.code === 'invalid_arguments')
          throw new ApiError(
            422,
            'invalid_arguments',
            outcome.message,
            'errors' in outcome ? outcome.errors?.map((e) => ({ path: e.name, message: e.message })) : undefined,
          );
        unwrap(outcome);
        return runAnswer(res, params.id!);
      },
    },
    {
      method: 'post',
      path: '/tasks/{id}/again',
      operationId: 'runTaskAgain',
      summary: 'Run a finished task again: a new task with the same content, reviewed again where needed',
      body: S.EmptyBody,
      headers: IDEMPOTENCY,
      responses: {
        201: { ...ok('The new task.', S.TaskEnvelope), headers: { ETag: "The new task's content version." } },
        200: ok('Replayed.', S.TaskEnvelope),
      },
      async handle(ctx) {
        const task = await getTask(deps.db, ctx.params.id!);
        if (!task || !(await deps.access.maySee(ctx.userId, taskSubject(task)))) throw new ApiError(404, 'not_found', `There is no task #${ctx.params.id}.`);
        const again = unwrap(await deps.tasks.again(ctx.params.id!, ctx.userId, 'api', idempotencyKey(ctx, `again:${ctx.params.id}`)));
        ctx.res.set('ETag', etag(again.task.contentVersion));
        return { status: again.created ? 201 : 200, body: { task: taskJson(again.task, links) } };
      },
    },
  ];
}
