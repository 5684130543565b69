/**
 * Runbooks as every surface sees them: one catalog of the config's runbooks, the config's
 * recipes (one-step runbooks), and the imported ones (the `runbooks` table, in either format),
 * each with its content hash and who may change it; import, replace, remove and export of the
 * imported ones; and starting one.
 *
 * Starting: a recipe (from `recipes:`, `recipeFiles` or a recipe import) starts as a task, as it
 * always has (its card is the run's card, its review the target's): the one-step run of a
 * one-script runbook. Every other runbook starts a run (RunService), reviewed as one request
 * covering every target it touches. Both record the definition's hash; a start that names the
 * plan hash it was shown (a form's, the API's `hash`) is refused when the runbook or any runbook
 * of its dependsOn closure changed since.
 *
 * Imported runbooks (issue 11 and the trust rules of issue 10): the importer owns it; its
 * `editors` and the config's admins may replace or remove it too; every change is audited with
 * its hash (subject `runbook:<reference>`). An imported runbook's http steps must name a target:
 * user-written requests always fall under some target's review (an http step without a target
 * is only allowed in countersign.yml, written by the admins who also wrote http.allow). Only an
 * admin may import an approval step naming a `usergroup`, `dm: true` or a `channel`, or an input
 * step `from` a usergroup: otherwise anyone's runbook could make the bot mention a group and DM
 * people in a channel it picks.
 */
import type { Config } from '../config/config.js';
import { definitionContentHash, shortHash } from '../domain/contentVersion.js';
import { contentHash } from '../domain/digest.js';
import type { People } from '../domain/people.js';
import { parseRecipeJson, RECIPE_FORMAT, type Recipe, type TaskArgument } from '../domain/recipe.js';
import type { RunTrigger } from '../domain/run.js';
import { checkRunbooks, dependencyOrder, exportRunbook, parseRunbookJson, RUNBOOK_FORMAT, runbookFromRecipe, type Runbook } from '../domain/runbook/index.js';
import { escapeSlackText } from '../domain/slackText.js';
import type { Task, TaskSource } from '../domain/task.js';
import type { Run } from '../domain/run.js';
import { contentKey } from '../store/contentKey.js';
import type { Db, Queryable } from '../store/db.js';
import { refuse, type Outcome } from './outcome.js';
import type { RecipeService } from './recipes.js';
import { Reviewers } from './reviewers.js';
import type { RunService } from './runs.js';
import { fixedNotAllowed, SavedDefinitions, type SavedRow } from './savedDefinitions.js';
import type { RunbookScheduling } from './schedules.js';

export const RUNBOOK_HASH_DOMAIN = 'countersign.runbook-definition/v1';
export const RUNBOOK_PLAN_HASH_DOMAIN = 'countersign.runbook-plan/v1';

/**
 * The version of what a start runs: the runbook and every runbook of its dependsOn closure, each
 * by reference and definition hash, in plan order. A runbook without dependencies has its own
 * hash as its plan hash, so a start naming the runbook's hash (its ETag) keeps working for it.
 * `runbooks` is the catalog's runbooks (runbooksOf): pass it when hashing many of one catalog,
 * so it is built once, not once per runbook.
 */
export function planHashOf(
  catalog: ReadonlyMap<string, Pick<RunbookEntry, 'runbook' | 'hash'>>,
  reference: string,
  runbooks: ReadonlyMap<string, Runbook> = runbooksOf(catalog),
): string | null {
  const entry = catalog.get(reference);
  if (!entry) return null;
  const order = dependencyOrder(runbooks, reference);
  // A broken closure (a missing dependency, a cycle) cannot start; its hash still changes once it is fixed.
  const refs = order.ok ? order.order : [reference];
  if (refs.length === 1) return entry.hash;
  return contentHash(
    RUNBOOK_PLAN_HASH_DOMAIN,
    refs.map((ref) => ({ reference: ref, hash: catalog.get(ref)?.hash ?? null })),
  );
}

/** The runbooks alone of a catalog, by reference, as planRun and the graph want them. */
export function runbooksOf(catalog: ReadonlyMap<string, Pick<RunbookEntry, 'runbook'>>): Map<string, Runbook> {
  return new Map([...catalog].map(([ref, entry]) => [ref, entry.runbook]));
}

