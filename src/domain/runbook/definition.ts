/**
 * Runbook definitions: what `runbooks.<reference>` in countersign.yml and an imported
 * `countersign.runbook/v1` JSON document say, validated with zod so every mistake names its
 * field (`runbooks.restart-web.steps[2].http.url: ...`, groups as `steps[4][1].script.target`).
 *
 *   runbooks:
 *     restart-web:                          # the reference: letters, digits, - _ . (at most 64)
 *       name: Restart the web tier          # optional; the reference otherwise
 *       description: ...                    # optional
 *       tags: [web, restart]
 *       message: why this runs              # optional; shown to reviewers like a task's message
 *       arguments: [...]                    # fixed / options / input, as recipes (recipeArgumentSchema)
 *       dependsOn: [drain-lb]               # runbooks whose steps run first (graph.ts)
 *       triggeredBy: [manual, schedule, webhook, { after: deploy-web, on: success }]   # default [manual]
 *       grace: 2m                           # a triggered start waits this long, with Cancel
 *       editors: { users: [...], usergroup: S.. }   # imported runbooks only
 *       steps:                              # an entry is a step, or a list of steps run at once
 *         - id: why                         # unique in the runbook: letters, digits, - _ (no dots)
 *           name: Ticket                    # optional label
 *           continueOnFailure: false        # a failure of this step does not stop the run
 *           input: { fields: [...], from: { users: [...] }, timeout: 30m }
 *         - { id: health, http: { url, method: GET, headers: {}, body: <JSON>, compress: true,
 *             timeout: 30s, successStatus: 200 | [200, 204], successPattern: '/"ok":\s*true/',
 *             target: web-prod } }          # target: whose secrets headers may use (${{ secrets.X }});
 *                                           # its review policy then applies to the run
 *         - { id: go, approval: { users: [U..], usergroup: S.., approvals: 1, timeout: 1h,
 *             channel: C.., dm: true } }
 *         - - { id: a, script: { target: web-prod-a, script: "...", type: bash,
 *               with: { TICKET: "${{ steps.why.ticket }}" } } }
 *           - { id: b, script: { target: web-prod-b, script: "..." } }
 *
 * A script step receives the runbook's arguments ("$1".., ARG_<NAME>, declared order) followed
 * by its `with` values (written order, also ARG_<NAME>): the same stdin path as recipes
 * (src/exec/remoteCommand.ts), never spliced into the script. `with` values, http URLs, header
 * values and JSON body strings are templates (template.ts); the checks here refuse a reference
 * to an undeclared argument, to a step that does not run before this one (same group or later),
 * or to a field that step kind does not have.
 *
 * Checks that need other runbooks or the config (dependsOn/after targets, cycles, targets,
 * secrets, http.allow) are in graph.ts (checkRunbooks).
 *
 * Interface:
 *   RUNBOOK_FORMAT, RUNBOOK_REFERENCE
 *   runbookBodySchema           zod, the body under `runbooks.<reference>` (no editors)
 *   importedRunbookBodySchema   zod, the same plus `editors`
 *   runbooksConfigSchema        zod, the whole `runbooks:` map
 *   runbookFromBody(reference, body, origin) -> Runbook
 *   parseRunbookJson(value)     -> { ok, runbook } | { ok: false, problems }   (import)
 *   exportRunbook(runbook)      -> JSON text (fixed values left out)
 *   runbookFromRecipe(recipe)   -> Runbook (one script step `main`)
 *   types: Runbook, RunbookStep, StepGroup, ScriptStep, HttpStep, ApprovalStep, InputStep,
 *          InputField, Trigger
 */
import { z } from 'zod';
import { durationSchema, parseDuration } from '../duration.js';
import { peopleSchema, slackUserIdSchema, slackUsergroupIdSchema, type People } from '../people.js';
import { MAX_SCRIPT_BYTES } from '../commandText.js';
import { RECIPE_NAME, rawArgumentPatterns, recipeArgumentSchema, type Recipe, type RecipeArgument } from '../recipe.js';
import { documentPatternsProblem } from '../linearRegex.js';
import { SCRIPT_TYPES, type ScriptType } from '../scriptTypes.js';
import {
  compileSuccessPattern,
  headerNameProblem,
  headerValueProblem,
  HTTP_METHODS,
  urlTemplateProblem,
  type HttpMethod,
  type JsonValue,
} from './httpRequest.js';
import { formatReference, parseTemplate, referencedStep, RESERVED_STEP_FIELDS, STEP_ID, VALUE_NAME, type Reference } from './template.js';

