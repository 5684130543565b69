/**
 * Links between a task's two Slack messages, and review DMs (issue 5):
 * - tasks.card_permalink / review_permalink: each message's permalink (chat.getPermalink),
 *   fetched once; the review request links to the card and the card to the review request.
 *   An empty string means Slack refused to give one (the message is gone): not asked again.
 * - review_dms: one row per task and reviewer who is direct-messaged about a review, claimed
 *   before the DM is sent, so two replicas never send the same DM; tasks.review_dms_sent says
 *   every DM of the task went out.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('tasks', (t) => {
    t.text('card_permalink');
    t.text('review_permalink');
    t.boolean('review_dms_sent').notNullable().defaultTo(false);
  });
  // The reconciler's list of permalinks still to fetch.
  await knex.raw(`
    CREATE INDEX tasks_permalinks_missing_idx ON tasks (id)
    WHERE (card_ts IS NOT NULL AND review_channel IS NOT NULL AND card_permalink IS NULL)
       OR (review_ts IS NOT NULL AND review_permalink IS NULL)
  `);
  await knex.schema.createTable('review_dms', (t) => {
    t.bigInteger('task_id').notNullable().references('tasks.id').onDelete('CASCADE');
    t.text('user_id').notNullable();
    // Who is sending it: a claim older than a few minutes belonged to a process that died mid-send.
    t.timestamp('claimed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('channel_id');
    t.timestamp('sent_at', { useTz: true });
    t.primary(['task_id', 'user_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('review_dms');
  await knex.raw('DROP INDEX IF EXISTS tasks_permalinks_missing_idx');
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('review_dms_sent');
    t.dropColumn('review_permalink');
    t.dropColumn('card_permalink');
  });
}
