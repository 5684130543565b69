/**
 * Recipes: saved tasks (name, target, script, message, type) with declared arguments of three
 * kinds, as TheEye has them: `fixed` (a value the user never sees), `options` (one of a list)
 * and `input` (free text, with an optional regex and `required`). The script receives them as
 * positional arguments in declared order and as ARG_<NAME> variables (src/exec/remoteCommand.ts):
 * never spliced into its text.
 *
 * The JSON export format is the recipe as written in countersign.yml's `recipes:` plus its name;
 * `recipeFiles` and `/task recipe import` read the same format, validated by `recipeSchema`.
 * An imported recipe may name `editors` (users / a user group) who may replace or remove it
 * besides its owner. Exports leave fixed values out: they never leave the server, and whoever
 * imports the export fills them in.
 */
import { z } from 'zod';
import { SCRIPT_TYPES, type ScriptType } from './scriptTypes.js';
import { decodeSlackText } from './slackText.js';
import { MAX_SCRIPT_BYTES } from './commandText.js';
import { peopleSchema, type People } from './people.js';
import { compileLinear, documentPatternsProblem, type CompileResult } from './linearRegex.js';

export const RECIPE_FORMAT = 'countersign.recipe/v1';
export const MAX_ARGUMENT_BYTES = 4096;
export const MAX_ARGUMENTS = 20;

export type ArgumentKind = 'fixed' | 'options' | 'input';

export type RecipeArgument =
  | { name: string; kind: 'fixed'; value: string; label?: string | undefined }
  | { name: string; kind: 'options'; options: string[]; default?: string | undefined; label?: string | undefined }
  | {
      name: string;
      kind: 'input';
      pattern?: string | undefined;
      required: boolean;
      default?: string | undefined;
      label?: string | undefined;
      hint?: string | undefined;
    };

export interface Recipe {
  name: string;
  description: string | null;
  target: string;
  type: ScriptType | null;
  script: string;
  message: string | null;
  arguments: RecipeArgument[];
  /** `config`: read-only, from countersign.yml or recipeFiles; `imported`: in the recipes table. */
  origin: 'config' | 'imported';
  /** Imported recipes: who may replace or remove it besides its owner and the admins. */
  editors?: People | null;
}

/** One argument as a task stores it (tasks.arguments) and the script receives it. */
export interface TaskArgument {
  name: string;
  kind: ArgumentKind;
  value: string;
}

export const RECIPE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ARGUMENT_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * A value is stored and given to the script exactly as approved, so one Postgres cannot store
 * (half of an emoji's UTF-16 pair, as a cut string leaves it) is refused here with a clear
 * answer, not by the statement that inserts the task.
 */
const HALF_CHARACTER = 'contains half of a character (a lone UTF-16 surrogate, as a string cut inside an emoji leaves): send the whole character';
const isWellFormed = (value: string): boolean => (value as unknown as { isWellFormed(): boolean }).isWellFormed();

const argumentValue = z
  .string()
  .refine((v) => Buffer.byteLength(v, 'utf8') <= MAX_ARGUMENT_BYTES, `at most ${MAX_ARGUMENT_BYTES} bytes`)
  .refine((v) => !v.includes('\u0000'), 'must not contain a NUL byte')
  .refine(isWellFormed, HALF_CHARACTER);

/**
 * Input patterns are written by whoever imports a recipe, so they run in the linear-time engine
 * (src/domain/linearRegex.ts, RE2 syntax): a backtracking engine lets `(a+)+b` and a value of 30
 * `a`s hold the whole process for seconds. Linear is not free either: compiling costs about the
 * program's size, and a match up to about programSize steps per character, so a pattern's program
 * is capped when it is added (estimated from its text before it is compiled, then measured), the
 * patterns of an imported recipe are capped together (parseRecipeJson, before any is compiled),
 * and the text one match may look at is capped by both the argument limit and programSize.
 */
export const MAX_PATTERN_PROGRAM = 1000;
/** programSize × characters one match may cost: about 30 ms at the very worst measured here. */
export const MAX_MATCH_WORK = 1_000_000;

const compiledPatterns = new Map<string, CompileResult>();
const MAX_CACHED_PATTERNS = 256;

/** Compiled once per pattern: validation and every start reuse it. */
function compiledPattern(pattern: string): CompileResult {
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    compiled = compileLinear(pattern, { maxProgramSize: MAX_PATTERN_PROGRAM });
    if (compiledPatterns.size >= MAX_CACHED_PATTERNS) compiledPatterns.delete(compiledPatterns.keys().next().value as string);
    compiledPatterns.set(pattern, compiled);
  }
  return compiled;
}

