/**
 * /metrics in Prometheus format and structured logs with request ids: scraped and read after
 * real work (a task run over SSH, a Slack 429, API calls).
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { AUTHOR, Harness, METRICS_TOKEN } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

/** `name{labels} value` lines into a lookup; labels as written, e.g. `status="success"`. */
function parseMetrics(text: string): (name: string, labels?: string) => number | undefined {
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match) values.set(`${match[1]}${match[2] ?? ''}`, Number(match[3]));
  }
  return (name, labels) => values.get(labels ? `${name}{${labels}}` : name);
}

describe('observability', () => {
  let h: Harness;
  let app: RunningApp;
  const logLines: Array<Record<string, unknown>> = [];
  beforeAll(async () => {
    h = await Harness.start({ runner: { maxConcurrent: 0 } });
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line.trim() !== '') logLines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    });
    // The process under test: it claims and runs, and logs at info into `logLines`.
    app = await h.startReplica({ log: createLogger('info', sink) });
  });
  afterAll(async () => {
    await app.stop(1000);
    await h.stop();
  });

  it('exports task counts, run durations, queue wait, Slack calls and 429s, pool size and log bytes', async () => {
    h.fake.failNext('chat.postMessage', { status: 429, retryAfter: 1 });
    const id = await h.createTask('run sandbox -m "metrics" printf "0123456789"; echo');
    await h.waitForStatus(id, 'success');
    await h.card(id, 'success');
    // The runner counts the run once the result's reply is back, which can come after other
    // sessions (and the card's redraw) already see the result committed.
    const scrape = () => fetch(`${app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    await waitFor(
      async () => parseMetrics(await (await scrape()).text())('countersign_run_duration_seconds_count', 'status="success"') === 1,
      5_000,
      'the run counted in /metrics',
    ).catch(() => undefined);
    const response = await scrape();
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const metric = parseMetrics(await response.text());
    // Open statuses only (a scrape never counts finished tasks: that would scan them all).
    expect(metric('countersign_tasks', 'status="running"')).toBe(0);
    expect(metric('countersign_tasks', 'status="success"')).toBeUndefined();
    expect(metric('countersign_run_duration_seconds_count', 'status="success"')).toBe(1);
    expect(metric('countersign_queue_wait_seconds_count')).toBe(1);
    expect(metric('countersign_queue_wait_seconds_sum')).toBeLessThan(5);
    expect(metric('countersign_log_bytes_total', 'stream="stdout"')).toBe(11);
    expect(metric('countersign_ssh_pool_connections')).toBe(1);
    expect(metric('countersign_ssh_pool_waiting')).toBe(0);
    // Both the harness's process and this one post Slack messages; the 429 hit one of them.
    const here = metric('countersign_slack_api_calls_total', 'method="chat.postMessage",outcome="ok"') ?? 0;
    const harness = parseMetrics(await (await fetch(`${h.app.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text());
    const limited =
      (metric('countersign_slack_api_calls_total', 'method="chat.postMessage",outcome="ratelimited"') ?? 0) +
      (harness('countersign_slack_api_calls_total', 'method="chat.postMessage",outcome="ratelimited"') ?? 0);
    expect(here + (harness('countersign_slack_api_calls_total', 'method="chat.postMessage",outcome="ok"') ?? 0)).toBeGreaterThanOrEqual(1);
    expect(limited).toBe(1);
    expect(metric('countersign_process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('logs JSON lines with the request id and task id, and never the token', async () => {
    const { token } = await createApiToken(h.database.db, AUTHOR, 'logs');
    const created = await fetch(`${app.url}/api/v1/tasks`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-request-id': 'req-abc-123' },
      body: JSON.stringify({ target: 'sandbox', script: 'echo logged' }),
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('x-request-id')).toBe('req-abc-123');
    const { task } = (await created.json()) as { task: { id: number } };
    await h.waitForStatus(task.id, 'success');
    const got = await fetch(`${app.url}/api/v1/tasks/${task.id}`, { headers: { authorization: `Bearer ${token}` } });
    const generated = got.headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);

    const request = logLines.find((line) => line.requestId === 'req-abc-123' && line.msg === 'request');
    expect(request).toMatchObject({ method: 'POST', path: '/api/v1/tasks', status: 201, userId: AUTHOR });
    expect(logLines.find((line) => line.requestId === generated)).toMatchObject({ taskId: task.id, status: 200 });
    // The runner's lines for this task carry its id. It logs the end once the result's reply is
    // back, which can come after other sessions already see the result committed.
    await waitFor(async () => logLines.some((line) => line.taskId === task.id && line.msg === 'run finished'), 5_000, "the runner's 'run finished' line");
    expect(logLines.filter((line) => line.taskId === task.id && line.msg === 'run finished')).toHaveLength(1);
    expect(JSON.stringify(logLines)).not.toContain(token);
  });
});
