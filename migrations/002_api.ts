/**
 * The HTTP API's tables: access tokens (stored as SHA-256 hashes, never in clear), settings
 * shared by every replica (the secret that signs log-page links), a `cancelled` status for
 * tasks deleted before they ran, and indexes for the API's list filters.
 */
import type { Knex } from 'knex';

const TASK_STATUSES = ['created', 'pending-review', 'approved', 'rejected', 'ready', 'running', 'success', 'failure', 'killed', 'cancelled'];
const inList = (values: string[]) => values.map((v) => `'${v}'`).join(', ');

export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE tasks DROP CONSTRAINT tasks_status_check');
  await knex.raw(`ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN (${inList(TASK_STATUSES)}))`);
  await knex.raw('CREATE INDEX tasks_author_idx ON tasks (author, id)');
  await knex.raw('CREATE INDEX tasks_target_idx ON tasks (target, id)');
  await knex.raw('CREATE INDEX events_actor_idx ON events (actor, id)');
  await knex.raw('CREATE INDEX events_type_idx ON events (type, id)');

  await knex.schema.createTable('api_tokens', (t) => {
    t.bigIncrements('id').primary();
    t.text('name').notNullable();
    // The Slack user the token acts as: the same rules apply as to that user in Slack.
    t.text('user_id').notNullable();
    t.text('token_hash').notNullable().unique();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('last_used_at', { useTz: true });
    t.timestamp('revoked_at', { useTz: true });
  });

  await knex.schema.createTable('settings', (t) => {
    t.text('key').primary();
    t.text('value').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('settings');
  await knex.schema.dropTableIfExists('api_tokens');
  await knex.raw('DROP INDEX IF EXISTS events_type_idx');
  await knex.raw('DROP INDEX IF EXISTS events_actor_idx');
  await knex.raw('DROP INDEX IF EXISTS tasks_target_idx');
  await knex.raw('DROP INDEX IF EXISTS tasks_author_idx');
  await knex.raw("DELETE FROM tasks WHERE status = 'cancelled'");
  await knex.raw('ALTER TABLE tasks DROP CONSTRAINT tasks_status_check');
  await knex.raw(`ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN (${inList(TASK_STATUSES.filter((s) => s !== 'cancelled'))}))`);
}
