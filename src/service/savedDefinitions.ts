/**
 * Saved definitions in the `runbooks` table (migration 013): imported runbooks and imported
 * recipes share it, one namespace. What both need, once: who may change a saved definition
 * (its owner, its editors, the config's admins), and the audited save (import or replace) and
 * remove, each in one transaction that re-checks under the row lock that the owner and editors
 * are still the ones checked (Slack may have been asked about user groups before the lock).
 *
 * The owner is the first importer and never changes; a replace keeps the editors when the new
 * definition names none. Events: `<kind>.imported` / `.replaced` / `.removed`, with the content
 * hash (and the previous one), subject `<kind>:<reference>`.
 */
import type { Config } from '../config/config.js';
import { includesUser, type People } from '../domain/people.js';
import type { Db, Queryable } from '../store/db.js';
import { appendEvent } from '../store/events.js';
import { refuse, type Outcome } from './outcome.js';
import { Reviewers } from './reviewers.js';

export interface SavedRow {
  reference: string;
  definition: unknown;
  imported_by: string;
  owner: string;
  editors: People | null;
  content_hash: string;
  created_at: Date;
  updated_at: Date;
}

const TABLE = 'runbooks';

/**
 * At most this many imported definitions (recipes and runbooks together): every list, catalog
 * and dependency check reads them all, so the table must stay small enough to read whole.
 */
export const MAX_SAVED_DEFINITIONS = 500;

/** Why a non-admin may not import fixed arguments (recipes and runbooks say the same). */
export function fixedNotAllowed(fixed: readonly string[]) {
  return refuse(
    'fixed_not_allowed',
    `Only the countersign admins may import fixed arguments (${fixed.map((name) => `\`${name}\``).join(', ')}): reviewers never see a fixed value, so it would run unreviewed. Make them \`input\` or \`options\` arguments, or ask an admin.`,
  );
}

export type DefinitionKind = 'recipe' | 'runbook';

export interface SaveRequest {
  kind: DefinitionKind;
  reference: string;
  /** Stored as is (with fixed values) and hashed by the caller. */
  definition: Record<string, unknown>;
  hash: string;
  editors: People | null;
  userId: string;
  replace: boolean;
  /** Extra audit data (e.g. the target). */
  data?: Record<string, unknown>;
}

export class SavedDefinitions {
  constructor(
    private readonly db: Db,
    private readonly config: Config,
    private readonly reviewers: Reviewers = new Reviewers(null),
  ) {}

  async row(reference: string, db: Queryable = this.db): Promise<SavedRow | undefined> {
    return (await db(TABLE).where({ reference }).first()) as SavedRow | undefined;
  }

  async rows(format: string): Promise<SavedRow[]> {
    return (await this.db(TABLE)
      .whereRaw(`coalesce(definition->>'format', 'countersign.recipe/v1') = ?`, [format])
      .orderBy('reference')
      .limit(MAX_SAVED_DEFINITIONS)) as SavedRow[];
  }

  /** Every saved definition (at most MAX_SAVED_DEFINITIONS, a cap imports keep). */
  async allRows(db: Queryable = this.db): Promise<SavedRow[]> {
    return (await db(TABLE).orderBy('reference').limit(MAX_SAVED_DEFINITIONS)) as SavedRow[];
  }

  /** The owner, an editor (user group members included), or a config admin. */
  async mayChange(row: Pick<SavedRow, 'owner' | 'editors'>, userId: string): Promise<boolean> {
    if (row.owner === userId) return true;
    if (row.editors && (await this.includes(row.editors, userId))) return true;
    return this.isAdmin(userId);
  }

