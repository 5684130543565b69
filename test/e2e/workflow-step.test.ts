/**
 * The countersign step in Slack's Workflow Builder (issue 13), through signed `function_executed`
 * events against the fake Slack, a real Postgres and a real sshd: event in -> run started in the
 * name of whoever clicked -> completion out (functions.completeSuccess with run_id, status and
 * link; functions.completeError with the reason), refused starts failed at once, the review
 * rules as for any start, foreign workspaces refused. Replicas and restarts:
 * workflow-step-replicas.test.ts.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORKFLOW_STEP_CALLBACK_ID } from '../../src/domain/workflowStep.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { FakeFunctions } from '../support/fakeFunctions.js';
import { ALICE, AUTHOR, BOB, Harness, SIGNING_SECRET, sleep, targetYaml } from '../support/harness.js';
import { SlackDriver } from '../support/slackDriver.js';
import { waitFor } from '../support/waitFor.js';

describe('the Workflow Builder step "Run a countersign runbook"', () => {
  let h: Harness;
  let api: ApiClient;
  let scratch: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'countersign-workflow-'));
    chmodSync(scratch, 0o1777);
    h = await Harness.start({ extraTargets: strictTarget, extraYaml: () => workflowYaml(scratch) });
    api = await ApiClient.connect(h.app.url);
    for (const [user, name] of [
      [AUTHOR, 'author'],
      [ALICE, 'alice'],
      [BOB, 'bob'],
    ] as const)
      tokens[user] = (await createApiToken(h.database.db, user, name)).token;
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** A workflow reaches the step: Slack sends the signed event; answers the execution id and the HTTP answer. */
  const execute = async (inputs: Record<string, unknown>, driver: SlackDriver = h.driver) => {
    const event = h.fake.functions.execute(WORKFLOW_STEP_CALLBACK_ID, inputs);
    const response = await driver.event({ event });
    return { fx: String(event.function_execution_id), event, response };
  };
  const completion = (fx: string, timeoutMs = 20_000) => h.fake.waitFor(() => h.fake.functions.completionsOf(fx)[0], timeoutMs, `the completion of ${fx}`);
  const runOf = (fx: string) =>
    h.database
      .db('runs')
      .where({ source_key: `workflow:${fx}` })
      .first();
  /** The execution's audit trail once its completion is recorded (Slack hears of it a moment before Postgres). */
  const auditOf = (fx: string) =>
    waitFor(
      async () => {
        const types = (
          await h.database
            .db('events')
            .where({ subject: `workflow:${fx}` })
            .orderBy('id')
        ).map((e) => e.type as string);
        return types.at(-1) === 'workflow.completed' ? types : null;
      },
      5000,
      `the audit of ${fx}`,
    );
  const completeCalls = (fx: string) => h.fake.calls.filter((c) => c.method.startsWith('functions.complete') && c.args.function_execution_id === fx);
  const clickBy = FakeFunctions.interactivity;

  it('starts the runbook in the name of whoever clicked, then completes with run_id, status and link once the run succeeded', async () => {
    const { fx, event, response } = await execute({
      runbook: 'wf-ok',
      arguments: 'note=hello from a workflow\nmode=b',
      message: 'weekly tidy-up',
      interactivity: clickBy(ALICE),
    });
    // Acknowledged (after it was stored) well within Slack's time.
    expect(response.status).toBe(200);
    expect(response.ms).toBeLessThan(3000);
    const done = await completion(fx);
    const run = await runOf(fx);
    expect(run).toMatchObject({
      creator: ALICE,
      reference: 'wf-ok',
      message: 'weekly tidy-up',
      status: 'success',
      trigger: { kind: 'workflow', execution: fx },
    });
    expect(done).toEqual({
      functionExecutionId: fx,
      kind: 'success',
      outputs: { run_id: run.id, status: 'success', link: `${h.app.url}/api/v1/runs/${run.id}` },
      at: expect.any(Number),
    });
    expect(h.fake.functions.state(fx)).toBe('completed');
    expect(readFileSync(join(scratch, 'ok-b'), 'utf8')).toBe('hello from a workflow b\n');
    // The run is ALICE's: she sees it in the API, with its trigger.
    const seen = await api.call('GET', `/runs/${run.id}`, { token: tokens[ALICE]! });
    expect(seen.body.run).toMatchObject({ creator: ALICE, trigger: { kind: 'workflow', execution: fx } });
    // Once: later looks (a reconciler pass every 2 s here, the run's later changes) send nothing more.
    await sleep(2500);
    expect(completeCalls(fx)).toHaveLength(1);
    expect(await auditOf(fx)).toEqual(['workflow.received', 'workflow.started', 'workflow.completed']);
    // Neither the execution's own token nor the interactor's secret is kept.
    const stored = JSON.stringify(await h.database.db('workflow_executions').where({ function_execution_id: fx }).first());
    const interactivity = (event.inputs as { interactivity: { interactor: { secret: string }; interactivity_pointer: string } }).interactivity;
    for (const secret of [String(event.bot_access_token), interactivity.interactor.secret, interactivity.interactivity_pointer])
      expect(stored).not.toContain(secret);
  });

  it('reads arguments given as a JSON object, and starts a recipe as a one-step run', async () => {
    const { fx } = await execute({ runbook: 'wf-recipe', arguments: '{"word": "json"}', interactivity: clickBy(AUTHOR) });
    const done = await completion(fx);
    expect(done).toMatchObject({ kind: 'success', outputs: { status: 'success' } });
    const run = await runOf(fx);
    expect(run).toMatchObject({ reference: 'wf-recipe', creator: AUTHOR });
    expect(run.plan.groups.flat().map((s: { id: string }) => s.id)).toEqual(['wf-recipe.main']);
    expect(readFileSync(join(scratch, 'recipe'), 'utf8')).toBe('recipe json\n');
  });

  it('fails the step with the reason and the link when the run fails', async () => {
    const { fx } = await execute({ runbook: 'wf-fail', interactivity: clickBy(AUTHOR) });
    const done = await completion(fx);
    const run = await runOf(fx);
    expect(run.status).toBe('failure');
    expect(done).toMatchObject({ kind: 'error' });
    expect(done.error).toMatch(new RegExp(`^countersign run ${run.id} \\(wf-fail\\) failed: wf-fail\\.boom: .+\\. ${h.app.url}/api/v1/runs/${run.id}$`));
    expect(h.fake.functions.state(fx)).toBe('failed');
    expect(await auditOf(fx)).toEqual(['workflow.received', 'workflow.started', 'workflow.completed']);
  });

  it('fails a start countersign refuses at once, with the reason, and starts nothing', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ runbook: 'no-such-runbook', interactivity: clickBy(AUTHOR) }, /There is no runbook `no-such-runbook`/],
      [{ runbook: 'wf-ok', arguments: 'note=x\ncolour=red', interactivity: clickBy(AUTHOR) }, /wf-ok has no argument colour/],
      [{ runbook: 'wf-ok', arguments: 'note=x\nmode=c', interactivity: clickBy(AUTHOR) }, /mode/],
      [{ runbook: 'wf-ok', interactivity: clickBy(AUTHOR) }, /note/],
      [{ runbook: 'wf-ok', arguments: 'just some words', interactivity: clickBy(AUTHOR) }, /Arguments line 1 is not name=value/],
      [{ runbook: 'wf-hooked', interactivity: clickBy(AUTHOR) }, /wf-hooked cannot be started by hand/],
      // ALICE alone cannot get the two approvals strict-prod needs: nobody but BOB could approve her run.
      [{ runbook: 'wf-strict', interactivity: clickBy(ALICE) }, /could never be approved/],
      // A user named by a user_id input is not who clicked: no interactivity, no start.
      [{ runbook: 'wf-ok', arguments: 'note=x', user_id: ALICE }, /needs to know who runs the workflow/],
    ];
    const runsBefore = await h.count('runs');
    for (const [inputs, reason] of cases) {
      const { fx, response } = await execute(inputs);
      expect(response.status).toBe(200);
      const done = await completion(fx);
      expect(done.kind, JSON.stringify(inputs)).toBe('error');
      expect(done.error, JSON.stringify(inputs)).toMatch(/^countersign did not start the runbook: /);
      expect(done.error, JSON.stringify(inputs)).toMatch(reason);
      expect(await auditOf(fx)).toEqual(['workflow.received', 'workflow.refused', 'workflow.completed']);
      expect(completeCalls(fx).map((c) => c.method)).toEqual(['functions.completeError']);
    }
    expect(await h.count('runs')).toBe(runsBefore);
  });

  it('a reviewed target: the step waits for the review; a rejection fails it, an approval lets the run finish and complete it', async () => {
    const rejected = await execute({ runbook: 'wf-reviewed', message: 'please', interactivity: clickBy(AUTHOR) });
    const first = await waitFor(
      async () => ((await runOf(rejected.fx))?.status === 'pending-review' ? runOf(rejected.fx) : null),
      10_000,
      'the run waiting for review',
    );
    await sleep(500);
    expect(h.fake.functions.state(rejected.fx)).toBe('running');
    const no = await api.call('POST', `/runs/${first.id}/reject`, { token: tokens[BOB]!, body: { reason: 'not now' } });
    expect(no.status).toBe(200);
    expect((await completion(rejected.fx)).error).toMatch(
      new RegExp(`^countersign run ${first.id} \\(wf-reviewed\\) was rejected: rejected by <@${BOB}>: not now\\. `),
    );

    const approved = await execute({ runbook: 'wf-reviewed', interactivity: clickBy(AUTHOR) });
    const second = await waitFor(
      async () => ((await runOf(approved.fx))?.status === 'pending-review' ? runOf(approved.fx) : null),
      10_000,
      'the second run waiting for review',
    );
    // Nobody approves their own run, from a workflow either.
    const self = await api.call('POST', `/runs/${second.id}/approve`, {
      token: tokens[AUTHOR]!,
      body: {},
      headers: { 'If-Match': `"${second.content_version}"` },
    });
    expect(self.body.error.code).toBe('self_review');
    const yes = await api.call('POST', `/runs/${second.id}/approve`, {
      token: tokens[ALICE]!,
      body: {},
      headers: { 'If-Match': `"${second.content_version}"` },
    });
    expect(yes.status).toBe(200);
    expect(await completion(approved.fx)).toMatchObject({ kind: 'success', outputs: { run_id: second.id, status: 'success' } });
    expect(readFileSync(join(scratch, 'reviewed'), 'utf8')).toBe('reviewed\n');
  });

  it('Kill: a killed run fails the step, saying who killed it', async () => {
    const { fx } = await execute({ runbook: 'wf-long', interactivity: clickBy(AUTHOR) });
    const run = await waitFor(async () => ((await runOf(fx))?.status === 'running' ? runOf(fx) : null), 10_000, 'the run running');
    await waitFor(async () => (await h.database.db('tasks').where({ run_id: run.id, status: 'running' }).first()) ?? null, 10_000, 'its script running');
    const stop = await api.call('POST', `/runs/${run.id}/stop`, { token: tokens[AUTHOR]!, body: {} });
    expect(stop.status).toBe(200);
    expect((await completion(fx)).error).toMatch(new RegExp(`^countersign run ${run.id} \\(wf-long\\) was killed: killed by <@${AUTHOR}>`));
  });

  it('a function_executed from another workspace is refused: nothing stored, nothing started, nothing completed', async () => {
    const before = await h.count('workflow_executions');
    const foreign = new SlackDriver({ appUrl: h.app.url, signingSecret: SIGNING_SECRET, fake: h.fake, teamId: 'T0OTHER' });
    const { fx, response } = await execute({ runbook: 'wf-ok', arguments: 'note=x', interactivity: clickBy(AUTHOR) }, foreign);
    expect(response.status).toBe(200);
    await sleep(1000);
    expect(await h.count('workflow_executions')).toBe(before);
    expect(await runOf(fx)).toBeUndefined();
    expect(completeCalls(fx)).toEqual([]);
  });
});

