/**
 * The shape of countersign.yml, validated with zod so every mistake names its field.
 * Unknown keys are refused: a typo such as `aprovals` must not silently disable review.
 */
import { z } from 'zod';
import { durationSchema, parseDuration } from '../domain/duration.js';
import { peopleSchema, slackUsergroupIdSchema } from '../domain/people.js';
import { parseBatch } from '../domain/rollout.js';
import { RECIPE_NAME, recipeBodySchema } from '../domain/recipe.js';
import { SCRIPT_TYPES } from '../domain/scriptTypes.js';
import { parseSize } from '../domain/size.js';
import { secretNameProblem, validRunAsWords } from '../exec/remoteCommand.js';
import { httpConfigSchema } from '../exec/httpStep.js';
import { RUNBOOK_REFERENCE, runbooksConfigSchema } from '../domain/runbook/index.js';

const slackId = (what: string, first: string) => z.string().regex(new RegExp(`^[${first}][A-Z0-9]{2,}$`), `expected a Slack ${what} id like ${first}0123ABC`);

const duration = durationSchema;

const size = z
  .union([z.string(), z.number()])
  .refine((value) => parseSize(String(value)) !== null, 'expected a size like 10MB or 512KB')
  .refine((value) => (parseSize(String(value)) ?? 0) >= 4096, 'must be at least 4KB');

/** Names the script sees as environment variables; some are the shell's, the loader's or ours and cannot be set. */
const secretName = z.string().superRefine((name, ctx) => {
  const problem = secretNameProblem(name);
  if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
});

/** Masking a value this short would mask common fragments of all output; it is also too short to be secret. */
export const MIN_SECRET_LENGTH = 4;

/** Why a resolved secret value cannot be used, or null when it can (checked where values are read: load.ts). */
export function secretValueProblem(value: string): string | null {
  if ([...value].length < MIN_SECRET_LENGTH)
    return `the value is shorter than ${MIN_SECRET_LENGTH} characters: masking it would mask common text in all output`;
  return null;
}

/** sudo's short options that take a value as the next word (`-u app`). */
const SUDO_OPTIONS_WITH_VALUE = new Set(['-u', '-g', '-C', '-D', '-h', '-p', '-r', '-t', '-U', '-T', '-R']);

/**
 * sudo without -n asks for a password when its rules want one; over a channel without a
 * terminal nobody can type it, and the run hangs until its timeout instead of failing at once.
 * Only sudo's own options count: a `-n` of the command it runs (`nice -n 5`) does not.
 */
function sudoIsNonInteractive(words: readonly string[]): boolean {
  const sudo = words.findIndex((word) => word === 'sudo' || word.endsWith('/sudo'));
  if (sudo < 0) return true;
  for (let i = sudo + 1; i < words.length; i++) {
    const word = words[i]!;
    if (word === '-n' || word === '--non-interactive') return true;
    if (word === '--' || !word.startsWith('-')) return false;
    if (SUDO_OPTIONS_WITH_VALUE.has(word)) i++;
  }
  return false;
}

