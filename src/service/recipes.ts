/**
 * Recipes as the surfaces use them (Slack's `/task start` and `/task recipe …`, webhooks): the
 * config's (read-only) and the imported ones (the `recipes` table), import, replace, remove and
 * export in the JSON format, and starting a recipe: its arguments checked, then a task created
 * through TaskService like any other, so the target's review rules apply unchanged.
 *
 * Every recipe version has a content hash (src/domain/contentVersion.ts). An imported recipe
 * has an owner (its first importer, kept on replace) and optional editors; only they and the
 * config's admins may replace or remove it. Import, replace and remove are audited, with the
 * hash, in the same transaction as the change. A task records the recipe and hash it was
 * started from, and a start that names a hash (the form) is refused if the recipe changed.
 */
import type { Config } from '../config/config.js';
import { recipeContentHash, type RecipeRef } from '../domain/contentVersion.js';
import type { People } from '../domain/people.js';
import {
  RECIPE_FORMAT,
  exportRecipe,
  fixedArgumentNames,
  parseRecipeJson,
  recipeDefinition,
  resolveArguments,
  type ArgumentError,
  type Recipe,
  type TaskArgument,
} from '../domain/recipe.js';
import { escapeSlackText } from '../domain/slackText.js';
import type { Task, TaskSource } from '../domain/task.js';
import { contentKey } from '../store/contentKey.js';
import type { Db } from '../store/db.js';
import { refuse, type Outcome } from './outcome.js';
import { Reviewers } from './reviewers.js';
import { fixedNotAllowed, SavedDefinitions, type SavedRow } from './savedDefinitions.js';
import type { TaskService } from './taskService.js';

export interface StartInput {
  author: string;
  /** Values by argument name, as the modal or the webhook's body gave them. */
  values: Readonly<Record<string, unknown>>;
  /** The task's message; the recipe's otherwise. */
  message?: string | null;
  source: TaskSource;
  sourceKey: string | null;
  channelId: string | null;
}

export type StartOutcome =
  | { ok: true; task: Task; created: boolean; arguments: TaskArgument[] }
  | { ok: false; code: 'invalid_arguments'; message: string; errors: ArgumentError[] }
  | { ok: false; code: string; message: string; errors?: undefined };

/** A recipe with what is known of its version and who may change it. */
export interface RecipeEntry {
  recipe: Recipe;
  /** The hash of its definition (64 hex). */
  hash: string;
  /** Imported: who imported it first; config recipes: null (nobody changes them from Slack). */
  owner: string | null;
  editors: People | null;
}

/** A recipe's audit subject (events.subject). */
export const recipeSubject = (name: string): string => `recipe:${name}`;

