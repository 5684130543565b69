/**
 * Task rows. Status changes go only through `transitionTask` and the forms that join another
 * statement (`transitionTaskAlong`, and `transitionTasksAlong` for a batch): the one place that
 * checks the lifecycle, guards the change in SQL and writes the audit event in the same transaction.
 */
import { assertTransition, isTerminal, transitionEventType, type TaskStatus } from '../domain/lifecycle.js';
import type { RunStepPhase } from '../domain/run.js';

/** A run step's phase when its task ends. */
const STEP_PHASE_OF: Partial<Record<TaskStatus, RunStepPhase>> = {
  success: 'succeeded',
  failure: 'failed',
  killed: 'killed',
  cancelled: 'killed',
  rejected: 'failed',
};
import type { ScriptType } from '../domain/scriptTypes.js';
import type { Task, TaskSource } from '../domain/task.js';
import { contentVersion, type RecipeRef } from '../domain/contentVersion.js';
import { contentKey } from './contentKey.js';
import { inTransaction, jsonParameter, prepared, runPrepared, type Queryable } from './db.js';
import { appendEvent } from './events.js';
import { CHANNEL_READY, CHANNEL_TASK } from './notify.js';
import { TASK_FIELDS, toTask, type TaskFieldsRow, type TaskRow } from './rows.js';
import { transitionRunStep } from './runs.js';

export interface NewTask {
  author: string;
  target: string;
  type: ScriptType;
  script: string;
  message: string | null;
  source: TaskSource;
  sourceKey: string | null;
  channelId: string | null;
  reviewChannel: string | null;
  /** A grace delay: run_after is set from the database's clock, the one the claim compares with. */
  delayMs?: number | null;
  /** A recipe's arguments (migration 006), stored as jsonb. */
  arguments?: Array<{ name: string; kind: 'fixed' | 'options' | 'input'; value: string }> | null;
  /** Started from a recipe: its name and definition hash (part of the content version). */
  recipe?: RecipeRef | null;
  /** A run's script step (migration 013): the task runs it; no card or review of its own. */
  runStep?: { runId: number; stepId: number } | null;
}

/**
 * How a new task enters the lifecycle in the statement that inserts it: its `task.created` audit
 * event (actor, data; the content version is added), then the move out of `created` to `enter`
 * (checked like any transition, with its own event, and the NOTIFY when it is `ready`). Nobody
 * can see the row before that statement commits, so there is no race to guard.
 */
export interface Birth {
  actor: string;
  data: Record<string, unknown>;
  enter: TaskStatus;
}

/**
 * Inserts a task in `created` (or, given `birth`, in `birth.enter` with both audit events, in one
 * statement: insertTasks); when `sourceKey` was seen before, returns that task instead.
 */
export async function insertTask(db: Queryable, task: NewTask, birth?: Birth): Promise<{ task: Task; created: boolean }> {
  if (birth) return (await insertTasks(db, [{ task, birth }]))[0]!;
  const version = contentVersion(contentOf(task), await contentKey(db));
  const columns = Object.fromEntries(TASK_COLUMNS.map(([column, , value]) => [column, value(task, version)]));
  const insert = db<TaskRow>('tasks')
    .insert({
      ...columns,
      status: 'created',
      run_after: task.delayMs ? (db.raw('now() + make_interval(secs => ?)', [task.delayMs / 1000]) as unknown as Date) : null,
    })
    .onConflict('source_key')
    .ignore()
    .returning('*');
  // Prepared: the run steps' and the schedules' tasks are inserted here, in a couple of shapes.
  const [row] = await prepared(insert);
  if (row) return { task: toTask(row), created: true };
  return { task: await existingBySourceKey(db, task.sourceKey), created: false };
}

export interface TaskBirth {
  task: NewTask;
  birth: Birth;
}

/**
 * Each column a new task is inserted with (but its status and run_after), its type and its value:
 * insertTask's row, and insertTasks' arrays, one per column (unnest), so that statement's text is
 * the same for one task or fifty, and is prepared once per connection.
 */
