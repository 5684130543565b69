/**
 * For the Slack surface of issue 5: a task may be asked for with a grace delay (`--in 10m`:
 * it runs no earlier than `run_after`, and can be cancelled until then), and the users who have
 * opened countersign's App Home, whose Home tab is redrawn when their tasks change.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (t) => {
    t.timestamp('run_after', { useTz: true });
  });
  await knex.schema.createTable('home_users', (t) => {
    t.text('user_id').primary();
    t.timestamp('opened_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('home_users');
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('run_after');
  });
}
