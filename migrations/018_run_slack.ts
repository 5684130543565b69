/**
 * The Slack side of runs (issue 11, WP8b), as tasks have it (migration 004):
 * - runs.card_permalink / review_permalink: each message's permalink, fetched once ('' when
 *   Slack refused one); review_dms_sent: every review DM of the run went out.
 * - run_steps: the request an approval step posts (or the prompt of an input step, in the card's
 *   thread) is claimed before it is posted (message_post_claimed_at) and records the run's
 *   view_version it shows (message_version), like a card; its permalink (for the DMs); and
 *   whether its DMs went out. An http step's log is posted once into the card's thread
 *   (log_ts, claimed by log_post_claimed_at).
 * - run_dms: one row per run, what it is about (`review`, or an approval step's qualified id)
 *   and person direct-messaged, claimed before the DM is sent, so two replicas never send the
 *   same DM.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('runs', (t) => {
    t.text('card_permalink');
    t.text('review_permalink');
    t.boolean('review_dms_sent').notNullable().defaultTo(false);
  });
  await knex.schema.alterTable('run_steps', (t) => {
    t.timestamp('message_post_claimed_at', { useTz: true });
    t.bigInteger('message_version');
    t.text('message_permalink');
    t.boolean('message_dms_sent').notNullable().defaultTo(false);
    t.text('log_ts');
    t.timestamp('log_post_claimed_at', { useTz: true });
  });
  // The reconciler's list: requests and prompts of steps that paused, http logs to post.
  await knex.raw(`CREATE INDEX run_steps_slack_idx ON run_steps (run_id) WHERE kind IN ('approval', 'input', 'http') AND started_at IS NOT NULL`);
  await knex.schema.createTable('run_dms', (t) => {
    t.bigInteger('run_id').notNullable().references('id').inTable('runs').onDelete('CASCADE');
    /** `review`: the run's review; otherwise the qualified id of the approval step asking. */
    t.text('about').notNullable();
    t.text('user_id').notNullable();
    t.timestamp('claimed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('channel_id');
    t.timestamp('sent_at', { useTz: true });
    t.primary(['run_id', 'about', 'user_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('run_dms');
  await knex.raw('DROP INDEX IF EXISTS run_steps_slack_idx');
  await knex.schema.alterTable('run_steps', (t) => {
    for (const column of ['message_post_claimed_at', 'message_version', 'message_permalink', 'message_dms_sent', 'log_ts', 'log_post_claimed_at'])
      t.dropColumn(column);
  });
  await knex.schema.alterTable('runs', (t) => {
    for (const column of ['card_permalink', 'review_permalink', 'review_dms_sent']) t.dropColumn(column);
  });
}
