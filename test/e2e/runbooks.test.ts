/**
 * Runbooks end to end (issue 11, "Done when"), through the API with a real sshd, a real Postgres,
 * the fake Slack and local HTTP servers on 127.0.0.x: input -> http (success pattern) -> a script
 * writing an output -> approval by a second person -> a group of two script steps on two targets
 * using the input and the output -> an `after ... on: failure` runbook that cleans up; dependsOn
 * order; the run's review bound to its content version; a disallowed URL and a redirect to one
 * refused; Kill mid-run; run again.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { getRun } from '../../src/store/runs.js';
import { MAX_SAVED_DEFINITIONS } from '../../src/service/savedDefinitions.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, Harness, MALLORY } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

const HOOK_SECRET = 'a-runbook-hook-secret-0123456789';
process.env.RUNBOOK_HOOK_SECRET = HOOK_SECRET;

interface Hit {
  path: string;
  at: number;
}

async function listen(
  host: string,
  handle: (path: string, res: import('node:http').ServerResponse) => void,
): Promise<{ server: Server; port: number; hits: Hit[] }> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    hits.push({ path: req.url ?? '', at: Date.now() });
    handle(req.url ?? '', res);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { server, port: (server.address() as AddressInfo).port, hits };
}

describe('runbooks', () => {
  let h: Harness;
  let api: ApiClient;
  let allowed: Awaited<ReturnType<typeof listen>>;
  let forbidden: Awaited<ReturnType<typeof listen>>;
  let scratch: string;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    forbidden = await listen('127.0.0.6', (_path, res) => res.end('you should never see this'));
    allowed = await listen('127.0.0.5', (path, res) => {
      if (path.startsWith('/health')) return void res.setHeader('content-type', 'application/json').end(JSON.stringify({ ok: true, region: 'eu' }));
      if (path.startsWith('/redirect')) return void res.writeHead(302, { location: `http://127.0.0.6:${forbidden.port}/` }).end();
      res.writeHead(404).end('no');
    });
    scratch = mkdtempSync(join(tmpdir(), 'countersign-runbooks-'));
    chmodSync(scratch, 0o1777);
    h = await Harness.start({
      extraTargets: (ssh) =>
        [
          '  web-b:',
          '    hosts:',
          `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
          '    ssh:',
          `      privateKeyFile: ${ssh.privateKeyPath}`,
          `      knownHosts: "${ssh.knownHosts}"`,
        ].join('\n'),
      extraYaml: () => runbooksYaml(scratch, allowed.port),
    });
    api = await ApiClient.connect(h.app.url);
    for (const [user, name] of [
      [AUTHOR, 'author'],
      [ALICE, 'alice'],
      [BOB, 'bob'],
      [MALLORY, 'mallory'],
    ] as const)
      tokens[user] = (await createApiToken(h.database.db, user, name)).token;
  });
  afterAll(async () => {
    await h.stop();
    rmSync(scratch, { recursive: true, force: true });
    forbidden.server.close();
    allowed.server.close();
  });

  const as = (user: string) => ({
    get: (path: string) => api.call('GET', path, { token: tokens[user]! }),
    post: (path: string, body?: unknown, headers?: Record<string, string>) =>
      api.call('POST', path, { token: tokens[user]!, body: body ?? {}, ...(headers ? { headers } : {}) }),
  });
  const runOf = async (id: number, user = AUTHOR) => (await as(user).get(`/runs/${id}`)).body.run;
  const waitRun = (id: number, what: string, check: (run: any) => boolean, timeoutMs = 20_000, user = AUTHOR) =>
    waitFor(
      async () => {
        const run = await runOf(id, user);
        return check(run) ? run : null;
      },
      timeoutMs,
      `run ${id}: ${what}`,
    );
  const step = (run: any, id: string) => run.steps.find((s: any) => s.id === id);

  it('runs input -> http -> output -> approval by a second person -> a two-target group, then the after-failure cleanup', async () => {
    const started = await as(AUTHOR).post('/runbooks/deploy/start', { arguments: { mode: 'fail' }, message: 'ship 1.4.2' });
    expect(started.status).toBe(201);
    expect(started.body.kind).toBe('run');
    const runId: number = started.body.run.id;
    expect(started.body.run.status).toBe('pending-review');
    // One review request for every reviewed target it touches (web-prod's sre group), bound to its content version.
    expect(started.body.run.review).toEqual([{ name: 'web-prod/sre', required: 1, approvedBy: [], satisfied: false }]);
    const etag = started.headers.get('etag')!;
    expect(etag).toBe(`"${started.body.run.contentVersion}"`);

    expect((await as(ALICE).post(`/runs/${runId}/approve`)).status).toBe(428);
    const stale = await as(ALICE).post(`/runs/${runId}/approve`, {}, { 'If-Match': `"${'0'.repeat(64)}"` });
    expect(stale.status).toBe(412);
    const self = await as(AUTHOR).post(`/runs/${runId}/approve`, {}, { 'If-Match': etag });
    expect(self.status).toBe(403);
    expect(self.body.error.code).toBe('self_review');
    const approved = await as(ALICE).post(`/runs/${runId}/approve`, {}, { 'If-Match': etag });
    expect(approved.status).toBe(200);

    // dependsOn: prepare's step runs first, then the input step pauses the run.
    const paused = await waitRun(runId, 'why paused', (run) => step(run, 'deploy.why')?.phase === 'paused');
    expect(step(paused, 'prepare.mark').phase).toBe('succeeded');
    expect(paused.steps.map((s: any) => s.id)).toEqual(['prepare.mark', 'deploy.why', 'deploy.health', 'deploy.version', 'deploy.go', 'deploy.a', 'deploy.b']);
    // Only the creator gives the input; a value the pattern refuses is refused by field.
    expect((await as(BOB).post(`/runs/${runId}/steps/deploy.why/input`, { values: { ticket: 'INC-42' } })).status).toBe(403);
    const bad = await as(AUTHOR).post(`/runs/${runId}/steps/deploy.why/input`, { values: { ticket: 'nope' } });
    expect(bad.status).toBe(422);
    expect(bad.body.error.issues[0].path).toBe('ticket');
    expect((await as(AUTHOR).post(`/runs/${runId}/steps/deploy.why/input`, { values: { ticket: 'INC-42' } })).status).toBe(200);

    // The http step used the input (encoded in the URL) and matched its pattern; the script wrote an output.
    const waiting = await waitRun(runId, 'go paused', (run) => step(run, 'deploy.go')?.phase === 'paused');
    expect(step(waiting, 'deploy.health')).toMatchObject({ phase: 'succeeded', http: { status: 200 } });
    expect(allowed.hits.some((hit) => hit.path === '/health?ticket=INC-42')).toBe(true);
    expect(step(waiting, 'deploy.version')).toMatchObject({ phase: 'succeeded', outputs: { version: '1.4.2' } });

    // Approval step: not by whoever started the run, not by a stranger; by a second person.
    expect((await as(AUTHOR).post(`/runs/${runId}/steps/deploy.go/approve`)).body.error.code).toBe('self_review');
    // A stranger cannot even see the run: the same answer as for a run that does not exist.
    expect((await as(MALLORY).post(`/runs/${runId}/steps/deploy.go/approve`)).status).toBe(404);
    const clickedAt = Date.now();
    expect((await as(BOB).post(`/runs/${runId}/steps/deploy.go/approve`)).status).toBe(200);
    const done = await waitRun(runId, 'finished', (run) => ['success', 'failure', 'killed'].includes(run.status));
    const a = step(done, 'deploy.a');
    const task = await h.task(a.taskId);
    const stepStart = new Date(a.startedAt).getTime();
    const remoteStart = task!.startedAt!.getTime();
    const scriptStart = Number(readFileSync(join(scratch, 'a-start'), 'utf8').trim());
    console.log(
      `approval click -> next step started (task queued) ${stepStart - clickedAt} ms; -> runner claimed it ${remoteStart - clickedAt} ms; -> script running on the host ${scriptStart - clickedAt} ms`,
    );

    // a wrote the input, the output and its argument, then failed (mode=fail); b ran beside it.
    expect(readFileSync(join(scratch, 'a'), 'utf8')).toBe('a INC-42 1.4.2 fail\n');
    expect(readFileSync(join(scratch, 'b'), 'utf8')).toBe('b INC-42\n');
    expect(a.phase).toBe('failed');
    expect(step(done, 'deploy.b').phase).toBe('succeeded');
    expect(done.status).toBe('failure');
    expect(done.failureMessage).toMatch(/^deploy\.a: /);
    expect(readFileSync(join(scratch, 'order'), 'utf8')).toBe('prepare\nversion\n');

    // The cleanup runbook, triggered after the failure, waits out its grace, then runs with the ticket passed on.
    const cleanup = await waitFor(
      async () => {
        const list = await as(AUTHOR).get('/runs?reference=cleanup');
        return list.body.runs[0];
      },
      10_000,
      'a cleanup run',
    );
    expect(cleanup.trigger).toEqual({ kind: 'after', run: runId, on: 'failure' });
    expect(cleanup.parentRunId).toBe(runId);
    await waitRun(cleanup.id, 'cleanup done', (run) => run.status === 'success');
    expect(readFileSync(join(scratch, 'cleanup'), 'utf8')).toBe('cleanup fail\n');
    // Exactly one, however often the ended run is looked at again.
    await h.app.advancer.advance(runId);
    expect((await as(AUTHOR).get('/runs?reference=cleanup')).body.runs).toHaveLength(1);
  });

  it('refuses an http step to a host http.allow does not name, and a redirect to one, with the reason', async () => {
    const started = await as(AUTHOR).post('/runbooks/probe/start', { arguments: {} });
    const done = await waitRun(started.body.run.id, 'finished', (run) => run.status === 'failure');
    const probe = step(done, 'probe.hop');
    expect(probe.phase).toBe('failed');
    expect(probe.failureMessage).toMatch(/127\.0\.0\.6/);
    expect(forbidden.hits).toHaveLength(0);
    expect(step(done, 'probe.after').phase).toBe('skipped');
    // At load: a URL whose host is not allowed names the field and the fix.
    const base = readFileSync(h.configPath, 'utf8').split('\nhttp:\n')[0]!;
    expect(() =>
      parseConfig(`${base}\nhttp:\n  allow: [127.0.0.5]\nrunbooks:\n  bad:\n    steps:\n      - { id: x, http: { url: "http://127.0.0.6:1/" } }\n`, 'c.yml'),
    ).toThrow(/runbooks\.bad\.steps\[0\]\.http\.url: .*127\.0\.0\.6.*http\.allow/);
  });

  it('refuses a dependsOn cycle at load, naming it', () => {
    const base = readFileSync(h.configPath, 'utf8').split('\nhttp:\n')[0]!;
    const yaml = `${base}\nrunbooks:\n  x:\n    dependsOn: [y]\n    steps: [{ id: s, script: { target: sandbox, script: "true" } }]\n  y:\n    dependsOn: [x]\n    steps: [{ id: s, script: { target: sandbox, script: "true" } }]\n`;
    expect(() => parseConfig(yaml, 'c.yml')).toThrow(/x -> y -> x/);
  });

  it('Kill mid-run: the running script is stopped, later steps never start, the run ends killed', async () => {
    const started = await as(AUTHOR).post('/runbooks/long/start', {});
    const runId = started.body.run.id;
    const running = await waitRun(runId, 'sleeping', (run) => step(run, 'long.sleep')?.phase === 'running');
    await waitFor(async () => (await h.task(step(running, 'long.sleep').taskId))?.status === 'running', 10_000, 'the task running');
    expect((await as(MALLORY).post(`/runs/${runId}/stop`)).status).toBe(404);
    const stop = await as(AUTHOR).post(`/runs/${runId}/stop`);
    expect(stop.status).toBe(200);
    expect(stop.body.stopping).toBe(true);
    const killed = await waitRun(runId, 'killed', (run) => run.status === 'killed');
    expect(step(killed, 'long.sleep').phase).toBe('killed');
    expect(step(killed, 'long.after')).toMatchObject({ phase: 'skipped', failureMessage: 'not started: the run was stopped' });
    expect(killed.failureMessage).toBe(`killed by <@${AUTHOR}>`);
    expect((await h.task(step(killed, 'long.sleep').taskId))?.status).toBe('killed');
  });

  it('runs a finished run again with the same content, reviewed again; and a finished task again', async () => {
    const first = await as(AUTHOR).post('/runbooks/probe/start', {});
    await waitRun(first.body.run.id, 'finished', (run) => run.status === 'failure');
    expect((await as(MALLORY).post(`/runs/${first.body.run.id}/again`)).status).toBe(404);
    const again = await as(AUTHOR).post(`/runs/${first.body.run.id}/again`);
    expect(again.status).toBe(201);
    expect(again.body.run.contentVersion).toBe(first.body.run.contentVersion);
    expect(again.body.run.trigger).toEqual({ kind: 'api', again: first.body.run.id });

    const task = await api.call('POST', '/tasks', { token: tokens[AUTHOR]!, body: { target: 'web-prod', script: 'echo again' } });
    const id = task.body.task.id;
    await api.call('POST', `/tasks/${id}/approve`, { token: tokens[ALICE]!, body: {}, headers: { 'If-Match': task.headers.get('etag')! } });
    await api.call('POST', `/tasks/${id}/start`, { token: tokens[AUTHOR]!, body: {} });
    await h.waitForStatus(id, 'success');
    const repeated = await api.call('POST', `/tasks/${id}/again`, { token: tokens[AUTHOR]!, body: {} });
    expect(repeated.status).toBe(201);
    // Reviewed again: the old approval was for the old task.
    expect(repeated.body.task).toMatchObject({ status: 'pending-review', script: 'echo again', author: AUTHOR });
  });

  it('imports runbooks with an owner: http steps must name a target; only the owner, editors or admins replace or remove; runs keep their pinned plan', async () => {
    const mine = (script: string) => ({
      format: 'countersign.runbook/v1',
      reference: 'mine',
      tags: ['ops'],
      editors: { users: [ALICE] },
      steps: [{ id: 'hello', script: { target: 'sandbox', script } }],
    });
    const untargeted = await api.call('POST', '/runbooks', {
      token: tokens[MALLORY]!,
      body: { format: 'countersign.runbook/v1', reference: 'leak', steps: [{ id: 'x', http: { url: `http://127.0.0.5:${allowed.port}/health` } }] },
    });
    expect(untargeted.status).toBe(422);
    expect(untargeted.body.error.message).toMatch(/steps\[0\]\.http\.target: an imported runbook's http steps name a target/);
    const disallowed = await api.call('POST', '/runbooks', {
      token: tokens[MALLORY]!,
      body: { format: 'countersign.runbook/v1', reference: 'leak', steps: [{ id: 'x', http: { url: 'http://169.254.169.254/latest', target: 'sandbox' } }] },
    });
    expect(disallowed.status).toBe(422);
    expect(disallowed.body.error.message).toMatch(/http\.url: .*http\.allow/);
    // Reviewers never see a fixed value: only admins may import one.
    const fixed = await api.call('POST', '/runbooks', {
      token: tokens[MALLORY]!,
      body: { ...mine('true'), reference: 'hides', arguments: [{ name: 'token', kind: 'fixed', value: 'abcd1234' }] },
    });
    expect([fixed.status, fixed.body.error.code]).toEqual([403, 'fixed_not_allowed']);
    const taken = await api.call('POST', '/runbooks', { token: tokens[MALLORY]!, body: { ...mine('true'), reference: 'deploy' } });
    expect(taken.status).toBe(409);
    // Chaining onto someone else's runbook would get its values (fixed ones too) and run in its starter's name.
    const chained = await api.call('POST', '/runbooks', {
      token: tokens[MALLORY]!,
      body: { ...mine('true'), reference: 'tail', triggeredBy: [{ after: 'deploy', on: 'always' }], arguments: [{ name: 'secret', kind: 'input' }] },
    });
    expect(chained.status).toBe(422);
    expect(chained.body.error.message).toMatch(/triggeredBy\[0\]\.after: you may not change deploy/);

    const created = await api.call('POST', '/runbooks', { token: tokens[MALLORY]!, body: mine(`echo v1 > ${scratch}/mine`) });
    expect(created.status).toBe(201);
    expect(created.body.runbook).toMatchObject({
      reference: 'mine',
      kind: 'runbook',
      source: 'imported',
      owner: MALLORY,
      editors: { users: [ALICE], usergroup: null },
    });
    const v1 = created.body.runbook.hash;
    const started = await as(MALLORY).post('/runbooks/mine/start', { hash: v1 });
    expect(started.status).toBe(201);

    expect((await api.call('PUT', '/runbooks/mine', { token: tokens[BOB]!, body: mine('echo bob') })).status).toBe(403);
    const replaced = await api.call('PUT', '/runbooks/mine', { token: tokens[ALICE]!, body: mine(`echo v2 > ${scratch}/mine`) });
    expect(replaced.status).toBe(200);
    expect(replaced.body.runbook.owner).toBe(MALLORY);
    expect(replaced.body.runbook.hash).not.toBe(v1);
    // The run asked for before the replace runs what it was planned with; a start naming the old hash is refused.
    await waitRun(started.body.run.id, 'done', (run) => run.status === 'success', 20_000, MALLORY);
    expect(readFileSync(join(scratch, 'mine'), 'utf8')).toBe('v1\n');
    expect((await as(MALLORY).post('/runbooks/mine/start', { hash: v1 })).status).toBe(409);

    expect((await api.call('DELETE', '/runbooks/mine', { token: tokens[BOB]! })).status).toBe(403);
    const removed = await api.call('DELETE', '/runbooks/mine', { token: tokens[MALLORY]! });
    expect(removed.body).toEqual({ reference: 'mine', hash: replaced.body.runbook.hash });
    const audit = await h.database.db('events').where({ subject: 'runbook:mine' }).orderBy('id');
    expect(audit.map((e) => [e.type, e.actor])).toEqual([
      ['runbook.imported', MALLORY],
      ['runbook.replaced', ALICE],
      ['runbook.removed', MALLORY],
    ]);
    expect(audit[1].data).toMatchObject({ hash: replaced.body.runbook.hash, previousHash: v1, owner: MALLORY });
  });

  it('rejects a run, cancels one before it starts, and a rejected approval step fails the run', async () => {
    const first = await as(AUTHOR).post('/runbooks/deploy/start', {});
    const rejected = await as(BOB).post(`/runs/${first.body.run.id}/reject`, { reason: 'not today' });
    expect(rejected.body.run).toMatchObject({ status: 'rejected', failureMessage: `rejected by <@${BOB}>: not today` });
    const second = await as(AUTHOR).post('/runbooks/deploy/start', {}, { 'Idempotency-Key': 'cancel-me' });
    const replay = await as(AUTHOR).post('/runbooks/deploy/start', {}, { 'Idempotency-Key': 'cancel-me' });
    expect(replay.status).toBe(200);
    expect(replay.body.run.id).toBe(second.body.run.id);
    const cancelled = await as(AUTHOR).post(`/runs/${second.body.run.id}/cancel`);
    expect(cancelled.body.run.status).toBe('cancelled');
    expect((await as(AUTHOR).post(`/runs/${second.body.run.id}/cancel`)).status).toBe(409);

    const gated = await as(AUTHOR).post('/runbooks/gated/start', {});
    const runId = gated.body.run.id;
    await waitRun(runId, 'paused', (run) => step(run, 'gated.go')?.phase === 'paused');
    const no = await as(BOB).post(`/runs/${runId}/steps/gated.go/reject`, { reason: 'wrong window' });
    expect(no.status).toBe(200);
    const done = await waitRun(runId, 'failed', (run) => run.status === 'failure');
    expect(step(done, 'gated.go')).toMatchObject({ phase: 'failed', failureMessage: `rejected by <@${BOB}>: wrong window` });
    expect(step(done, 'gated.go').decisions).toEqual([expect.objectContaining({ userId: BOB, verdict: 'reject', reason: 'wrong window' })]);
    expect(step(done, 'gated.after').phase).toBe('skipped');
  });

  it('a webhook starts a runbook as a run, once per signed delivery', async () => {
    const body = JSON.stringify({ arguments: { note: 'from-ci' } });
    const at = Math.floor(Date.now() / 1000);
    const headers = {
      'content-type': 'application/json',
      'x-countersign-timestamp': String(at),
      'x-countersign-signature': `sha256=${createHmac('sha256', HOOK_SECRET).update(`${at}.${body}`).digest('hex')}`,
    };
    const first = await fetch(`${h.app.url}/hooks/ship`, { method: 'POST', headers, body });
    expect(first.status).toBe(202);
    const answer = (await first.json()) as { run: { id: number }; statusUrl: string; created: boolean };
    expect(answer).toMatchObject({ created: true, statusUrl: `${h.app.url}/api/v1/runs/${answer.run.id}` });
    const again = await fetch(`${h.app.url}/hooks/ship`, { method: 'POST', headers: { ...headers, 'idempotency-key': 'other' }, body });
    expect((await again.json()) as { run: { id: number }; created: boolean }).toMatchObject({ run: { id: answer.run.id }, created: false });
    // A hook's run on an unreviewed target, with no card channel, is for admins to see: read the database.
    const done = await waitFor(
      async () => {
        const run = await getRun(h.database.db, answer.run.id);
        return run?.status === 'success' ? run : null;
      },
      20_000,
      'the hook run finished',
    );
    expect(done.trigger).toEqual({ kind: 'webhook', hook: 'ship' });
    expect(done.creator).toBe('webhook:ship');
    expect((await as(AUTHOR).get(`/runs/${answer.run.id}`)).status).toBe(404);
    expect(readFileSync(join(scratch, 'hooked'), 'utf8')).toBe('from-ci\n');
    // A runbook not started by webhooks cannot be a hook's, and one not started by hand cannot be started by hand.
    expect((await as(AUTHOR).post('/runbooks/hooked/start', { arguments: { note: 'x' } })).body.error.code).toBe('not_triggerable');
  });

  it('lists runbooks with search by name and tag, recipes among them; the run JSON hides fixed values', async () => {
    const all = await as(AUTHOR).get('/runbooks?tag=deploy');
    expect(all.body.runbooks.map((r: any) => r.reference)).toEqual(['deploy']);
    const search = await as(AUTHOR).get('/runbooks?search=after%20a%20failed');
    expect(search.body.runbooks.map((r: any) => r.reference)).toEqual(['cleanup']);
    const one = await as(AUTHOR).get('/runbooks/deploy');
    expect(one.body.runbook.definition.arguments.find((a: any) => a.name === 'secret')).toEqual({ name: 'secret', kind: 'fixed' });
    const runs = await as(AUTHOR).get('/runs?reference=deploy');
    expect(runs.body.runs[0].arguments.deploy.find((a: any) => a.name === 'secret').value).toBe('•••');
    expect(JSON.stringify(runs.body)).not.toContain('hunter2-fixed');
  });

  it("who may see a run: its creator, its targets' reviewers, admins; a stranger gets what a missing run gets, in lists and events too", async () => {
    const started = await as(AUTHOR).post('/runbooks/deploy/start', {});
    const id = started.body.run.id;
    expect((await as(ALICE).get(`/runs/${id}`)).status).toBe(200);
    const hidden = await as(MALLORY).get(`/runs/${id}`);
    const missing = await as(MALLORY).get('/runs/999999');
    expect([hidden.status, hidden.body.error.code]).toEqual([missing.status, missing.body.error.code]);
    expect((await as(MALLORY).post(`/runs/${id}/approve`, {}, { 'If-Match': started.headers.get('etag')! })).status).toBe(404);
    expect((await as(MALLORY).get('/runs')).body.runs.map((r: any) => r.id)).not.toContain(id);
    expect((await as(AUTHOR).get('/runs')).body.runs.map((r: any) => r.id)).toContain(id);
    const events = async (user: string) =>
      (await api.call('GET', '/events?limit=200', { token: tokens[user]! })).body.events.filter((e: any) => e.subject === `run:${id}`);
    expect((await events(AUTHOR)).map((e: any) => e.type)).toContain('run.created');
    expect(await events(MALLORY)).toEqual([]);
    await as(AUTHOR).post(`/runs/${id}/cancel`);
  });

  it('an output file over 64 KiB is not read: the step says so, and a later step using its value fails naming it', async () => {
    const started = await as(AUTHOR).post('/runbooks/bigout/start', {});
    const done = await waitRun(started.body.run.id, 'finished', (run) => run.status === 'failure');
    expect(step(done, 'bigout.big')).toMatchObject({ phase: 'succeeded', outputs: {} });
    expect(step(done, 'bigout.use')).toMatchObject({ phase: 'failed', failureMessage: 'with.X: steps.big.x: big left no value named x' });
    const log = await api.call('GET', `/tasks/${step(done, 'bigout.big').taskId}/log`, { token: tokens[AUTHOR]! });
    expect(log.text).toMatch(/\$COUNTERSIGN_OUTPUT: the output file is larger than 64 KiB, so none of it was read/);
  });

  it('a triggered run waits out its grace in ready, and Cancel ends it before it starts', async () => {
    const probe = await as(AUTHOR).post('/runbooks/probe/start', {});
    await waitRun(probe.body.run.id, 'failed', (run) => run.status === 'failure');
    const triggered = await waitFor(
      async () => (await as(AUTHOR).get('/runs?reference=probe-cleanup')).body.runs.find((r: any) => r.parentRunId === probe.body.run.id),
      10_000,
      'the triggered run',
    );
    expect(triggered.status).toBe('ready');
    expect(new Date(triggered.runAfter).getTime()).toBeGreaterThan(Date.now() + 30 * 60_000);
    await h.app.advancer.advance(triggered.id);
    expect((await runOf(triggered.id)).status).toBe('ready');
    const cancelled = await as(AUTHOR).post(`/runs/${triggered.id}/cancel`);
    expect(cancelled.body.run).toMatchObject({ status: 'cancelled', failureMessage: `cancelled by <@${AUTHOR}> before it started` });
    expect(step(cancelled.body.run, 'probe-cleanup.note').phase).toBe('pending');
  });

  it('an input nobody gives in time fails the run; outputs never carry a fixed value', async () => {
    const started = await as(AUTHOR).post('/runbooks/waits/start', {});
    const done = await waitRun(started.body.run.id, 'failed', (run) => run.status === 'failure');
    expect(step(done, 'waits.ask')).toMatchObject({ phase: 'failed', failureMessage: 'timed out waiting for input' });
    expect(step(done, 'waits.leak')).toMatchObject({ phase: 'succeeded', outputs: { copy: '*****', plain: 'visible' } });
    const task = await api.call('GET', `/tasks/${step(done, 'waits.leak').taskId}`, { token: tokens[AUTHOR]! });
    expect(task.body.task).toMatchObject({ trigger: { kind: 'run', run: started.body.run.id }, outputs: { copy: '*****', plain: 'visible' } });
    expect(JSON.stringify(await h.database.db('run_steps').where({ run_id: started.body.run.id }).pluck('outputs'))).not.toContain('hunter3-fixed');
  });

  it('whoever wrote an imported runbook may not review a run of it, as an author may not review their task', async () => {
    // ALICE reviews web-prod and writes a runbook for it; AUTHOR starts it; her approval would be the only pair of eyes.
    const body = {
      format: 'countersign.runbook/v1',
      reference: 'alice-wrote',
      steps: [{ id: 'go', script: { target: 'web-prod', script: `echo alice > ${scratch}/alice-wrote` } }],
    };
    expect((await api.call('POST', '/runbooks', { token: tokens[ALICE]!, body })).status).toBe(201);
    const started = await as(AUTHOR).post('/runbooks/alice-wrote/start', {});
    expect(started.status).toBe(201);
    const run = started.body.run;
    const ifMatch = { 'If-Match': `"${run.contentVersion}"` };
    const byWriter = await api.call('POST', `/runs/${run.id}/approve`, { token: tokens[ALICE]!, body: {}, headers: ifMatch });
    expect([byWriter.status, byWriter.body.error.code]).toEqual([403, 'self_review']);
    expect(byWriter.body.error.message).toMatch(/You wrote a runbook run \d+ runs/);
    const byOther = await api.call('POST', `/runs/${run.id}/approve`, { token: tokens[BOB]!, body: {}, headers: ifMatch });
    expect(byOther.status).toBe(200);
    await waitRun(run.id, 'finished', (r) => r.status === 'success');
    expect(readFileSync(join(scratch, 'alice-wrote'), 'utf8')).toBe('alice\n');
    // Leaves the catalog as the tests after this one expect it.
    await h.database.db('runbooks').where({ reference: 'alice-wrote' }).delete();
  });

  it('keeps at most MAX_SAVED_DEFINITIONS imports, so every list and catalog read stays bounded (review L6)', async () => {
    const before = await h.count('runbooks');
    const filler = Array.from({ length: MAX_SAVED_DEFINITIONS - before }, (_, i) => ({
      reference: `filler-${i}`,
      definition: JSON.stringify({
        format: 'countersign.runbook/v1',
        reference: `filler-${i}`,
        steps: [{ id: 'x', script: { target: 'sandbox', script: 'true' } }],
      }),
      content_hash: 'f'.repeat(64),
      owner: BOB,
      imported_by: BOB,
    }));
    await h.database.db.batchInsert('runbooks', filler, 200);
    try {
      const body = { format: 'countersign.runbook/v1', reference: 'one-too-many', steps: [{ id: 'x', script: { target: 'sandbox', script: 'true' } }] };
      const refused = await api.call('POST', '/runbooks', { token: tokens[MALLORY]!, body });
      expect([refused.status, refused.body.error.code]).toEqual([409, 'too_many']);
      expect(refused.body.error.message).toContain(`at most ${MAX_SAVED_DEFINITIONS}`);
      // A replace of an existing import is not a new one; a removal makes room.
      expect((await api.call('DELETE', '/runbooks/filler-0', { token: tokens[BOB]! })).status).toBe(200);
      expect((await api.call('POST', '/runbooks', { token: tokens[MALLORY]!, body })).status).toBe(201);
      const listed = await as(MALLORY).get(`/runbooks?search=filler-${MAX_SAVED_DEFINITIONS - before - 1}`);
      expect(listed.body.runbooks.map((r: { reference: string }) => r.reference)).toEqual([`filler-${MAX_SAVED_DEFINITIONS - before - 1}`]);
    } finally {
      await h.database.db('runbooks').where('reference', 'like', 'filler-%').orWhere({ reference: 'one-too-many' }).delete();
    }
  });

  it('documents every runbook and run operation, each called above and checked against the document', () => {
    const isRunbookApi = (path: string) => path.startsWith('/runbooks') || path.startsWith('/runs') || path.endsWith('/again');
    const operations = Object.entries(api.document.paths)
      .filter(([path]) => isRunbookApi(path))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`));
    expect(operations).toHaveLength(17);
    for (const operation of operations)
      expect(
        [...api.seen].some((seen) => seen.startsWith(`${operation} 2`)),
        operation,
      ).toBe(true);
  });
});

function runbooksYaml(scratch: string, port: number): string {
  return `http:
  allow: [127.0.0.5]
runbooks:
  prepare:
    steps:
      - { id: mark, script: { target: sandbox, script: "echo prepare >> ${scratch}/order" } }
  deploy:
    description: Ships the web tier
    tags: [deploy, web]
    dependsOn: [prepare]
    arguments:
      - { name: mode, kind: options, options: [ok, fail], default: ok }
      - { name: secret, kind: fixed, value: hunter2-fixed }
    steps:
      - { id: why, input: { fields: [{ name: ticket, kind: input, pattern: "INC-[0-9]+", required: true }] } }
      - { id: health, http: { url: "http://127.0.0.5:${port}/health?ticket=\${{ steps.why.ticket }}", timeout: 5s, successStatus: 200, successPattern: '/"ok":\\s*true/' } }
      - { id: version, script: { target: sandbox, script: "echo version >> ${scratch}/order; echo version=1.4.2 >> \\"$COUNTERSIGN_OUTPUT\\"" } }
      - { id: go, approval: { users: [${ALICE}, ${BOB}], approvals: 1 } }
      - - { id: a, script: { target: web-prod, script: "date +%s%3N > ${scratch}/a-start; echo \\"a $ARG_TICKET $ARG_VERSION $1\\" > ${scratch}/a; [ \\"$ARG_MODE\\" = ok ]", with: { TICKET: "\${{ steps.why.ticket }}", VERSION: "\${{ steps.version.version }}" } } }
        - { id: b, script: { target: web-b, script: "echo \\"b $ARG_TICKET\\" > ${scratch}/b", with: { TICKET: "\${{ steps.why.ticket }}" } } }
  cleanup:
    description: Cleans up after a failed deploy
    triggeredBy: [{ after: deploy, on: failure }]
    grace: 1s
    arguments:
      - { name: mode, kind: input, default: none }
    steps:
      - { id: sweep, script: { target: sandbox, script: "echo \\"cleanup $ARG_MODE\\" > ${scratch}/cleanup" } }
  probe:
    steps:
      - { id: hop, http: { url: "http://127.0.0.5:${port}/redirect", timeout: 5s } }
      - { id: after, script: { target: sandbox, script: "true" } }
  gated:
    steps:
      - { id: go, approval: { users: [${ALICE}, ${BOB}] } }
      - { id: after, script: { target: sandbox, script: "true" } }
  hooked:
    triggeredBy: [webhook]
    arguments:
      - { name: note, kind: input, required: true }
    steps:
      - { id: write, script: { target: sandbox, script: "echo \\"$1\\" > ${scratch}/hooked" } }
  bigout:
    steps:
      - { id: big, script: { target: sandbox, script: "head -c 70000 /dev/zero | tr '\\\\0' a | sed 's/^/x=/' >> \\"$COUNTERSIGN_OUTPUT\\"" } }
      - { id: use, script: { target: sandbox, script: "true", with: { X: "\${{ steps.big.x }}" } } }
  probe-cleanup:
    triggeredBy: [{ after: probe, on: failure }]
    grace: 1h
    steps:
      - { id: note, script: { target: sandbox, script: "true" } }
  waits:
    arguments:
      - { name: token, kind: fixed, value: hunter3-fixed }
    steps:
      - { id: leak, script: { target: sandbox, script: "echo copy=$ARG_TOKEN >> \\"$COUNTERSIGN_OUTPUT\\"; echo plain=visible >> \\"$COUNTERSIGN_OUTPUT\\"" } }
      - { id: ask, input: { fields: [{ name: x, kind: input }], timeout: 1s } }
      - { id: never, script: { target: sandbox, script: "true" } }
  long:
    steps:
      - { id: sleep, script: { target: sandbox, script: "sleep 30" } }
      - { id: after, script: { target: sandbox, script: "true" } }
hooks:
  ship:
    runbook: hooked
    secret: { env: RUNBOOK_HOOK_SECRET }
`;
}