const TASK_COLUMNS: ReadonlyArray<readonly [column: string, type: string, value: (task: NewTask, version: string) => unknown]> = [
  ['author', 'text', (task) => task.author],
  ['target', 'text', (task) => task.target],
  ['type', 'text', (task) => task.type],
  ['script', 'text', (task) => task.script],
  ['message', 'text', (task) => task.message],
  ['source', 'text', (task) => task.source],
  ['source_key', 'text', (task) => task.sourceKey],
  ['channel_id', 'text', (task) => task.channelId],
  ['review_channel', 'text', (task) => task.reviewChannel],
  // A recipe's arguments as JSON.stringify writes them: a value with half an emoji is refused, not
  // stored changed (it is what the script is given after approval).
  ['arguments', 'jsonb', (task) => (task.arguments ? JSON.stringify(task.arguments) : null)],
  ['content_version', 'text', (_task, version) => version],
  ['recipe_name', 'text', (task) => task.recipe?.name ?? null],
  ['recipe_hash', 'text', (task) => task.recipe?.hash ?? null],
  ['recipe_writer', 'text', (task) => task.recipe?.writtenBy ?? null],
  ['run_id', 'bigint', (task) => task.runStep?.runId ?? null],
  ['run_step_id', 'bigint', (task) => task.runStep?.stepId ?? null],
];
type BirthInput = readonly [name: string, type: string, value: (b: TaskBirth, version: string) => unknown];
/** A birth's columns: its status, then every new task's. */
const BIRTH_COLUMNS: readonly BirthInput[] = [
  ['status', 'text', (b) => b.birth.enter],
  ...TASK_COLUMNS.map(([column, type, value]): BirthInput => [column, type, (b, version) => value(b.task, version)]),
];
/** What each birth adds besides its columns: the grace delay and both audit events' parts. */
const BIRTH_EXTRAS: readonly BirthInput[] = [
  ['delay_secs', 'float8', (b) => (b.task.delayMs ? b.task.delayMs / 1000 : null)],
  ['actor', 'text', (b) => b.birth.actor],
  ['created_data', 'jsonb', (b, version) => jsonParameter({ ...b.birth.data, contentVersion: version })],
  ['entered', 'text', (b) => transitionEventType(b.birth.enter)],
];
const BIRTH_INPUTS = [...BIRTH_COLUMNS, ...BIRTH_EXTRAS];
const BIRTH_COLUMN_LIST = BIRTH_COLUMNS.map(([column]) => column).join(', ');

// Ids are drawn in the order the births were given (the function scan's order, before any join),
// so tasks and their events keep the order they happened in. The row is matched to its birth by
// that id: a source key may be null.
const INSERT_BIRTHS = `
WITH input AS (
  SELECT nextval(pg_get_serial_sequence('tasks', 'id')) AS id, given.*
    FROM unnest(${BIRTH_INPUTS.map(([, type]) => `?::${type}[]`).join(', ')})
         WITH ORDINALITY AS given(${BIRTH_INPUTS.map(([name]) => name).join(', ')}, n)
),
inserted AS (
  INSERT INTO tasks (id, ${BIRTH_COLUMN_LIST}, run_after)
  SELECT id, ${BIRTH_COLUMN_LIST}, now() + make_interval(secs => delay_secs) FROM input ORDER BY n
  ON CONFLICT (source_key) DO NOTHING
  RETURNING ${TASK_FIELDS.join(', ')}
),
audit AS (
  INSERT INTO events (task_id, type, actor, data)
  SELECT inserted.id, e.type, e.actor, e.data
    FROM inserted JOIN input ON input.id = inserted.id
   CROSS JOIN LATERAL (VALUES (1, 'task.created', input.actor, input.created_data),
                              (2, input.entered, NULL, '{"from":"created"}'::jsonb)) AS e(k, type, actor, data)
   ORDER BY input.n, e.k
)
SELECT ${TASK_FIELDS.map((column) => `inserted.${column}`).join(', ')}, input.n AS birth_index,
       CASE WHEN inserted.status = 'ready' THEN pg_notify('${CHANNEL_READY}', inserted.id::text) END AS notified
  FROM inserted JOIN input ON input.id = inserted.id`;

/**
 * Inserts tasks each in `birth.enter`, each with its two audit events (`task.created` with the
 * content version, then the move out of `created`), in one statement: one round trip and one
 * commit for all of them. A birth whose source key was seen before answers that task
 * (created: false). A ready task is announced to every process's runner at commit (NOTIFY).
 *
 * No NOTIFY goes to followers: nobody can follow a task before its statement commits (the log
 * streams and event streams read the task before they subscribe, and answer 404 without it).
 *
 * Answers in the order given. Two births with one source key are refused: which would win is
 * not the caller's to leave to Postgres.
 */
