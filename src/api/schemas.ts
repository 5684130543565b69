/**
 * The API's shapes, written once with zod: requests are validated with them and the OpenAPI
 * document is generated from them, so the document cannot drift from what the server checks.
 * Responses are described here too and a test validates real responses against the document.
 */
import { z } from 'zod';
import { TASK_STATUSES } from '../domain/lifecycle.js';
import { MAX_SCRIPT_BYTES } from '../domain/command.js';
import { SCRIPT_TYPES } from '../domain/scriptTypes.js';

const byteLength = (text: string) => Buffer.byteLength(text, 'utf8');

// Limits as JSON Schema can say them (a non-blank pattern, a length in characters), then the
// exact one in bytes.
export const scriptField = z
  .string()
  .regex(/\S/, 'the script is empty')
  .max(MAX_SCRIPT_BYTES, `scripts are at most ${MAX_SCRIPT_BYTES / 1024} KiB`)
  .refine((s) => byteLength(s) <= MAX_SCRIPT_BYTES, `scripts are at most ${MAX_SCRIPT_BYTES / 1024} KiB`)
  .meta({ description: `The script, run by the type's interpreter on every host of the target (at most ${MAX_SCRIPT_BYTES / 1024} KiB).` });
const messageField = z.string().max(3000).meta({ description: 'Why this task is run; shown to the reviewers.' });
const slackUser = z.string().regex(/^[UW][A-Z0-9]{2,}$/, 'a Slack user id such as U0123ABC');
const timestamp = z.string().meta({ format: 'date-time' });
const id = z.int().min(1);

export const CreateTaskBody = z
  .strictObject({
    target: z.string().min(1).max(200),
    script: scriptField,
    message: messageField.nullable().optional(),
    type: z.enum(SCRIPT_TYPES).optional().meta({ description: "Interpreter; the target's type by default." }),
    channel: z
      .string()
      .regex(/^[CG][A-Z0-9]{2,}$/, 'a Slack channel id such as C0123ABC')
      .optional()
      .meta({ description: "Where the card is posted; the target's channel by default." }),
  })
  .meta({ id: 'CreateTask' });

export const UpdateTaskBody = z
  .strictObject({ message: messageField.nullable().optional(), script: scriptField.optional() })
  .refine((body) => body.message !== undefined || body.script !== undefined, 'give `message` or `script`')
  .meta({ id: 'UpdateTask', minProperties: 1 });

export const RejectBody = z.strictObject({ reason: z.string().max(3000).nullable().optional() }).meta({ id: 'Reject' });
export const EmptyBody = z.strictObject({}).meta({ id: 'Empty' });

const statusList = z
  .string()
  .transform((value, ctx) => {
    const statuses = value.split(',').map((s) => s.trim());
    for (const status of statuses) {
      if (!(TASK_STATUSES as readonly string[]).includes(status)) {
        ctx.addIssue({ code: 'custom', message: `unknown status \`${status}\`; one of ${TASK_STATUSES.join(', ')}` });
        return z.NEVER;
      }
    }
    return statuses as Array<(typeof TASK_STATUSES)[number]>;
  })
  .meta({ description: `Comma-separated statuses: ${TASK_STATUSES.join(', ')}.` });

const since = z.iso.datetime({ offset: true }).meta({ description: 'Only items created at or after this time (RFC 3339).' });
const limit = z.coerce.number().int().min(1).max(200).default(50);
const cursor = z
  .string()
  .regex(/^\d{1,15}$/, 'a cursor from a previous page')
  .meta({ description: 'The `nextCursor` of the previous page.' });

export const ListTasksQuery = z.strictObject({
  status: statusList.optional(),
  target: z.string().optional(),
  author: slackUser.optional(),
  since: since.optional(),
  limit,
  cursor: cursor.optional(),
});

export const ListEventsQuery = z.strictObject({
  task: z.coerce.number().int().min(1).optional(),
  actor: z.string().optional(),
  type: z.string().optional(),
  since: since.optional(),
  limit,
  cursor: cursor.optional(),
});

export const LogQuery = z.strictObject({
  offset: z.coerce.number().int().min(0).optional().meta({ description: 'Start at this byte of the log.' }),
  follow: z.enum(['0', '1']).optional().meta({ description: '1: stream new output as Server-Sent Events until the task ends.' }),
});

// ---- responses ----

const TaskResult = z.object({
  exitCode: z.int().nullable(),
  signal: z.string().nullable(),
  durationMs: z.int().nullable(),
  failureMessage: z.string().nullable(),
  lastLine: z.string().nullable(),
});

