/**
 * Runbooks and runs (issue 11).
 *
 * - `recipes` becomes `runbooks` (keyed by `reference`): every imported recipe row moves as it
 *   is, owner, editors and content hash kept; its definition keeps its format
 *   (`countersign.recipe/v1`), new imports are `countersign.runbook/v1`. Audit events about
 *   recipes (subject `recipe:<name>`) stay where they are.
 * - `runs`: one start of a runbook, with the pinned plan and arguments, its content version,
 *   its lifecycle (src/domain/runLifecycle.ts, checked here in SQL as well), a stop request
 *   (desired_phase), status_version and view_version, its Slack messages (as tasks have them),
 *   run_after (grace) and source_key (idempotency), and the run that triggered it (`after`).
 * - `run_reviews`: one decision per reviewer per run, naming the content version decided on.
 * - `run_steps`: one row per planned step: phase, outputs, failure message, the task a script
 *   step runs as, the lease of an http step's runner, the deadline of a paused step, and the
 *   Slack message of its approval/input request.
 * - `run_step_decisions`: approvals and rejections of approval steps, one per person.
 * - tasks: `run_id`, `run_step_id` (a script step's task), `outputs` (its $COUNTERSIGN_OUTPUT,
 *   copied to the step by the task's terminal transition).
 */
import type { Knex } from 'knex';

const RUN_STATUSES = ['created', 'pending-review', 'approved', 'rejected', 'ready', 'running', 'success', 'failure', 'killed', 'cancelled'];
const RUN_STEP_PHASES = ['pending', 'running', 'paused', 'succeeded', 'failed', 'skipped', 'killed'];
const STEP_KINDS = ['script', 'http', 'approval', 'input'];

const inList = (values: string[]) => values.map((v) => `'${v}'`).join(', ');