/** Why `pattern` cannot be an input's regex, or null. */
export function patternProblem(pattern: string): string | null {
  const compiled = compiledPattern(pattern);
  return compiled.ok ? null : compiled.error;
}

/** The longest value (in characters) `pattern` is matched against. */
export function maxMatchedChars(pattern: string): number {
  const compiled = compiledPattern(pattern);
  const size = compiled.ok ? Math.max(1, compiled.regex.programSize) : 1;
  return Math.min(MAX_ARGUMENT_BYTES, Math.floor(MAX_MATCH_WORK / size));
}

/**
 * Why `value` does not satisfy `pattern` (which must match all of it), or null when it does. A
 * value longer than the pattern's bound is refused before any matching.
 */
export function patternMismatch(pattern: string, value: string): 'invalid-pattern' | 'too-long' | 'no-match' | null {
  const compiled = compiledPattern(pattern);
  if (!compiled.ok) return 'invalid-pattern';
  if (value.length > maxMatchedChars(pattern)) return 'too-long';
  return compiled.regex.fullMatch(value) ? null : 'no-match';
}

/** A fixed value is required; exports leave it out, so say what to do when it is missing. */
const fixedValue = z
  .string({
    error: (issue) =>
      issue.input === undefined ? 'a fixed argument needs its value (exports leave fixed values out: fill it in before importing)' : 'expected a string',
  })
  .refine((v) => Buffer.byteLength(v, 'utf8') <= MAX_ARGUMENT_BYTES, `at most ${MAX_ARGUMENT_BYTES} bytes`)
  .refine((v) => !v.includes('\u0000'), 'must not contain a NUL byte')
  .refine(isWellFormed, HALF_CHARACTER);

const argumentName = z.string().regex(ARGUMENT_NAME, 'argument names are letters, digits and _, not starting with a digit (the script sees ARG_<NAME>)');
const label = z.string().min(1).max(75).optional();

/** One declared argument (fixed / options / input); runbooks reuse it for their arguments and input fields. */
export const recipeArgumentSchema = z.discriminatedUnion('kind', [
  z.strictObject({ name: argumentName, kind: z.literal('fixed'), value: fixedValue, label }),
  z
    .strictObject({
      name: argumentName,
      kind: z.literal('options'),
      options: z.array(z.string().min(1, 'options are not empty').max(75, 'options are at most 75 characters (Slack shows no more)')).min(1).max(100),
      default: z.string().optional(),
      label,
    })
    .refine((a) => new Set(a.options).size === a.options.length, { message: 'an option is listed twice', path: ['options'] })
    .refine((a) => a.default === undefined || a.options.includes(a.default), { message: 'the default is not one of the options', path: ['default'] }),
  z
    .strictObject({
      name: argumentName,
      kind: z.literal('input'),
      pattern: z
        .string()
        .min(1)
        .superRefine((p, ctx) => {
          const problem = patternProblem(p);
          if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
        })
        .optional(),
      required: z.boolean().default(false),
      default: argumentValue.optional(),
      label,
      hint: z.string().max(150).optional(),
    })
    .superRefine((a, ctx) => {
      if (a.default === undefined || a.pattern === undefined || patternProblem(a.pattern) !== null) return;
      const mismatch = patternMismatch(a.pattern, a.default);
      if (mismatch === 'too-long')
        ctx.addIssue({
          code: 'custom',
          message: `the default is longer than this pattern checks (${maxMatchedChars(a.pattern)} characters)`,
          path: ['default'],
        });
      else if (mismatch !== null) ctx.addIssue({ code: 'custom', message: 'the default does not match the pattern', path: ['default'] });
    }),
]);

/** A recipe's body, as under `recipes.<name>` in countersign.yml. */
export const recipeBodySchema = z
  .strictObject({
    description: z.string().max(300).optional(),
    target: z.string().min(1),
    type: z.enum(SCRIPT_TYPES).optional(),
    message: z.string().max(2000).optional(),
    script: z
      .string()
      .refine((s) => s.trim() !== '', 'the script is empty')
      .refine((s) => Buffer.byteLength(s, 'utf8') <= MAX_SCRIPT_BYTES, 'scripts are at most 64 KiB'),
    arguments: z.array(recipeArgumentSchema).max(MAX_ARGUMENTS).default([]),
  })
  .superRefine((recipe, ctx) => {
    const seen = new Map<string, number>();
    recipe.arguments.forEach((arg, index) => {
      const upper = arg.name.toUpperCase();
      if (seen.has(upper))
        ctx.addIssue({
          code: 'custom',
          message: `the argument ${arg.name} is declared twice (names are compared uppercased: ARG_${upper})`,
          path: ['arguments', index, 'name'],
        });
      seen.set(upper, index);
    });
  });