export const RUNBOOK_FORMAT = 'countersign.runbook/v1';
/** Runbook references share recipes' names: a recipe is a one-step runbook. */
export const RUNBOOK_REFERENCE = RECIPE_NAME;
export const MAX_STEPS = 100;
export const MAX_GROUP_SIZE = 50;
export const MAX_BODY_JSON_BYTES = 64 * 1024;

export type Trigger =
  | { kind: 'manual' }
  | { kind: 'schedule' }
  | { kind: 'webhook' }
  | { kind: 'after'; runbook: string; on: 'success' | 'failure' | 'always' };

export interface ScriptStep {
  target: string;
  script: string;
  /** null: the target's default type (pinned when a run is planned). */
  type: ScriptType | null;
  /** Extra values, in written order; `value` is a template. */
  with: Array<{ name: string; value: string }>;
}

export interface HttpStep {
  /** A template: references may fill the path, query and fragment. */
  url: string;
  method: HttpMethod;
  /** Values are templates; `${{ secrets.X }}` only here, and only with `target`. */
  headers: Array<{ name: string; value: string }>;
  /** A JSON value whose strings are templates; absent: no body. */
  body?: JsonValue;
  compress: boolean;
  timeoutMs: number;
  /** null: any 2xx. */
  successStatus: number[] | null;
  successPattern: string | null;
  /** The target whose secrets the headers may use and whose review policy then applies. */
  target: string | null;
}

export interface ApprovalStep {
  users: string[];
  usergroup: string | null;
  approvals: number;
  timeoutMs: number | null;
  /** Where the Approve/Reject request goes; null: the engine's default (the review channel). */
  channel: string | null;
  dm: boolean;
}

/** An input step's field: an argument of kind options or input. */
export type InputField = Exclude<RecipeArgument, { kind: 'fixed' }>;

export interface InputStep {
  fields: InputField[];
  /** Who may fill it in; null: the person who started the run. */
  from: People | null;
  timeoutMs: number | null;
}

export type StepBody =
  | { kind: 'script'; script: ScriptStep }
  | { kind: 'http'; http: HttpStep }
  | { kind: 'approval'; approval: ApprovalStep }
  | { kind: 'input'; input: InputStep };
export type StepKind = StepBody['kind'];

export type RunbookStep = { id: string; name: string | null; continueOnFailure: boolean } & StepBody;
/** Steps run at once; groups run one after another. */
export type StepGroup = RunbookStep[];

export interface Runbook {
  reference: string;
  name: string;
  description: string | null;
  tags: string[];
  message: string | null;
  arguments: RecipeArgument[];
  dependsOn: string[];
  triggeredBy: Trigger[];
  /** How long a triggered (schedule, webhook, after) start waits, with Cancel; null: none. */
  graceMs: number | null;
  /** Imported runbooks: who besides the owner and admins may change them. */
  editors: People | null;
  steps: StepGroup[];
  /** `config`: countersign.yml (read-only); `imported`: the database; `recipe`: made from a recipe. */
  origin: 'config' | 'imported' | 'recipe';
  /**
   * Imported definitions: who wrote this content (imported or last replaced it). They may not
   * review a run of it, as an author may not review their task. countersign.yml's: none.
   */
  writtenBy?: string;
}

const duration = durationSchema;
const userId = slackUserIdSchema;
const usergroupId = slackUsergroupIdSchema;
const people = peopleSchema;

/** recipeArgumentSchema refuses, at load, a pattern the linear-time engine cannot run or bound. */
const linearArgument = recipeArgumentSchema;

function uniqueNames(items: ReadonlyArray<{ name: string }>, what: string, ctx: z.RefinementCtx, path: PropertyKey[]): void {
  const seen = new Set<string>();
  items.forEach((item, index) => {
    const upper = item.name.toUpperCase();
    if (seen.has(upper))
      ctx.addIssue({
        code: 'custom',
        message: `the ${what} ${item.name} is declared twice (names are compared uppercased: ARG_${upper})`,
        path: [...path, index, 'name'],
      });
    seen.add(upper);
  });
}

/**
 * `__proto__` as a key: zod's records drop it silently and canonicalJson (content hashes) would
 * not see it, so a value could change without changing the content version. Refused by name.
 */
