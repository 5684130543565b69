/**
 * Approvals bound to content, owned recipes (issue 10, points 2 and 3):
 * - tasks.content_version: SHA-256 over everything that runs (src/domain/contentVersion.ts),
 *   with fixed argument values sealed by the server's content key (settings
 *   `content-version-key`, made here); recipe_name / recipe_hash: the recipe a task was started
 *   from and the hash of its definition then;
 * - reviews.content_version: the version each decision was made on;
 * - recipes.owner (the importer, kept on replace), editors (People), content_hash;
 * - events.subject: what an event is about when it is not a task (`recipe:<name>`, later
 *   `run:<id>`, `schedule:<id>`, `runbook:<ref>`).
 * Existing rows are backfilled in batches, then the columns are made NOT NULL.
 */
import type { Knex } from 'knex';
import { contentVersion, recipeContentHash } from '../src/domain/contentVersion.js';
import { parseRecipeJson, recipeDefinition } from '../src/domain/recipe.js';
import type { ScriptType } from '../src/domain/scriptTypes.js';
import { CONTENT_KEY } from '../src/store/contentKey.js';
import { newSecret } from '../src/store/settings.js';

const BATCH = 500;

export async function up(knex: Knex): Promise<void> {
  await knex('settings').insert({ key: CONTENT_KEY, value: newSecret() }).onConflict('key').ignore();
  const key = (await knex('settings').where({ key: CONTENT_KEY }).first('value')).value as string;

  await knex.schema.alterTable('tasks', (t) => {
    t.text('content_version');
    t.text('recipe_name');
    t.text('recipe_hash');
  });
  for (let after = 0; ; ) {
    const rows = (await knex('tasks')
      .where('id', '>', after)
      .orderBy('id')
      .limit(BATCH)
      .select('id', 'target', 'type', 'script', 'message', 'arguments')) as Array<{
      id: number;
      target: string;
      type: ScriptType;
      script: string;
      message: string | null;
      arguments: Array<{ name: string; kind: 'fixed' | 'options' | 'input'; value: string }> | null;
    }>;
    if (rows.length === 0) break;
    for (const row of rows) {
      const version = contentVersion(
        { target: row.target, type: row.type, script: row.script, message: row.message, arguments: row.arguments, recipe: null },
        key,
      );
      await knex('tasks').where({ id: row.id }).update({ content_version: version });
    }
    after = Number(rows[rows.length - 1]!.id);
  }
  await knex.raw('ALTER TABLE tasks ALTER COLUMN content_version SET NOT NULL');

  await knex.schema.alterTable('reviews', (t) => {
    t.text('content_version');
  });
  // Edits were refused after the first decision, so every decision was made on the task's content as it is.
  await knex.raw('UPDATE reviews r SET content_version = t.content_version FROM tasks t WHERE t.id = r.task_id');
  await knex.raw('ALTER TABLE reviews ALTER COLUMN content_version SET NOT NULL');

  await knex.schema.alterTable('recipes', (t) => {
    t.text('owner');
    t.jsonb('editors');
    t.text('content_hash');
  });
  const recipes = (await knex('recipes').select('name', 'definition')) as Array<{ name: string; definition: Record<string, unknown> }>;
  for (const row of recipes) {
    const parsed = parseRecipeJson(row.definition);
    const hash = recipeContentHash(parsed.ok ? recipeDefinition(parsed.recipe) : row.definition, key);
    await knex('recipes').where({ name: row.name }).update({ content_hash: hash });
  }
  await knex.raw('UPDATE recipes SET owner = imported_by');
  await knex.raw('ALTER TABLE recipes ALTER COLUMN owner SET NOT NULL');
  await knex.raw('ALTER TABLE recipes ALTER COLUMN content_hash SET NOT NULL');

  // A new nullable column: no rows are rewritten, so the append-only trigger is not involved.
  await knex.schema.alterTable('events', (t) => {
    t.text('subject');
  });
  await knex.raw('CREATE INDEX events_subject_idx ON events (subject, id) WHERE subject IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS events_subject_idx');
  await knex.schema.alterTable('events', (t) => {
    t.dropColumn('subject');
  });
  await knex.schema.alterTable('recipes', (t) => {
    t.dropColumn('owner');
    t.dropColumn('editors');
    t.dropColumn('content_hash');
  });
  await knex.schema.alterTable('reviews', (t) => {
    t.dropColumn('content_version');
  });
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('content_version');
    t.dropColumn('recipe_name');
    t.dropColumn('recipe_hash');
  });
  await knex('settings').where({ key: 'content-version-key' }).delete();
}