const secretSource = z.union([
  z.strictObject({ env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name') }),
  z.strictObject({ file: z.string().min(1) }),
]);

const rollout = z.strictObject({
  batch: z.union([z.number(), z.string()]).refine((value) => parseBatch(value) !== null, 'expected a positive number of hosts (5) or a percentage ("25%")'),
  stopOnFailure: z.boolean().default(false),
});

const host = z.strictObject({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().min(1),
});

const ssh = z
  .strictObject({
    privateKeyFile: z.string().min(1).optional(),
    privateKeyEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')
      .optional(),
    knownHosts: z.union([z.string(), z.array(z.string())]),
  })
  .refine((value) => (value.privateKeyFile === undefined) !== (value.privateKeyEnv === undefined), {
    message: 'give exactly one of privateKeyFile or privateKeyEnv',
  });

const reviewGroup = z
  .strictObject({
    name: z.string().min(1),
    users: z.array(slackId('user', 'UW')).min(1, 'list at least one user, or leave users out and name a usergroup').optional(),
    /** A Slack user group: its members (looked up with usergroups.users.list) count for this group. */
    usergroup: slackUsergroupIdSchema.optional(),
    approvals: z.number().int().min(1).default(1),
    /** Direct-message each member when a review is requested. */
    dm: z.boolean().default(false),
  })
  .refine((group) => group.users !== undefined || group.usergroup !== undefined, {
    message: 'a review group needs users, a usergroup, or both',
  })
  // A user group's size is only known at run time; a plain list can be checked now.
  .refine((group) => group.usergroup !== undefined || group.users === undefined || group.approvals <= group.users.length, {
    message: 'approvals is larger than the number of users, so nothing could ever be approved',
    path: ['approvals'],
  });

const review = z.strictObject({
  channel: slackId('channel', 'CGD'),
  autoRun: z.boolean().default(false),
  groups: z.array(reviewGroup).min(1),
  /** A review still pending this long after it was asked for expires: the task is rejected. */
  expiresAfter: z
    .string()
    .refine((text) => parseDuration(text) !== null, 'expected a duration like 30m, 24h or 7d')
    .refine((text) => (parseDuration(text) ?? 1000) >= 1000, 'must be at least 1s')
    .optional(),
});

const target = z.strictObject({
  description: z.string().optional(),
  type: z.enum(SCRIPT_TYPES).default('bash'),
  hosts: z.array(host).min(1),
  ssh,
  channel: slackId('channel', 'CGD').optional(),
  timeout: duration.default('15m'),
  connectTimeout: duration.default('10s'),
  /** The hosts' sshd MaxSessions: concurrent channels per connection. */
  maxSessions: z.number().int().min(2).max(1000).default(10),
  rollout: rollout.optional(),
  runAs: z
    .string()
    .refine((value) => validRunAsWords(value.trim().split(/\s+/)), 'expected a command prefix of plain words, e.g. "sudo -n -u app"')
    .refine(
      (value) => sudoIsNonInteractive(value.trim().split(/\s+/)),
      'sudo must be given -n (non-interactive), e.g. "sudo -n -u app": without it sudo may wait for a password nobody can type',
    )
    .optional(),
  secrets: z.record(secretName, secretSource).optional(),
  redact: z.array(z.string().min(1)).optional(),
  review: review.optional(),
  /** Who may read this target's tasks and their output, besides authors, reviewers, card channel members and admins. */
  viewers: peopleSchema.optional(),
});

const runner = z.strictObject({
  maxConcurrentRuns: z.number().int().min(1).max(1000).default(20),
  leaseTimeout: duration.default('30s'),
  /**
   * How long a runner may be cut off from Postgres without a sound (a silent partition) before its
   * runs are given up; a runner that crashes is noticed in about a second whatever this is.
   */
  livenessTimeout: duration.default('60s'),
  pollInterval: duration.default('2s'),
  killGrace: duration.default('5s'),
  /** On SIGTERM, how long running tasks may go on before they are stopped. */
  shutdownGrace: duration.default('30s'),
  /** Stored output per task; beyond it the head and the last lines are kept. */
  maxOutput: size.default('10MB'),
});

/** A webhook: `POST /hooks/<id>` starts `runbook` (or, as before, `recipe`), authenticated with `secret`. */
const hook = z.strictObject({
  runbook: z.string().regex(RUNBOOK_REFERENCE, 'expected a runbook reference').optional(),
  /** The older name of `runbook`, still read. */
  recipe: z.string().regex(RECIPE_NAME, 'expected a recipe name').optional(),
  secret: secretSource,
  /**
   * How a delivery proves it knows the secret (src/http/hooks.ts): `countersign` (default), an
   * HMAC over `<timestamp>.<body>` with the timestamp required; `github`, GitHub's
   * X-Hub-Signature-256 over the body with X-GitHub-Delivery; `bearer`, the secret itself, which
   * cannot stop a captured request from being replayed.
   */
  signature: z.enum(['countersign', 'github', 'bearer']).default('countersign'),
  /** Where the task's card goes; the target's channel otherwise. */
  channel: slackId('channel', 'CGD').optional(),
  /** The task's message; the body's `message` or the recipe's otherwise. */
  message: z.string().max(2000).optional(),
  /** Arguments set by the hook: a literal (`{ value }`, or a plain string) or a field of the JSON body (`{ from: "a.b" }`). */
  arguments: z
    .record(
      z.string(),
      z.union([
        z.string(),
        z.strictObject({ value: z.string() }),
        z.strictObject({
          from: z.string().regex(/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/, 'expected a dotted path into the JSON body, e.g. "pull_request.head.ref"'),
        }),
      ]),
    )
    .optional(),
});

export const configFileSchema = z.strictObject({
  /** countersign's admins: they may read every task and change or remove any saved runbook. */
  admins: peopleSchema.optional(),
  /** Links to task pages (in cards, answers, the API): how long one stays valid. */
  links: z.strictObject({ ttl: duration.default('24h') }).optional(),
  runner: runner.default({
    maxConcurrentRuns: 20,
    leaseTimeout: '30s',
    livenessTimeout: '60s',
    pollInterval: '2s',
    killGrace: '5s',
    shutdownGrace: '30s',
    maxOutput: '10MB',
  }),
  targets: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'target names use letters, digits, -, _ and .'), target),
  /** Saved tasks with arguments (read-only; `/task recipe import` adds others to the database). */
  recipes: z.record(z.string().regex(RECIPE_NAME, 'recipe names use letters, digits, -, _ and . (at most 64)'), recipeBodySchema).optional(),
  /** JSON files in the export format: a file, a directory, or `dir/*.json`. */
  recipeFiles: z.union([z.string().min(1), z.array(z.string().min(1))]).optional(),
  hooks: z
    .record(
      z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/, 'hook ids use letters, digits, - and _'),
      hook.refine((h) => (h.runbook === undefined) !== (h.recipe === undefined), { message: 'name the runbook the hook starts (runbook: <reference>)' }),
    )
    .optional(),
  /** Runbooks (src/domain/runbook/definition.ts), keyed by reference; recipes join them as one-step runbooks. */
  runbooks: runbooksConfigSchema.optional(),
  /** Where runbook http steps may send requests (src/exec/httpStep.ts); absent: nowhere. */
  http: httpConfigSchema.optional(),
});

export type HookFile = z.infer<typeof hook>;

export type ConfigFile = z.infer<typeof configFileSchema>;
export type TargetFile = z.infer<typeof target>;
