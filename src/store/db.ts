/**
 * The knex handle. It is created once in main and passed in everywhere (never global), so a
 * use case can join its caller's transaction and each test file can use its own database.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import knex, { type Knex } from 'knex';
import pg from 'pg';

// int8 (bigserial ids, counters) arrive as strings by default; our ids stay far below 2^53.
pg.types.setTypeParser(20, (value: string) => Number(value));

export type Db = Knex;
export type Queryable = Knex | Knex.Transaction;

export function createDb(connectionString: string, poolMax = 10, applicationName = 'countersign'): Db {
  return knex({
    client: PreparingPgClient as unknown as typeof Knex.Client,
    // keepAlive: a pooled connection on a link that died without a sound errors out in time
    // instead of waiting forever for an answer.
    connection: { connectionString, application_name: applicationName, keepAlive: true, keepAliveInitialDelayMillis: 10_000 } as Knex.PgConnectionConfig,
    pool: { min: 0, max: poolMax },
    acquireConnectionTimeout: 10_000,
    // An error's message must not carry the bound values: they can be script text or output.
    compileSqlOnError: false,
    // While the database is away every connection attempt fails, and the callers log that with
    // context; knex's own console line per attempt would only bury it.
    log: {
      warn: (message: string) => {
        if (!/^(Acquire connection error|Connection Error)/.test(String(message))) console.warn(message);
      },
    },
  });
}

/** Runs `work` in the caller's transaction when there is one, else in a new one. */
export async function inTransaction<T>(db: Queryable, work: (trx: Knex.Transaction) => Promise<T>): Promise<T> {
  if ((db as Knex.Transaction).isTransaction === true) return work(db as Knex.Transaction);
  return (db as Knex).transaction(work);
}

/**
 * Marks a hot statement to be prepared once per connection and executed by name afterwards:
 * Postgres then skips parsing and planning it (measured 0.56 ms of planning per call for the
 * run's result and the claim, as much as executing them). Only for statements whose text comes
 * from our code: each distinct text is one prepared statement per connection.
 */
export function prepared<Q extends Knex.Raw | Knex.QueryBuilder>(query: Q): Q {
  // knex's Raw has options() at run time (it passes them to pg) but not in its types.
  return (query as unknown as { options(options: object): Q }).options({ prepare: true });
}

/**
 * JSON text for a jsonb parameter. Postgres's jsonb refuses a lone surrogate (half an emoji, left
 * by cutting a line short), which a text parameter stores as U+FFFD (pg encodes it to UTF-8 so):
 * strings are made well formed the same way, so a value is stored alike either way.
 */
export function jsonParameter(value: unknown): string {
  const text = JSON.stringify(value);
  // JSON.stringify writes a lone surrogate as an escape (\udXXX, lower case): without one there
  // is nothing to mend, and the replacer (a call per value, on every batch of results) is skipped.
  return /\\ud[89a-f]/.test(text) ? JSON.stringify(value, wellFormed) : text;
}

function wellFormed(_key: string, value: unknown): unknown {
  return typeof value === 'string' ? (value as unknown as { toWellFormed(): string }).toWellFormed() : value;
}

/**
 * A hot statement of our own, prepared by name as prepared() marks them, run straight on a
 * pooled pg connection: knex's building of a raw query (a deep check of every binding for
 * undefined, a rewrite of the whole text from `?` to `$n`, a query id and its events per call)
 * is skipped, which for the birth statement (twenty array bindings, 2 KB of text) was most of
 * what knex allocated per `/task run`. In a transaction it goes through knex on the
 * transaction's connection. `sql` is written with `?` placeholders, as for db.raw.
 */
