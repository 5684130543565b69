/**
 * The API's schedule operations, registered beside the task operations. Every change goes
 * through ScheduleService, the same use cases as `/task schedule ...`, acting as the token's
 * Slack user: a schedule made here is reviewed in Slack like one added there, and approving
 * names the content version read (If-Match, 428 without, 412 when it changed).
 *
 * A schedule is seen by whom its target's tasks would be (ScheduleQueries): for anyone else,
 * every call about it answers 404 as for a schedule that does not exist, writes included.
 */
import type { z } from 'zod';
import { nextFireTimes, normalizeCron, scheduleRef, type Schedule } from '../domain/schedule.js';
import type { ReviewDecision } from '../domain/review.js';
import type { ScheduleQueries } from '../service/scheduleQueries.js';
import type { ScheduleService } from '../service/schedules.js';
import type { Outcome } from '../service/outcome.js';
import { ApiError, fromRefusal } from './errors.js';
import { etag, readIfMatch } from './preconditions.js';
import type { Answer, ApiContext, Operation } from './routes.js';
import * as S from './scheduleSchemas.js';
import { EmptyBody, ErrorBody, RejectBody } from './schemas.js';

export interface ScheduleOperationDeps {
  schedules: ScheduleService;
  queries: ScheduleQueries;
  /** The scheduler's clock (next fire times). */
  now?: () => Date;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,200}$/;
/** Refusals whose status differs from the task API's mapping. */
const STATUS: Readonly<Record<string, number>> = { bad_cron: 422, expired: 409, no_change: 409 };

export function scheduleJson(schedule: Schedule, resultChannel: string | null, now: Date, reviews?: readonly ReviewDecision[]) {
  const upcoming = schedule.status === 'active' || schedule.status === 'pending-review' ? nextFireTimes(schedule.cron, schedule.tz, now, 3) : [];
  return {
    id: schedule.id,
    status: schedule.status,
    target: schedule.target,
    author: schedule.author,
    cron: schedule.cron,
    tz: schedule.tz,
    type: schedule.type,
    script: schedule.script,
    message: schedule.message,
    channel: schedule.channelId,
    resultChannel,
    notify: schedule.notify,
    overlap: schedule.overlap,
    catchUp: schedule.catchUp,
    contentVersion: schedule.contentVersion,
    reviewRound: schedule.reviewRound,
    statusReason: schedule.statusReason,
    createdAt: schedule.createdAt.toISOString(),
    approvedAt: schedule.approvedAt ? schedule.approvedAt.toISOString() : null,
    nextFireTimes: upcoming.map((date) => date.toISOString()),
    ...(reviews ? { reviews: reviews.map((r) => ({ userId: r.userId, verdict: r.verdict, reason: r.reason, at: r.at.toISOString() })) } : {}),
  };
}

