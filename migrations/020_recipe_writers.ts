/**
 * Who wrote the recipe version a task was started from (review of issue 10): `tasks.recipe_writer`
 * is the user who imported that version (`runbooks.imported_by` when the task was created), null
 * for config recipes and tasks not started from a recipe. Like the author, that person never
 * reviews the task: otherwise a reviewer could import a script, have anyone start it, and be its
 * only second pair of eyes. Runs already exclude their runbooks' writers (plan.writers).
 *
 * Backfill: a task whose recipe version is still the stored one gets that row's importer.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (t) => {
    t.text('recipe_writer');
  });
  await knex.raw(
    `UPDATE tasks SET recipe_writer = runbooks.imported_by
       FROM runbooks
      WHERE runbooks.reference = tasks.recipe_name AND runbooks.content_hash = tasks.recipe_hash`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('recipe_writer');
  });
}