export type RecipeBody = z.infer<typeof recipeBodySchema>;

export function recipeFromBody(name: string, body: RecipeBody, origin: Recipe['origin']): Recipe {
  return {
    name,
    description: body.description ?? null,
    target: body.target,
    type: body.type ?? null,
    script: body.script,
    message: body.message ?? null,
    arguments: body.arguments.map((a) => ({ ...a }) as RecipeArgument),
    origin,
  };
}

const editorsSchema = peopleSchema;

/** Parses one recipe in the export format; problems name their field (`arguments[1].pattern: ...`). */
export function parseRecipeJson(value: unknown): { ok: true; recipe: Recipe } | { ok: false; problems: string[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ok: false, problems: ['expected a JSON object with name, target, script and arguments'] };
  const { format, name, editors, ...body } = value as Record<string, unknown>;
  const problems: string[] = [];
  if (format !== undefined && format !== RECIPE_FORMAT) problems.push(`format: expected "${RECIPE_FORMAT}"`);
  if (typeof name !== 'string' || !RECIPE_NAME.test(name)) problems.push('name: recipe names use letters, digits, -, _ and . (at most 64)');
  const parsedEditors = editors === undefined ? null : editorsSchema.safeParse(editors);
  if (parsedEditors && !parsedEditors.success)
    problems.push(...describe(parsedEditors.error.issues.map((issue) => ({ ...issue, path: ['editors', ...issue.path] }))));
  // Before the schema compiles any pattern: their total is bounded too.
  const tooMany = documentPatternsProblem(rawArgumentPatterns(body.arguments));
  if (tooMany !== null) return { ok: false, problems: [...problems, `arguments: ${tooMany}`] };
  const parsed = recipeBodySchema.safeParse(body);
  if (!parsed.success) problems.push(...describe(parsed.error.issues));
  if (problems.length > 0 || !parsed.success) return { ok: false, problems };
  const recipe = recipeFromBody(name as string, parsed.data, 'imported');
  if (parsedEditors?.success) recipe.editors = { users: [...(parsedEditors.data.users ?? [])], usergroup: parsedEditors.data.usergroup ?? null };
  return { ok: true, recipe };
}

/**
 * The `pattern` of each raw (not yet validated) argument: parseRecipeJson and parseRunbookJson
 * check their total before the schema compiles any of them. Anything that is not a string is the
 * schema's to refuse.
 */
export function rawArgumentPatterns(args: unknown): unknown[] {
  return Array.isArray(args)
    ? args.map((arg: unknown) => (typeof arg === 'object' && arg !== null ? (arg as Record<string, unknown>).pattern : undefined))
    : [];
}

function describe(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('');
    const message =
      issue.code === 'unrecognized_keys'
        ? `unknown field${issue.keys.length > 1 ? 's' : ''}: ${issue.keys.join(', ')}`
        : issue.message.replace(/^Invalid input: /, '');
    return path === '' ? message : `${path}: ${message}`;
  });
}

/**
 * The recipe's definition as stored and hashed (src/domain/contentVersion.ts,
 * recipeContentHash): the export format with fixed values, without editors (who may change a
 * recipe is not what it runs).
 */
export function recipeDefinition(recipe: Recipe): Record<string, unknown> {
  const out: Record<string, unknown> = { format: RECIPE_FORMAT, name: recipe.name };
  if (recipe.description !== null) out.description = recipe.description;
  out.target = recipe.target;
  if (recipe.type !== null) out.type = recipe.type;
  if (recipe.message !== null) out.message = recipe.message;
  out.script = recipe.script;
  out.arguments = recipe.arguments.map((a) => Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)));
  return out;
}

/**
 * The recipe in the export format, to share: fixed values left out (they never leave the
 * server; an import without them is refused, naming the field to fill in). Editors are kept.
 */
export function exportRecipe(recipe: Recipe): string {
  const out = recipeDefinition(recipe);
  out.arguments = (out.arguments as Array<Record<string, unknown>>).map((a) =>
    a.kind === 'fixed' ? Object.fromEntries(Object.entries(a).filter(([key]) => key !== 'value')) : a,
  );
  if (recipe.editors)
    out.editors = {
      ...(recipe.editors.users.length > 0 ? { users: [...recipe.editors.users] } : {}),
      ...(recipe.editors.usergroup ? { usergroup: recipe.editors.usergroup } : {}),
    };
  return JSON.stringify(out, null, 2);
}