export interface RunbookEntry {
  runbook: Runbook;
  /** The hash of its definition (64 hex): recipes keep their recipe hash. */
  hash: string;
  /** `recipe`: starts as a task (RecipeService); `runbook`: starts a run. */
  kind: 'recipe' | 'runbook';
  /** Where it is defined: countersign.yml (read-only) or imported. */
  source: 'config' | 'imported';
  owner: string | null;
  editors: People | null;
  /** The recipe itself, for recipes. */
  recipe: Recipe | null;
}

export interface RunbookStartInput {
  starter: string;
  /** Values by argument name. */
  values: Readonly<Record<string, unknown>>;
  message?: string | null;
  trigger: RunTrigger;
  /** A recipe's task source (the surface); runs keep the whole trigger. */
  source: TaskSource;
  sourceKey: string | null;
  channelId: string | null;
  /**
   * The version the starter was shown (a form's, the API's `hash`): the plan hash (planHashOf),
   * over the runbook and its dependencies; refused if any of them is another now.
   */
  expectedHash?: string;
  /** A recipe starts as a one-step run, as schedules start it (a Workflow Builder step waits for a run). */
  asRun?: boolean;
}

export type RunbookStartOutcome =
  | { ok: true; kind: 'task'; task: Task; created: boolean; arguments: TaskArgument[] }
  | { ok: true; kind: 'run'; run: Run; created: boolean }
  | { ok: false; code: 'invalid_arguments'; message: string; errors: Array<{ name: string; message: string }> }
  | { ok: false; code: string; message: string; errors?: undefined };

/** The definition as stored and hashed: the export format with its fixed values, without editors. */
export function runbookDefinition(runbook: Runbook): Record<string, unknown> {
  const out = JSON.parse(exportRunbook(runbook).json) as Record<string, unknown>;
  out.arguments = runbook.arguments.map((a) => Object.fromEntries(Object.entries(a).filter(([, v]) => v !== undefined)));
  delete out.editors;
  return out;
}

/** The hash of a runbook's definition, fixed values sealed under the server's key. */
export function runbookContentHash(definition: Readonly<Record<string, unknown>>, key: string): string {
  return definitionContentHash(RUNBOOK_HASH_DOMAIN, definition, key);
}

const runbookSubject = (reference: string): string => `runbook:${reference}`;
export { runbookSubject };

/** Which trigger words a start needs in the runbook's triggeredBy. */
function triggerWord(trigger: RunTrigger): 'manual' | 'schedule' | 'webhook' | null {
  if (trigger.kind === 'workflow') return 'manual';
  if (trigger.kind === 'manual' || trigger.kind === 'api') return trigger.again !== undefined ? null : 'manual';
  if (trigger.kind === 'schedule' || trigger.kind === 'webhook') return trigger.kind;
  return null;
}