export async function insertTasks(db: Queryable, births: readonly TaskBirth[]): Promise<Array<{ task: Task; created: boolean }>> {
  const born = await insertTasksStatement(db, births);
  return Promise.all(births.map((b, i) => bornOrExisting(db, b, born[i]!)));
}

/**
 * insertTasks' statement alone: each birth's new task, or null where its source key was taken.
 * Nothing after the statement can fail, so a caller that sees an error knows whether it committed
 * as well as Postgres told it.
 */
export async function insertTasksStatement(db: Queryable, births: readonly TaskBirth[]): Promise<Array<Task | null>> {
  const keys = births.map((b) => b.task.sourceKey).filter((key) => key !== null);
  if (new Set(keys).size !== keys.length) throw new Error('insertTasks: two births with one source key');
  for (const b of births) assertTransition('created', b.birth.enter);
  if (births.length === 0) return [];
  const key = await contentKey(db);
  const versions = births.map((b) => contentVersion(contentOf(b.task), key));
  // One array per column: pg sends each as a Postgres array.
  const bindings = BIRTH_INPUTS.map(([, , value]) => births.map((b, i) => value(b, versions[i]!)));
  const rows = await runPrepared<TaskFieldsRow & { birth_index: number }>(db, INSERT_BIRTHS, bindings);
  const born: Array<Task | null> = births.map(() => null);
  for (const row of rows) born[Number(row.birth_index) - 1] = toTask(row);
  return born;
}

/** A birth's answer from what insertTasksStatement said of it: its new task, or the one its source key made before. */
export async function bornOrExisting(db: Queryable, birth: TaskBirth, born: Task | null): Promise<{ task: Task; created: boolean }> {
  return born ? { task: born, created: true } : { task: await existingBySourceKey(db, birth.task.sourceKey), created: false };
}

function contentOf(task: NewTask) {
  return {
    target: task.target,
    type: task.type,
    script: task.script,
    message: task.message,
    arguments: task.arguments ?? null,
    recipe: task.recipe ?? null,
  };
}

/** The task an earlier insert with this source key made (a conflict means there is one). */
async function existingBySourceKey(db: Queryable, sourceKey: string | null): Promise<Task> {
  const existing = sourceKey === null ? undefined : await db<TaskRow>('tasks').where({ source_key: sourceKey }).first();
  if (!existing) throw new Error(`task with source_key ${sourceKey} vanished after a conflict`);
  return toTask(existing);
}

export async function getTask(db: Queryable, id: number): Promise<Task | null> {
  const row = await db<TaskRow>('tasks').where({ id }).first();
  return row ? toTask(row) : null;
}

/** Locks the task row for the rest of the caller's transaction (serialises reviews of one task). */
export async function getTaskForUpdate(db: Queryable, id: number): Promise<Task | null> {
  const row = await db<TaskRow>('tasks').where({ id }).forUpdate().first();
  return row ? toTask(row) : null;
}

/**
 * Changes the message or script of a task (the caller holds its row lock and has checked it may
 * be edited) and gives it its new content version: every approval drawn before is void. The
 * review request is redrawn (view_version), its script uploaded again if it had to be.
 */
export async function updateTaskContent(db: Queryable, task: Task, change: { message?: string | null; script?: string }): Promise<Task> {
  const message = change.message !== undefined ? change.message : task.message;
  const script = change.script ?? task.script;
  // An edited script is no longer the recipe's: the task stops claiming to be "from recipe X".
  const recipe = script === task.script ? task.recipe : null;
  const version = contentVersion({ target: task.target, type: task.type, script, message, arguments: task.arguments ?? null, recipe }, await contentKey(db));
  const [row] = await db<TaskRow>('tasks')
    .where({ id: task.id, content_version: task.contentVersion })
    .update(
      {
        message,
        script,
        content_version: version,
        recipe_name: recipe?.name ?? null,
        recipe_hash: recipe?.hash ?? null,
        recipe_writer: recipe?.writtenBy ?? null,
        ...(script !== task.script ? { review_script_posted: false } : {}),
        view_version: db.raw('view_version + 1') as unknown as number,
      },
      '*',
    );
  if (!row) throw new Error(`task ${task.id} changed under its row lock`);
  return toTask(row);
}

type TaskColumns = Omit<Partial<TaskRow>, 'id' | 'status' | 'status_changed_at' | 'created_at' | 'view_version'>;

export interface Transition {
  taskId: number;
  from: TaskStatus | readonly TaskStatus[];
  to: TaskStatus;
  actor: string | null;
  /** Extra audit data (a reason, an exit code). */
  data?: Record<string, unknown>;
  /** Columns written with the status (the result, timestamps). */
  set?: TaskColumns;
}