/** A target whose review needs two approvals from ALICE and BOB: neither can start a run others could approve. */
function strictTarget(ssh: { host: string; port: number; user: string; privateKeyPath: string; knownHosts: string }): string {
  return targetYaml(ssh, 'strict-prod', [
    'review:',
    '  channel: CREVIEW',
    '  groups:',
    '    - name: pair',
    `      users: [${ALICE}, ${BOB}]`,
    '      approvals: 2',
  ]);
}

function workflowYaml(scratch: string): string {
  return `recipes:
  wf-recipe:
    target: sandbox
    script: 'echo "recipe $1" > ${scratch}/recipe'
    arguments:
      - { name: word, kind: input, required: true }
runbooks:
  wf-ok:
    arguments:
      - { name: note, kind: input, required: true }
      - { name: mode, kind: options, options: [a, b], default: a }
    steps:
      - { id: write, script: { target: sandbox, script: 'echo "$ARG_NOTE $ARG_MODE" > ${scratch}/ok-$ARG_MODE' } }
  wf-fail:
    steps:
      - { id: boom, script: { target: sandbox, script: "echo about to fail; exit 3" } }
  wf-reviewed:
    steps:
      - { id: go, script: { target: web-prod, script: "echo reviewed > ${scratch}/reviewed" } }
  wf-long:
    steps:
      - { id: sleep, script: { target: sandbox, script: "sleep 30" } }
  wf-hooked:
    triggeredBy: [webhook]
    steps:
      - { id: x, script: { target: sandbox, script: "true" } }
  wf-strict:
    steps:
      - { id: x, script: { target: strict-prod, script: "true" } }
`;
}
