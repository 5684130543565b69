/**
 * API latency under load, with autocannon on loopback: GET /api/v1/tasks?limit=50 with 100,000
 * tasks in the database, and POST /api/v1/tasks (a reviewed target, so tasks wait for review
 * and the figure is the API's own cost: validation, insert, audit, the card queued for Slack).
 * Lists are read as an admin (one query), as a reviewer of one target in three (a filtered
 * scan that fills its page quickly), and as a user who may see none of them (the worst case:
 * a scan up to its bound, 2,000 rows, for an empty page and a cursor).
 */
import autocannon from 'autocannon';
import type { BenchEnv } from './env.js';
import { createApiToken } from '../src/store/apiTokens.js';

const TASKS = 100_000;

async function load(title: string, options: autocannon.Options): Promise<void> {
  const result = await autocannon(options);
  const l = result.latency;
  console.log(
    `  ${title}: ${Math.round(result.requests.average)} req/s over ${result.duration.toFixed(0)} s, ${options.connections} connections; ` +
      `latency p50 ${l.p50} ms, p99 ${l.p99} ms, max ${l.max} ms; non-2xx ${result.non2xx}, errors ${result.errors}`,
  );
}

export async function benchApiLoad(env: BenchEnv): Promise<void> {
  console.log(`API under load (autocannon, loopback)`);
  const existing = Number((await env.db('tasks').count<{ count: string }[]>('* as count'))[0]?.count ?? 0);
  if (existing < TASKS) {
    // Finished tasks of several authors and targets, as a busy year would leave them.
    await env.db.raw(
      `INSERT INTO tasks (status, author, target, type, script, message, source, created_at, status_changed_at, exit_code, finished_at)
       SELECT (ARRAY['success','failure','killed','rejected'])[1 + i % 4], 'U' || lpad((i % 50)::text, 6, '0'), (ARRAY['reviewed','open','wide'])[1 + i % 3],
              'bash', 'echo ' || i, 'load ' || i, 'api', now() - make_interval(secs => ?::int - i), now(), 0, now()
       FROM generate_series(1, ?::int) AS i`,
      [TASKS - existing, TASKS - existing],
    );
    await env.db.raw('ANALYZE tasks');
  }
  const headersOf = async (user: string) => ({
    authorization: `Bearer ${(await createApiToken(env.db, user, 'bench')).token}`,
    'content-type': 'application/json',
  });
  const [admin, reviewer, stranger] = await Promise.all([headersOf('UBENCHADMIN'), headersOf('UREVIEWER'), headersOf('UBENCH01')]);
  const headers = stranger;
  const url = `${env.app.url}/api/v1`;
  await load(`GET /tasks?limit=50 (${TASKS.toLocaleString('en')} tasks) as an admin`, {
    url: `${url}/tasks?limit=50`,
    headers: admin,
    connections: 10,
    duration: 10,
  });
  await load('GET /tasks?limit=50&author=U000008&status=success (filtered) as an admin', {
    url: `${url}/tasks?limit=50&author=U000008&status=success`,
    headers: admin,
    connections: 10,
    duration: 10,
  });
  await load('GET /tasks?limit=50 as the reviewer of one target in three', { url: `${url}/tasks?limit=50`, headers: reviewer, connections: 10, duration: 10 });
  await load('GET /tasks?limit=50 as a user who may see none (scan to the bound)', {
    url: `${url}/tasks?limit=50`,
    headers: stranger,
    connections: 10,
    duration: 10,
  });
  let n = 0;
  await load('POST /tasks (reviewed target)', {
    url: `${url}/tasks`,
    method: 'POST',
    headers,
    connections: 10,
    duration: 10,
    setupClient: (client) => {
      client.setBody(JSON.stringify({ target: 'reviewed', script: `echo ${n++}`, message: 'load' }));
    },
    requests: [{ setupRequest: (request) => ({ ...request, body: JSON.stringify({ target: 'reviewed', script: `echo ${n++}`, message: 'load' }) }) }],
  });
  console.log('');
}
