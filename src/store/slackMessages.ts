/**
 * The Slack messages a row shows, kept in the row itself: a task's and a run's card and review
 * request (migrations 003, 013), a run step's request or prompt and an http step's log (018).
 * One message is a slot: its table, row and kind. For each slot:
 *
 * - posting is claimed first (when the channel can take the post: src/slack/messageSync.ts), so
 *   exactly one process posts it (until it records the ts or releases the claim; a claim older
 *   than two minutes belonged to a process that died);
 * - the view_version it shows is recorded, so a redraw that lands after a newer one is noticed;
 * - its permalink is stored once ('' when Slack refused one).
 *
 * And the ledgers of direct messages (task reviews: review_dms; runs: run_dms), each DM claimed
 * before it is sent so two processes never send the same one.
 */
import type { Knex } from 'knex';
import { prepared, type Queryable } from './db.js';

export type TaskMessageKind = 'card' | 'review';
/** A run step's: `request` (an approval step's request, an input step's prompt), `log` (an http step's output). */
export type MessageKind = TaskMessageKind | 'request' | 'log';
export type MessageTable = 'tasks' | 'runs' | 'run_steps';

export interface MessageSlot {
  table: MessageTable;
  id: number;
  kind: MessageKind;
}

const COLUMNS: Readonly<Record<MessageKind, { ts: string; claimed: string; version: string | null; permalink: string | null }>> = {
  card: { ts: 'card_ts', claimed: 'card_post_claimed_at', version: 'card_version', permalink: 'card_permalink' },
  review: { ts: 'review_ts', claimed: 'review_post_claimed_at', version: 'review_version', permalink: 'review_permalink' },
  request: { ts: 'message_ts', claimed: 'message_post_claimed_at', version: 'message_version', permalink: 'message_permalink' },
  // Posted once, never redrawn.
  log: { ts: 'log_ts', claimed: 'log_post_claimed_at', version: null, permalink: null },
};

/** A claim older than this belonged to a process that died mid-post (or mid-DM). */
const STALE_CLAIM = "interval '2 minutes'";

/** True for exactly one caller across processes, until it records the posted ts or releases the claim. */
export async function claimMessagePost(db: Queryable, slot: MessageSlot): Promise<boolean> {
  const c = COLUMNS[slot.kind];
  const rows = await db(slot.table)
    .where({ id: slot.id })
    .whereNull(c.ts)
    .where((q) => q.whereNull(c.claimed).orWhere(c.claimed, '<', db.raw(`now() - ${STALE_CLAIM}`)))
    .update({ [c.claimed]: db.fn.now() }, ['id']);
  return rows.length > 0;
}

export async function releaseMessagePost(db: Queryable, slot: MessageSlot): Promise<void> {
  const c = COLUMNS[slot.kind];
  await db(slot.table)
    .where({ id: slot.id })
    .whereNull(c.ts)
    .update({ [c.claimed]: null });
}

/**
 * Records that the message shows `version` (and, right after its post, its ts, the claim
 * released, and its channel for a slot whose channel is chosen when it is posted), in one
 * statement. The stored version never goes back (GREATEST, on the row as it is once locked), and
 * the answer is false when it is newer than ours: another process drew a newer state first, so
 * this redraw is stale and must be redone.
 */
export async function recordMessageRendered(db: Queryable, slot: MessageSlot, version: number, posted?: { ts: string; channel?: string }): Promise<boolean> {
  const c = COLUMNS[slot.kind];
  const set: Record<string, unknown> = posted
    ? { [c.ts]: posted.ts, [c.claimed]: null, ...(posted.channel !== undefined ? { message_channel: posted.channel } : {}) }
    : {};
  if (c.version === null) {
    if (posted) await db(slot.table).where({ id: slot.id }).update(set);
    return true;
  }
  const rows = (await db(slot.table)
    .where({ id: slot.id })
    .update({ ...set, [c.version]: db.raw('GREATEST(??, ?::bigint)', [c.version, version]) }, [c.version])) as Array<Record<string, unknown>>;
  const row = rows[0];
  return row !== undefined && Number(row[c.version]) <= version;
}

/** The version the message shows (another process may have drawn it already), or null. */
export async function shownVersion(db: Queryable, slot: MessageSlot): Promise<number | null> {
  const column = COLUMNS[slot.kind].version;
  if (column === null) return null;
  const row = await db(slot.table).where({ id: slot.id }).first(column);
  return row?.[column] === null || row?.[column] === undefined ? null : Number(row[column]);
}