const PROTO_MESSAGE = '"__proto__" cannot be used as a name';
function withoutProtoKeys<T extends z.ZodType>(schema: T) {
  return z
    .unknown()
    .superRefine((value, ctx) => {
      if (value !== null && typeof value === 'object' && Object.hasOwn(value, '__proto__')) ctx.addIssue({ code: 'custom', message: PROTO_MESSAGE });
    })
    .pipe(schema);
}

const template = z.string().superRefine((text, ctx) => {
  const parsed = parseTemplate(text);
  if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.error });
});

const scriptStepSchema = z.strictObject({
  target: z.string().min(1),
  script: z
    .string()
    .refine((s) => s.trim() !== '', 'the script is empty')
    .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_SCRIPT_BYTES, 'scripts are at most 64 KiB'),
  type: z.enum(SCRIPT_TYPES).optional(),
  with: withoutProtoKeys(
    z
      .record(
        z.string().regex(VALUE_NAME, 'names are letters, digits and _, not starting with a digit (the script sees ARG_<NAME>)'),
        template.refine((v) => !v.includes('\u0000'), 'must not contain a NUL byte'),
      )
      .refine((w) => Object.keys(w).length <= 50, 'at most 50 values'),
  ).optional(),
});

const statusCode = z.number().int().min(100, 'an HTTP status code is 100 to 599').max(599, 'an HTTP status code is 100 to 599');

const jsonBody = z.unknown().superRefine((value, ctx) => {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  if (text === undefined) return void ctx.addIssue({ code: 'custom', message: 'the body must be a JSON value' });
  if (Buffer.byteLength(text, 'utf8') > MAX_BODY_JSON_BYTES) return void ctx.addIssue({ code: 'custom', message: 'the body is at most 64 KiB of JSON' });
  forEachKey(value, [], (key, path) => {
    if (key === '__proto__') ctx.addIssue({ code: 'custom', message: PROTO_MESSAGE, path });
  });
  forEachString(value, [], (s, path) => {
    const parsed = parseTemplate(s);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.error, path });
  });
});

function forEachKey(value: unknown, path: PropertyKey[], visit: (key: string, path: PropertyKey[]) => void): void {
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) forEachKey(item, [...path, index], visit);
  } else if (value !== null && typeof value === 'object') {
    for (const key of Object.keys(value)) {
      visit(key, path);
      forEachKey((value as Record<string, unknown>)[key], [...path, key], visit);
    }
  }
}

function forEachString(value: unknown, path: PropertyKey[], visit: (text: string, path: PropertyKey[]) => void): void {
  if (typeof value === 'string') visit(value, path);
  else if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) forEachString(item, [...path, index], visit);
  } else if (value !== null && typeof value === 'object') for (const [key, item] of Object.entries(value)) forEachString(item, [...path, key], visit);
}

const httpStepSchema = z
  .strictObject({
    url: z.string().superRefine((url, ctx) => {
      const problem = urlTemplateProblem(url);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
    }),
    method: z
      .string()
      .transform((m) => m.toUpperCase())
      .pipe(z.enum(HTTP_METHODS, `expected one of ${HTTP_METHODS.join(', ')}`))
      .default('GET'),
    headers: withoutProtoKeys(
      z
        .record(
          z.string().superRefine((name, ctx) => {
            const problem = headerNameProblem(name);
            if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
          }),
          template.superRefine((value, ctx) => {
            const problem = headerValueProblem(value);
            if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
          }),
        )
        .refine((h) => Object.keys(h).length <= 50, 'at most 50 headers'),
    ).optional(),
    body: jsonBody.optional(),
    compress: z.boolean().default(true),
    timeout: duration.default('30s'),
    successStatus: z.union([statusCode, z.array(statusCode).min(1).max(50)]).optional(),
    successPattern: z
      .string()
      .max(1000)
      .superRefine((text, ctx) => {
        const compiled = compileSuccessPattern(text);
        if (!compiled.ok) ctx.addIssue({ code: 'custom', message: compiled.error });
      })
      .optional(),
    target: z.string().min(1).optional(),
  })
  .superRefine((http, ctx) => {
    if (http.body !== undefined && (http.method === 'GET' || http.method === 'HEAD'))
      ctx.addIssue({ code: 'custom', message: `a ${http.method} request has no body`, path: ['body'] });
    const names = Object.keys(http.headers ?? {}).map((n) => n.toLowerCase());
    names.forEach((name, index) => {
      if (names.indexOf(name) !== index) ctx.addIssue({ code: 'custom', message: `the header ${name} is given twice`, path: ['headers'] });
    });
  });

