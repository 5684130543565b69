/**
 * The API's shapes for runbooks and runs (issue 11), in zod like src/api/schemas.ts: requests are
 * validated with them and the OpenAPI document is generated from them.
 */
import { z } from 'zod';
import { RUN_STATUSES, RUN_STEP_PHASES } from '../domain/run.js';
import { Task } from './schemas.js';

const timestamp = z.string().meta({ format: 'date-time' });
const hash = z.string().regex(/^[0-9a-f]{64}$/);
const id = z.int().min(1);
const value = z.union([z.string(), z.number(), z.boolean()]);
const limit = z.coerce.number().int().min(1).max(200).default(50);
const cursor = z
  .string()
  .regex(/^\d{1,15}$/, 'a cursor from a previous page')
  .meta({ description: 'The `nextCursor` of the previous page.' });

export const ListRunbooksQuery = z.strictObject({
  search: z.string().max(200).optional().meta({ description: 'Only runbooks whose reference, name or description contains this (case-insensitive).' }),
  tag: z.string().max(200).optional().meta({ description: 'Comma-separated tags: only runbooks with every one of them.' }),
});

export const RunbookDefinitionBody = z.record(z.string(), z.unknown()).meta({
  id: 'RunbookDefinition',
  description: 'A runbook in the `countersign.runbook/v1` format, as `GET /runbooks/{reference}` exports it (fixed values filled in).',
});

export const StartRunbookBody = z
  .strictObject({
    arguments: z.record(z.string(), value).optional().meta({ description: 'Values by argument name.' }),
    task_arguments: z
      .array(value)
      .max(20)
      .optional()
      .meta({ description: "TheEye-style: values in the declared order of the runbook's settable (non-fixed) arguments." }),
    message: z.string().max(2000).nullable().optional().meta({ description: 'Why this runs; shown to the reviewers.' }),
    channel: z
      .string()
      .regex(/^[CG][A-Z0-9]{2,}$/, 'a Slack channel id such as C0123ABC')
      .optional()
      .meta({ description: 'Where the card is posted.' }),
    hash: hash.optional().meta({
      description:
        "The plan version you read: the runbook's `planHash`, over the runbook and every runbook of its dependsOn closure (each reference and hash, in plan order). Refused (409 `runbook_changed`) if any of them changed since. For a runbook without dependencies `planHash` equals its `hash` (its ETag), so that is accepted too; for one with dependencies only `planHash` is.",
    }),
  })
  .refine((b) => b.arguments === undefined || b.task_arguments === undefined, 'give arguments or task_arguments, not both')
  .meta({ id: 'StartRunbook' });

export const ReasonBody = z.strictObject({ reason: z.string().max(3000).nullable().optional() }).meta({ id: 'Reason' });
export const InputBody = z.strictObject({ values: z.record(z.string(), value) }).meta({ id: 'StepInput' });

const statusList = z
  .string()
  .transform((text, ctx) => {
    const statuses = text.split(',').map((s) => s.trim());
    for (const status of statuses) {
      if (!(RUN_STATUSES as readonly string[]).includes(status)) {
        ctx.addIssue({ code: 'custom', message: `unknown status \`${status}\`; one of ${RUN_STATUSES.join(', ')}` });
        return z.NEVER;
      }
    }
    return statuses as Array<(typeof RUN_STATUSES)[number]>;
  })
  .meta({ description: `Comma-separated statuses: ${RUN_STATUSES.join(', ')}.` });

export const ListRunsQuery = z.strictObject({
  status: statusList.optional(),
  reference: z.string().max(64).optional(),
  creator: z.string().max(64).optional(),
  limit,
  cursor: cursor.optional(),
});

const Argument = z.object({
  name: z.string(),
  kind: z.enum(['fixed', 'options', 'input']),
  value: z.string().meta({ description: 'A fixed value is never shown (•••).' }),
});
const People = z.object({ users: z.array(z.string()), usergroup: z.string().nullable() });