/**
 * Moves a task from one of `from` to `to`, or does nothing and returns null when the task is
 * not in `from` any more (someone else won the race: a second click, another replica).
 *
 * Short of an end, one statement (transitionTaskAlong), so it needs no transaction of its own (it
 * joins the caller's when there is one): it locks the row (FOR UPDATE, so a concurrent change is
 * waited for and its result seen), updates it only if its status is still one of `from`, writes
 * the audit event with the status it came from, and for `ready` sends the NOTIFY, all at the same
 * commit. An end is a short transaction that also moves the run step the task runs, if any.
 */
export async function transitionTask(db: Queryable, change: Transition): Promise<Task | null> {
  // An end may be a run's step's end too: that needs the run's row locked first and the step moved
  // in the same transaction (src/store/runs.ts), which one statement cannot do.
  if (isTerminal(change.to)) return endTask(db, change);
  return (await transitionTaskAlong(db, change, null)).task;
}

/** transitionTask to an end (only ever called with a terminal `to`): a transaction that moves a run's step with its task. */
async function endTask(db: Queryable, change: Transition): Promise<Task | null> {
  const allowedFrom = typeof change.from === 'string' ? [change.from] : [...change.from];
  for (const from of allowedFrom) assertTransition(from, change.to);
  return inTransaction(db, async (trx) => {
    // A run's step ends with its task: its run's row first, the lock order every run change keeps
    // (src/store/runs.ts).
    const link = await trx<TaskRow>('tasks').where({ id: change.taskId }).first('run_id');
    if (link?.run_id) await trx('runs').where({ id: link.run_id }).forUpdate().first('id');
    const current = await trx<TaskRow>('tasks').where({ id: change.taskId }).forUpdate().first('status');
    if (!current || !allowedFrom.includes(current.status)) return null;
    const [row] = await trx<TaskRow>('tasks')
      .where({ id: change.taskId, status: current.status })
      .update(
        {
          ...change.set,
          status: change.to,
          status_changed_at: trx.fn.now() as unknown as Date,
          view_version: trx.raw('view_version + 1') as unknown as number,
        },
        '*',
      );
    if (!row) return null;
    await appendEvent(trx, {
      taskId: change.taskId,
      type: transitionEventType(change.to),
      actor: change.actor,
      data: { from: current.status, ...change.data },
    });
    // A run's script step ends with its task, in the same transaction: the run never waits on a lost update.
    if (row.run_step_id) {
      const outputs = row.outputs as { outputs?: Record<string, string> } | null | undefined;
      await transitionRunStep(trx, {
        stepId: row.run_step_id,
        from: ['running'],
        to: STEP_PHASE_OF[change.to] ?? 'failed',
        actor: change.actor,
        data: { task: row.id },
        set: {
          outputs: outputs?.outputs ? { outputs: outputs.outputs } : null,
          failure_message: change.to === 'success' ? null : (row.failure_message ?? `the task ended ${change.to}`),
        },
      });
    }
    return toTask(row);
  });
}

/**
 * Data-modifying common table expressions a transition depends on (`name AS (...), ...`; Postgres
 * wants them at the top level): the transition happens only if the one called `gate` returns a row.
 */
export interface AlongWith {
  ctes: string;
  gate: string;
  bindings: readonly unknown[];
}

/**
 * transitionTask, in the same statement as `along` (say, storing a run's result): the task moves
 * only if `along` returned a row. Answers the task (null when it did not move) and whether `along`
 * returned any row. Rows `along` changes are locked before the task's.
 *
 * Not for the end of a task that runs a run's step (task.runStep): that end must move the step
 * in the same transaction, which transitionTask does; a run step's task is refused here.
 */
