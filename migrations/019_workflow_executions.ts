/**
 * The countersign step in Slack's Workflow Builder (issue 13): one row per `function_executed`
 * Slack sent us, so each execution is started once and completed once across replicas and
 * restarts (src/service/workflowSteps.ts).
 *
 * - `function_execution_id` (Slack's `Fx…`) is unique: a retried or duplicated event finds the
 *   row the first one made.
 * - `state`: `received` (stored, acknowledged, not yet started), `started` (its run is
 *   `run_id`), `refused` (the start was refused: `refusal` says why). What was asked for
 *   (`reference`, `arguments`, `message`, `starter`) is kept so a row left `received` by a
 *   process that died can be started by another; never the event's function token or the
 *   interactor's secret.
 * - Completion (`functions.completeSuccess` / `completeError`) is claimed with a lease
 *   (`claimed_by`, `claimed_until`) before it is sent and recorded in `completed_at`,
 *   `completion` and `completion_detail` after Slack answered; a failed attempt waits until
 *   `next_attempt_at`.
 */
import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('workflow_executions', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('function_execution_id').notNullable().unique();
    t.text('workflow_execution_id');
    t.text('callback_id').notNullable();
    /** The person whose click ran the workflow (the interactivity input's interactor); null: none given. */
    t.text('starter');
    t.text('reference').notNullable();
    t.text('arguments');
    t.text('message');
    t.text('state').notNullable().defaultTo('received');
    t.bigInteger('run_id').references('id').inTable('runs');
    t.text('refusal');
    t.timestamp('claimed_until', { useTz: true });
    t.text('claimed_by');
    t.integer('attempts').notNullable().defaultTo(0);
    t.timestamp('next_attempt_at', { useTz: true });
    t.text('last_error');
    /** What Slack was told: success or error, with the outputs or the error text. */
    t.text('completion');
    t.jsonb('completion_detail');
    t.timestamp('completed_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE workflow_executions ADD CONSTRAINT workflow_executions_state_check CHECK (state IN ('received', 'started', 'refused'))`);
  await knex.raw(
    `ALTER TABLE workflow_executions ADD CONSTRAINT workflow_executions_completion_check CHECK (completion IS NULL OR completion IN ('success', 'error'))`,
  );
  await knex.raw(`ALTER TABLE workflow_executions ADD CONSTRAINT workflow_executions_started_check CHECK ((state = 'started') = (run_id IS NOT NULL))`);
  // The reconciler's work list and the run-changed lookup: executions not completed yet.
  await knex.raw('CREATE INDEX workflow_executions_open_idx ON workflow_executions (id) WHERE completed_at IS NULL');
  await knex.raw('CREATE INDEX workflow_executions_open_run_idx ON workflow_executions (run_id) WHERE completed_at IS NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('workflow_executions');
}