const approvalStepSchema = z
  .strictObject({
    users: z.array(userId).min(1, 'list at least one user, or leave users out and name a usergroup').max(100).optional(),
    usergroup: usergroupId.optional(),
    approvals: z.number().int().min(1).max(100).default(1),
    timeout: duration.optional(),
    channel: z
      .string()
      .regex(/^[CGD][A-Z0-9]{2,}$/, 'expected a Slack channel id like C0123ABC')
      .optional(),
    dm: z.boolean().default(false),
  })
  .refine((a) => a.users !== undefined || a.usergroup !== undefined, { message: 'an approval step needs users, a usergroup, or both' })
  .refine((a) => a.usergroup !== undefined || a.users === undefined || a.approvals <= new Set(a.users).size, {
    message: 'approvals is larger than the number of users, so the step could never be approved',
    path: ['approvals'],
  });

const inputStepSchema = z.strictObject({
  fields: z
    .array(
      linearArgument.superRefine((field, ctx) => {
        if (field.kind === 'fixed')
          ctx.addIssue({
            code: 'custom',
            message: "an input field is of kind options or input (a fixed value belongs in the runbook's arguments)",
            path: ['kind'],
          });
        if (RESERVED_STEP_FIELDS.includes(field.name))
          ctx.addIssue({ code: 'custom', message: `${field.name} is a reserved name (${RESERVED_STEP_FIELDS.join(', ')})`, path: ['name'] });
      }),
    )
    .min(1, 'an input step asks for at least one field')
    .max(20)
    .superRefine((fields, ctx) => uniqueNames(fields, 'field', ctx, [])),
  from: people.optional(),
  timeout: duration.optional(),
});

const stepSchema = z
  .strictObject({
    id: z.string().regex(STEP_ID, 'step ids are letters, digits, - and _, starting with a letter (no dots: qualified ids are <runbook>.<step>)'),
    name: z.string().min(1).max(75).optional(),
    continueOnFailure: z.boolean().default(false),
    script: scriptStepSchema.optional(),
    http: httpStepSchema.optional(),
    approval: approvalStepSchema.optional(),
    input: inputStepSchema.optional(),
  })
  .superRefine((step, ctx) => {
    const kinds = (['script', 'http', 'approval', 'input'] as const).filter((kind) => step[kind] !== undefined);
    if (kinds.length !== 1)
      ctx.addIssue({
        code: 'custom',
        message: kinds.length === 0 ? 'a step needs exactly one of script, http, approval or input' : `a step is one kind: it has ${kinds.join(' and ')}`,
      });
  });

type StepFile = z.infer<typeof stepSchema>;

function toStep(file: StepFile): RunbookStep {
  const base = { id: file.id, name: file.name ?? null, continueOnFailure: file.continueOnFailure };
  if (file.script) {
    return {
      ...base,
      kind: 'script',
      script: {
        target: file.script.target,
        script: file.script.script,
        type: file.script.type ?? null,
        with: Object.entries(file.script.with ?? {}).map(([name, value]) => ({ name, value })),
      },
    };
  }
  if (file.http) {
    const h = file.http;
    const http: HttpStep = {
      url: h.url,
      method: h.method,
      headers: Object.entries(h.headers ?? {}).map(([name, value]) => ({ name, value })),
      compress: h.compress,
      timeoutMs: parseDuration(h.timeout) ?? 30_000,
      successStatus: h.successStatus === undefined ? null : Array.isArray(h.successStatus) ? [...new Set(h.successStatus)] : [h.successStatus],
      successPattern: h.successPattern ?? null,
      target: h.target ?? null,
    };
    if (h.body !== undefined) http.body = h.body as JsonValue;
    return { ...base, kind: 'http', http };
  }
  if (file.approval) {
    const a = file.approval;
    return {
      ...base,
      kind: 'approval',
      approval: {
        users: [...new Set(a.users ?? [])],
        usergroup: a.usergroup ?? null,
        approvals: a.approvals,
        timeoutMs: a.timeout === undefined ? null : parseDuration(a.timeout),
        channel: a.channel ?? null,
        dm: a.dm,
      },
    };
  }
  const i = file.input!;
  return {
    ...base,
    kind: 'input',
    input: {
      fields: i.fields.map((f) => ({ ...f }) as InputField),
      from: i.from ? { users: [...(i.from.users ?? [])], usergroup: i.from.usergroup ?? null } : null,
      timeoutMs: i.timeout === undefined ? null : parseDuration(i.timeout),
    },
  };
}