  /** Imports, or with `replace` replaces, one definition; audited in the same transaction. */
  async save(request: SaveRequest): Promise<Outcome<{ replaced: boolean; previousHash: string | null }>> {
    const { kind, reference, userId } = request;
    const before = await this.row(reference);
    if (before && !request.replace)
      return refuse('exists', `A ${kind} \`${reference}\` was already imported. Add \`--replace\` to replace it: \`/task ${kind} import --replace\`.`);
    if (before && !(await this.mayChange(before, userId))) return this.notAllowed(before, 'replace');
    return this.db.transaction(async (trx): Promise<Outcome<{ replaced: boolean; previousHash: string | null }>> => {
      const existing = (await trx(TABLE).where({ reference }).forUpdate().first()) as SavedRow | undefined;
      if (existing && !before) return refuse('exists', `Someone imported a ${kind} \`${reference}\` a moment ago. Add \`--replace\` to replace it.`);
      if (!existing && before) return refuse('gone', `The ${kind} \`${reference}\` was removed a moment ago; import it again without \`--replace\`.`);
      if (!existing) {
        // Serialised by a transaction-scoped lock so two imports cannot both take the last place.
        await trx.raw('select pg_advisory_xact_lock(hashtext(?))', ['countersign.saved-definitions']);
        const counted = (await trx(TABLE).count('* as count').first()) as { count: string | number } | undefined;
        if (Number(counted?.count ?? 0) >= MAX_SAVED_DEFINITIONS) {
          return refuse(
            'too_many',
            `countersign keeps at most ${MAX_SAVED_DEFINITIONS} imported recipes and runbooks, and has that many. Remove ones nobody uses (\`/task runbook remove <ref>\`), or define it in countersign.yml.`,
          );
        }
      }
      if (existing && before && !sameChangers(existing, before)) return refuse('changed', `Who may change \`${reference}\` changed a moment ago. Try again.`);
      const subject = `${kind}:${reference}`;
      const name = kind === 'recipe' ? { name: reference } : { reference };
      if (existing) {
        const nextEditors = request.editors ?? existing.editors ?? null;
        await trx(TABLE)
          .where({ reference })
          .update({
            definition: JSON.stringify(request.definition),
            content_hash: request.hash,
            editors: nextEditors ? JSON.stringify(nextEditors) : null,
            imported_by: userId,
            updated_at: trx.fn.now(),
          });
        await appendEvent(trx, {
          taskId: null,
          subject,
          type: `${kind}.replaced`,
          actor: userId,
          data: {
            ...name,
            hash: request.hash,
            previousHash: existing.content_hash,
            owner: existing.owner,
            ...request.data,
            ...(nextEditors ? { editors: nextEditors } : {}),
          },
        });
        return { ok: true, replaced: true, previousHash: existing.content_hash };
      }
      const inserted = await trx(TABLE)
        .insert({
          reference,
          definition: JSON.stringify(request.definition),
          content_hash: request.hash,
          owner: userId,
          imported_by: userId,
          editors: request.editors ? JSON.stringify(request.editors) : null,
        })
        .onConflict('reference')
        .ignore()
        .returning('reference');
      if (inserted.length === 0) return refuse('exists', `Someone imported a ${kind} \`${reference}\` a moment ago. Add \`--replace\` to replace it.`);
      await appendEvent(trx, {
        taskId: null,
        subject,
        type: `${kind}.imported`,
        actor: userId,
        data: { ...name, hash: request.hash, ...request.data, ...(request.editors ? { editors: request.editors } : {}) },
      });
      return { ok: true, replaced: false, previousHash: null };
    });
  }

  /** Removes an imported definition (its owner, an editor or an admin); what was started from it keeps its name and hash. */
  async remove(kind: DefinitionKind, reference: string, userId: string, unknown: () => Outcome<never>): Promise<Outcome<{ name: string; hash: string }>> {
    const before = await this.row(reference);
    if (!before) return unknown();
    if (!(await this.mayChange(before, userId))) return this.notAllowed(before, 'remove');
    return this.db.transaction(async (trx): Promise<Outcome<{ name: string; hash: string }>> => {
      const existing = (await trx(TABLE).where({ reference }).forUpdate().first()) as SavedRow | undefined;
      if (!existing) return unknown();
      if (!sameChangers(existing, before)) return refuse('changed', `Who may change \`${reference}\` changed a moment ago. Try again.`);
      await trx(TABLE).where({ reference }).delete();
      const name = kind === 'recipe' ? { name: reference } : { reference };
      await appendEvent(trx, {
        taskId: null,
        subject: `${kind}:${reference}`,
        type: `${kind}.removed`,
        actor: userId,
        data: { ...name, hash: existing.content_hash, owner: existing.owner },
      });
      return { ok: true, name: reference, hash: existing.content_hash };
    });
  }

  /** A config admin (user group members included). */
  async isAdmin(userId: string): Promise<boolean> {
    return this.config.admins !== undefined && (await this.includes(this.config.admins, userId));
  }

  private async includes(people: People, userId: string): Promise<boolean> {
    if (people.users.includes(userId)) return true;
    return people.usergroup !== null && includesUser(people, userId, await this.reviewers.members(people.usergroup));
  }

  private notAllowed(row: SavedRow, action: 'replace' | 'remove') {
    return refuse(
      'not_allowed',
      `Only the owner of \`${row.reference}\` (<@${row.owner}>), its editors or the countersign admins may ${action} it. Import your version under another name instead.`,
    );
  }
}

function sameChangers(a: SavedRow, b: SavedRow): boolean {
  return a.owner === b.owner && JSON.stringify(a.editors ?? null) === JSON.stringify(b.editors ?? null);
}