const hash = z.string().regex(/^[0-9a-f]{64}$/);
const Review = z.object({
  userId: z.string(),
  verdict: z.enum(['approve', 'reject']),
  reason: z.string().nullable(),
  at: timestamp,
  contentVersion: hash.nullable().meta({ description: 'The content version this decision was made on.' }),
});
const TaskArgument = z.object({
  name: z.string(),
  kind: z.enum(['fixed', 'options', 'input']),
  value: z.string().meta({ description: 'The value the script receives; a fixed value is never shown (•••).' }),
});

export const Task = z
  .object({
    id,
    status: z.enum(TASK_STATUSES),
    target: z.string(),
    author: z.string(),
    type: z.enum(SCRIPT_TYPES),
    script: z.string(),
    message: z.string().nullable(),
    source: z.enum(['slack', 'api', 'schedule', 'webhook', 'run']),
    createdAt: timestamp,
    statusChangedAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
    result: TaskResult,
    contentVersion: hash.meta({
      description: 'SHA-256 over everything that runs (target, type, script, message, arguments, recipe); the ETag. An edit changes it.',
    }),
    arguments: z.array(TaskArgument).meta({ description: 'A recipe task\'s arguments in declared order ("$1"…); empty otherwise.' }),
    recipe: z
      .object({
        name: z.string(),
        hash,
        writtenBy: z
          .string()
          .optional()
          .meta({ description: 'Who imported that version of the recipe (none for a recipe of countersign.yml): never a reviewer of the task.' }),
      })
      .nullable()
      .meta({ description: 'The recipe the task was started from and the hash of its definition then.' }),
    trigger: z
      .object({ kind: z.enum(['slack', 'api', 'schedule', 'webhook', 'run']), run: id.optional() })
      .meta({ description: "How it was started; a run's script step names its run." }),
    outputs: z.record(z.string(), z.string()).nullable().meta({ description: "A run step's $COUNTERSIGN_OUTPUT values (masked); null otherwise." }),
    /** Only on a single task, not in lists. */
    reviews: z.array(Review).optional(),
    statusUrl: z.string(),
    logUrl: z.string().meta({ description: 'The task page; a signed link valid for a while.' }),
  })
  .meta({ id: 'Task' });

const Step = z.object({
  id,
  group: z.int().min(0),
  host: z.string(),
  port: z.int(),
  user: z.string(),
  phase: z.enum(['pending', 'running', 'succeeded', 'failed', 'killed', 'skipped']),
  exitCode: z.int().nullable(),
  signal: z.string().nullable(),
  failureMessage: z.string().nullable(),
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  durationMs: z.int().nullable(),
  output: z.object({ tail: z.string().meta({ description: 'The last lines this host printed (masked).' }) }).optional(),
});

export const Execution = z
  .object({
    id,
    taskId: id,
    phase: z.enum(['running', 'succeeded', 'failed', 'killed']),
    statusVersion: z.int().min(1).meta({ description: 'Grows with every change to the execution or its steps.' }),
    stopRequested: z.boolean(),
    stopRequestedBy: z.string().nullable(),
    startedAt: timestamp,
    finishedAt: timestamp.nullable(),
    exitCode: z.int().nullable(),
    failureMessage: z.string().nullable(),
    outputBytes: z.int().min(0),
    plan: z
      .array(z.array(z.object({ host: z.string(), port: z.int(), user: z.string() })))
      .meta({ description: 'Groups of hosts, run one group after another.' }),
    steps: z.array(Step),
  })
  .meta({ id: 'Execution' });

export const AuditEvent = z
  .object({
    id,
    at: timestamp,
    taskId: id.nullable(),
    subject: z.string().nullable().meta({ description: 'What the event is about besides a task, e.g. `recipe:<name>`, `schedule:<id>`.' }),
    type: z.string(),
    actor: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'AuditEvent' });

export const TaskEnvelope = z.object({ task: Task });
export const TaskPage = z.object({ tasks: z.array(Task), nextCursor: z.string().nullable() });
export const ExecutionEnvelope = z.object({ execution: Execution });
export const ExecutionList = z.object({ executions: z.array(Execution) });
export const EventPage = z.object({ events: z.array(AuditEvent), nextCursor: z.string().nullable() });
export const StopAnswer = z.object({ task: Task, stopping: z.boolean() });
export const ErrorBody = z
  .object({ error: z.object({ code: z.string(), message: z.string(), issues: z.array(z.object({ path: z.string(), message: z.string() })).optional() }) })
  .meta({ id: 'Error' });
