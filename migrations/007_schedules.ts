/**
 * Schedules (issue 4): a cron expression in a time zone, a target and a script, reviewed once.
 * `schedule_firings` holds one row per (schedule, scheduled time): its primary key decides, with
 * INSERT ... ON CONFLICT DO NOTHING, which process fires it, so every firing happens once however
 * many replicas tick. `schedule_reviews` holds one decision per reviewer, like `reviews` for tasks.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('schedules', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('status').notNullable();
    t.text('author').notNullable();
    t.text('target').notNullable();
    t.text('cron').notNullable();
    t.text('tz').notNullable().defaultTo('UTC');
    t.text('type').notNullable();
    t.text('script').notNullable();
    t.text('message');
    /** Where results go; null: the target's `channel`. */
    t.text('channel_id');
    /** Where `/task schedule add` was typed. */
    t.text('origin_channel');
    t.text('notify').notNullable().defaultTo('always');
    t.text('overlap').notNullable().defaultTo('skip');
    t.text('catch_up').notNullable().defaultTo('run');
    t.text('source_key').unique();
    t.text('review_channel');
    t.text('review_ts');
    /** Set while one process posts the review request (stale after 2 minutes). */
    t.timestamp('review_post_claimed_at', { useTz: true });
    t.timestamp('approved_at', { useTz: true });
    /** Fire times up to here have been decided (fired, skipped or missed). */
    t.timestamp('fired_through', { useTz: true });
    t.timestamp('status_changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE schedules ADD CONSTRAINT schedules_status_check CHECK (status IN ('pending-review', 'active', 'paused', 'rejected', 'removed'))`);
  await knex.raw(`ALTER TABLE schedules ADD CONSTRAINT schedules_notify_check CHECK (notify IN ('always', 'failure'))`);
  await knex.raw(`ALTER TABLE schedules ADD CONSTRAINT schedules_overlap_check CHECK (overlap IN ('skip', 'queue', 'allow'))`);
  await knex.raw(`ALTER TABLE schedules ADD CONSTRAINT schedules_catch_up_check CHECK (catch_up IN ('run', 'skip'))`);
  await knex.raw(`CREATE INDEX schedules_active_idx ON schedules (status) WHERE status = 'active'`);

  await knex.schema.createTable('schedule_reviews', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('schedule_id').notNullable().references('schedules.id');
    t.text('user_id').notNullable();
    t.text('verdict').notNullable();
    t.text('reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['schedule_id', 'user_id']);
  });

  await knex.schema.createTable('schedule_firings', (t) => {
    t.bigInteger('schedule_id').notNullable().references('schedules.id');
    t.timestamp('fire_at', { useTz: true }).notNullable();
    t.timestamp('decided_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    /** fired | queued | skipped-overlap | skipped-missed */
    t.text('outcome').notNullable();
    t.bigInteger('task_id').references('tasks.id').unique();
    t.boolean('catch_up').notNullable().defaultTo(false);
    /** Set by the one process that posts the result (a claim; cleared again when the post fails). */
    t.timestamp('notified_at', { useTz: true });
    t.primary(['schedule_id', 'fire_at']);
  });
  await knex.raw(
    `CREATE INDEX schedule_firings_pending_idx ON schedule_firings (schedule_id, fire_at) WHERE outcome = 'queued' OR (task_id IS NOT NULL AND notified_at IS NULL)`,
  );
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('schedule_firings');
  await knex.schema.dropTableIfExists('schedule_reviews');
  await knex.schema.dropTableIfExists('schedules');
}