export const Runbook = z
  .object({
    reference: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    tags: z.array(z.string()),
    kind: z.enum(['runbook', 'recipe']).meta({ description: '`recipe`: a one-step runbook that starts as a task; `runbook`: starts a run.' }),
    source: z.enum(['config', 'imported']),
    hash: hash.meta({ description: 'The hash of the definition (the ETag).' }),
    planHash: hash.meta({
      description:
        'The hash of what a start runs: this runbook and its dependsOn closure (each reference and definition hash, in plan order); equal to `hash` without dependencies. A start naming it as `hash` is refused once any of them changed.',
    }),
    owner: z.string().nullable(),
    editors: People.nullable(),
    triggeredBy: z.array(z.string()),
    dependsOn: z.array(z.string()),
    definition: z.record(z.string(), z.unknown()).meta({ description: 'The export format, fixed values left out.' }),
  })
  .meta({ id: 'Runbook' });

const Decision = z.object({ userId: z.string(), verdict: z.enum(['approve', 'reject']), reason: z.string().nullable(), at: timestamp });

const RunStep = z.object({
  id: z.string().meta({ description: 'Qualified: `<runbook>.<step>`.' }),
  runbook: z.string(),
  name: z.string().nullable(),
  group: z.int().min(0),
  kind: z.enum(['script', 'http', 'approval', 'input']),
  phase: z.enum(RUN_STEP_PHASES),
  continueOnFailure: z.boolean(),
  content: z.record(z.string(), z.unknown()).meta({ description: 'What the step runs or asks, as pinned when the run was planned.' }),
  outputs: z
    .record(z.string(), z.string())
    .nullable()
    .meta({ description: "A script step's $COUNTERSIGN_OUTPUT values or an input step's fields (secrets masked)." }),
  http: z.object({ status: z.int().nullable(), body: z.string() }).nullable(),
  output: z.string().nullable().meta({ description: "An http step's log: request, hops, status line and capped body, masked." }),
  failureMessage: z.string().nullable(),
  taskId: id.nullable().meta({ description: "A script step's task: its executions and log are the step's." }),
  timeoutAt: timestamp.nullable(),
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  decisions: z.array(Decision).optional(),
});

export const Run = z
  .object({
    id,
    status: z.enum(RUN_STATUSES),
    reference: z.string(),
    creator: z.string(),
    trigger: z.record(z.string(), z.unknown()).meta({ description: '{ kind: manual | api | schedule | webhook | after | workflow, ... }' }),
    message: z.string().nullable(),
    contentVersion: hash.meta({ description: 'SHA-256 over the pinned plan and arguments (fixed values sealed): the ETag, what an approval names.' }),
    runbookHash: hash.nullable(),
    targets: z.array(z.string()),
    arguments: z.record(z.string(), z.array(Argument)).meta({ description: 'Per runbook of the plan, its values in declared order.' }),
    createdAt: timestamp,
    statusChangedAt: timestamp,
    startedAt: timestamp.nullable(),
    finishedAt: timestamp.nullable(),
    runAfter: timestamp.nullable().meta({ description: 'A triggered run waits until then (its grace), cancellable.' }),
    parentRunId: id.nullable(),
    failureMessage: z.string().nullable(),
    stopRequested: z.boolean(),
    stopRequestedBy: z.string().nullable(),
    statusVersion: z.int().min(1),
    review: z.array(z.object({ name: z.string(), required: z.int(), approvedBy: z.array(z.string()), satisfied: z.boolean() })).nullable(),
    reviews: z.array(Decision.extend({ contentVersion: hash.nullable() })),
    steps: z.array(RunStep),
    statusUrl: z.string(),
  })
  .meta({ id: 'Run' });

export const RunbookEnvelope = z.object({ runbook: Runbook });
export const RunbookList = z.object({ runbooks: z.array(Runbook) });
export const RunEnvelope = z.object({ run: Run });
export const RunPage = z.object({ runs: z.array(Run), nextCursor: z.string().nullable() });
export const RunStopAnswer = z.object({ run: Run, stopping: z.boolean() });
export const StartAnswer = z
  .object({ kind: z.enum(['run', 'task']), run: Run.optional(), task: Task.optional() })
  .meta({ id: 'StartAnswer', description: 'A runbook starts a run; a recipe (a one-step runbook) starts a task, as it always has.' });
export const RemovedAnswer = z.object({ reference: z.string(), hash });
