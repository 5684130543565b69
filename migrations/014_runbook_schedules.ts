/**
 * Schedules that start runbooks (issue 11): `/task schedule add --runbook <reference> "<cron>"
 * --arg name=value`. The schedule names the runbook and its argument values; each firing starts
 * a run (recorded on its firing as run_id), reviewed where the runbook's targets need it.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('schedules', (t) => {
    t.text('runbook');
    t.jsonb('arguments');
  });
  await knex.schema.alterTable('schedule_firings', (t) => {
    t.bigInteger('run_id');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('schedule_firings', (t) => {
    t.dropColumn('run_id');
  });
  await knex.schema.alterTable('schedules', (t) => {
    t.dropColumn('runbook');
    t.dropColumn('arguments');
  });
}