/** The names of a recipe's fixed arguments (an export leaves their values out). */
export const fixedArgumentNames = (recipe: Recipe): string[] => recipe.arguments.filter((a) => a.kind === 'fixed').map((a) => a.name);

/** Fixed values shorter than this are not masked in output: masking "1" or "eu" would hide every such character run, not a secret. */
export const MIN_MASKED_FIXED_VALUE = 4;

/**
 * The arguments with every value that holds a fixed value marked fixed too: a copy of a fixed
 * value (a runbook step's `with: "Bearer ${{ args.token }}"`, an earlier step's output that
 * echoed it) is as secret as the value itself, so it is stored, shown (•••) and masked as one.
 */
export function markFixedCopies(args: readonly TaskArgument[]): TaskArgument[] {
  const secrets = args.filter((a) => a.kind === 'fixed' && a.value.length >= MIN_MASKED_FIXED_VALUE).map((a) => a.value);
  if (secrets.length === 0) return [...args];
  return args.map((a) => (a.kind !== 'fixed' && secrets.some((secret) => a.value.includes(secret)) ? { ...a, kind: 'fixed' as const } : a));
}

/** The fixed values of a task's arguments (and values holding one) to mask in its output like secrets. */
export function fixedValuesToMask(args: readonly TaskArgument[] | null | undefined): string[] {
  return markFixedCopies(args ?? [])
    .filter((a) => a.kind === 'fixed' && a.value.length >= MIN_MASKED_FIXED_VALUE)
    .map((a) => a.value);
}

export interface ArgumentError {
  name: string;
  message: string;
}

/**
 * Checks values given for a recipe's arguments (from the modal or a webhook) and answers every
 * argument in declared order, fixed ones included. Fixed arguments cannot be given; unknown
 * names are refused; a missing option takes its default; an input must match its whole pattern.
 */
export function resolveArguments(
  recipe: Recipe,
  given: Readonly<Record<string, unknown>>,
): { ok: true; values: TaskArgument[] } | { ok: false; errors: ArgumentError[] } {
  return resolveDeclaredValues(recipe.name, recipe.arguments, given, { what: 'argument', fixedBy: 'the recipe' });
}

/**
 * Values given for declared arguments (a recipe's or runbook's arguments at start, an input
 * step's fields at submit): every one answered in declared order, fixed ones included. Input
 * patterns run in the linear-time engine on values bounded by the pattern's size.
 */
export function resolveDeclaredValues(
  owner: string,
  declared: readonly RecipeArgument[],
  given: Readonly<Record<string, unknown>>,
  options: { what?: 'argument' | 'field'; fixedBy?: string } = {},
): { ok: true; values: TaskArgument[] } | { ok: false; errors: ArgumentError[] } {
  const what = options.what ?? 'argument';
  const errors: ArgumentError[] = [];
  const byName = new Map(declared.map((a) => [a.name, a]));
  for (const name of Object.keys(given)) {
    const arg = byName.get(name);
    if (!arg)
      errors.push({
        name,
        message: `${owner} has no ${what} ${name}${
          declared.length > 0
            ? ` (it takes ${
                declared
                  .filter((a) => a.kind !== 'fixed')
                  .map((a) => a.name)
                  .join(', ') || 'none'
              })`
            : ''
        }`,
      });
    else if (arg.kind === 'fixed') errors.push({ name, message: `${name} is fixed by ${options.fixedBy ?? owner} and cannot be set` });
  }
  const values: TaskArgument[] = [];
  for (const arg of declared) {
    if (arg.kind === 'fixed') {
      values.push({ name: arg.name, kind: 'fixed', value: arg.value });
      continue;
    }
    const raw = given[arg.name];
    if (raw !== undefined && raw !== null && typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      errors.push({ name: arg.name, message: `${arg.name}: expected a string` });
      continue;
    }
    const value = raw === undefined || raw === null ? undefined : String(raw);
    if (value !== undefined && (value.includes('\u0000') || Buffer.byteLength(value, 'utf8') > MAX_ARGUMENT_BYTES)) {
      errors.push({ name: arg.name, message: `${arg.name}: at most ${MAX_ARGUMENT_BYTES} bytes, without NUL bytes` });
      continue;
    }
    if (value !== undefined && !isWellFormed(value)) {
      errors.push({ name: arg.name, message: `${arg.name}: ${HALF_CHARACTER}` });
      continue;
    }
    if (arg.kind === 'options') {
      const chosen = value ?? arg.default;
      if (chosen === undefined) errors.push({ name: arg.name, message: `${arg.name}: choose one of ${arg.options.join(', ')}` });
      else if (!arg.options.includes(chosen)) errors.push({ name: arg.name, message: `${arg.name}: expected one of ${arg.options.join(', ')}` });
      else values.push({ name: arg.name, kind: 'options', value: chosen });
      continue;
    }
    const text = value === undefined || value === '' ? (arg.default ?? '') : value;
    if (text === '') {
      if (arg.required) errors.push({ name: arg.name, message: `${arg.name} is required` });
      else values.push({ name: arg.name, kind: 'input', value: '' });
      continue;
    }
    const mismatch = arg.pattern === undefined ? null : patternMismatch(arg.pattern, text);
    if (mismatch === 'invalid-pattern') {
      // Stored before patterns ran in the linear-time engine: refuse rather than run it on V8.
      errors.push({
        name: arg.name,
        message: `${arg.name}: the ${what === 'field' ? 'step' : 'recipe'}'s pattern is not valid for the linear-time engine, so no value can be checked; its owner must import it again with an RE2 pattern`,
      });
      continue;
    }
    if (mismatch === 'too-long') {
      errors.push({ name: arg.name, message: `${arg.name}: at most ${maxMatchedChars(arg.pattern ?? '')} characters for this pattern` });
      continue;
    }
    if (mismatch === 'no-match') {
      errors.push({ name: arg.name, message: `${arg.name}: expected a value matching /${arg.pattern}/${arg.hint ? ` (${arg.hint})` : ''}` });
      continue;
    }
    values.push({ name: arg.name, kind: 'input', value: text });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, values };
}