export async function transitionTaskAlong(
  db: Queryable,
  change: Transition,
  along: AlongWith | null,
  /** Tell every process's followers ("task N changed") in the same statement, instead of a NOTIFY of its own. */
  options: { notifyChanged?: boolean } = {},
): Promise<{ task: Task | null; along: boolean }> {
  const allowedFrom = typeof change.from === 'string' ? [change.from] : [...change.from];
  for (const from of allowedFrom) assertTransition(from, change.to);
  const set = Object.entries(change.set ?? {}).filter(([, value]) => value !== undefined);
  const notifyReady = change.to === 'ready';
  const result = await prepared(
    db.raw<{ rows: Array<TaskRow & { along_rows: number }> }>(
      `WITH ${along ? `${along.ctes},` : ''}
     current AS (SELECT id, status FROM tasks WHERE id = ?${isTerminal(change.to) ? ' AND run_step_id IS NULL' : ''}${along ? ` AND EXISTS (SELECT 1 FROM ${along.gate})` : ''} FOR UPDATE),
     changed AS (
       UPDATE tasks SET ${set.map(() => '?? = ?, ').join('')}status = ?, status_changed_at = CURRENT_TIMESTAMP, view_version = tasks.view_version + 1
         FROM current WHERE tasks.id = current.id AND current.status = ANY(?::text[])
         RETURNING tasks.*, current.status AS transition_from
     ),
     audit AS (
       INSERT INTO events (task_id, type, actor, data)
       SELECT id, ?, ?, jsonb_build_object('from', transition_from) || ?::jsonb FROM changed
     )
     SELECT ${along ? `(SELECT count(*) FROM ${along.gate})::int` : '0'} AS along_rows, changed.*${
       // Every process's runner hears of a ready task at commit, not at its next poll.
       notifyReady ? ', CASE WHEN changed.id IS NOT NULL THEN pg_notify(?, changed.id::text) END AS notified' : ''
     }${options.notifyChanged ? ', CASE WHEN changed.id IS NOT NULL THEN pg_notify(?, changed.id::text) END AS notified_changed' : ''}
       FROM (SELECT 1) AS answer LEFT JOIN changed ON true`,
      [
        ...(along?.bindings ?? []),
        change.taskId,
        ...set.flat(),
        change.to,
        allowedFrom,
        transitionEventType(change.to),
        change.actor,
        jsonParameter(change.data ?? {}),
        ...(notifyReady ? [CHANNEL_READY] : []),
        ...(options.notifyChanged ? [CHANNEL_TASK] : []),
      ] as never,
    ),
  );
  const row = result.rows[0];
  return { task: row && row.id !== null ? toTask(row) : null, along: (row?.along_rows ?? 0) > 0 };
}

/** A change that shows on the task's messages without changing its status (a review, a step). */
export async function bumpViewVersion(db: Queryable, taskId: number): Promise<void> {
  await db('tasks').where({ id: taskId }).increment('view_version', 1);
}

/**
 * transitionTaskAlong for many tasks in one statement (a batch of runs' results): each change is
 * checked, gated, audited and told of as transitionTaskAlong does it, and `along` is one
 * set-based statement for all of them whose `gate` returns `ord`, the index in `changes` of each
 * change it passed: change i moves only if its ord is there. Answers, per change, whether it moved
 * and whether `along` passed it. Rows `along` changes are locked before the tasks, the tasks in id
 * order. Saves a statement, its round trip and its write per change against one statement each.
 *
 * `set` values are plain values as in a row (a jsonb column's as its object, not its text: a
 * string there is refused), or knex's now(), which becomes the statement's time. Changes must name
 * different tasks.
 */
