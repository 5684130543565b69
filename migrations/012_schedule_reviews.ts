/**
 * Schedule reviews bound to content, in rounds, with DMs and expiry (issue 10 point 7, issue 13):
 *
 * - `schedules.content_version`: the SHA-256 a review approves (scheduleContentVersion); each
 *   decision records the version it was made on.
 * - `schedules.review_round`: bumped when what the schedule runs changes (an edit): decisions of
 *   earlier rounds stop counting, so a reviewer may decide again in the new round.
 * - `schedules.review_requested_at`: when the current review was asked for (expiry counts from
 *   here; an edit or a re-check that asks again restarts it). `status_reason`: why the system put
 *   the schedule in its status (expired review, approval that no longer holds).
 * - `schedule_review_dms`: one row per (schedule, round, reviewer), claimed before the DM is sent,
 *   so every reviewer gets one DM per round whatever the number of processes.
 */
import type { Knex } from 'knex';
import { contentHash } from '../src/domain/digest.js';

/** scheduleContentVersion as this migration knew it (a migration never changes with the code). */
const versionOf = (row: { target: string; type: string; script: string; message: string | null }) =>
  contentHash('countersign.schedule/v1', { target: row.target, type: row.type, script: row.script, message: row.message ?? null });

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('schedules', (t) => {
    t.text('content_version');
    t.integer('review_round').notNullable().defaultTo(0);
    t.timestamp('review_requested_at', { useTz: true });
    t.text('status_reason');
    /** The round whose review DMs have all been sent. */
    t.integer('review_dms_round');
  });
  const rows: Array<{ id: string; target: string; type: string; script: string; message: string | null }> = await knex('schedules').select(
    'id',
    'target',
    'type',
    'script',
    'message',
  );
  for (const row of rows) {
    await knex('schedules')
      .where({ id: row.id })
      .update({ content_version: versionOf(row) });
  }
  await knex.raw('UPDATE schedules SET review_requested_at = COALESCE(status_changed_at, created_at)');
  await knex.raw('ALTER TABLE schedules ALTER COLUMN content_version SET NOT NULL');

  await knex.schema.alterTable('schedule_reviews', (t) => {
    t.text('content_version');
    t.integer('review_round').notNullable().defaultTo(0);
  });
  // Decisions made so far were made on the schedule as it is (it could not be edited).
  await knex.raw('UPDATE schedule_reviews r SET content_version = s.content_version FROM schedules s WHERE s.id = r.schedule_id');
  await knex.raw('ALTER TABLE schedule_reviews ALTER COLUMN content_version SET NOT NULL');
  await knex.schema.alterTable('schedule_reviews', (t) => {
    t.dropUnique(['schedule_id', 'user_id']);
    t.unique(['schedule_id', 'review_round', 'user_id']);
  });

  await knex.schema.createTable('schedule_review_dms', (t) => {
    t.bigInteger('schedule_id').notNullable().references('schedules.id');
    t.integer('review_round').notNullable();
    t.text('user_id').notNullable();
    t.timestamp('claimed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('sent_at', { useTz: true });
    t.text('channel_id');
    t.primary(['schedule_id', 'review_round', 'user_id']);
  });
  await knex.raw(`CREATE INDEX schedules_pending_review_idx ON schedules (target, review_requested_at) WHERE status = 'pending-review'`);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS schedules_pending_review_idx');
  await knex.schema.dropTableIfExists('schedule_review_dms');
  await knex.raw('DELETE FROM schedule_reviews WHERE review_round > 0');
  await knex.schema.alterTable('schedule_reviews', (t) => {
    t.dropUnique(['schedule_id', 'review_round', 'user_id']);
    t.unique(['schedule_id', 'user_id']);
    t.dropColumn('content_version');
    t.dropColumn('review_round');
  });
  await knex.schema.alterTable('schedules', (t) => {
    t.dropColumn('content_version');
    t.dropColumn('review_round');
    t.dropColumn('review_requested_at');
    t.dropColumn('status_reason');
    t.dropColumn('review_dms_round');
  });
}
