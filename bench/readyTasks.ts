/**
 * The benchmarks' way of making tasks ready: `count` trivial tasks round-robin over `targets`,
 * inserted ready in one transaction with one NOTIFY each (as approvals make them). The NOTIFYs go
 * in one statement, as graphile-worker's add_job over generate_series is one: a round trip per
 * task cost 0.2-0.4 s per 1,500 tasks before the first claim, on countersign's clock.
 */
import type { Db } from '../src/store/db.js';
import { CHANNEL_READY } from '../src/store/notify.js';

export async function insertReadyTasks(db: Db, targets: readonly string[], count: number, script = 'true'): Promise<number[]> {
  return db.transaction(async (trx) => {
    const rows = Array.from({ length: count }, (_, i) => ({
      status: 'ready',
      author: 'UAUTHOR',
      target: targets[i % targets.length]!,
      type: 'sh',
      script,
      source: 'api',
      content_version: '0'.repeat(64),
    }));
    const ids: number[] = [];
    for (let i = 0; i < rows.length; i += 1000) {
      const inserted = await trx('tasks')
        .insert(rows.slice(i, i + 1000))
        .returning('id');
      ids.push(...inserted.map((row: { id: number }) => row.id));
    }
    await trx.raw('SELECT count(pg_notify(?, id::text)) FROM unnest(?::bigint[]) AS id', [CHANNEL_READY, ids]);
    return ids;
  });
}
