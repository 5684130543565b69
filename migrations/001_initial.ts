/**
 * The spine's tables: tasks, review decisions, executions and their steps, output chunks, and
 * an append-only audit of events. Status values are checked in SQL as well as in the domain,
 * so a bad write fails loudly instead of leaving a task in a state nothing handles.
 */
import type { Knex } from 'knex';

const TASK_STATUSES = ['created', 'pending-review', 'approved', 'rejected', 'ready', 'running', 'success', 'failure', 'killed'];
const STEP_PHASES = ['pending', 'running', 'succeeded', 'failed', 'killed', 'skipped'];
const EXECUTION_PHASES = ['running', 'succeeded', 'failed', 'killed'];

const inList = (values: string[]) => values.map((v) => `'${v}'`).join(', ');

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('tasks', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('status_changed_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('status').notNullable();
    t.text('author').notNullable();
    t.text('target').notNullable();
    t.text('type').notNullable();
    t.text('script').notNullable();
    t.text('message');
    t.text('source').notNullable();
    // Idempotency: the same slash command (trigger_id) or API request key creates one task.
    t.text('source_key').unique();
    // Where the task was asked for, and the Slack messages that show it.
    t.text('channel_id');
    t.text('card_ts');
    t.text('review_channel');
    t.text('review_ts');
    // Slack is a view: view_version grows with every change a message shows; card_version and
    // review_version say which version each message last showed, so any process can tell a
    // message is behind (and a stale redraw that lands late is noticed and redone).
    t.bigInteger('view_version').notNullable().defaultTo(1);
    t.bigInteger('card_version');
    t.bigInteger('review_version');
    // Who is posting a message right now: a claim, so two processes never post the same card twice.
    t.timestamp('card_post_claimed_at', { useTz: true });
    t.timestamp('review_post_claimed_at', { useTz: true });
    t.boolean('review_script_posted').notNullable().defaultTo(false);
    // The result, copied from the last execution so cards and lists need no join.
    t.integer('exit_code');
    t.text('signal');
    t.integer('duration_ms');
    t.text('failure_message');
    t.text('last_line');
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE tasks ADD CONSTRAINT tasks_status_check CHECK (status IN (${inList(TASK_STATUSES)}))`);
  // The runner's queue: only ready tasks, oldest first.
  await knex.raw(`CREATE INDEX tasks_ready_idx ON tasks (id) WHERE status = 'ready'`);
  await knex.raw(`CREATE INDEX tasks_status_idx ON tasks (status, id)`);
  // The Slack reconciler's work list: messages behind their task.
  await knex.raw(`
    CREATE INDEX tasks_views_behind_idx ON tasks (id)
    WHERE (channel_id IS NOT NULL AND (card_version IS NULL OR card_version < view_version))
       OR (review_channel IS NOT NULL AND (review_version IS NULL OR review_version < view_version))
  `);

  await knex.schema.createTable('reviews', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('task_id').notNullable().references('tasks.id').onDelete('CASCADE');
    t.text('user_id').notNullable();
    t.text('verdict').notNullable();
    t.text('reason');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    // One decision per reviewer: a double click on Approve inserts once.
    t.unique(['task_id', 'user_id']);
  });
  await knex.raw(`ALTER TABLE reviews ADD CONSTRAINT reviews_verdict_check CHECK (verdict IN ('approve', 'reject'))`);

  await knex.schema.createTable('executions', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('task_id').notNullable().references('tasks.id').onDelete('CASCADE');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('phase').notNullable().defaultTo('running');
    // A stop request: set by whoever clicked Kill, acted on by the process that owns the run.
    t.text('desired_phase');
    t.text('stop_requested_by');
    // Grows with every change, so readers can order what they see.
    t.bigInteger('status_version').notNullable().defaultTo(1);
    t.jsonb('plan').notNullable();
    t.text('runner_id').notNullable();
    t.timestamp('lease_until', { useTz: true }).notNullable();
    t.timestamp('started_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('finished_at', { useTz: true });
    t.integer('exit_code');
    t.text('failure_message');
    t.bigInteger('output_bytes').notNullable().defaultTo(0);
  });
  await knex.raw(`ALTER TABLE executions ADD CONSTRAINT executions_phase_check CHECK (phase IN (${inList(EXECUTION_PHASES)}))`);
  await knex.raw(`CREATE INDEX executions_task_idx ON executions (task_id)`);
  await knex.raw(`CREATE INDEX executions_running_idx ON executions (lease_until) WHERE phase = 'running'`);

  await knex.schema.createTable('execution_steps', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('execution_id').notNullable().references('executions.id').onDelete('CASCADE');
    t.integer('group_index').notNullable();
    t.text('host').notNullable();
    t.integer('port').notNullable();
    t.text('user').notNullable();
    // Marks the step's processes and files on the host, so any process can stop or check them.
    t.text('run_token').notNullable();
    t.text('phase').notNullable().defaultTo('pending');
    t.integer('exit_code');
    t.text('signal');
    t.text('failure_message');
    t.timestamp('started_at', { useTz: true });
    t.timestamp('finished_at', { useTz: true });
  });
  await knex.raw(`ALTER TABLE execution_steps ADD CONSTRAINT execution_steps_phase_check CHECK (phase IN (${inList(STEP_PHASES)}))`);
  await knex.raw(`CREATE INDEX execution_steps_execution_idx ON execution_steps (execution_id, id)`);

  // Output is stored in chunks (one row per flush per stream), not one row per line.
  await knex.schema.createTable('output_chunks', (t) => {
    t.bigIncrements('id').primary();
    t.bigInteger('execution_id').notNullable().references('executions.id').onDelete('CASCADE');
    t.bigInteger('step_id').references('execution_steps.id').onDelete('CASCADE');
    t.text('stream').notNullable();
    t.text('data').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
  });
  await knex.raw(`ALTER TABLE output_chunks ADD CONSTRAINT output_chunks_stream_check CHECK (stream IN ('stdout', 'stderr', 'system'))`);
  await knex.raw(`CREATE INDEX output_chunks_execution_idx ON output_chunks (execution_id, id)`);

  await knex.schema.createTable('events', (t) => {
    t.bigIncrements('id').primary();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.bigInteger('task_id').references('tasks.id');
    t.text('type').notNullable();
    t.text('actor');
    t.jsonb('data').notNullable().defaultTo('{}');
  });
  await knex.raw(`CREATE INDEX events_task_idx ON events (task_id, id)`);
  // Append-only: the audit trail cannot be edited or deleted, even by the app.
  await knex.raw(`
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP;
    END $$;
  `);
  await knex.raw(`
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TRIGGER IF EXISTS events_append_only ON events');
  await knex.raw('DROP FUNCTION IF EXISTS events_append_only()');
  for (const table of ['events', 'output_chunks', 'execution_steps', 'executions', 'reviews', 'tasks']) {
    await knex.schema.dropTableIfExists(table);
  }
}
