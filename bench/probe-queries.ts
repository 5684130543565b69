/**
 * Where one trivial task's cost goes, for finding what to remove (a probe; bench:compare is the
 * benchmark): `tsx bench/probe-queries.ts [tasks]` runs countersign in-process on one sshd and
 * prints the statements per task over every pool of the app (pg's Client.query counted), the
 * ready -> claimed and claimed -> stored times, and CPU per task split between the machine,
 * Postgres, this process and the rest (sshd, the scripts, the kernel), beside raw ssh2 running
 * `true` and countersign's wrapper on the same sshd. BENCH_PG_STATEMENTS=1 adds
 * pg_stat_statements' time and WAL per statement.
 */
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { encodeStdin, newRunToken, remoteCommand } from '../src/exec/remoteCommand.js';
import { fanOut } from './compare/rawSsh.js';
import { startBenchEnv } from './env.js';
import { benchThroughput } from './throughput.js';
import { machineBusySeconds, processCpu } from './cpu.js';

/** CPU seconds by command name, reaped children included (the scripts sshd ran). */
function byComm(): Map<string, number> {
  const out = new Map<string, number>();
  for (const p of processCpu()) out.set(p.comm, (out.get(p.comm) ?? 0) + p.withChildren);
  return out;
}
/** CPU seconds so far: the whole machine, all postgres processes, this process. */
function cpu(): { total: number; postgres: number; self: number } {
  const all = processCpu();
  return {
    total: machineBusySeconds(),
    postgres: all.filter((p) => p.comm === 'postgres').reduce((sum, p) => sum + p.withChildren, 0),
    self: all.find((p) => p.pid === process.pid)?.seconds ?? 0,
  };
}

const counts = new Map<string, number>();
let counting = false;
let total = 0;
/** The bench's own statements (bench/throughput.ts: the insert, a NOTIFY per task, the polling), not countersign's. */
const BENCH_OWN = [
  /^BEGIN;?$/,
  /^COMMIT;?$/,
  /^insert into "tasks"/,
  /^SELECT count\(pg_notify\(/,
  /^select count\(\*\) as "count" from "tasks" where "id" in/,
];
let benchOwn = 0;
const original = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  if (counting) {
    const first = args[0] as string | { text?: string };
    const sql = typeof first === 'string' ? first : (first?.text ?? '?');
    const key = sql.replace(/\$\d+/g, '?').replace(/\s+/g, ' ').slice(0, 150);
    if (BENCH_OWN.some((own) => own.test(key))) benchOwn++;
    else {
      counts.set(key, (counts.get(key) ?? 0) + 1);
      total++;
    }
  }
  return (original as (...a: unknown[]) => unknown).apply(this, args);
} as typeof original;

const env = await startBenchEnv();
try {
  await benchThroughput(env, 'open', 50);
  const n = Number(process.argv[2] ?? 300);
  {
    const host = { host: env.ssh.host, port: env.ssh.port, user: env.ssh.user, privateKey: readFileSync(env.ssh.privateKeyPath, 'utf8') };
    // A fresh token per run, as countersign's: two runs sharing one refuse to start.
    const wrapper = () => remoteCommand({ type: 'sh', token: newRunToken(), scriptBytes: 4, runAs: null });
    for (const [what, command, input] of [
      ['raw exec true', 'true', undefined],
      ['raw wrapper', wrapper, () => encodeStdin(new Map(), 'true')],
    ] as const) {
      const before = cpu();
      const cb = byComm();
      const rate = await fanOut([host], 9, n, command, input);
      const after = cpu();
      const ca = byComm();
      console.log(
        '  by command:',
        [...ca]
          .map(([k, v]) => [k, v - (cb.get(k) ?? 0)] as const)
          .filter(([, v]) => v > 0.05)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', '),
      );
      const per = (x: number) => `${((1000 * x) / n).toFixed(2)} ms`;
      console.log(
        `${what}: ${rate.toFixed(0)}/s; cpu per exec: machine ${per(after.total - before.total)}, postgres ${per(after.postgres - before.postgres)}, node ${per(after.self - before.self)}, rest ${per(after.total - before.total - (after.postgres - before.postgres) - (after.self - before.self))}`,
      );
    }
  }
  const statements = process.env.BENCH_PG_STATEMENTS === '1';
  if (statements) {
    await env.db.raw('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await env.db.raw('SELECT pg_stat_statements_reset()');
  }
  counting = true;
  const commsBefore = byComm();
  const before = cpu();
  const wallStart = performance.now();
  await benchThroughput(env, 'open', n);
  const wall = (performance.now() - wallStart) / 1000;
  const after = cpu();
  counting = false;
  const commsAfter = byComm();
  const deltas = [...commsAfter]
    .map(([k, v]) => [k, v - (commsBefore.get(k) ?? 0)] as const)
    .filter(([, v]) => v > 0.05)
    .sort((a, b) => b[1] - a[1]);
  console.log('cpu s by command (incl. reaped children):', deltas.map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', '));
  const per = (x: number) => `${((1000 * x) / n).toFixed(2)} ms/task`;
  console.log(
    `cpu over ${wall.toFixed(2)} s: machine ${per(after.total - before.total)}, postgres ${per(after.postgres - before.postgres)}, this node process ${per(after.self - before.self)}, the rest (sshd, the scripts, the kernel) ${per(after.total - before.total - (after.postgres - before.postgres) - (after.self - before.self))}`,
  );
  const phases = await env.db.raw(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.started_at - t.created_at) * 1000) AS wait_p50,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM e.finished_at - e.started_at) * 1000) AS run_p50,
            percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM e.finished_at - e.started_at) * 1000) AS run_p90,
            percentile_cont(0.5) WITHIN GROUP (ORDER BY t.duration_ms) AS duration_p50
       FROM executions e JOIN tasks t ON t.id = e.task_id WHERE t.id > (SELECT max(id) - ? FROM tasks)`,
    [n],
  );
  console.log('phases (ms):', phases.rows[0]);
  console.log(
    `countersign's statements: ${total} for ${n} tasks = ${(total / n).toFixed(2)} per task (the bench's own insert, NOTIFYs and polling, ${benchOwn}, left out)`,
  );
  if (statements) {
    const top = await env.db.raw(
      `SELECT calls, round(total_exec_time::numeric, 1) AS exec_ms, round((total_exec_time / greatest(calls, 1))::numeric, 3) AS per_call_ms, round((total_plan_time / greatest(calls, 1))::numeric, 3) AS plan_ms,
              wal_bytes, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
         FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15`,
    );
    console.table(top.rows);
  }
  for (const [sql, c] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 50)) console.log(String((c / n).toFixed(2)).padStart(6), sql);
} finally {
  await env.stop();
}