export class RunbookService {
  private readonly saved: SavedDefinitions;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly recipes: RecipeService,
    private readonly runs: RunService,
    reviewers: Reviewers = new Reviewers(null),
  ) {
    this.saved = new SavedDefinitions(db, config, reviewers);
  }

  /** Imported rows as last parsed, by reference, with the version of the row they came from. */
  private parsedRows = new Map<string, { version: string; entry: RunbookEntry | null }>();
  private configCatalog: Promise<Map<string, RunbookEntry>> | null = null;

  /** Every runbook by reference: the config's (recipes included), then the imported ones. */
  async catalog(db: Queryable = this.db): Promise<Map<string, RunbookEntry>> {
    const entries = new Map(await this.configEntries());
    const parsed = new Map<string, { version: string; entry: RunbookEntry | null }>();
    for (const row of await this.saved.allRows(db)) {
      if (entries.has(row.reference)) continue;
      // Parsing a definition (its schema, its patterns compiled) costs milliseconds, and imports
      // may number hundreds: each row is parsed once per version, not on every read.
      const version = rowVersion(row);
      const known = this.parsedRows.get(row.reference);
      const entry = known?.version === version ? known.entry : this.fromRow(row);
      parsed.set(row.reference, { version, entry });
      if (entry) entries.set(row.reference, entry);
    }
    this.parsedRows = parsed;
    return entries;
  }

  /** The config's recipes and runbooks, hashed once: the config does not change while the process runs. */
  private configEntries(): Promise<Map<string, RunbookEntry>> {
    this.configCatalog ??= (async () => {
      const entries = new Map<string, RunbookEntry>();
      for (const recipe of this.config.recipes?.values() ?? []) entries.set(recipe.name, await this.configRecipeEntry(recipe));
      for (const runbook of this.config.runbooks?.values() ?? []) entries.set(runbook.reference, await this.configEntry(runbook));
      return entries;
    })();
    // A failed first try (the content key could not be read) is tried again next time.
    this.configCatalog.catch(() => {
      this.configCatalog = null;
    });
    return this.configCatalog;
  }

  /** The plan hash of a runbook (planHashOf) in this catalog, or in the current one. */
  async planHash(reference: string, catalog?: ReadonlyMap<string, RunbookEntry>, runbooks?: ReadonlyMap<string, Runbook>): Promise<string | null> {
    return planHashOf(catalog ?? (await this.catalog()), reference, runbooks);
  }

  /** The runbooks alone, as planRun and the graph want them. */
  async runbookMap(): Promise<Map<string, Runbook>> {
    return runbooksOf(await this.catalog());
  }

  /**
   * Runbooks whose name, reference or description contains `search`, with every tag in `tags`,
   * of `catalog` (one the caller read already), else of the current one.
   */
  async list(filter: { search?: string; tags?: readonly string[] } = {}, catalog?: ReadonlyMap<string, RunbookEntry>): Promise<RunbookEntry[]> {
    const needle = filter.search?.toLowerCase();
    return [...(catalog ?? (await this.catalog())).values()]
      .filter((e) => !needle || [e.runbook.reference, e.runbook.name, e.runbook.description ?? ''].some((text) => text.toLowerCase().includes(needle)))
      .filter((e) => (filter.tags ?? []).every((tag) => e.runbook.tags.includes(tag)))
      .sort((a, b) => a.runbook.reference.localeCompare(b.runbook.reference));
  }

  /** One runbook: the config's, else its own row (not the whole catalog: a start reads one). */
  async find(reference: string): Promise<RunbookEntry | null> {
    // The catalog's precedence: the config's runbooks, its recipes, then imports; each parsed once.
    const configured = (await this.configEntries()).get(reference);
    if (configured) return configured;
    const row = await this.saved.row(reference);
    if (!row) return null;
    const version = rowVersion(row);
    const known = this.parsedRows.get(reference);
    if (known?.version === version) return known.entry;
    const entry = this.fromRow(row);
    this.parsedRows.set(reference, { version, entry });
    return entry;
  }

  /** The export (fixed values left out) and the fixed arguments the importer must fill in. */
  async export(reference: string): Promise<Outcome<{ json: string; entry: RunbookEntry; fixed: string[] }>> {
    const entry = await this.find(reference);
    if (!entry) return this.unknown(reference);
    const exported = exportRunbook(entry.runbook);
    return { ok: true, json: exported.json, entry, fixed: exported.fixedLeftOut };
  }

  /**
   * Imports one runbook in the countersign.runbook/v1 format (`replace`: replaces an imported
   * one, its owner, an editor or an admin only). Refused when invalid, when it names a config
   * runbook or recipe, when an http step names no target, or when the graph checks fail
   * (dependsOn and after targets exist, no cycles, targets and secrets exist, hosts allowed).
   */
  async import(
    json: unknown,
    userId: string,
    replace: boolean,
  ): Promise<Outcome<{ entry: RunbookEntry; replaced: boolean; hash: string; previousHash: string | null }>> {
    const parsed = parseRunbookJson(json);
    if (!parsed.ok) return refuse('invalid_runbook', `The runbook is not valid:\n${parsed.problems.map((p) => `• ${escapeSlackText(p)}`).join('\n')}`);
    const runbook = parsed.runbook;
    if (this.config.runbooks?.has(runbook.reference) || this.config.recipes?.has(runbook.reference)) {
      return refuse(
        'name_taken',
        `\`${runbook.reference}\` is defined in countersign.yml, which cannot be replaced from Slack or the API. Import it under another reference.`,
      );
    }
    // A fixed value is never shown to reviewers: only admins, trusted with what they hide, may set one (as for recipes).
    const fixed = runbook.arguments.filter((arg) => arg.kind === 'fixed').map((arg) => arg.name);
    if (fixed.length > 0 && !(await this.saved.isAdmin(userId))) {
      return fixedNotAllowed(fixed);
    }
    // An approval step's user group, DMs and channel (and an input step's group) make the bot mention,
    // message and post where the runbook says, in the starter's run: only admins (who write countersign.yml) may aim them.
    const aimed = notifyingFields(runbook);
    if (aimed.length > 0 && !(await this.saved.isAdmin(userId))) return notifyNotAllowed(aimed);
    const problems: string[] = [];
    for (const [g, group] of runbook.steps.entries()) {
      for (const [p, step] of group.entries()) {
        if (step.kind === 'http' && step.http.target === null) {
          problems.push(
            `steps[${g}]${group.length > 1 ? `[${p}]` : ''}.http.target: an imported runbook's http steps name a target, whose review then covers the request`,
          );
        }
      }
    }
    // A run started `after` another gets that run's argument values (fixed ones too) and runs in
    // its creator's name: only someone who may change the runbook it follows may chain onto it.
    for (const [index, trigger] of runbook.triggeredBy.entries()) {
      if (trigger.kind !== 'after') continue;
      if (!(await this.mayChange(trigger.runbook, userId)) && !(await this.saved.isAdmin(userId))) {
        problems.push(
          `triggeredBy[${index}].after: you may not change ${trigger.runbook}, so your runbook may not start after it (a triggered run gets its values and runs in its starter's name)`,
        );
      }
    }
    const catalog = await this.runbookMap();
    catalog.set(runbook.reference, runbook);
    const prefix = `runbooks.${runbook.reference}.`;
    problems.push(
      ...checkRunbooks(catalog, { targets: this.config.targets, ...(this.config.http ? { allow: this.config.http.allow } : {}) })
        .filter((p) => p.startsWith(prefix))
        .map((p) => p.slice(prefix.length)),
    );
    if (problems.length > 0) return refuse('invalid_runbook', `The runbook is not valid:\n${problems.map((p) => `• ${escapeSlackText(p)}`).join('\n')}`);
    const definition = runbookDefinition(runbook);
    const hash = runbookContentHash(definition, await contentKey(this.db));
    const outcome = await this.saved.save({
      kind: 'runbook',
      reference: runbook.reference,
      definition,
      hash,
      editors: runbook.editors,
      userId,
      replace,
      data: { targets: targetsOf(runbook) },
    });
    if (!outcome.ok) return outcome;
    const entry = await this.find(runbook.reference);
    if (!entry) return refuse('gone', `The runbook \`${runbook.reference}\` was removed a moment ago.`);
    return { ok: true, entry, replaced: outcome.replaced, hash, previousHash: outcome.previousHash };
  }

  /** Removes an imported runbook or recipe (its owner, an editor or an admin); runs started from it keep their plan. */
  async remove(reference: string, userId: string): Promise<Outcome<{ name: string; hash: string }>> {
    if (this.config.runbooks?.has(reference) || this.config.recipes?.has(reference))
      return refuse('config_runbook', `\`${reference}\` is defined in countersign.yml: remove it there.`);
    const row = await this.saved.row(reference);
    const kind = row && parseRecipeJson(row.definition).ok ? 'recipe' : 'runbook';
    return this.saved.remove(kind, reference, userId, () => this.unknown(reference));
  }

  /** May `userId` change (replace, remove) this imported runbook? */
  async mayChange(reference: string, userId: string): Promise<boolean> {
    const row = await this.saved.row(reference);
    return row !== undefined && !this.config.runbooks?.has(reference) && (await this.saved.mayChange(row, userId));
  }

  /** Starts a runbook: a recipe as a task, anything else as a run (see the header). */
  async start(reference: string, input: RunbookStartInput): Promise<RunbookStartOutcome> {
    const catalog = await this.catalog();
    const entry = catalog.get(reference);
    if (!entry) return this.unknown(reference);
    const runbooks = runbooksOf(catalog);
    const planHash = planHashOf(catalog, reference, runbooks) ?? entry.hash;
    // The catalog read here is the one the run is planned from: what the hash names is what runs.
    if (input.expectedHash !== undefined && input.expectedHash !== planHash) {
      const what = entry.runbook.dependsOn.length > 0 ? `The runbook ${reference} or a runbook it depends on` : `The runbook ${reference}`;
      return refuse(
        'runbook_changed',
        `${what} changed since this form opened (it is now version ${shortHash(planHash)}): close the form and start it again to see the new version.`,
      );
    }
    if (entry.kind === 'recipe' && entry.recipe && input.asRun !== true) {
      const writtenBy = entry.runbook.writtenBy;
      const version = { name: reference, hash: entry.hash, ...(writtenBy ? { writtenBy } : {}) };
      const started = await this.recipes.start(entry.recipe, version, {
        author: input.starter,
        values: input.values,
        ...(input.message !== undefined ? { message: input.message } : {}),
        source: input.source,
        sourceKey: input.sourceKey,
        channelId: input.channelId,
      });
      return started.ok ? { ok: true, kind: 'task', task: started.task, created: started.created, arguments: started.arguments } : started;
    }
    const word = triggerWord(input.trigger);
    if (word !== null && !entry.runbook.triggeredBy.some((t) => t.kind === word)) {
      return refuse(
        'not_triggerable',
        `${reference} cannot be started ${word === 'manual' ? 'by hand' : `by a ${word}`}: its triggeredBy is ${entry.runbook.triggeredBy.map((t) => (t.kind === 'after' ? `after ${t.runbook}` : t.kind)).join(', ')}.`,
      );
    }
    const started = await this.runs.start({
      runbooks,
      reference,
      values: input.values,
      creator: input.starter,
      trigger: input.trigger,
      message: input.message ?? null,
      channelId: input.channelId,
      sourceKey: input.sourceKey,
      runbookHash: entry.hash,
    });
    return started.ok ? { ok: true, kind: 'run', run: started.run, created: started.created } : started;
  }

  /**
   * How schedules start runbooks (`/task schedule add --runbook`): a schedule names a runbook
   * that lists `schedule` in its triggeredBy, with values that plan; each firing starts a run in
   * the firing's transaction (one per firing: source_key `schedule:<id>:<fire time>`), in the
   * schedule author's name, reviewed where its targets need it. A recipe scheduled this way runs
   * as a one-step run.
   */
  scheduling(): RunbookScheduling {
    return {
      check: async (reference, values) => {
        const catalog = await this.catalog();
        const entry = catalog.get(reference);
        if (!entry) return this.unknown(reference);
        if (!entry.runbook.triggeredBy.some((t) => t.kind === 'schedule'))
          return refuse('not_triggerable', `${reference} cannot be started by a schedule: add schedule to its triggeredBy.`);
        const planned = await this.runs.plan(runbooksOf(catalog), reference, values);
        return planned.ok ? { ok: true } : refuse('invalid_arguments', planned.errors.map((e) => e.message).join('; '));
      },
      start: async (trx, schedule, fireAt) => {
        const reference = schedule.runbook ?? '';
        // On the firing's own connection: it holds the schedule's lock, and a second connection per firing could starve the pool.
        const catalog = await this.catalog(trx);
        const entry = catalog.get(reference);
        if (!entry) return { ok: false, reason: `the runbook ${reference} no longer exists` };
        const planned = await this.runs.plan(runbooksOf(catalog), reference, schedule.arguments ?? {});
        if (!planned.ok) return { ok: false, reason: planned.errors.map((e) => e.message).join('; ') };
        const created = await this.runs.create(
          trx,
          planned.plan,
          {
            creator: schedule.author,
            trigger: { kind: 'schedule', schedule: schedule.id },
            message: schedule.message,
            channelId: schedule.channelId,
            sourceKey: `schedule:${schedule.id}:${fireAt.toISOString()}`,
            runbookHash: entry.hash,
          },
          null,
        );
        return { ok: true, runId: created.run.id };
      },
    };
  }

  private async configRecipeEntry(recipe: Recipe): Promise<RunbookEntry> {
    return {
      runbook: runbookFromRecipe(recipe),
      hash: await this.recipes.hashOf(recipe),
      kind: 'recipe',
      source: 'config',
      owner: null,
      editors: null,
      recipe,
    };
  }

  private async configEntry(runbook: Runbook): Promise<RunbookEntry> {
    return {
      runbook,
      hash: runbookContentHash(runbookDefinition(runbook), await contentKey(this.db)),
      kind: 'runbook',
      source: 'config',
      owner: null,
      editors: null,
      recipe: null,
    };
  }

  private fromRow(row: SavedRow): RunbookEntry | null {
    const definition = row.definition as Record<string, unknown> | null;
    if (definition?.format === RUNBOOK_FORMAT) {
      const parsed = parseRunbookJson({ ...definition, ...(row.editors ? { editors: peopleFile(row.editors) } : {}) });
      return parsed.ok
        ? {
            runbook: { ...parsed.runbook, writtenBy: row.imported_by },
            hash: row.content_hash,
            kind: 'runbook',
            source: 'imported',
            owner: row.owner,
            editors: row.editors ?? null,
            recipe: null,
          }
        : null;
    }
    if (definition?.format !== undefined && definition.format !== RECIPE_FORMAT) return null;
    const parsed = parseRecipeJson(definition);
    if (!parsed.ok) return null;
    const recipe = { ...parsed.recipe, editors: row.editors ?? null };
    return {
      runbook: { ...runbookFromRecipe(recipe), editors: row.editors ?? null, writtenBy: row.imported_by },
      hash: row.content_hash,
      kind: 'recipe',
      source: 'imported',
      owner: row.owner,
      editors: row.editors ?? null,
      recipe,
    };
  }

  private unknown(reference: string) {
    return refuse('unknown_runbook', `There is no runbook \`${escapeSlackText(reference)}\`. \`/task runbook list\` shows them.`);
  }
}