/** How a card or list shows arguments: fixed values hidden. */
export function describeArguments(args: readonly TaskArgument[]): string {
  return markFixedCopies(args)
    .map((a) => `${a.name}=${a.kind === 'fixed' ? '•••' : JSON.stringify(a.value)}`)
    .join(' ');
}

export type RecipeCommand =
  | { kind: 'start'; name: string }
  | { kind: 'recipe-list' }
  | { kind: 'recipe-export'; name: string }
  | { kind: 'recipe-import'; json: string; replace: boolean }
  | { kind: 'recipe-remove'; name: string }
  | { kind: 'recipe-error'; message: string };

export const RECIPE_USAGE =
  '`/task start <recipe>` · `/task recipe list` · `/task recipe export <name>` · `/task recipe import [--replace]` followed by a ```json block``` · `/task recipe remove <name>`';

/** `/task start …` and `/task recipe …`; null for every other /task command. */
export function parseRecipeCommand(text: string): RecipeCommand | null {
  const trimmed = text.trim();
  const start = /^start(?:\s+(\S+))?\s*$/i.exec(trimmed);
  if (/^start\b/i.test(trimmed)) {
    if (!start?.[1]) return { kind: 'recipe-error', message: `Name the recipe to start: \`/task start <recipe>\` (\`/task recipe list\` shows them).` };
    return { kind: 'start', name: start[1] };
  }
  if (!/^recipes?\b/i.test(trimmed)) return null;
  const rest = trimmed.replace(/^recipes?\b\s*/i, '');
  if (rest === '' || /^list\s*$/i.test(rest)) return { kind: 'recipe-list' };
  const exported = /^export\s+(\S+)\s*$/i.exec(rest);
  if (exported?.[1]) return { kind: 'recipe-export', name: exported[1] };
  const removed = /^remove(?:\s+(\S+))?\s*$/i.exec(rest);
  if (removed)
    return removed[1]
      ? { kind: 'recipe-remove', name: removed[1] }
      : { kind: 'recipe-error', message: 'Name the recipe to remove: `/task recipe remove <name>`.' };
  const imported = /^import\b([\s\S]*)$/i.exec(rest);
  if (imported) {
    let body = imported[1] ?? '';
    let replace = false;
    const flag = /^\s*--replace\b/.exec(body);
    if (flag) {
      replace = true;
      body = body.slice(flag[0].length);
    }
    const fence = /^\s*```[a-zA-Z]*\s*\n?([\s\S]*?)```\s*$/.exec(body);
    const json = fence ? (fence[1] ?? '') : body.trim();
    if (json.trim() === '') return { kind: 'recipe-error', message: 'Paste the recipe after `/task recipe import`, as a ```json block```.' };
    // Slack turns quotes into “smart” ones when people type; JSON needs plain ones.
    // Slack escapes &, < and > and wraps links it recognised (a URL in the script) in <...>.
    const unescaped = decodeSlackText(json);
    return { kind: 'recipe-import', json: unescaped.replace(/[\u201c\u201d]/g, '"'), replace };
  }
  return { kind: 'recipe-error', message: `Unknown recipe command. ${RECIPE_USAGE}` };
}
