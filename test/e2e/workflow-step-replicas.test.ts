/**
 * The Workflow Builder step across replicas, restarts and failures (issue 13): one run and one
 * completion per execution whatever is delivered twice and whoever sees the run end; a
 * completion Slack fails is retried until it is taken, by whichever process; an execution Slack
 * delivered to a process that could not store it is not acknowledged, and its redelivery starts
 * it; the run's end reaches Slack after a restart, both when the run ends on the new process and
 * when the old one stopped before Slack took the completion; an execution stored by a process
 * that died before starting it is started by another.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { WORKFLOW_STEP_CALLBACK_ID } from '../../src/domain/workflowStep.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { receiveExecution } from '../../src/store/workflowExecutions.js';
import { ApiClient } from '../support/apiClient.js';
import { FakeFunctions } from '../support/fakeFunctions.js';
import { ALICE, AUTHOR, Harness, SIGNING_SECRET, sleep } from '../support/harness.js';
import { SlackDriver } from '../support/slackDriver.js';
import { waitFor } from '../support/waitFor.js';

describe('the Workflow Builder step across replicas and restarts', () => {
  let h: Harness;
  let scratch: string;
  const tokens: Record<string, string> = {};
  const extra: RunningApp[] = [];

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'countersign-workflow-'));
    chmodSync(scratch, 0o1777);
    h = await Harness.start({ extraYaml: () => workflowYaml(scratch) });
    for (const [user, name] of [
      [AUTHOR, 'author'],
      [ALICE, 'alice'],
    ] as const)
      tokens[user] = (await createApiToken(h.database.db, user, name)).token;
  }, 60_000);
  afterAll(async () => {
    for (const app of extra) await app.stop(1000).catch(() => undefined);
    await h?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  const driverFor = (app: RunningApp) => new SlackDriver({ appUrl: app.url, signingSecret: SIGNING_SECRET, fake: h.fake });
  const newExecution = (inputs: Record<string, unknown>) => h.fake.functions.execute(WORKFLOW_STEP_CALLBACK_ID, inputs);
  const completion = (fx: string, timeoutMs = 20_000) => h.fake.waitFor(() => h.fake.functions.completionsOf(fx)[0], timeoutMs, `the completion of ${fx}`);
  const completeCalls = (fx: string) => h.fake.calls.filter((c) => c.method.startsWith('functions.complete') && c.args.function_execution_id === fx);
  const row = (fx: string) => h.database.db('workflow_executions').where({ function_execution_id: fx }).first();
  const runsOf = (fx: string) => h.database.db('runs').where({ source_key: `workflow:${fx}` });
  /** Makes `app` the harness's own (the old one was stopped: a restart). */
  const becomeMain = (app: RunningApp) => {
    extra.push(app);
    (h as unknown as { app: RunningApp }).app = app;
    (h as unknown as { driver: SlackDriver }).driver = driverFor(app);
  };

  it('two replicas, the event delivered to both and Slack failing the first completion: one run, one completion', async () => {
    const second = await h.startReplica();
    extra.push(second);
    // Slack fails the first completion attempt; a reconciler (either replica's) tries again.
    h.fake.failNext('functions.completeSuccess', { status: 500 });
    const event = newExecution({ runbook: 'wf-ok', arguments: 'note=twice', interactivity: FakeFunctions.interactivity(AUTHOR) });
    const fx = String(event.function_execution_id);
    const [first, retried] = await Promise.all([h.driver.event({ event }), driverFor(second).event({ event, retryNum: 1, retryReason: 'http_timeout' })]);
    expect([first.status, retried.status]).toEqual([200, 200]);
    const done = await completion(fx);
    expect(done).toMatchObject({ kind: 'success', outputs: { status: 'success' } });
    // Both replicas see the run end (one through its engine, the other through NOTIFY), and both reconcile.
    await sleep(4500);
    expect(h.fake.functions.completionsOf(fx)).toHaveLength(1);
    const calls = completeCalls(fx);
    expect(calls.map((c) => [c.method, c.status])).toEqual([
      ['functions.completeSuccess', 500],
      ['functions.completeSuccess', 200],
    ]);
    expect(await runsOf(fx)).toHaveLength(1);
    expect(await row(fx)).toMatchObject({ state: 'started', completion: 'success', attempts: 2, claimed_by: null });
    expect(await h.count('events', { subject: `workflow:${fx}`, type: 'workflow.received' })).toBe(1);
    expect(readFileSync(join(scratch, 'ok'), 'utf8')).toBe('twice\n');
  });

  it("an execution that cannot be stored is not acknowledged; Slack's redelivery starts it", async () => {
    // The table is away (a broken database, as the process sees it): the insert fails.
    await h.database.db.raw('ALTER TABLE workflow_executions RENAME TO workflow_executions_away');
    const event = newExecution({ runbook: 'wf-ok', arguments: 'note=redelivered', interactivity: FakeFunctions.interactivity(AUTHOR) });
    const fx = String(event.function_execution_id);
    let refused: Awaited<ReturnType<SlackDriver['event']>> | undefined;
    try {
      refused = await h.driver.event({ event });
    } finally {
      await h.database.db.raw('ALTER TABLE workflow_executions_away RENAME TO workflow_executions');
    }
    // Bolt answers an event nobody acknowledged with 404 after its wait: Slack delivers it again.
    expect(refused.status).not.toBe(200);
    expect(await runsOf(fx)).toHaveLength(0);
    const again = await h.driver.event({ event, retryNum: 1, retryReason: 'http_error' });
    expect(again.status).toBe(200);
    expect(await completion(fx)).toMatchObject({ kind: 'success' });
    expect(readFileSync(join(scratch, 'ok'), 'utf8')).toBe('redelivered\n');
  });

  it('a restart while the run waits for review: approved on the new process, the run ends there and the step completes', async () => {
    const event = newExecution({ runbook: 'wf-reviewed', interactivity: FakeFunctions.interactivity(AUTHOR) });
    const fx = String(event.function_execution_id);
    expect((await h.driver.event({ event })).status).toBe(200);
    const waiting = await waitFor(async () => (await runsOf(fx)).find((r) => r.status === 'pending-review') ?? null, 10_000, 'the run waiting for review');
    await h.app.stop(1000);
    const restarted = await h.startReplica();
    becomeMain(restarted);
    expect(h.fake.functions.state(fx)).toBe('running');
    const api = await ApiClient.connect(restarted.url);
    const approved = await api.call('POST', `/runs/${waiting.id}/approve`, {
      token: tokens[ALICE]!,
      body: {},
      headers: { 'If-Match': `"${waiting.content_version}"` },
    });
    expect(approved.status).toBe(200);
    expect(await completion(fx)).toMatchObject({
      kind: 'success',
      outputs: { run_id: waiting.id, status: 'success', link: expect.stringMatching(new RegExp(`^http://127\\.0\\.0\\.1:\\d+/api/v1/runs/${waiting.id}$`)) },
    });
    // Either live process may complete it (the replica of the first test is still up; replicas share one public URL in production),
    // but only one: wait long enough for the other's reconciler to have had its go before counting.
    await sleep(2500);
    expect(h.fake.functions.completionsOf(fx)).toHaveLength(1);
    expect(completeCalls(fx)).toHaveLength(1);
  });

  it('the run ended but Slack was down until the process stopped: the new process completes the step, once', async () => {
    h.fake.failNext('functions.completeSuccess', { status: 503 }, 1000);
    const event = newExecution({ runbook: 'wf-ok', arguments: 'note=after-the-outage', interactivity: FakeFunctions.interactivity(AUTHOR) });
    const fx = String(event.function_execution_id);
    expect((await h.driver.event({ event })).status).toBe(200);
    await waitFor(async () => ((await row(fx))?.last_error ? row(fx) : null), 15_000, 'a failed completion attempt');
    expect((await runsOf(fx))[0].status).toBe('success');
    await h.app.stop(1000);
    h.fake.clearFailures('functions.completeSuccess');
    becomeMain(await h.startReplica());
    expect(await completion(fx)).toMatchObject({ kind: 'success', outputs: { status: 'success' } });
    await sleep(2500);
    expect(h.fake.functions.completionsOf(fx)).toHaveLength(1);
    expect(completeCalls(fx).filter((c) => c.status === 200)).toHaveLength(1);
  });

  it('an execution stored (and acknowledged) by a process that died before starting it is started by another', async () => {
    const event = newExecution({ runbook: 'wf-ok', arguments: 'note=orphan', interactivity: FakeFunctions.interactivity(AUTHOR) });
    const fx = String(event.function_execution_id);
    // What the receiving process wrote before it acknowledged the event and died.
    await receiveExecution(h.database.db, {
      functionExecutionId: fx,
      workflowExecutionId: String(event.workflow_execution_id),
      callbackId: WORKFLOW_STEP_CALLBACK_ID,
      starter: AUTHOR,
      reference: 'wf-ok',
      argumentsText: 'note=orphan',
      message: null,
    });
    // The running process's reconciler finds it once it has waited long enough for its own start (5 s here).
    expect(await completion(fx, 20_000)).toMatchObject({ kind: 'success' });
    expect(await runsOf(fx)).toHaveLength(1);
    expect(readFileSync(join(scratch, 'ok'), 'utf8')).toBe('orphan\n');
  });
});

function workflowYaml(scratch: string): string {
  return `runbooks:
  wf-ok:
    arguments:
      - { name: note, kind: input, required: true }
    steps:
      - { id: write, script: { target: sandbox, script: 'echo "$ARG_NOTE" > ${scratch}/ok' } }
  wf-reviewed:
    steps:
      - { id: go, script: { target: web-prod, script: "true" } }
`;
}
