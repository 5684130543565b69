/**
 * A whole countersign for benchmarks: an embedded Postgres in a temp dir, a real sshd, the
 * fake Slack Web API and the signed-request driver from test/support, and the app itself.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nearestRank } from './quantile.js';
import { startApp, type RunningApp } from '../src/app.js';
import { loadConfigFile } from '../src/config/load.js';
import { createLogger } from '../src/log.js';
import { createDb, type Db } from '../src/store/db.js';
import { startEmbeddedPostgres } from '../src/store/embeddedPostgres.js';
import { migrate } from '../src/store/migrate.js';
import { startFakeSlack, type FakeSlack } from '../test/support/fakeSlack.js';
import { SlackDriver } from '../test/support/slackDriver.js';
import { startSshd, type SshServer } from '../test/support/sshd.js';

export interface BenchEnv {
  app: RunningApp;
  db: Db;
  fake: FakeSlack;
  ssh: SshServer;
  driver: SlackDriver;
  stop(): Promise<void>;
}

export async function startBenchEnv(): Promise<BenchEnv> {
  const dir = mkdtempSync(join(tmpdir(), 'countersign-bench-'));
  chmodSync(dir, 0o755);
  const pg = await startEmbeddedPostgres({
    dataDir: dir,
    fast: process.env.BENCH_FAST === '1',
    // BENCH_PG_STATEMENTS=1: per-statement CPU in pg_stat_statements (bench/probe-queries.ts prints it).
    ...(process.env.BENCH_PG_STATEMENTS === '1'
      ? { settings: { shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track': 'all', 'pg_stat_statements.track_planning': 'on' } }
      : {}),
  });
  const db = createDb(pg.url);
  await migrate(db);
  // Real Slack allows short bursts; the bench measures countersign, not the fake's bucket.
  const fake = await startFakeSlack({ token: 'xoxb-bench', postMessageBurst: Number.POSITIVE_INFINITY });
  // An ordinary login user with /bin/sh, as production logs in as a deploy user: no root start-up files.
  const [ssh, wideSsh] = await Promise.all([startSshd({ loginUser: 'countersign-test' }), startSshd({ loginUser: 'countersign-test', maxSessions: 40 })]);
  const host = `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`;
  const ssh_ = `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${ssh.knownHosts}"`;
  writeFileSync(
    join(dir, 'countersign.yml'),
    [
      // Reads everything: the API list as one query (others' lists filter what they may see).
      'admins: { users: [UBENCHADMIN] }',
      'runner:',
      '  maxConcurrentRuns: 40',
      'targets:',
      '  reviewed:',
      '    hosts:',
      host,
      ssh_,
      '    review:',
      '      channel: CREVIEW',
      '      groups: [{ name: sre, users: [UREVIEWER], approvals: 1 }]',
      // Its own channels: the ack benchmark's hundreds of cards queue at ~1 post/s per channel.
      '  ackbench:',
      '    hosts:',
      host,
      ssh_,
      '    review:',
      '      channel: CACKREVIEW',
      '      groups: [{ name: sre, users: [UREVIEWER], approvals: 1 }]',
      '  open:',
      '    hosts:',
      host,
      ssh_,
      // The same machine behind an sshd allowing 40 sessions per connection.
      '  wide:',
      '    maxSessions: 40',
      '    hosts:',
      `      - { host: ${wideSsh.host}, port: ${wideSsh.port}, user: ${wideSsh.user} }`,
      `    ssh:\n      privateKeyFile: ${wideSsh.privateKeyPath}\n      knownHosts: "${wideSsh.knownHosts}"`,
    ].join('\n'),
  );
  const app = await startApp({
    env: { slack: { signingSecret: 'bench-secret', botToken: 'xoxb-bench' }, slackMissing: [], slackApiUrl: fake.url, port: 0 },
    config: loadConfigFile(join(dir, 'countersign.yml')),
    db,
    databaseUrl: pg.url,
    log: createLogger('silent'),
    host: '127.0.0.1',
  });
  const driver = new SlackDriver({ appUrl: app.url, signingSecret: 'bench-secret', fake });
  return {
    app,
    db,
    fake,
    ssh,
    driver,
    async stop() {
      await app.stop(5000);
      await db.destroy();
      await Promise.all([fake.close(), ssh.stop(), wideSsh.stop(), pg.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function percentiles(samples: number[]): { n: number; p50: number; p90: number; p99: number; max: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => nearestRank(sorted, q);
  return { n: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? NaN };
}

export function report(name: string, samples: number[]): void {
  const p = percentiles(samples);
  console.log(`${name.padEnd(44)} n=${p.n}  p50=${p.p50.toFixed(1)} ms  p90=${p.p90.toFixed(1)} ms  p99=${p.p99.toFixed(1)} ms  max=${p.max.toFixed(1)} ms`);
}