/** One `steps:` entry as written: a step, or a list of steps (a group). */
interface StepEntry {
  steps: StepGroup;
  list: boolean;
}

/** `steps:` entries are a step or a list of steps (a group); nested deeper is refused. */
const stepsSchema = z
  .array(z.unknown())
  .min(1, 'a runbook has at least one step')
  .transform((entries, ctx): StepEntry[] => {
    const groups: StepEntry[] = [];
    let count = 0;
    entries.forEach((entry, index) => {
      const items = Array.isArray(entry) ? entry : [entry];
      const prefix: PropertyKey[] = Array.isArray(entry) ? [index] : [];
      if (Array.isArray(entry) && entry.length === 0) ctx.addIssue({ code: 'custom', message: 'a group lists at least one step', path: [index] });
      if (items.length > MAX_GROUP_SIZE) ctx.addIssue({ code: 'custom', message: `a group has at most ${MAX_GROUP_SIZE} steps`, path: [index] });
      const group: StepGroup = [];
      items.forEach((item, position) => {
        const path = Array.isArray(entry) ? [...prefix, position] : [index];
        if (Array.isArray(item)) {
          ctx.addIssue({ code: 'custom', message: 'a group is a list of steps; lists inside a group are not allowed', path });
          return;
        }
        const parsed = stepSchema.safeParse(item);
        if (!parsed.success) for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: [...path, ...issue.path] } as z.core.$ZodRawIssue);
        else group.push(toStep(parsed.data));
      });
      count += items.length;
      groups.push({ steps: group, list: Array.isArray(entry) });
    });
    if (count > MAX_STEPS) ctx.addIssue({ code: 'custom', message: `a runbook has at most ${MAX_STEPS} steps` });
    return groups;
  });

const afterTriggerSchema = z.strictObject({
  after: z.string().regex(RUNBOOK_REFERENCE, 'expected a runbook reference'),
  on: z.enum(['success', 'failure', 'always'], 'expected success, failure or always').default('success'),
});
const TRIGGER_HINT = 'expected manual, schedule, webhook or { after: <runbook>, on: success|failure|always }';

/** A word or an `after` object; parsed by hand so a mistake gets one clear message, not a union's. */
const triggerSchema = z.unknown().transform((value, ctx): Trigger => {
  if (value === 'manual' || value === 'schedule' || value === 'webhook') return { kind: value };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    ctx.addIssue({ code: 'custom', message: TRIGGER_HINT });
    return z.NEVER;
  }
  const parsed = afterTriggerSchema.safeParse(value);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) ctx.addIssue({ ...issue } as z.core.$ZodRawIssue);
    return z.NEVER;
  }
  return { kind: 'after', runbook: parsed.data.after, on: parsed.data.on };
});

const bodyShape = {
  name: z.string().min(1).max(150).optional(),
  description: z.string().max(300).optional(),
  tags: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,31}$/, 'tags are lowercase letters, digits, - _ . (at most 32)'))
    .max(20)
    .optional(),
  message: z.string().max(2000).optional(),
  arguments: z.array(linearArgument).max(20).default([]),
  dependsOn: z.array(z.string().regex(RUNBOOK_REFERENCE, 'expected a runbook reference')).max(20).optional(),
  triggeredBy: z.array(triggerSchema).min(1).max(20).optional(),
  grace: duration.optional(),
  steps: stepsSchema,
};

