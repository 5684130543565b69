/**
 * Thousands of task rows at once, straight into the table, for tests of how reads scale. Rows
 * made this way never run, are never reviewed and have no Slack messages. Columns a later
 * migration makes NOT NULL without a default (a content version) get a placeholder (64 zeros, the shape of a hash), so these
 * tests keep working as the schema grows.
 */
import type { Db } from '../../src/store/db.js';

export interface TaskRowInput {
  status: string;
  author: string;
  target: string;
  script: string;
  type?: string;
  source?: string;
}

export async function insertTaskRows(db: Db, rows: readonly TaskRowInput[]): Promise<number[]> {
  const required = (await db('information_schema.columns')
    .where({ table_name: 'tasks', is_nullable: 'NO', column_default: null })
    .whereNotIn('column_name', ['status', 'author', 'target', 'script', 'type', 'source'])
    .pluck('column_name')) as string[];
  // 64 zeros: a valid shape for a hash (a content version is SHA-256 hex), and never a real one.
  const placeholders = Object.fromEntries(required.map((column) => [column, '0'.repeat(64)]));
  const ids: number[] = [];
  for (let i = 0; i < rows.length; i += 500) {
    const batch = rows.slice(i, i + 500).map((row) => ({ type: 'bash', source: 'api', ...placeholders, ...row }));
    const inserted = (await db('tasks').insert(batch).returning('id')) as Array<{ id: number }>;
    ids.push(...inserted.map((row) => row.id));
  }
  return ids;
}