export class RecipeService {
  private readonly saved: SavedDefinitions;

  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly tasks: TaskService,
    /** Resolves editors' and admins' Slack user groups; without one, user groups have no members. */
    reviewers: Reviewers = new Reviewers(null),
  ) {
    this.saved = new SavedDefinitions(db, config, reviewers);
  }

  private configRecipes(): ReadonlyMap<string, Recipe> {
    return this.config.recipes ?? new Map();
  }

  async list(): Promise<RecipeEntry[]> {
    const rows = await this.saved.rows(RECIPE_FORMAT);
    const imported = rows.map((row) => this.fromRow(row)).filter((r): r is RecipeEntry => r !== null && !this.configRecipes().has(r.recipe.name));
    const configured = await Promise.all([...this.configRecipes().values()].map((recipe) => this.configEntry(recipe)));
    return [...configured, ...imported].sort((a, b) => a.recipe.name.localeCompare(b.recipe.name));
  }

  async find(name: string): Promise<RecipeEntry | null> {
    const fromConfig = this.configRecipes().get(name);
    if (fromConfig) return this.configEntry(fromConfig);
    const row = await this.saved.row(name);
    return row ? this.fromRow(row) : null;
  }

  /** The export (fixed values left out) and the names of the fixed arguments the importer must fill in. */
  async export(name: string): Promise<Outcome<{ json: string; recipe: Recipe; hash: string; fixed: string[] }>> {
    const entry = await this.find(name);
    if (!entry) return this.unknown(name);
    return { ok: true, json: exportRecipe(entry.recipe), recipe: entry.recipe, hash: entry.hash, fixed: fixedArgumentNames(entry.recipe) };
  }

  /**
   * Imports one recipe in the export format. A config recipe's name is refused; an imported one
   * is replaced only with `replace`, and only by its owner, an editor or an admin (the owner stays).
   */
  async import(
    text: string,
    userId: string,
    replace: boolean,
  ): Promise<Outcome<{ recipe: Recipe; replaced: boolean; hash: string; previousHash: string | null }>> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return refuse('invalid_json', `That is not valid JSON: ${(error as Error).message}`);
    }
    const parsed = parseRecipeJson(json);
    // Problems may quote what was pasted (unknown field names): escaped, as everything written by users.
    if (!parsed.ok) return refuse('invalid_recipe', `The recipe is not valid:\n${parsed.problems.map((p) => `• ${escapeSlackText(p)}`).join('\n')}`);
    const recipe = parsed.recipe;
    if (this.configRecipes().has(recipe.name) || this.config.runbooks?.has(recipe.name)) {
      return refuse('name_taken', `\`${recipe.name}\` is a recipe of countersign.yml, which cannot be replaced from Slack. Import it under another name.`);
    }
    if (!this.config.targets.has(recipe.target)) {
      return refuse(
        'unknown_target',
        `The recipe runs on \`${escapeSlackText(recipe.target)}\`, which is not a target here. Targets: ${[...this.config.targets.keys()].map((t) => `\`${t}\``).join(', ') || 'none'}.`,
      );
    }
    // A fixed value is never shown to reviewers: only admins, trusted with what they hide, may set one.
    const fixed = recipe.arguments.filter((arg) => arg.kind === 'fixed').map((arg) => arg.name);
    if (fixed.length > 0 && !(await this.saved.isAdmin(userId))) {
      return fixedNotAllowed(fixed);
    }
    const definition = recipeDefinition(recipe);
    const hash = recipeContentHash(definition, await contentKey(this.db));
    const existing = await this.saved.row(recipe.name);
    if (existing && !parseRecipeJson(existing.definition).ok) {
      return refuse(
        'name_taken',
        `\`${recipe.name}\` is a runbook, not a recipe: import the recipe under another name (or replace the runbook with \`/task runbook import --replace\`).`,
      );
    }
    const outcome = await this.saved.save({
      kind: 'recipe',
      reference: recipe.name,
      definition,
      hash,
      editors: recipe.editors ?? null,
      userId,
      replace,
      data: { target: recipe.target },
    });
    if (!outcome.ok) return outcome;
    return { ok: true, recipe, replaced: outcome.replaced, hash, previousHash: outcome.previousHash };
  }

  /** Removes an imported recipe (its owner, an editor or an admin); tasks started from it keep their name and hash. */
  async remove(name: string, userId: string): Promise<Outcome<{ name: string; hash: string }>> {
    if (this.configRecipes().has(name)) return refuse('config_recipe', `\`${name}\` is a recipe of countersign.yml: remove it there.`);
    const row = await this.saved.row(name);
    if (row && !parseRecipeJson(row.definition).ok) return this.unknown(name);
    return this.saved.remove('recipe', name, userId, () => this.unknown(name));
  }

  /**
   * Checks the arguments and creates the task (same rules as any task on the recipe's target),
   * recording `version`: the recipe's name, its hash and who wrote it, as the catalog the start
   * was checked against has them (RunbookService.start; who wrote it never reviews the task).
   */
  async start(recipe: Recipe, version: RecipeRef, input: StartInput): Promise<StartOutcome> {
    const resolved = resolveArguments(recipe, input.values);
    if (!resolved.ok) {
      return { ok: false, code: 'invalid_arguments', message: resolved.errors.map((e) => e.message).join('; '), errors: resolved.errors };
    }
    const created = await this.tasks.create({
      author: input.author,
      target: recipe.target,
      message: input.message !== undefined && input.message !== null && input.message.trim() !== '' ? input.message : recipe.message,
      type: recipe.type,
      script: recipe.script,
      source: input.source,
      sourceKey: input.sourceKey,
      channelId: input.channelId,
      arguments: resolved.values,
      recipe: version,
    });
    if (!created.ok) return created;
    return { ok: true, task: created.task, created: created.created, arguments: resolved.values };
  }

  /** The hash of a recipe's definition (the same for a config recipe and its import). */
  async hashOf(recipe: Recipe): Promise<string> {
    return recipeContentHash(recipeDefinition(recipe), await contentKey(this.db));
  }

  private async configEntry(recipe: Recipe): Promise<RecipeEntry> {
    return { recipe, hash: await this.hashOf(recipe), owner: null, editors: null };
  }

  private unknown(name: string) {
    return refuse('unknown_recipe', `There is no recipe \`${name}\`. \`/task recipe list\` shows them.`);
  }

  private fromRow(row: SavedRow): RecipeEntry | null {
    const parsed = parseRecipeJson(row.definition);
    if (!parsed.ok) return null;
    return { recipe: { ...parsed.recipe, editors: row.editors ?? null }, hash: row.content_hash, owner: row.owner, editors: row.editors ?? null };
  }
}
