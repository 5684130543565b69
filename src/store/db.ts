/**
 * The knex handle. It is created once in main and passed in everywhere (never global), so a
 * use case can join its caller's transaction and each test file can use its own database.
 */
import knex, { type Knex } from 'knex';
import pg from 'pg';

// int8 (bigserial ids, counters) arrive as strings by default; our ids stay far below 2^53.
pg.types.setTypeParser(20, (value: string) => Number(value));

export type Db = Knex;
export type Queryable = Knex | Knex.Transaction;

export function createDb(connectionString: string, poolMax = 10, applicationName = 'countersign'): Db {
  return knex({
    client: 'pg',
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
