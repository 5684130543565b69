/**
 * Runbook runs in Slack (issue 11, "Done when", the Slack half), through signed Slack requests,
 * the fake Slack, a real sshd, a real Postgres and a local HTTP server on 127.0.0.5: the run card
 * and the review request (every step in full, Approve bound to the content version), input ->
 * http -> approval by a second person -> a two-host script group using the input and an output
 * -> an `after … on: failure` cleanup; step output in the card's thread labelled by step; Kill
 * from the card, Run again, Cancel during grace; a restart while paused for approval, then
 * approved in Slack and finished. Prints the time from the last approval click to the next step's start.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { createLogger } from '../../src/log.js';
import { ReviewExpiry } from '../../src/service/reviewExpiry.js';
import type { Run } from '../../src/domain/run.js';
import { RUN_ACTION, RUN_INPUT_CALLBACK } from '../../src/slack/render/blocks.js';
import { getRun, stepsOfRun } from '../../src/store/runs.js';
import type { FakeMessage } from '../support/fakeSlack.js';
import { ALICE, AUTHOR, BOB, blocksText, buttonIds, Harness, MALLORY, REVIEW_CHANNEL, SIGNING_SECRET, TASKS_CHANNEL, targetYaml } from '../support/harness.js';
import { SlackDriver } from '../support/slackDriver.js';
import { startSshd, type SshServer } from '../support/sshd.js';
import { waitFor } from '../support/waitFor.js';

describe('runbook runs in Slack', () => {
  let h: Harness;
  let server: Server;
  let port: number;
  let scratch: string;
  /** An sshd answering on two addresses: a target with two hosts. */
  let pair: SshServer;
  const hits: string[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if ((req.url ?? '').startsWith('/health')) return void res.setHeader('content-type', 'application/json').end(JSON.stringify({ ok: true }));
      res.writeHead(404).end('no');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.5', resolve));
    port = (server.address() as AddressInfo).port;
    scratch = mkdtempSync(join(tmpdir(), 'countersign-runs-slack-'));
    chmodSync(scratch, 0o1777);
    pair = await startSshd({ host: '127.0.0.61', extraHosts: ['127.0.0.62'] });
    h = await Harness.start({
      // Two more targets on the same sshd: web-b reviewed by `ops`, whose members get a DM; web-exp, whose review expires after a second.
      extraTargets: (ssh) => {
        const target = (name: string, review: string[]) => [
          targetYaml(ssh, name, ['review:', `  channel: ${REVIEW_CHANNEL}`, ...review.map((line) => `  ${line}`)]),
        ];
        const twoHosts = [
          '  pair:',
          '    hosts:',
          ...pair.hosts.map((address) => `      - { host: ${address}, port: ${pair.port}, user: ${pair.user} }`),
          '    ssh:',
          `      privateKeyFile: ${pair.privateKeyPath}`,
          `      knownHosts: "${pair.knownHosts}"`,
        ];
        return [
          ...twoHosts,
          ...target('web-b', [`groups: [{ name: ops, users: [${BOB}], approvals: 1, dm: true }]`]),
          ...target('web-exp', ['expiresAfter: 1s', `groups: [{ name: sre, users: [${ALICE}], approvals: 1 }]`]),
        ].join('\n');
      },
      extraYaml: () => runbooksYaml(scratch, port),
    });
  });
  afterAll(async () => {
    await h.stop();
    await pair.stop();
    server.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const start = async (reference: string, values: Record<string, string> = {}, message: string | null = null): Promise<Run> => {
    const started = await h.app.runbooks.start(reference, {
      starter: AUTHOR,
      values,
      message,
      trigger: { kind: 'manual' },
      source: 'slack',
      sourceKey: null,
      channelId: TASKS_CHANNEL,
    });
    if (!started.ok || started.kind !== 'run') throw new Error(`no run: ${JSON.stringify(started)}`);
    return started.run;
  };
  const run = async (id: number) => (await getRun(h.database.db, id))!;
  const phase = async (id: number, stepId: string) => (await stepsOfRun(h.database.db, id)).find((s) => s.stepId === stepId)?.phase;
  const waitPhase = (id: number, stepId: string, wanted: string, timeoutMs = 20_000) =>
    waitFor(async () => ((await phase(id, stepId)) === wanted ? true : null), timeoutMs, `${stepId} of run ${id} ${wanted}`);
  const waitStatus = (id: number, wanted: string[], timeoutMs = 20_000) =>
    waitFor(
      async () => {
        const now = await run(id);
        return wanted.includes(now.status) ? now : null;
      },
      timeoutMs,
      `run ${id} ${wanted.join('|')}`,
    );
  const find = (channel: string, label: string, pick: (m: FakeMessage) => boolean, contains?: string | RegExp, timeoutMs = 15_000) =>
    h.fake.waitFor(
      () => {
        const found = h.fake.messages(channel).find(pick);
        if (!found) return undefined;
        const text = blocksText(found);
        return contains === undefined || (typeof contains === 'string' ? text.includes(contains) : contains.test(text)) ? structuredClone(found) : undefined;
      },
      timeoutMs,
      `${label}${contains ? ` showing ${String(contains)}` : ''}`,
    );
  const card = (id: number, contains?: string | RegExp) =>
    find(TASKS_CHANNEL, `card of run ${id}`, (m) => !m.thread_ts && blocksText(m).includes(`*Run ${id}* of runbook`), contains);
  const review = (id: number, contains?: string | RegExp) =>
    find(REVIEW_CHANNEL, `review request of run ${id}`, (m) => !m.thread_ts && blocksText(m).includes(`wants to start *run ${id}*`), contains);
  const approvalRequest = (id: number, stepId: string, contains?: string | RegExp, channel = REVIEW_CHANNEL) =>
    find(
      channel,
      `approval request of ${stepId}`,
      (m) => blocksText(m).includes('Approval needed') && blocksText(m).includes(`[${stepId}]`) && blocksText(m).includes(`*run ${id}*`),
      contains,
    );
  const inThread = (parent: FakeMessage, label: string, pick: (m: FakeMessage) => boolean, timeoutMs = 15_000) =>
    h.fake.waitFor(
      () => {
        const found = h.fake.thread(parent.channel, parent.ts).find(pick);
        return found ? structuredClone(found) : undefined;
      },
      timeoutMs,
      label,
    );
  /** Clicks and waits for the ephemeral answer (a refusal, or what was done). */
  const clickAnswer = async (message: FakeMessage, actionId: string, user: string): Promise<string> => {
    const seen = h.fake.responses.length;
    await h.click(message, actionId, user);
    await h.fake.waitFor(() => h.fake.responses.length > seen || undefined, 10_000, `answer to ${actionId} by ${user}`);
    return h.responsesSince(seen)[0]!;
  };

  it('input -> http -> approval by a second person -> a two-host group using the input and an output -> the after-failure cleanup, all in Slack', async () => {
    const started = await start('deploy', { mode: 'fail' }, 'ship <1.4.2> & more');
    const id = started.id;
    expect(started.status).toBe('pending-review');

    // The card: status, who started it, how, why (escaped), every step waiting; Cancel while it waits.
    const first = await card(id, 'waiting for review');
    const firstText = blocksText(first);
    expect(firstText).toContain(`<@${AUTHOR}>`);
    expect(firstText).toContain('by hand');
    expect(firstText).toContain('ship &lt;1.4.2&gt; &amp; more');
    expect(firstText).not.toContain('ship <1.4.2>');
    for (const step of ['prepare.mark', 'deploy.why', 'deploy.health', 'deploy.version', 'deploy.go', 'deploy.a', 'deploy.b'])
      expect(firstText).toContain(`[${step}]`);
    expect(buttonIds(first)).toEqual([RUN_ACTION.cancel]);

    // The review request: every step's content in full, with interpreter and target; arguments with the fixed one hidden.
    const request = await review(id);
    const requestText = blocksText(request);
    expect(requestText).toContain(`Runs as *bash* on \`web-prod\``);
    expect(requestText).toContain(`Runs as *bash* on \`web-b\``);
    expect(requestText).toContain(`GET http://127.0.0.5:${port}/health?ticket=\${{ steps.why.ticket }}`);
    expect(requestText).toMatch(/Approval: 1 of <@UALICE>, <@UBOB>/);
    expect(requestText).toMatch(/Input from whoever started the run: `ticket` matching/);
    expect(requestText).toContain('a-start');
    expect(requestText).toContain('•••');
    expect(requestText).not.toContain('hunter2-fixed');
    expect(requestText).toContain(`Version \``);
    expect(buttonIds(request)).toEqual([RUN_ACTION.approve, RUN_ACTION.reject]);
    // A dm: true group's member (ops: Bob) gets a DM linking to the request.
    const dm = await find(`D${BOB.slice(1)}`, 'review DM to Bob', (m) => blocksText(m).includes(`review of *run ${id}*`));
    expect(blocksText(dm)).toContain('Open the review request');

    // Nobody approves their own run; an Approve drawn for another version is refused; nothing changes.
    expect(await clickAnswer(request, RUN_ACTION.approve, AUTHOR)).toMatch(/cannot review it|your own/);
    const forged = structuredClone(request);
    const forgedActions = (forged.blocks as Array<{ type: string; elements?: Array<{ action_id: string; value: string }> }>).find((b) => b.type === 'actions')!;
    forgedActions.elements![0]!.value = `${id}:${'0'.repeat(64)}`;
    expect(await clickAnswer(forged, RUN_ACTION.approve, ALICE)).toMatch(/not the version you approved.*Nothing was approved/);
    // Someone who may not see the run (no reviewer, not in its card's channel) learns nothing about it, not even its review groups.
    expect(await clickAnswer(request, RUN_ACTION.approve, MALLORY)).toBe(`There is no run ${id}.`);
    expect((await run(id)).status).toBe('pending-review');

    // Alice (sre) and Bob (ops, sre): both groups satisfied, the run starts.
    await h.click(request, RUN_ACTION.approve, ALICE);
    await review(id, `Approved by <@${ALICE}>`);
    await h.click(request, RUN_ACTION.approve, BOB);
    const decided = await review(id, /queued|running/);
    expect(buttonIds(decided)).toEqual([]);

    // The input step: a prompt in the card's thread; only the starter may open its form.
    await waitPhase(id, 'deploy.why', 'paused');
    const cardNow = await card(id, 'paused for input');
    expect(buttonIds(cardNow)).toEqual([RUN_ACTION.kill]);
    const prompt = await inThread(cardNow, 'the input prompt', (m) => blocksText(m).includes('Input needed') && buttonIds(m).includes(RUN_ACTION.input));
    expect(await clickAnswer(prompt, RUN_ACTION.input, BOB)).toMatch(/Only <@UAUTHOR>, who started run \d+, may fill in deploy\.why/);
    const viewsBefore = h.fake.views.list.length;
    await h.click(prompt, RUN_ACTION.input, AUTHOR);
    const form = await h.fake.waitFor(() => h.fake.views.list.slice(viewsBefore).find((v) => v.callback_id === RUN_INPUT_CALLBACK), 10_000, 'the input form');
    // A value its pattern refuses: the error is on the field, and nothing moves.
    const bad = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:ticket': { value: 'nope' } } });
    expect(bad.json?.response_action).toBe('errors');
    expect(Object.keys(bad.json.errors)).toEqual(['arg:ticket']);
    expect(await phase(id, 'deploy.why')).toBe('paused');
    const good = await h.driver.submitView({ view: form, user: AUTHOR, values: { 'arg:ticket': { value: 'INC-42' } } });
    expect(good.json?.response_action).toBeUndefined();

    // http used the input, the script wrote an output; the approval step asks its approvers in the review channel, DMs them.
    const ask = await approvalRequest(id, 'deploy.go');
    expect(blocksText(ask)).toMatch(/1 of <@UALICE>, <@UBOB>/);
    expect(buttonIds(ask)).toEqual([RUN_ACTION.stepApprove, RUN_ACTION.stepReject]);
    expect(hits).toContain('/health?ticket=INC-42');
    await find(
      `D${ALICE.slice(1)}`,
      'approval DM to Alice',
      (m) => blocksText(m).includes('waits for your approval of step') && blocksText(m).includes(`*run ${id}*`),
    );
    await card(id, 'paused for approval');
    // The http step's log went to the card's thread, labelled.
    await inThread(cardNow, 'the http log', (m) => (m.text ?? '').includes('`[deploy.health]` http done · status 200'));
    expect(await clickAnswer(ask, RUN_ACTION.stepApprove, AUTHOR)).toMatch(/You started run \d+, so you cannot approve its step deploy\.go/);
    expect(await clickAnswer(ask, RUN_ACTION.stepApprove, MALLORY)).toBe(`There is no run ${id}.`);

    // Bob approves: the group starts. The figure: his click -> the next step's start.
    const clickedAt = Date.now();
    await h.click(ask, RUN_ACTION.stepApprove, BOB);
    const done = await waitStatus(id, ['success', 'failure', 'killed'], 30_000);
    const steps = await stepsOfRun(h.database.db, id);
    const a = steps.find((s) => s.stepId === 'deploy.a')!;
    const task = (await h.task(a.taskId!))!;
    const scriptStart = Number(readFileSync(join(scratch, 'a-start'), 'utf8').trim());
    console.log(
      `[figure] Slack approval click -> next step started (task queued) ${a.startedAt!.getTime() - clickedAt} ms; -> runner claimed it ${task.startedAt!.getTime() - clickedAt} ms; -> script running on the host ${scriptStart - clickedAt} ms`,
    );
    await approvalRequest(id, 'deploy.go', `Approved (last by <@${BOB}>)`);

    expect(readFileSync(join(scratch, 'a'), 'utf8')).toBe('a INC-42 1.4.2 fail\n');
    expect(readFileSync(join(scratch, 'b'), 'utf8')).toBe('b INC-42\n');
    expect(done.status).toBe('failure');
    // The card: each step's end, the failed one with its message, Run again; each script step's log linked.
    const last = await card(id, '· *:red_circle: failure*');
    const lastText = blocksText(last);
    expect(lastText).toMatch(/:x: `\[deploy\.a\]` script on `web-prod`: \*failed\* — /);
    expect(lastText).toMatch(/:white_check_mark: `\[deploy\.b\]` script on `web-b`: done/);
    expect(lastText).toMatch(/`\[deploy\.why\]` input: given by <@UAUTHOR>/);
    expect(lastText).toMatch(/`\[deploy\.go\]` approval: approved by <@UBOB>/);
    expect(lastText).toMatch(/\|log>/);
    expect(buttonIds(last)).toEqual([RUN_ACTION.again]);
    // The output of each script step is in the thread, labelled with its step.
    await inThread(last, 'a labelled', (m) => (m.text ?? '').includes('[deploy.version] version'));
    const thread = await inThread(last, 'b labelled', (m) => (m.text ?? '').includes('[deploy.b] b-out INC-42'));
    expect(thread).toBeTruthy();

    // The cleanup runbook, triggered after the failure: its own card in the same channel, then it runs.
    const cleanup = await waitFor(
      async () => ((await h.database.db('runs').where({ reference: 'cleanup', parent_run_id: id }).first('id')) as { id: number } | undefined) ?? null,
      15_000,
      'the cleanup run',
    );
    await waitStatus(cleanup.id, ['success'], 20_000);
    const cleanupCard = await card(cleanup.id, 'success');
    expect(blocksText(cleanupCard)).toContain(`after run ${id} (failure)`);
    expect(readFileSync(join(scratch, 'cleanup'), 'utf8')).toBe('cleanup fail\n');
  });

  it('Kill from the card: the running step is killed, later ones skipped; Run again starts the same content anew', async () => {
    const started = await start('long');
    const id = started.id;
    await waitPhase(id, 'long.sleep', 'running');
    const running = await card(id, /`\[long\.sleep\]` script on `sandbox`: running since/);
    expect(buttonIds(running)).toEqual([RUN_ACTION.kill]);
    await waitFor(
      async () => {
        const step = (await stepsOfRun(h.database.db, id)).find((s) => s.stepId === 'long.sleep');
        return step?.taskId && (await h.task(step.taskId))?.status === 'running' ? true : null;
      },
      10_000,
      'the task running',
    );
    expect(await clickAnswer(running, RUN_ACTION.kill, MALLORY)).toBe(`There is no run ${id}.`);
    // Bob sees the run (its card's channel) but reviews none of its targets.
    expect(await clickAnswer(running, RUN_ACTION.kill, BOB)).toMatch(/Only its author/);
    expect(await clickAnswer(running, RUN_ACTION.kill, AUTHOR)).toMatch(/Stopping run \d+/);
    const killed = await waitStatus(id, ['killed', 'failure', 'success']);
    expect(killed.status).toBe('killed');
    // The run's own end (its steps may show theirs a moment earlier).
    const final = await card(id, '· *:octagonal_sign: killed*');
    expect(blocksText(final)).toContain(`killed by <@${AUTHOR}>`);
    expect(blocksText(final)).toMatch(/`\[long\.after\]` script on `sandbox`: skipped — not started: the run was stopped/);
    expect(buttonIds(final)).toEqual([RUN_ACTION.again]);

    expect(await clickAnswer(final, RUN_ACTION.again, MALLORY)).toBe(`There is no run ${id}.`);
    expect(await clickAnswer(final, RUN_ACTION.again, BOB)).toMatch(/Only its author/);
    const answer = await clickAnswer(final, RUN_ACTION.again, AUTHOR);
    const againId = Number(/run (\d+)/.exec(answer)?.[1]);
    expect(againId).toBeGreaterThan(id);
    const again = await run(againId);
    expect(again.contentVersion).toBe(started.contentVersion);
    expect(again.trigger).toEqual({ kind: 'manual', again: id });
    await card(againId);
    await h.app.runs.stop(againId, AUTHOR);
  });

  it("Cancel during a triggered run's grace, from its card", async () => {
    const probe = await start('probe');
    await waitStatus(probe.id, ['failure']);
    const triggered = await waitFor(
      async () =>
        ((await h.database.db('runs').where({ reference: 'probe-cleanup', parent_run_id: probe.id }).first('id')) as { id: number } | undefined) ?? null,
      10_000,
      'the triggered run',
    );
    const waiting = await card(triggered.id, 'Starts');
    expect(blocksText(waiting)).toContain('at the earliest');
    expect(buttonIds(waiting)).toEqual([RUN_ACTION.cancel]);
    expect(await clickAnswer(waiting, RUN_ACTION.cancel, AUTHOR)).toMatch(/Cancelled run \d+/);
    const cancelled = await card(triggered.id, 'cancelled');
    expect(blocksText(cancelled)).toContain(`cancelled by <@${AUTHOR}> before it started`);
    expect(buttonIds(cancelled)).toEqual([RUN_ACTION.again]);
  });

  it('a rejected approval step, with its reason, fails the run', async () => {
    const started = await start('gated');
    // No reviewed target, no channel of its own: the request goes to the card's channel.
    const ask = await approvalRequest(started.id, 'gated.go', undefined, TASKS_CHANNEL);
    const viewsBefore = h.fake.views.list.length;
    await h.click(ask, RUN_ACTION.stepReject, ALICE);
    const form = await h.fake.waitFor(
      () => h.fake.views.list.slice(viewsBefore).find((v) => v.callback_id === 'run_step_reject_reason'),
      10_000,
      'the reject form',
    );
    await h.driver.submitView({ view: form, user: ALICE, values: { reason: { reason_input: 'not <today>' } } });
    await waitStatus(started.id, ['failure']);
    const request = await approvalRequest(started.id, 'gated.go', 'Rejected by', TASKS_CHANNEL);
    expect(blocksText(request)).toContain('not &lt;today&gt;');
    expect(buttonIds(request)).toEqual([]);
    await card(started.id, /`\[gated\.go\]` approval: \*failed\* — rejected by <@UALICE>: not &lt;today&gt;/);
  });

  it("a run's review expires like a task's: rejected by nobody, the request and the card say so", async () => {
    const started = await start('expiring');
    const request = await review(started.id, 'Expires');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    // Past the deadline an Approve is refused, whether or not the app's own sweep has marked it yet.
    expect(await clickAnswer(request, RUN_ACTION.approve, ALICE)).toMatch(/review of run \d+ has expired|run \d+ is rejected; it can no longer be reviewed/);
    const expiry = new ReviewExpiry(h.database.db, h.config, h.app.bus, createLogger('silent'), { intervalMs: 60_000, runs: h.app.runs });
    await expiry.sweep();
    expect((await run(started.id)).status).toBe('rejected');
    const expired = await review(started.id, 'review expired after 1s');
    expect(buttonIds(expired)).toEqual([]);
    const expiredCard = await card(started.id, 'review expired after 1s');
    expect(buttonIds(expiredCard)).toEqual([RUN_ACTION.again]);
  });

  it('a step on two hosts: each line in the thread says its step and its host', async () => {
    const started = await start('twohost');
    await waitStatus(started.id, ['success']);
    const done = await card(started.id, '· *:large_green_circle: success*');
    const lines = await h.fake.waitFor(
      () => {
        const text = h.fake
          .thread(TASKS_CHANNEL, done.ts)
          .map((m) => m.text ?? '')
          .join('\n');
        return /\[twohost\.say [^\]]*127\.0\.0\.61[^\]]*\]/.test(text) && /\[twohost\.say [^\]]*127\.0\.0\.62[^\]]*\]/.test(text) ? text : undefined;
      },
      15_000,
      'both hosts labelled',
    );
    // `[<step> <host>]`, the host as the target names it (user@address:port).
    expect(lines).toMatch(/\[twohost\.say [^\]]*127\.0\.0\.61:\d+\] hello from 127\.0\.0\.61\n/);
    expect(lines).toMatch(/\[twohost\.say [^\]]*127\.0\.0\.62:\d+\] hello from 127\.0\.0\.62\n/);
  });

  it('a plan too long for the request is uploaded whole into its thread, named by the content version', async () => {
    const started = await start('bulky');
    const request = await review(started.id, 'every step in full, version');
    const short = started.contentVersion.slice(0, 12);
    const file = await h.fake.waitFor(
      () => h.fake.files.find((f) => f.channel_id === REVIEW_CHANNEL && f.thread_ts === request.ts),
      10_000,
      'the whole plan in the thread',
    );
    expect(file.filename).toBe(`run-${started.id}-steps-${short}.txt`);
    const content = file.content.toString('utf8');
    expect(content).toContain('end-of-bulky');
    expect(content).toContain('runs as bash on web-prod');
    expect(content).toContain(started.contentVersion);
    await h.app.runs.cancel(started.id, AUTHOR);
  });

  it('two replicas hearing every change: one card, one approval request, one DM each, each step once', async () => {
    const replica = await h.startReplica();
    try {
      const started = await start('gated');
      const id = started.id;
      const ask = await approvalRequest(id, 'gated.go', undefined, TASKS_CHANNEL);
      await find(`D${ALICE.slice(1)}`, 'approval DM to Alice', (m) => blocksText(m).includes(`*run ${id}*`));
      await h.click(ask, RUN_ACTION.stepApprove, BOB);
      await waitStatus(id, ['success']);
      await card(id, '· *:large_green_circle: success*');
      await approvalRequest(id, 'gated.go', 'Approved (last by', TASKS_CHANNEL);
      const ofRun = (channel: string, what: string) =>
        h.fake.messages(channel).filter((m) => blocksText(m).includes(what) && blocksText(m).includes(`run ${id}`));
      expect(h.fake.messages(TASKS_CHANNEL).filter((m) => !m.thread_ts && blocksText(m).includes(`*Run ${id}* of runbook`))).toHaveLength(1);
      expect(ofRun(TASKS_CHANNEL, 'Approval needed')).toHaveLength(1);
      for (const user of [ALICE, BOB]) expect(ofRun(`D${user.slice(1)}`, 'waits for your approval')).toHaveLength(1);
      expect(await h.count('run_dms', { run_id: id })).toBe(2);
      expect(
        (
          await h.database
            .db('events')
            .where({ subject: `run:${id}`, type: 'run.step.running' })
            .orWhere({ subject: `run:${id}`, type: 'run.step.paused' })
        ).length,
      ).toBe(2);
    } finally {
      await replica.stop(1000);
    }
  });

  // Last: it replaces the app.
  it('a run paused for approval survives a restart; approved in Slack on the new app, it finishes', async () => {
    const started = await start('gated');
    const id = started.id;
    const ask = await approvalRequest(id, 'gated.go', undefined, TASKS_CHANNEL);
    await h.app.stop(1000);
    const restarted: RunningApp = await h.startReplica();
    (h as unknown as { app: RunningApp }).app = restarted;
    (h as unknown as { driver: SlackDriver }).driver = new SlackDriver({ appUrl: restarted.url, signingSecret: SIGNING_SECRET, fake: h.fake });
    expect(await phase(id, 'gated.go')).toBe('paused');
    await h.click(ask, RUN_ACTION.stepApprove, BOB);
    const done = await waitStatus(id, ['success', 'failure']);
    expect(done.status).toBe('success');
    expect(await phase(id, 'gated.after')).toBe('succeeded');
    await card(id, 'success');
    // One request for the step, whatever the restarts: updated in place, never posted twice.
    await approvalRequest(id, 'gated.go', `Approved (last by <@${BOB}>)`, TASKS_CHANNEL);
    expect(h.fake.messages(TASKS_CHANNEL).filter((m) => blocksText(m).includes('Approval needed') && blocksText(m).includes(`*run ${id}*`))).toHaveLength(1);
  });
});