/** Everything an imported entry is made of besides its definition (named by its hash). */
function rowVersion(row: SavedRow): string {
  return JSON.stringify([row.content_hash, row.imported_by, row.owner, row.editors ?? null]);
}

/** The fields only an admin may import: `steps[0].approval.usergroup`, `.dm`, `.channel`, `steps[1].input.from.usergroup`. */
function notifyingFields(runbook: Runbook): string[] {
  const fields: string[] = [];
  for (const [g, group] of runbook.steps.entries()) {
    for (const [p, step] of group.entries()) {
      const at = `steps[${g}]${group.length > 1 ? `[${p}]` : ''}`;
      if (step.kind === 'approval') {
        if (step.approval.usergroup !== null) fields.push(`${at}.approval.usergroup`);
        if (step.approval.dm) fields.push(`${at}.approval.dm`);
        if (step.approval.channel !== null) fields.push(`${at}.approval.channel`);
      } else if (step.kind === 'input' && step.input.from?.usergroup) {
        fields.push(`${at}.input.from.usergroup`);
      }
    }
  }
  return fields;
}

export function notifyNotAllowed(fields: readonly string[]) {
  return refuse(
    'notify_not_allowed',
    `Only the countersign admins may import an approval step with a usergroup, \`dm: true\` or a channel, or an input step \`from\` a usergroup (${fields.map((f) => `\`${f}\``).join(', ')}): they make countersign mention a group, DM people and post where the runbook says. Name the people in \`users\` and leave these out (an approval request then goes to the run card's channel, or the review channel), or ask an admin.`,
  );
}

function peopleFile(p: People): Record<string, unknown> {
  return { ...(p.users.length > 0 ? { users: p.users } : {}), ...(p.usergroup ? { usergroup: p.usergroup } : {}) };
}

function targetsOf(runbook: Runbook): string[] {
  const targets = new Set<string>();
  for (const group of runbook.steps) {
    for (const step of group) {
      if (step.kind === 'script') targets.add(step.script.target);
      if (step.kind === 'http' && step.http.target !== null) targets.add(step.http.target);
    }
  }
  return [...targets].sort();
}