/** A body's own checks: unique names, and every reference answerable where it is used. */
function checkBody(body: { arguments: RecipeArgument[]; steps: StepEntry[] }, ctx: z.RefinementCtx): void {
  uniqueNames(body.arguments, 'argument', ctx, ['arguments']);
  const argumentNames = new Set(body.arguments.map((a) => a.name));
  const argumentVariables = new Set(body.arguments.map((a) => a.name.toUpperCase()));
  const before = new Map<string, RunbookStep>();
  const locate = (groupIndex: number, position: number): PropertyKey[] =>
    body.steps[groupIndex]?.list ? ['steps', groupIndex, position] : ['steps', groupIndex];
  const seenIds = new Map<string, string>();
  body.steps.forEach(({ steps: group }, groupIndex) => {
    group.forEach((step, position) => {
      const where = locate(groupIndex, position);
      if (seenIds.has(step.id))
        ctx.addIssue({ code: 'custom', message: `the step id ${step.id} is used twice (also at ${seenIds.get(step.id)})`, path: [...where, 'id'] });
      seenIds.set(step.id, pathText(where));
    });
  });
  body.steps.forEach(({ steps: group }, groupIndex) => {
    group.forEach((step, position) => {
      const where = locate(groupIndex, position);
      for (const use of templatesOf(step)) {
        const parsed = parseTemplate(use.text);
        if (!parsed.ok) continue;
        for (const part of parsed.parts) {
          if (!('reference' in part)) continue;
          const problem = referenceProblem(part.reference, { step, use: use.place, argumentNames, before, sameGroup: group });
          if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, path: [...where, ...use.path] });
        }
      }
      if (step.kind === 'script') {
        const withNames = new Set<string>();
        step.script.with.forEach(({ name }) => {
          const upper = name.toUpperCase();
          if (argumentVariables.has(upper))
            ctx.addIssue({
              code: 'custom',
              message: `${name} is also an argument of the runbook (both would be ARG_${upper})`,
              path: [...where, 'script', 'with', name],
            });
          if (withNames.has(upper))
            ctx.addIssue({
              code: 'custom',
              message: `${name} is given twice (names are compared uppercased: ARG_${upper})`,
              path: [...where, 'script', 'with', name],
            });
          withNames.add(upper);
        });
        if (body.arguments.length + step.script.with.length > 70)
          ctx.addIssue({ code: 'custom', message: 'a script step receives at most 70 values (arguments and with)', path: [...where, 'script', 'with'] });
      }
    });
    for (const step of group) before.set(step.id, step);
  });
}

function pathText(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
}

type TemplatePlace = 'with' | 'url' | 'header' | 'body';

/** Every template a step holds, with where it sits (for messages) and what may be used there. */
export function templatesOf(step: RunbookStep): Array<{ text: string; place: TemplatePlace; path: PropertyKey[] }> {
  if (step.kind === 'script') return step.script.with.map(({ name, value }) => ({ text: value, place: 'with' as const, path: ['script', 'with', name] }));
  if (step.kind !== 'http') return [];
  const out: Array<{ text: string; place: TemplatePlace; path: PropertyKey[] }> = [{ text: step.http.url, place: 'url', path: ['http', 'url'] }];
  for (const { name, value } of step.http.headers) out.push({ text: value, place: 'header', path: ['http', 'headers', name] });
  if (step.http.body !== undefined) forEachString(step.http.body, ['http', 'body'], (text, path) => out.push({ text, place: 'body', path }));
  return out;
}

function referenceProblem(
  reference: Reference,
  where: { step: RunbookStep; use: TemplatePlace; argumentNames: ReadonlySet<string>; before: ReadonlyMap<string, RunbookStep>; sameGroup: StepGroup },
): string | null {
  const written = formatReference(reference);
  if (reference.kind === 'argument') return where.argumentNames.has(reference.name) ? null : `${written}: the runbook has no argument ${reference.name}`;
  if (reference.kind === 'secret') {
    if (where.use !== 'header') return `${written}: secrets may only be used in header values`;
    if (where.step.kind !== 'http' || where.step.http.target === null) return `${written}: name the target whose secrets this request uses (http.target)`;
    return null;
  }
  const stepId = referencedStep(reference) ?? '';
  const source = where.before.get(stepId);
  if (!source) {
    if (stepId === where.step.id) return `${written}: a step cannot use its own values`;
    if (where.sameGroup.some((s) => s.id === stepId))
      return `${written}: ${stepId} runs at the same time as this step (same group), so its values are not known yet`;
    return `${written}: there is no step ${stepId} before this one (a step may use values of steps in earlier groups of the same runbook)`;
  }
  if (reference.kind === 'step') {
    if (reference.field === 'phase') return null;
    return source.kind === 'http' ? null : `${written}: ${reference.field} is an http step's (${stepId} is a ${source.kind} step; every step has .phase)`;
  }
  if (reference.kind === 'step-json') return source.kind === 'http' ? null : `${written}: json is an http step's (${stepId} is a ${source.kind} step)`;
  if (source.kind === 'input')
    return source.input.fields.some((f) => f.name === reference.name)
      ? null
      : `${written}: the input step ${stepId} has no field ${reference.name} (it asks for ${source.input.fields.map((f) => f.name).join(', ')})`;
  if (source.kind === 'script') return RESERVED_STEP_FIELDS.includes(reference.name) ? `${written}: ${reference.name} is reserved` : null;
  return `${written}: ${source.kind} steps have no named values (${source.kind === 'http' ? 'use .status, .body or .json' : 'use .phase'})`;
}