function runbooksYaml(scratch: string, port: number): string {
  return `http:
  allow: [127.0.0.5]
runbooks:
  prepare:
    steps:
      - { id: mark, script: { target: sandbox, script: "true" } }
  deploy:
    dependsOn: [prepare]
    arguments:
      - { name: mode, kind: options, options: [ok, fail], default: ok }
      - { name: secret, kind: fixed, value: hunter2-fixed }
    steps:
      - { id: why, input: { fields: [{ name: ticket, kind: input, pattern: "INC-[0-9]+", required: true }] } }
      - { id: health, http: { url: "http://127.0.0.5:${port}/health?ticket=\${{ steps.why.ticket }}", timeout: 5s, successStatus: 200, successPattern: '/"ok":\\s*true/' } }
      - { id: version, script: { target: sandbox, script: "echo version; echo version=1.4.2 >> \\"$COUNTERSIGN_OUTPUT\\"" } }
      - { id: go, approval: { users: [${ALICE}, ${BOB}], approvals: 1, dm: true } }
      - - { id: a, script: { target: web-prod, script: "date +%s%3N > ${scratch}/a-start; echo \\"a $ARG_TICKET $ARG_VERSION $1\\" > ${scratch}/a; [ \\"$ARG_MODE\\" = ok ]", with: { TICKET: "\${{ steps.why.ticket }}", VERSION: "\${{ steps.version.version }}" } } }
        - { id: b, script: { target: web-b, script: "echo \\"b-out $ARG_TICKET\\"; echo \\"b $ARG_TICKET\\" > ${scratch}/b", with: { TICKET: "\${{ steps.why.ticket }}" } } }
  cleanup:
    triggeredBy: [{ after: deploy, on: failure }]
    grace: 1s
    arguments:
      - { name: mode, kind: input, default: none }
    steps:
      - { id: sweep, script: { target: sandbox, script: "echo \\"cleanup $ARG_MODE\\" > ${scratch}/cleanup" } }
  probe:
    steps:
      - { id: hop, http: { url: "http://127.0.0.5:${port}/missing", timeout: 5s } }
  probe-cleanup:
    triggeredBy: [{ after: probe, on: failure }]
    grace: 1h
    steps:
      - { id: note, script: { target: sandbox, script: "true" } }
  expiring:
    steps:
      - { id: x, script: { target: web-exp, script: "true" } }
  twohost:
    steps:
      - { id: say, script: { target: pair, script: 'set -- $SSH_CONNECTION; echo "hello from $3"' } }
  bulky:
    steps:
      - { id: big, script: { target: web-prod, script: "${'# padding '.repeat(400)}echo end-of-bulky" } }
  gated:
    steps:
      - { id: go, approval: { users: [${ALICE}, ${BOB}], dm: true } }
      - { id: after, script: { target: sandbox, script: "true" } }
  long:
    steps:
      - { id: sleep, script: { target: sandbox, script: "sleep 30" } }
      - { id: after, script: { target: sandbox, script: "true" } }
`;
}
