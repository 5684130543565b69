/**
 * Recipes as the surfaces use them (Slack's `/task start` and `/task recipe …`, webhooks): the
 * config's (read-only) and the imported ones (the `recipes` table), import and export in the
 * JSON format, and starting a recipe: its arguments checked, then a task created through
 * TaskService like any other, so the target's review rules apply unchanged.
 */
import type { Config } from '../config/config.js';
import { exportRecipe, parseRecipeJson, resolveArguments, type ArgumentError, type Recipe, type TaskArgument } from '../domain/recipe.js';
import type { Task, TaskSource } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { refuse, type Outcome } from './outcome.js';
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

interface RecipeRow {
  name: string;
  definition: unknown;
  imported_by: string;
  created_at: Date;
  updated_at: Date;
}

export class RecipeService {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly tasks: TaskService,
  ) {}

  private configRecipes(): ReadonlyMap<string, Recipe> {
    return this.config.recipes ?? new Map();
  }

  async list(): Promise<Recipe[]> {
    const rows = await this.db<RecipeRow>('recipes').orderBy('name');
    const imported = rows.map((row) => this.fromRow(row)).filter((r): r is Recipe => r !== null && !this.configRecipes().has(r.name));
    return [...this.configRecipes().values(), ...imported].sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<Recipe | null> {
    const fromConfig = this.configRecipes().get(name);
    if (fromConfig) return fromConfig;
    const row = await this.db<RecipeRow>('recipes').where({ name }).first();
    return row ? this.fromRow(row) : null;
  }

  async export(name: string): Promise<Outcome<{ json: string; recipe: Recipe }>> {
    const recipe = await this.get(name);
    if (!recipe) return this.unknown(name);
    return { ok: true, json: exportRecipe(recipe), recipe };
  }

  /** Imports one recipe in the export format. A config recipe's name is refused; an imported one is replaced only with `replace`. */
  async import(text: string, userId: string, replace: boolean): Promise<Outcome<{ recipe: Recipe; replaced: boolean }>> {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      return refuse('invalid_json', `That is not valid JSON: ${(error as Error).message}`);
    }
    const parsed = parseRecipeJson(json);
    if (!parsed.ok) return refuse('invalid_recipe', `The recipe is not valid:\n${parsed.problems.map((p) => `• ${p}`).join('\n')}`);
    const recipe = parsed.recipe;
    if (this.configRecipes().has(recipe.name)) {
      return refuse('name_taken', `\`${recipe.name}\` is a recipe of countersign.yml, which cannot be replaced from Slack. Import it under another name.`);
    }
    if (!this.config.targets.has(recipe.target)) {
      return refuse('unknown_target', `The recipe runs on \`${recipe.target}\`, which is not a target here. Targets: ${[...this.config.targets.keys()].map((t) => `\`${t}\``).join(', ') || 'none'}.`);
    }
    const definition = JSON.parse(exportRecipe(recipe)) as Record<string, unknown>;
    const replaced = await this.db.transaction(async (trx) => {
      const existing = await trx<RecipeRow>('recipes').where({ name: recipe.name }).forUpdate().first();
      if (existing && !replace) return null;
      if (existing) await trx('recipes').where({ name: recipe.name }).update({ definition: JSON.stringify(definition), imported_by: userId, updated_at: trx.fn.now() });
      else await trx('recipes').insert({ name: recipe.name, definition: JSON.stringify(definition), imported_by: userId }).onConflict('name').ignore();
      return Boolean(existing);
    });
    if (replaced === null) return refuse('exists', `A recipe \`${recipe.name}\` was already imported. Add \`--replace\` to replace it: \`/task recipe import --replace\`.`);
    return { ok: true, recipe, replaced };
  }

  /** Checks the arguments and creates the task (same rules as any task on the recipe's target). */
  async start(recipeOrName: Recipe | string, input: StartInput): Promise<StartOutcome> {
    const recipe = typeof recipeOrName === 'string' ? await this.get(recipeOrName) : recipeOrName;
    if (!recipe) return this.unknown(typeof recipeOrName === 'string' ? recipeOrName : '');
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
    });
    if (!created.ok) return created;
    return { ok: true, task: created.task, created: created.created, arguments: resolved.values };
  }

  private unknown(name: string) {
    return refuse('unknown_recipe', `There is no recipe \`${name}\`. \`/task recipe list\` shows them.`);
  }

  private fromRow(row: RecipeRow): Recipe | null {
    const parsed = parseRecipeJson(row.definition);
    return parsed.ok ? parsed.recipe : null;
  }
}