export async function runPrepared<Row extends pg.QueryResultRow>(db: Queryable, sql: string, values: readonly unknown[]): Promise<Row[]> {
  if ((db as Knex.Transaction).isTransaction === true) {
    const result = (await prepared(db.raw(sql, values as Knex.RawBinding[]))) as unknown as { rows: Row[] };
    return result.rows;
  }
  const { text, placeholders } = numbered(sql);
  // What knex checked before it sent a statement: pg would send undefined as NULL, and a count
  // that does not match would come back as a DatabaseError (which a shared write takes for a refused row).
  if (values.length !== placeholders) throw new Error(`runPrepared: ${values.length} values for ${placeholders} placeholders`);
  for (const value of values) {
    if (value === undefined || (Array.isArray(value) && value.includes(undefined))) throw new Error('runPrepared: an undefined value');
  }
  const pool = db.client as unknown as KnexPool;
  const connection = await pool.acquireConnection();
  try {
    // Announced as knex announces its own statements (db.on('query'): debugging, tests that count statements).
    pool.emit('query', { sql: text, bindings: values, __knexUid: (connection as { __knexUid?: string }).__knexUid });
    const run = () => {
      const name = statementName(text);
      return connection.query<Row>({ text, values: values as unknown[], ...(name === null ? {} : { name }) });
    };
    try {
      return (await run()).rows;
    } catch (error) {
      if (!planChanged(error)) throw error;
      prepareAfresh();
      return (await run()).rows;
    }
  } finally {
    await pool.releaseConnection(connection);
  }
}

interface KnexPool {
  emit(event: string, data: unknown): boolean;
  acquireConnection(): Promise<pg.Client>;
  releaseConnection(connection: pg.Client): Promise<unknown>;
}

const numberedTexts = new Map<string, { text: string; placeholders: number }>();

/**
 * `?` placeholders numbered `$1`, `$2`, ... in order, as knex numbers them for a text without
 * backslashes or `??` (a `\?` is kept as a literal `?`; `??` is refused); computed once per text.
 */
function numbered(sql: string): { text: string; placeholders: number } {
  let found = numberedTexts.get(sql);
  if (found === undefined) {
    let n = 0;
    const text = sql.replace(/\\?\?\??/g, (match) => {
      if (match === '\\?') return '?';
      if (match === '??') throw new Error('runPrepared: identifier bindings (??) are not supported');
      n++;
      return `$${n}`;
    });
    found = { text, placeholders: n };
    if (numberedTexts.size < MAX_PREPARED) numberedTexts.set(sql, found);
  }
  return found;
}

/** Statement texts we prepare at most: a bound on what each connection keeps, whatever a bug builds. */
const MAX_PREPARED = 500;
const statementNames = new Map<string, string>();
/** Bumped when a plan's result changed under us: every statement is prepared afresh under new names. */
let generation = 0;

function statementName(sql: string): string | null {
  let name = statementNames.get(sql);
  if (name === undefined) {
    if (statementNames.size >= MAX_PREPARED) return null;
    name = `cs${generation}_${createHash('sha1').update(sql).digest('hex').slice(0, 32)}`;
    statementNames.set(sql, name);
  }
  return name;
}

/**
 * Another replica's migration added a column to a table a prepared `RETURNING t.*` reads: the
 * prepared statement now fails on every connection holding it. New names make each connection
 * prepare the current text again.
 */
function planChanged(error: unknown): boolean {
  return (error as { code?: string }).code === '0A000' && /cached plan must not change result type/.test(String((error as Error).message));
}

/** Every statement is prepared afresh, under new names, on every connection. */
function prepareAfresh(): void {
  generation++;
  statementNames.clear();
}

interface KnexQueryObject {
  sql: string;
  options?: Record<string, unknown>;
}
interface KnexPgClient {
  _query(connection: { __knexTxId?: string }, obj: KnexQueryObject): Promise<unknown>;
}
const PgClient = createRequire(import.meta.url)('knex/lib/dialects/postgres/index.js') as new (config: Knex.Config) => KnexPgClient;

/** knex's pg client, naming the statements marked by prepared() so pg prepares them once per connection. */
class PreparingPgClient extends PgClient {
  override _query(connection: { __knexTxId?: string }, obj: KnexQueryObject): Promise<unknown> {
    if (obj.options?.prepare !== true) return super._query(connection, obj);
    const name = statementName(obj.sql);
    obj.options = name === null ? {} : { name };
    return super._query(connection, obj).catch((error: unknown) => {
      if (!planChanged(error)) throw error;
      prepareAfresh();
      // Inside a transaction the error has aborted it: the caller's retry gets the new names.
      if (connection.__knexTxId !== undefined) throw error;
      obj.options = { name: statementName(obj.sql) ?? undefined };
      return super._query(connection, obj);
    });
  }
}