export async function transitionTasksAlong(
  db: Queryable,
  changes: readonly Transition[],
  along: AlongWith,
  options: { notifyChanged?: boolean } = {},
): Promise<Array<{ moved: boolean; along: boolean }>> {
  if (new Set(changes.map((change) => change.taskId)).size !== changes.length) throw new Error('transitionTasksAlong: two changes name the same task');
  const plainColumns = new Set<string>();
  const stampedColumns = new Set<string>();
  const input = changes.map((change, ord) => {
    const allowedFrom = typeof change.from === 'string' ? [change.from] : [...change.from];
    for (const from of allowedFrom) assertTransition(from, change.to);
    const values: Record<string, unknown> = {};
    const stamp: string[] = [];
    for (const [column, value] of Object.entries(change.set ?? {})) {
      if (value === undefined) continue;
      if (isStatementTime(value)) {
        stamp.push(column);
        stampedColumns.add(column);
      } else if (isKnexExpression(value)) throw new Error(`transitionTasksAlong: ${column} is an SQL expression; only plain values and now() go in a set`);
      else if (TASK_JSONB_COLUMNS.has(column) && typeof value === 'string')
        throw new Error(`transitionTasksAlong: ${column} is jsonb; give its value, not its JSON text`);
      else {
        values[column] = value;
        plainColumns.add(column);
      }
    }
    return {
      ord,
      task_id: change.taskId,
      from: allowedFrom,
      to: change.to,
      ends: isTerminal(change.to),
      event_type: transitionEventType(change.to),
      actor: change.actor,
      data: change.data ?? {},
      values,
      keys: Object.keys(values),
      stamp,
    };
  });
  // Sorted: the text depends only on which columns are set plainly, which are stamped, and the
  // options, so a caller's few shapes stay a few prepared statements.
  const columns = [...new Set([...plainColumns, ...stampedColumns])].sort();
  const assignments = columns.map((column) => {
    const stamped = stampedColumns.has(column) ? `WHEN ? = ANY(ti.stamp) THEN CURRENT_TIMESTAMP ` : '';
    const plain = plainColumns.has(column) ? 'WHEN ? = ANY(ti.keys) THEN p.?? ' : '';
    return {
      sql: `?? = CASE ${stamped}${plain}ELSE tasks.?? END, `,
      bindings: [column, ...(stamped ? [column] : []), ...(plain ? [column, column] : []), column],
    };
  });
  // A task moved to ready is told to every process's runner at commit, as transitionTaskAlong does.
  const result = await prepared(
    db.raw<{ rows: Array<{ ord: number; moved: boolean; along: boolean }> }>(
      `WITH ${along.ctes},
     transition_input AS (
       SELECT * FROM jsonb_to_recordset(?::jsonb)
         AS r(ord int, task_id bigint, "from" text[], "to" text, ends boolean, event_type text, actor text, data jsonb, "values" jsonb, keys text[], stamp text[])
     ),
     -- ARRAY(...) is worked out in full before the scan (an InitPlan): every run is locked before any task.
     current AS (
       SELECT tasks.id, tasks.status FROM tasks JOIN transition_input ti ON ti.task_id = tasks.id
        WHERE ti.ord = ANY(ARRAY(SELECT ord FROM ${along.gate})) AND (NOT ti.ends OR tasks.run_step_id IS NULL)
        ORDER BY tasks.id FOR UPDATE OF tasks
     ),
     changed AS (
       UPDATE tasks SET ${assignments.map((a) => a.sql).join('')}status = ti."to", status_changed_at = CURRENT_TIMESTAMP, view_version = tasks.view_version + 1
         FROM current, transition_input ti, LATERAL jsonb_populate_record(NULL::tasks, ti."values") AS p
        WHERE tasks.id = current.id AND ti.task_id = current.id AND current.status = ANY(ti."from")
        RETURNING tasks.id, ti.ord, ti."to", ti.event_type, ti.actor, ti.data, current.status AS transition_from
     ),
     audit AS (
       INSERT INTO events (task_id, type, actor, data)
       SELECT id, event_type, actor, jsonb_build_object('from', transition_from) || data FROM changed ORDER BY ord
     )
     SELECT ti.ord, changed.id IS NOT NULL AS moved, ti.ord IN (SELECT ord FROM ${along.gate}) AS along,
       CASE WHEN changed."to" = 'ready' THEN pg_notify(?, changed.id::text) END AS notified${
         options.notifyChanged ? ', CASE WHEN changed.id IS NOT NULL THEN pg_notify(?, changed.id::text) END AS notified_changed' : ''
       }
       FROM transition_input ti LEFT JOIN changed ON changed.ord = ti.ord ORDER BY ti.ord`,
      [
        ...along.bindings,
        jsonParameter(input),
        ...assignments.flatMap((a) => a.bindings),
        CHANNEL_READY,
        ...(options.notifyChanged ? [CHANNEL_TASK] : []),
      ] as never,
    ),
  );
  const answers = changes.map(() => ({ moved: false, along: false }));
  for (const row of result.rows) answers[row.ord] = { moved: row.moved, along: row.along };
  return answers;
}

/** The jsonb columns of tasks: jsonb_populate_record would store a string given for them as a JSON string. */
export const TASK_JSONB_COLUMNS: ReadonlySet<string> = new Set(['arguments', 'outputs']);

/** knex's now(): its SQL is CURRENT_TIMESTAMP with nothing bound. */
function isStatementTime(value: unknown): boolean {
  if (!isKnexExpression(value)) return false;
  const { sql, bindings } = value.toSQL();
  return sql === 'CURRENT_TIMESTAMP' && (bindings ?? []).length === 0;
}

function isKnexExpression(value: unknown): value is { toSQL(): { sql: string; bindings?: readonly unknown[] } } {
  return typeof value === 'object' && value !== null && typeof (value as { toSQL?: unknown }).toSQL === 'function';
}
