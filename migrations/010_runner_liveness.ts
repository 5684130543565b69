/**
 * Runner liveness from Postgres itself: every runner process holds a session advisory lock keyed
 * by its runner key (src/runner/liveness.ts) and writes that key on the runs it claims. A run is
 * lost only when its runner's lock is free. Runs claimed before this migration have no key and
 * are still judged by their lease.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE executions ADD COLUMN runner_key bigint');
  await knex.raw(`CREATE INDEX executions_running_key_idx ON executions (runner_key) WHERE phase = 'running'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS executions_running_key_idx');
  await knex.raw('ALTER TABLE executions DROP COLUMN IF EXISTS runner_key');
}
