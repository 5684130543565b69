/**
 * The API's schedule shapes, written once with zod (requests are validated with them, the
 * OpenAPI document is generated from them), beside the task shapes in schemas.ts.
 */
import { z } from 'zod';
import { CATCH_UP_MODES, NOTIFY_MODES, OVERLAP_MODES, type ScheduleStatus } from '../domain/schedule.js';
import { SCRIPT_TYPES } from '../domain/scriptTypes.js';
import { scriptField } from './schemas.js';

export const SCHEDULE_STATUSES: readonly ScheduleStatus[] = ['pending-review', 'active', 'paused', 'rejected', 'removed'];

const timestamp = z.string().meta({ format: 'date-time' });
const hash = z.string().regex(/^[0-9a-f]{64}$/);
const slackUser = z.string().regex(/^[UW][A-Z0-9]{2,}$/, 'a Slack user id such as U0123ABC');

export const CreateScheduleBody = z
  .strictObject({
    target: z.string().min(1).max(200),
    cron: z.string().min(1).max(200).meta({ description: 'Five fields (minute hour day month weekday), or six with seconds first, e.g. `0 3 * * *`.' }),
    tz: z.string().min(1).max(100).optional().meta({ description: 'An IANA time zone such as `Europe/Paris`; UTC by default.' }),
    script: scriptField,
    message: z.string().max(1000).nullable().optional().meta({ description: 'Why it runs; shown to the reviewers.' }),
    type: z.enum(SCRIPT_TYPES).optional().meta({ description: "Interpreter; the target's type by default." }),
    channel: z
      .string()
      .regex(/^[CG][A-Z0-9]{2,}$/, 'a Slack channel id such as C0123ABC')
      .optional()
      .meta({ description: "Where each firing's result is posted; the target's channel by default." }),
    notify: z.enum(NOTIFY_MODES).optional().meta({ description: 'Post every result (`always`, the default) or failures only.' }),
    overlap: z.enum(OVERLAP_MODES).optional().meta({ description: 'A firing while the last run still runs: `skip` (default), `queue` or `allow`.' }),
    catchUp: z
      .enum(CATCH_UP_MODES)
      .optional()
      .meta({ description: 'After downtime, run the most recent missed firing once (`run`, default) or not (`skip`).' }),
  })
  .meta({ id: 'CreateSchedule' });

const statusList = z
  .string()
  .transform((value, ctx) => {
    const statuses = value.split(',').map((s) => s.trim());
    for (const status of statuses) {
      if (!(SCHEDULE_STATUSES as readonly string[]).includes(status)) {
        ctx.addIssue({ code: 'custom', message: `unknown status \`${status}\`; one of ${SCHEDULE_STATUSES.join(', ')}` });
        return z.NEVER;
      }
    }
    return statuses as ScheduleStatus[];
  })
  .meta({ description: `Comma-separated statuses: ${SCHEDULE_STATUSES.join(', ')}. Without it, every status but \`removed\`.` });

export const ListSchedulesQuery = z.strictObject({
  status: statusList.optional(),
  target: z.string().optional(),
  author: slackUser.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z
    .string()
    .regex(/^\d{1,15}$/, 'a cursor from a previous page')
    .optional()
    .meta({ description: 'The `nextCursor` of the previous page.' }),
});

const ScheduleReview = z.object({
  userId: z.string(),
  verdict: z.enum(['approve', 'reject']),
  reason: z.string().nullable(),
  at: timestamp,
});

export const Schedule = z
  .object({
    id: z.int().min(1),
    status: z.enum(SCHEDULE_STATUSES as [ScheduleStatus, ...ScheduleStatus[]]),
    target: z.string(),
    author: z.string(),
    cron: z.string(),
    tz: z.string(),
    type: z.enum(SCRIPT_TYPES),
    script: z.string(),
    message: z.string().nullable(),
    channel: z.string().nullable().meta({ description: "The channel given for results; null: the target's." }),
    resultChannel: z
      .string()
      .nullable()
      .meta({ description: "Where results go: `channel`, else the target's channel, else where the schedule was asked for." }),
    notify: z.enum(NOTIFY_MODES),
    overlap: z.enum(OVERLAP_MODES),
    catchUp: z.enum(CATCH_UP_MODES),
    contentVersion: hash.meta({ description: 'SHA-256 over what runs (target, type, script, message); the ETag. Approvals name it.' }),
    reviewRound: z.int().min(0).meta({ description: 'Grows when what it runs changes: decisions of earlier rounds no longer count.' }),
    statusReason: z.string().nullable().meta({ description: 'Why countersign put it in its status (an expired review, an approval that no longer holds).' }),
    createdAt: timestamp,
    approvedAt: timestamp.nullable(),
    nextFireTimes: z.array(timestamp).meta({ description: 'The next few fire times (active or waiting for review); empty otherwise.' }),
    /** Only on a single schedule, not in lists. */
    reviews: z.array(ScheduleReview).optional().meta({ description: 'The decisions of the current review round.' }),
  })
  .meta({ id: 'Schedule' });

export const ScheduleEnvelope = z.object({ schedule: Schedule });
export const SchedulePage = z.object({ schedules: z.array(Schedule), nextCursor: z.string().nullable() });
