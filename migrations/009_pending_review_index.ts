/**
 * App Home's "waiting for my review" and `/task list pending` select the pending tasks of the
 * targets a user reviews. The status index walks every pending task of every target; this
 * one reads only the matching ones, oldest first.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.raw(`CREATE INDEX tasks_pending_review_idx ON tasks (target, id) WHERE status = 'pending-review'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS tasks_pending_review_idx');
}