/** Stores a permalink unless one is known already; true when this call stored it. */
export async function storePermalink(db: Queryable, slot: MessageSlot, url: string): Promise<boolean> {
  const column = COLUMNS[slot.kind].permalink;
  if (column === null) return false;
  const rows = await db(slot.table)
    .where({ id: slot.id })
    .whereNull(column)
    .update({ [column]: url }, ['id']);
  return rows.length > 0;
}

/** What storeTaskPermalinks answers: the task's links and view version once it has run. */
export interface StoredTaskLinks {
  cardPermalink: string | null;
  reviewPermalink: string | null;
  /** The view_version after the statement: one more than before when a link to show was stored. */
  viewVersion: number;
  /** A link to show (not a refusal's '') was stored: the messages must be redrawn to show it. */
  shown: boolean;
  /** The card's link was stored by this call (the card of the task this one resubmits shows it). */
  cardShown: boolean;
  sourceKey: string | null;
}

/**
 * A task's two permalinks (a URL, '' for Slack's refusal, null for not known) stored where none
 * is yet, with the view_version bumped when one of them is worth showing: one statement for what
 * took four (each link, the bump, and reading which task a resubmission came from). Null when
 * another process had stored both already.
 */
export async function storeTaskPermalinks(db: Queryable, taskId: number, card: string | null, review: string | null): Promise<StoredTaskLinks | null> {
  // Prepared: one per new task with a card and a review request, always the same text.
  const result = await prepared(
    db.raw<{
      rows: Array<{
        card_permalink: string | null;
        review_permalink: string | null;
        view_version: string | number;
        card_shown: boolean;
        review_shown: boolean;
        source_key: string | null;
      }>;
    }>(
      `WITH old AS (SELECT id, card_permalink, review_permalink FROM tasks WHERE id = :taskId FOR UPDATE),
     fresh AS (
       SELECT id, card_permalink IS NULL AND :card::text IS NOT NULL AS card_new, review_permalink IS NULL AND :review::text IS NOT NULL AS review_new,
              card_permalink IS NULL AND :card::text <> '' AS card_shown, review_permalink IS NULL AND :review::text <> '' AS review_shown
         FROM old
     )
     UPDATE tasks SET
       card_permalink = CASE WHEN fresh.card_new THEN :card::text ELSE tasks.card_permalink END,
       review_permalink = CASE WHEN fresh.review_new THEN :review::text ELSE tasks.review_permalink END,
       view_version = tasks.view_version + CASE WHEN fresh.card_shown OR fresh.review_shown THEN 1 ELSE 0 END
     FROM fresh
     WHERE tasks.id = fresh.id AND (fresh.card_new OR fresh.review_new)
     RETURNING tasks.card_permalink, tasks.review_permalink, tasks.view_version, fresh.card_shown, fresh.review_shown, tasks.source_key`,
      { taskId, card, review },
    ),
  );
  const row = result.rows[0];
  if (!row) return null;
  return {
    cardPermalink: row.card_permalink,
    reviewPermalink: row.review_permalink,
    viewVersion: Number(row.view_version),
    shown: row.card_shown === true || row.review_shown === true,
    cardShown: row.card_shown === true,
    sourceKey: row.source_key,
  };
}

/**
 * The whole script of `contentVersion` is in the review thread. Only for that version: an edit
 * while the file was uploading clears the flag and must keep it cleared, or the new version's
 * request would say its script is in the thread when only the old one is.
 */
export async function markReviewScriptPosted(db: Queryable, table: 'tasks' | 'runs', id: number, contentVersion: string): Promise<boolean> {
  return (await db(table).where({ id, content_version: contentVersion }).update({ review_script_posted: true })) > 0;
}

/** Tasks or runs whose card or review request shows an older version than the row has (newest first). */
export async function rowsWithMessagesBehind(db: Queryable, table: 'tasks' | 'runs', limit: number, maxAgeDays = 7): Promise<number[]> {
  return db(table)
    .where((q) =>
      q
        .where((a) => a.whereNotNull('channel_id').andWhere((b) => b.whereNull('card_version').orWhereRaw('card_version < view_version')))
        .orWhere((a) => a.whereNotNull('review_channel').andWhere((b) => b.whereNull('review_version').orWhereRaw('review_version < view_version'))),
    )
    .where('created_at', '>', db.raw(`now() - make_interval(days => ?)`, [maxAgeDays]))
    .orderBy('id', 'desc')
    .limit(limit)
    .pluck('id');
}

