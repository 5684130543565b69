/**
 * /metrics is not open to whoever reaches the app: it is served on its own listener
 * (METRICS_PORT), or on the main port to requests bearing METRICS_TOKEN, or not at all (404, and
 * the log says how to turn it on). A scrape never scans the tasks table: only open statuses are
 * counted, each by a capped index-only scan.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { readEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/log.js';
import { OPEN_COUNT_CAP, OPEN_COUNT_SQL } from '../../src/observability/metrics.js';
import { startAppProcess } from '../support/appProcess.js';
import { AUTHOR, Harness, METRICS_TOKEN } from '../support/harness.js';
import { freePort } from '../support/sshd.js';
import { waitFor } from '../support/waitFor.js';

describe('/metrics access and cost', () => {
  let h: Harness;
  const replicas: RunningApp[] = [];
  beforeAll(async () => {
    h = await Harness.start({ runner: { maxConcurrent: 0 } });
  });
  afterAll(async () => {
    await Promise.all(replicas.map((replica) => replica.stop(1000)));
    await h.stop();
  });

  it('answers on the main port only with the token', async () => {
    expect((await fetch(`${h.app.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${h.app.url}/metrics`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status).toBe(401);
    const ok = await fetch(`${h.app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('countersign_runner_liveness 1');
  });

  it('is off without METRICS_PORT or METRICS_TOKEN, and the log says how to turn it on', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const app = await h.startReplica({
      env: { slack: null, slackMissing: ['SLACK_BOT_TOKEN'], slackApiUrl: h.fake.url, port: 0 },
      log: createLogger('info', sink),
      runner: { maxConcurrent: 0 },
    });
    replicas.push(app);
    expect((await fetch(`${app.url}/metrics`)).status).toBe(404);
    expect(lines.join('')).toContain(
      'metrics are off: set METRICS_PORT (a separate listener) or METRICS_TOKEN (bearer token on the main port) to serve /metrics',
    );
  });

  it('serves a separate METRICS_PORT listener in a real process, and not the main port', async () => {
    const metricsPort = await freePort();
    const env = h.processEnv({ METRICS_PORT: String(metricsPort) });
    delete (env as Record<string, string | undefined>).METRICS_TOKEN;
    const child = await startAppProcess(env);
    try {
      const scraped = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      expect(scraped.status).toBe(200);
      expect(scraped.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(await scraped.text()).toMatch(/^countersign_tasks\{status="running"\} \d+$/m);
      expect((await fetch(`${child.url}/metrics`)).status).toBe(404);
    } finally {
      await child.stop();
    }
    expect(readEnv({ METRICS_PORT: '9464', METRICS_TOKEN: 'x'.repeat(16) })).toMatchObject({ metricsPort: 9464, metricsToken: 'x'.repeat(16) });
    expect(() => readEnv({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN: use at least 16 characters/);
    expect(() => readEnv({ METRICS_PORT: 'ninety' })).toThrow(/METRICS_PORT: expected a port number/);
  });

  it('counts open statuses with a capped index-only scan, however many tasks have finished', async () => {
    // 30,000 finished tasks and three waiting ones.
    await h.database.db.raw(
      `INSERT INTO tasks (status, author, target, type, script, source, content_version)
       SELECT 'success', ?, 'sandbox', 'bash', 'true', 'api', repeat('0', 64) FROM generate_series(1, 30000)`,
      [AUTHOR],
    );
    for (let i = 0; i < 3; i++) {
      const created = await h.app.service.create({
        author: AUTHOR,
        target: 'web-prod',
        message: 'waits',
        type: null,
        script: 'true',
        source: 'api',
        sourceKey: null,
        channelId: null,
      });
      expect(created.ok).toBe(true);
    }
    await h.database.db.raw('ANALYZE tasks');
    // Counts are read at most every 5 s, whoever scrapes.
    const text = await waitFor(
      async () => {
        const scraped = await (await fetch(`${h.app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
        return /^countersign_tasks\{status="pending-review"\} 3$/m.test(scraped) && scraped;
      },
      10_000,
      'the new counts',
      500,
    );
    expect(text).not.toMatch(/countersign_tasks\{status="success"\}/);
    const plan = await h.database.db.raw<{ rows: Array<{ 'QUERY PLAN': unknown }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${OPEN_COUNT_SQL}`, [
      'pending-review',
      OPEN_COUNT_CAP,
    ]);
    const nodes = flatten((plan.rows[0]!['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan);
    const scans = nodes.filter((node) => node['Relation Name'] === 'tasks');
    expect(scans.map((node) => node['Node Type'])).toEqual(['Index Only Scan']);
    expect(scans[0]!['Actual Rows']).toBe(3);
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows'?: number;
  Plans?: PlanNode[];
}

function flatten(node: PlanNode): PlanNode[] {
  return [node, ...(node.Plans ?? []).flatMap(flatten)];
}