function refined<T extends z.ZodType<{ arguments: RecipeArgument[]; steps: StepEntry[] }>>(schema: T) {
  return schema.superRefine((body, ctx) => checkBody(body, ctx));
}

/** The body under `runbooks.<reference>` in countersign.yml. */
export const runbookBodySchema = refined(z.strictObject(bodyShape));
/** An imported runbook's body: the same, plus who may change it. */
export const importedRunbookBodySchema = refined(z.strictObject({ ...bodyShape, editors: people.optional() }));

export const runbooksConfigSchema = z.record(
  z.string().regex(RUNBOOK_REFERENCE, 'runbook references use letters, digits, -, _ and . (at most 64)'),
  runbookBodySchema,
);

export type RunbookBody = z.infer<typeof importedRunbookBodySchema>;

export function runbookFromBody(reference: string, body: RunbookBody | z.infer<typeof runbookBodySchema>, origin: Runbook['origin']): Runbook {
  const editors = 'editors' in body && body.editors ? { users: [...(body.editors.users ?? [])], usergroup: body.editors.usergroup ?? null } : null;
  return {
    reference,
    name: body.name ?? reference,
    description: body.description ?? null,
    tags: [...new Set(body.tags ?? [])],
    message: body.message ?? null,
    arguments: body.arguments.map((a) => ({ ...a }) as RecipeArgument),
    dependsOn: [...new Set(body.dependsOn ?? [])],
    triggeredBy: body.triggeredBy ?? [{ kind: 'manual' }],
    graceMs: body.grace === undefined ? null : parseDuration(body.grace),
    editors,
    steps: body.steps.map((entry) => entry.steps),
    origin,
  };
}

/** Parses one runbook in the export format; problems name their field (`steps[1].http.url: ...`). */
export function parseRunbookJson(value: unknown): { ok: true; runbook: Runbook } | { ok: false; problems: string[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, problems: ['expected a JSON object with reference and steps'] };
  const { format, reference, ...body } = value as Record<string, unknown>;
  const problems: string[] = [];
  if (format !== RUNBOOK_FORMAT) problems.push(`format: expected "${RUNBOOK_FORMAT}"`);
  if (typeof reference !== 'string' || !RUNBOOK_REFERENCE.test(reference))
    problems.push('reference: runbook references use letters, digits, -, _ and . (at most 64)');
  // Before the schema compiles any pattern: their total is bounded too.
  const tooMany = documentPatternsProblem(rawRunbookPatterns(body));
  if (tooMany !== null) return { ok: false, problems: [...problems, tooMany] };
  const parsed = importedRunbookBodySchema.safeParse(body);
  if (!parsed.success) problems.push(...describeIssues(parsed.error.issues));
  if (problems.length > 0 || !parsed.success) return { ok: false, problems };
  return { ok: true, runbook: runbookFromBody(reference as string, parsed.data, 'imported') };
}

/** Every pattern of a raw runbook (arguments, input fields, success patterns), not yet validated. */
function rawRunbookPatterns(body: Record<string, unknown>): unknown[] {
  const field = (value: unknown, key: string): unknown => (typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined);
  const steps = (Array.isArray(body.steps) ? body.steps : []).flatMap((entry: unknown) => (Array.isArray(entry) ? entry : [entry]));
  return [
    ...rawArgumentPatterns(body.arguments),
    ...steps.flatMap((step) => [...rawArgumentPatterns(field(field(step, 'input'), 'fields')), field(field(step, 'http'), 'successPattern')]),
  ];
}