/**
 * Runs with a step message to catch up: an approval request or input prompt behind its run
 * (steps that paused), an http step's log not posted yet under a posted card.
 */
export async function runsWithStepMessagesBehind(db: Queryable, limit: number, maxAgeDays = 7): Promise<number[]> {
  const rows = (await db('run_steps as s')
    .join('runs as r', 'r.id', 's.run_id')
    .whereIn('s.kind', ['approval', 'input', 'http'])
    .whereNotNull('s.started_at')
    .where((q) =>
      q
        .where((a) =>
          a.whereIn('s.kind', ['approval', 'input']).andWhere((b) => b.whereNull('s.message_version').orWhereRaw('s.message_version < r.view_version')),
        )
        .orWhere((a) => a.where('s.kind', 'http').whereNotNull('s.finished_at').whereNotNull('s.output').whereNull('s.log_ts').whereNotNull('r.card_ts')),
    )
    .where('r.created_at', '>', db.raw(`now() - make_interval(days => ?)`, [maxAgeDays]))
    .distinct('s.run_id')
    .orderBy('s.run_id', 'desc')
    .limit(limit)) as Array<{ run_id: number }>;
  return rows.map((row) => Number(row.run_id));
}

// ---------------------------------------------------------------- direct messages

/** Where the DMs about one thing are kept: a task's review (review_dms), a run's review or approval step (run_dms), a schedule's review round (schedule_review_dms). */
export type DmLedger =
  | { table: 'review_dms'; key: { task_id: number } }
  | { table: 'run_dms'; key: { run_id: number; about: string } }
  | { table: 'schedule_review_dms'; key: { schedule_id: number; review_round: number } };

/** Claims the DMs to these users that nobody has sent or is sending: the users this caller must DM. */
export async function claimDms(db: Queryable, ledger: DmLedger, users: readonly string[]): Promise<string[]> {
  const keys = Object.keys(ledger.key);
  const values = Object.values(ledger.key);
  const table = ledger.table;
  const result = await db.raw(
    `INSERT INTO ${table} (${keys.join(', ')}, user_id)
     SELECT ${keys.map(() => '?').join(', ')}, unnest(?::text[])
     ON CONFLICT (${keys.join(', ')}, user_id) DO UPDATE SET claimed_at = now()
       WHERE ${table}.sent_at IS NULL AND ${table}.claimed_at < now() - ${STALE_CLAIM}
     RETURNING user_id`,
    [...values, [...users]],
  );
  return (result.rows as Array<{ user_id: string }>).map((row) => row.user_id);
}

/** Of these users, those nobody has DMed and nobody is DMing (no claim, or a stale one): the DMs still to send. */
export async function dmsToSend(db: Queryable, ledger: DmLedger, users: readonly string[]): Promise<string[]> {
  const taken: string[] = await db(ledger.table)
    .where(ledger.key)
    .whereIn('user_id', [...users])
    .where((q) => q.whereNotNull('sent_at').orWhere('claimed_at', '>=', db.raw(`now() - ${STALE_CLAIM}`)))
    .pluck('user_id');
  return users.filter((userId) => !taken.includes(userId));
}

export async function recordDmSent(trx: Knex.Transaction | Queryable, ledger: DmLedger, userId: string, channel: string): Promise<void> {
  await trx(ledger.table)
    .where({ ...ledger.key, user_id: userId })
    .update({ sent_at: trx.fn.now(), channel_id: channel });
}

export async function releaseDm(db: Queryable, ledger: DmLedger, userId: string): Promise<void> {
  await db(ledger.table)
    .where({ ...ledger.key, user_id: userId })
    .whereNull('sent_at')
    .delete();
}

export async function allDmsSent(db: Queryable, ledger: DmLedger, users: readonly string[]): Promise<boolean> {
  const sent: string[] = await db(ledger.table)
    .where(ledger.key)
    .whereNotNull('sent_at')
    .whereIn('user_id', [...users])
    .pluck('user_id');
  return users.every((userId) => sent.includes(userId));
}