export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE recipes RENAME TO runbooks');
  await knex.raw('ALTER TABLE runbooks RENAME COLUMN name TO reference');
  await knex.raw('ALTER INDEX IF EXISTS recipes_pkey RENAME TO runbooks_pkey');

  await knex.schema.createTable('runs', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('status_changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('status').notNullable();
    t.text('creator').notNullable();
    /** { kind: manual | api | schedule | webhook | after | again, ... }. */
    t.jsonb('trigger').notNullable();
    t.text('reference').notNullable();
    /** The hash of the started runbook's definition when the run was asked for. */
    t.text('runbook_hash');
    /** The pinned plan (src/domain/runbook/plan.ts RunPlan without arguments). */
    t.jsonb('plan').notNullable();
    /** RunPlan.arguments: per runbook, its values in declared order (fixed values in clear, never shown). */
    t.jsonb('arguments').notNullable();
    t.text('content_version').notNullable();
    t.text('message');
    t.text('desired_phase');
    t.text('stop_requested_by');
    t.bigInteger('status_version').notNullable().defaultTo(1);
    t.bigInteger('view_version').notNullable().defaultTo(1);
    t.text('channel_id');
    t.text('card_ts');
    t.bigInteger('card_version');
    t.timestamp('card_post_claimed_at', { useTz: true });
    t.text('review_channel');
    t.text('review_ts');
    t.bigInteger('review_version');
    t.timestamp('review_post_claimed_at', { useTz: true });
    t.boolean('review_script_posted').notNullable().defaultTo(false);
    t.timestamp('run_after', { useTz: true });
    t.text('source_key').unique();
    t.bigInteger('parent_run_id').references('id').inTable('runs');
    t.text('failure_message');
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE runs ADD CONSTRAINT runs_status_check CHECK (status IN (${inList(RUN_STATUSES)}))`);
  await knex.raw(`ALTER TABLE runs ADD CONSTRAINT runs_desired_phase_check CHECK (desired_phase IS NULL OR desired_phase = 'stopped')`);
  // The advancer's work list: runs that may have something to do.
  await knex.raw(`CREATE INDEX runs_active_idx ON runs (id) WHERE status IN ('ready', 'running')`);
  await knex.raw('CREATE INDEX runs_status_idx ON runs (status, id)');
  await knex.raw('CREATE INDEX runs_reference_idx ON runs (reference, id)');
  await knex.raw('CREATE INDEX runs_creator_idx ON runs (creator, id)');
  // The Slack reconciler's work list, as for tasks: messages behind their run.
  await knex.raw(`
    CREATE INDEX runs_views_behind_idx ON runs (id)
    WHERE (channel_id IS NOT NULL AND (card_version IS NULL OR card_version < view_version))
       OR (review_channel IS NOT NULL AND (review_version IS NULL OR review_version < view_version))
  `);

  await knex.schema.createTable('run_reviews', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('run_id').notNullable().references('id').inTable('runs');
    t.text('user_id').notNullable();
    t.text('verdict').notNullable();
    t.text('reason');
    t.text('content_version').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['run_id', 'user_id']);
  });
  await knex.raw(`ALTER TABLE run_reviews ADD CONSTRAINT run_reviews_verdict_check CHECK (verdict IN ('approve', 'reject'))`);

  await knex.schema.createTable('run_steps', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('run_id').notNullable().references('id').inTable('runs');
    t.integer('group_index').notNullable();
    t.integer('position').notNullable();
    /** The qualified id, `<runbook>.<step>`. */
    t.text('step_id').notNullable();
    t.text('kind').notNullable();
    t.text('phase').notNullable().defaultTo('pending');
    t.boolean('continue_on_failure').notNullable().defaultTo(false);
    /** What later steps may reference: { outputs } or { http: { status, body, json } }. */
    t.jsonb('outputs');
    /** An http step's log (request, hops, status line, capped body), masked and redacted. */
    t.text('output');
    t.text('failure_message');
    t.bigInteger('task_id');
    t.text('runner_id');
    t.bigInteger('runner_key');
    t.timestamp('lease_until', { useTz: true });
    t.timestamp('timeout_at', { useTz: true });
    t.text('message_channel');
    t.text('message_ts');
    t.text('decided_by');
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
    t.unique(['run_id', 'step_id']);
  });
  await knex.raw(`ALTER TABLE run_steps ADD CONSTRAINT run_steps_phase_check CHECK (phase IN (${inList(RUN_STEP_PHASES)}))`);
  await knex.raw(`ALTER TABLE run_steps ADD CONSTRAINT run_steps_kind_check CHECK (kind IN (${inList(STEP_KINDS)}))`);
  await knex.raw('CREATE INDEX run_steps_run_idx ON run_steps (run_id, group_index, position)');
  // Http steps whose runner may be gone; paused steps whose deadline may have passed.
  await knex.raw(`CREATE INDEX run_steps_running_http_idx ON run_steps (id) WHERE kind = 'http' AND phase = 'running'`);
  await knex.raw(`CREATE INDEX run_steps_paused_idx ON run_steps (timeout_at) WHERE phase = 'paused'`);

  await knex.schema.createTable('run_step_decisions', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('run_step_id').notNullable().references('id').inTable('run_steps');
    t.text('user_id').notNullable();
    t.text('verdict').notNullable();
    t.text('reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['run_step_id', 'user_id']);
  });
  await knex.raw(`ALTER TABLE run_step_decisions ADD CONSTRAINT run_step_decisions_verdict_check CHECK (verdict IN ('approve', 'reject'))`);

  await knex.schema.alterTable('tasks', (t) => {
    t.bigInteger('run_id');
    t.bigInteger('run_step_id');
    t.jsonb('outputs');
  });
  await knex.raw('CREATE UNIQUE INDEX tasks_run_step_idx ON tasks (run_step_id) WHERE run_step_id IS NOT NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX IF EXISTS tasks_run_step_idx');
  await knex.schema.alterTable('tasks', (t) => {
    t.dropColumn('run_id');
    t.dropColumn('run_step_id');
    t.dropColumn('outputs');
  });
  await knex.schema.dropTableIfExists('run_step_decisions');
  await knex.schema.dropTableIfExists('run_steps');
  await knex.schema.dropTableIfExists('run_reviews');
  await knex.schema.dropTableIfExists('runs');
  // Runbooks in the new format have no place in the old table.
  await knex('runbooks').whereRaw(`definition->>'format' = 'countersign.runbook/v1'`).delete();
  await knex.raw('ALTER INDEX IF EXISTS runbooks_pkey RENAME TO recipes_pkey');
  await knex.raw('ALTER TABLE runbooks RENAME COLUMN reference TO name');
  await knex.raw('ALTER TABLE runbooks RENAME TO recipes');
}