export function scheduleOperations(deps: ScheduleOperationDeps): Operation[] {
  const { schedules, queries } = deps;
  const now = deps.now ?? (() => new Date());

  const unwrap = <T>(outcome: Outcome<T>): T => {
    if (outcome.ok) return outcome;
    const status = STATUS[outcome.code];
    throw status ? new ApiError(status, outcome.code, outcome.message) : fromRefusal(outcome);
  };
  const answer = async (res: ApiContext['res'], schedule: Schedule, status = 200, withReviews = false): Promise<Answer> => {
    res.set('ETag', etag(schedule.contentVersion));
    const reviews = withReviews ? await schedules.decisions(schedule) : undefined;
    return { status, body: { schedule: scheduleJson(schedule, schedules.resultChannel(schedule), now(), reviews) } };
  };
  /** The schedule, when it exists and the token's user may see it; the same 404 otherwise. */
  const visible = async (id: number, userId: string): Promise<Schedule> => {
    const schedule = await queries.visible(id, queries.viewer(userId));
    if (!schedule) throw new ApiError(404, 'not_found', `There is no schedule ${scheduleRef(id)}.`);
    return schedule;
  };

  const ETAG_HEADER = { ETag: "The schedule's content version, quoted: send it as `If-Match` to approve exactly this version." };
  const one = { description: 'The schedule.', schema: S.ScheduleEnvelope, headers: ETAG_HEADER };
  const notFound = { description: "No such schedule, or one the token's user may not see.", schema: ErrorBody };
  const conflict = { description: "Not possible in the schedule's current state.", schema: ErrorBody };

  /** A change of one schedule: 404 first for a schedule the user may not see, then the use case. */
  const change = (action: 'pause' | 'resume' | 'remove', op: Pick<Operation, 'method' | 'path' | 'operationId' | 'summary' | 'description'>): Operation => ({
    ...op,
    ...(op.method === 'post' ? { body: EmptyBody } : {}),
    responses: { 200: one, 404: notFound, 409: conflict },
    async handle({ res, params, userId }) {
      await visible(params.id!, userId);
      return answer(res, unwrap(await schedules[action](params.id!, userId)).schedule);
    },
  });

  return [
    {
      method: 'get',
      path: '/schedules',
      operationId: 'listSchedules',
      summary: 'List schedules, newest first',
      description:
        "Only schedules the token's user may see: their own, those of targets they review or view, those whose results go to a channel they are in (admins see all). One request looks at a bounded number of schedules: a page may then hold fewer than `limit` while `nextCursor` says where to go on. `nextCursor: null` means there is nothing more.",
      query: S.ListSchedulesQuery,
      responses: { 200: { description: 'A page of schedules; pass `nextCursor` as `cursor` for the next.', schema: S.SchedulePage } },
      async handle({ query, userId }) {
        const q = query as z.output<typeof S.ListSchedulesQuery>;
        const page = await queries.page(
          {
            ...(q.status ? { status: q.status } : {}),
            ...(q.target ? { target: q.target } : {}),
            ...(q.author ? { author: q.author } : {}),
            ...(q.cursor ? { beforeId: Number(q.cursor) } : {}),
            limit: q.limit,
          },
          queries.viewer(userId),
        );
        const at = now();
        return {
          status: 200,
          body: {
            schedules: page.items.map((s) => scheduleJson(s, schedules.resultChannel(s), at)),
            nextCursor: page.nextCursor === null ? null : String(page.nextCursor),
          },
        };
      },
    },
    {
      method: 'post',
      path: '/schedules',
      operationId: 'createSchedule',
      summary: 'Create a schedule, reviewed like `/task schedule add`',
      description:
        "On a target with review, the schedule waits for review (the request appears in the target's review channel) and fires nothing until approved; on a target without review it is active at once. With `Idempotency-Key`, a retried request returns the schedule the first one created.",
      body: S.CreateScheduleBody,
      bodyRequired: true,
      headers: [
        {
          name: 'Idempotency-Key',
          description: 'Any printable ASCII string up to 200 characters, unique per intended schedule.',
          schema: { type: 'string', maxLength: 200 },
        },
      ],
      responses: {
        201: { description: 'Created.', schema: S.ScheduleEnvelope, headers: ETAG_HEADER },
        200: { description: 'Replayed: the schedule an earlier request with this Idempotency-Key created.', schema: S.ScheduleEnvelope, headers: ETAG_HEADER },
        422: {
          description:
            'Unknown target, a cron or time zone that is not valid, a review nobody could give, a `channel` the author is not in (`not_in_channel`), or an Idempotency-Key reused for a different schedule.',
          schema: ErrorBody,
        },
      },
      async handle({ req, res, userId, body }) {
        const input = body as z.output<typeof S.CreateScheduleBody>;
        const key = req.get('idempotency-key');
        if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
          throw new ApiError(400, 'invalid_request', 'Idempotency-Key must be 1 to 200 printable ASCII characters.');
        // Its results channel lets its members see the schedule: only a channel the author is in (or the target's own).
        if (input.channel !== undefined && !(await queries.mayNameChannel(input.channel, input.target, queries.viewer(userId)))) {
          throw new ApiError(
            422,
            'not_in_channel',
            `You are not a member of channel ${input.channel} (or Slack cannot say so right now): name a channel you are in, or leave channel out for the target's own.`,
          );
        }
        const cron = normalizeCron(input.cron);
        const created = unwrap(
          await schedules.add({
            author: userId,
            target: input.target,
            cron,
            tz: input.tz ?? 'UTC',
            script: input.script,
            message: input.message ?? null,
            type: input.type ?? null,
            channel: input.channel ?? null,
            notify: input.notify ?? 'always',
            overlap: input.overlap ?? 'skip',
            catchUp: input.catchUp ?? 'run',
            originChannel: null,
            // Scoped to the user, so two callers' keys never meet.
            sourceKey: key === undefined ? null : `api:${userId}:${key}`,
          }),
        );
        const same =
          created.schedule.author === userId &&
          created.schedule.target === input.target &&
          created.schedule.script === input.script &&
          created.schedule.cron === cron;
        if (!created.created && !same) {
          throw new ApiError(
            422,
            'idempotency_conflict',
            `This Idempotency-Key already created schedule ${scheduleRef(created.schedule.id)} with a different target, cron or script.`,
          );
        }
        return answer(res, created.schedule, created.created ? 201 : 200);
      },
    },
    {
      method: 'get',
      path: '/schedules/{id}',
      operationId: 'getSchedule',
      summary: 'Get a schedule with the decisions of its current review round',
      description: "The `ETag` header is the schedule's content version: approving needs it as `If-Match`.",
      responses: { 200: one, 404: notFound },
      async handle({ res, params, userId }) {
        return answer(res, await visible(params.id!, userId), 200, true);
      },
    },
    change('pause', {
      method: 'post',
      path: '/schedules/{id}/pause',
      operationId: 'pauseSchedule',
      summary: 'Pause an active schedule (its author or a reviewer of its target)',
    }),
    change('resume', {
      method: 'post',
      path: '/schedules/{id}/resume',
      operationId: 'resumeSchedule',
      summary: 'Resume a paused schedule (its author or a reviewer of its target)',
      description: 'Firings that fell while it was paused are not run: it fires from the next time on.',
    }),
    change('remove', {
      method: 'delete',
      path: '/schedules/{id}',
      operationId: 'deleteSchedule',
      summary: 'Remove a schedule: it never fires again and stays in the audit trail as `removed` (its author or a reviewer of its target)',
    }),
    {
      method: 'post',
      path: '/schedules/{id}/approve',
      operationId: 'approveSchedule',
      summary: "Approve as the token's user (a reviewer who is not the author), naming the version read",
      description:
        'Send `If-Match` with the ETag of the schedule as you read it (GET /schedules/{id}): the approval counts for that content version only. Without it: 428. When what it runs changed since: 412, and nothing is approved. Once every review group is satisfied the schedule is active, and each firing runs without a new review.',
      body: EmptyBody,
      headers: [{ name: 'If-Match', required: true, description: 'The ETag of the schedule as read (GET /schedules/{id}).', schema: { type: 'string' } }],
      responses: {
        200: one,
        404: notFound,
        409: conflict,
        412: { description: 'The schedule is no longer the version `If-Match` names: what it runs was edited since it was read.', schema: ErrorBody },
        428: { description: 'No `If-Match`: say which version you approve.', schema: ErrorBody },
      },
      async handle({ req, res, params, userId }) {
        await visible(params.id!, userId);
        const ifMatch = readIfMatch(req.get('if-match'));
        if (ifMatch.kind !== 'tag') {
          throw new ApiError(
            428,
            'precondition_required',
            'Approving needs `If-Match: "<ETag>"`, the ETag of the schedule as you read it (GET /schedules/{id}): an approval names the exact version it approves.',
          );
        }
        const outcome = await schedules.approve(params.id!, userId, ifMatch.version ?? '');
        if (!outcome.ok && outcome.code === 'stale_version') {
          throw new ApiError(
            412,
            'precondition_failed',
            `${scheduleRef(params.id!)} is no longer the version your If-Match names (what it runs was edited since you read it): GET it again, read the new version, and send its ETag.`,
          );
        }
        return answer(res, unwrap(outcome).schedule);
      },
    },
    {
      method: 'post',
      path: '/schedules/{id}/reject',
      operationId: 'rejectSchedule',
      summary: "Reject as the token's user, with an optional reason: it never fires",
      body: RejectBody,
      responses: { 200: one, 404: notFound, 409: conflict },
      async handle({ res, params, userId, body }) {
        await visible(params.id!, userId);
        const reason = (body as z.output<typeof RejectBody>).reason ?? null;
        return answer(res, unwrap(await schedules.reject(params.id!, userId, reason)).schedule);
      },
    },
  ];
}
