/**
 * Task arguments (issue 4): the values a task was started with (tasks.arguments, in declared
 * order: `[{ name, kind, value }]`), and recipes imported from Slack (`/task recipe import`);
 * recipes from countersign.yml are not stored.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (t) => {
    t.jsonb('arguments');
  });
  await knex.schema.createTable('recipes', (t) => {
    t.text('name').primary();
    // The recipe in the export format, validated before it is stored.
    t.jsonb('definition').notNullable();
    t.text('imported_by').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('recipes');
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('arguments');
  });
}
