/**
 * Schedules in App Home and the API (issue 13, "Schedules everywhere"):
 *
 * - `schedules.review_script_key`: `<review_ts>:<content_version>` of the review request whose
 *   script was taken care of: uploaded whole into its thread when the request cannot show it
 *   whole, nothing to do otherwise. A new request or a new version is looked at again, once.
 * - indexes for the lists: a user's own schedules (App Home "my schedules", the API's `author`
 *   filter), and the newest-first scan the API's list pages through.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('schedules', (t) => {
    t.text('review_script_key');
  });
  await knex.raw('CREATE INDEX schedules_author_idx ON schedules (author, id)');
  await knex.raw('CREATE INDEX schedules_target_idx ON schedules (target, id)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS schedules_target_idx');
  await knex.raw('DROP INDEX IF EXISTS schedules_author_idx');
  await knex.schema.alterTable('schedules', (t) => {
    t.dropColumn('review_script_key');
  });
}