/** `steps[2].http.url: expected ...`, like the config loader's messages. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], prefix = ''): string[] {
  return issues.flatMap((issue): string[] => {
    const path = pathText([...(prefix === '' ? [] : [prefix]), ...issue.path]);
    // A bad record key (a runbook reference, a header name) carries the reason in nested issues.
    if (issue.code === 'invalid_key') return describeIssues(issue.issues).map((line) => `${path}: ${line}`);
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`
        : issue.message.replace(/^Invalid input: /, '');
    return [path === '' ? message : `${path}: ${message}`];
  });
}

function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

function stepToFile(step: RunbookStep): Record<string, unknown> {
  const out: Record<string, unknown> = { id: step.id };
  if (step.name !== null) out.name = step.name;
  if (step.continueOnFailure) out.continueOnFailure = true;
  if (step.kind === 'script') {
    const s = step.script;
    out.script = {
      target: s.target,
      script: s.script,
      ...(s.type !== null ? { type: s.type } : {}),
      ...(s.with.length > 0 ? { with: Object.fromEntries(s.with.map((w) => [w.name, w.value])) } : {}),
    };
  } else if (step.kind === 'http') {
    const h = step.http;
    out.http = {
      url: h.url,
      method: h.method,
      ...(h.headers.length > 0 ? { headers: Object.fromEntries(h.headers.map((x) => [x.name, x.value])) } : {}),
      ...(h.body !== undefined ? { body: h.body } : {}),
      compress: h.compress,
      timeout: formatMs(h.timeoutMs),
      ...(h.successStatus !== null ? { successStatus: h.successStatus.length === 1 ? h.successStatus[0] : h.successStatus } : {}),
      ...(h.successPattern !== null ? { successPattern: h.successPattern } : {}),
      ...(h.target !== null ? { target: h.target } : {}),
    };
  } else if (step.kind === 'approval') {
    const a = step.approval;
    out.approval = {
      ...(a.users.length > 0 ? { users: a.users } : {}),
      ...(a.usergroup !== null ? { usergroup: a.usergroup } : {}),
      approvals: a.approvals,
      ...(a.timeoutMs !== null ? { timeout: formatMs(a.timeoutMs) } : {}),
      ...(a.channel !== null ? { channel: a.channel } : {}),
      ...(a.dm ? { dm: true } : {}),
    };
  } else {
    const i = step.input;
    out.input = {
      fields: i.fields.map((f) => Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined))),
      ...(i.from !== null ? { from: peopleToFile(i.from) } : {}),
      ...(i.timeoutMs !== null ? { timeout: formatMs(i.timeoutMs) } : {}),
    };
  }
  return out;
}

function peopleToFile(p: People): Record<string, unknown> {
  return { ...(p.users.length > 0 ? { users: [...p.users] } : {}), ...(p.usergroup !== null ? { usergroup: p.usergroup } : {}) };
}

/**
 * The runbook in the export format. Fixed argument values never leave the server: they are
 * written without `value` (an importer must fill them in; parseRunbookJson refuses them until then).
 */
export function exportRunbook(runbook: Runbook): { json: string; fixedLeftOut: string[] } {
  const fixedLeftOut = runbook.arguments.filter((a) => a.kind === 'fixed').map((a) => a.name);
  const out: Record<string, unknown> = { format: RUNBOOK_FORMAT, reference: runbook.reference };
  if (runbook.name !== runbook.reference) out.name = runbook.name;
  if (runbook.description !== null) out.description = runbook.description;
  if (runbook.tags.length > 0) out.tags = runbook.tags;
  if (runbook.message !== null) out.message = runbook.message;
  out.arguments = runbook.arguments.map((a) =>
    Object.fromEntries(Object.entries(a).filter(([key, v]) => v !== undefined && !(a.kind === 'fixed' && key === 'value'))),
  );
  if (runbook.dependsOn.length > 0) out.dependsOn = runbook.dependsOn;
  out.triggeredBy = runbook.triggeredBy.map((t) => (t.kind === 'after' ? { after: t.runbook, on: t.on } : t.kind));
  if (runbook.graceMs !== null) out.grace = formatMs(runbook.graceMs);
  if (runbook.editors !== null) out.editors = peopleToFile(runbook.editors);
  out.steps = runbook.steps.map((group) => (group.length === 1 ? stepToFile(group[0]!) : group.map(stepToFile)));
  return { json: JSON.stringify(out, null, 2), fixedLeftOut };
}

/**
 * A recipe as a runbook: one script step `main` with the recipe's target, script and type; its
 * arguments reach the script exactly as a recipe task's do ("$1".. in declared order, ARG_<NAME>).
 * It may be started by hand, by a schedule or by a webhook, as recipes are today.
 */
export function runbookFromRecipe(recipe: Recipe): Runbook {
  return {
    reference: recipe.name,
    name: recipe.name,
    description: recipe.description,
    tags: [],
    message: recipe.message,
    arguments: recipe.arguments.map((a) => ({ ...a })),
    dependsOn: [],
    triggeredBy: [{ kind: 'manual' }, { kind: 'schedule' }, { kind: 'webhook' }],
    graceMs: null,
    editors: null,
    steps: [
      [
        {
          id: 'main',
          name: null,
          continueOnFailure: false,
          kind: 'script',
          script: { target: recipe.target, script: recipe.script, type: recipe.type, with: [] },
        },
      ],
    ],
    origin: 'recipe',
  };
}
