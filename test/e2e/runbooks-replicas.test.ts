/**
 * Runs across restarts and replicas (issue 11): a run paused for approval survives its app's
 * restart and finishes once approved on the new one; two replicas advancing the same runs start
 * every step exactly once (one request per http step, one task per script step); an http step
 * whose process went away fails as "runner lost" on the other replica and is never sent again.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningApp } from '../../src/app.js';
import { createApiToken } from '../../src/store/apiTokens.js';
import { ApiClient } from '../support/apiClient.js';
import { ALICE, AUTHOR, BOB, Harness } from '../support/harness.js';
import { waitFor } from '../support/waitFor.js';

describe('runs across restarts and replicas', () => {
  let h: Harness;
  let server: Server;
  let port: number;
  let scratch: string;
  const hits: string[] = [];
  const hanging: ServerResponse[] = [];
  const tokens: Record<string, string> = {};
  const extra: RunningApp[] = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url?.startsWith('/slow')) return void hanging.push(res);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.7', resolve));
    port = (server.address() as AddressInfo).port;
    scratch = mkdtempSync(join(tmpdir(), 'countersign-runbooks-'));
    chmodSync(scratch, 0o1777);
    h = await Harness.start({ runnerYaml: '  leaseTimeout: 2s\n  livenessTimeout: 5s', extraYaml: () => yaml(scratch, port) });
    for (const [user, name] of [
      [AUTHOR, 'author'],
      [ALICE, 'alice'],
      [BOB, 'bob'],
    ] as const)
      tokens[user] = (await createApiToken(h.database.db, user, name)).token;
  });
  afterAll(async () => {
    for (const app of extra) await app.stop(1000).catch(() => undefined);
    for (const res of hanging) res.destroy();
    await h.stop();
    server.close();
    rmSync(scratch, { recursive: true, force: true });
  });

  const call = async (app: RunningApp, user: string, method: string, path: string, body: unknown = method === 'GET' ? undefined : {}) => {
    const api = await ApiClient.connect(app.url);
    return api.call(method, path, { token: tokens[user]!, ...(body !== undefined ? { body } : {}) });
  };
  const run = async (id: number) => (await call(h.app, AUTHOR, 'GET', `/runs/${id}`)).body.run;

  it('a run paused for approval survives a restart of its app, then is approved on the new one and finishes', async () => {
    const started = await call(h.app, AUTHOR, 'POST', '/runbooks/gate/start');
    const id = started.body.run.id;
    await waitFor(async () => (await run(id)).steps[0].phase === 'paused', 10_000, 'paused for approval');
    await h.app.stop(1000);
    const restarted = await h.startReplica();
    extra.push(restarted);
    (h as unknown as { app: RunningApp }).app = restarted;
    expect((await run(id)).steps[0].phase).toBe('paused');
    const approved = await call(restarted, BOB, 'POST', `/runs/${id}/steps/gate.go/approve`);
    expect(approved.status).toBe(200);
    await waitFor(async () => (await run(id)).status === 'success', 15_000, 'the run finished');
    expect(readFileSync(join(scratch, `gate`), 'utf8')).toBe('after the gate\n');
  });

  it('two replicas advancing the same runs start every step exactly once', async () => {
    const second = await h.startReplica();
    extra.push(second);
    const before = hits.length;
    const ids: number[] = [];
    for (let i = 0; i < 6; i++)
      ids.push((await call(i % 2 === 0 ? h.app : second, AUTHOR, 'POST', '/runbooks/fan/start', { arguments: { n: String(i) } })).body.run.id);
    await waitFor(async () => (await Promise.all(ids.map(run))).every((r) => r.status === 'success'), 30_000, 'every run succeeded');
    expect(hits.slice(before).filter((path) => path.startsWith('/ping'))).toHaveLength(6);
    for (const id of ids) {
      const steps = (await h.database.db('run_steps').where({ run_id: id }).select('id', 'step_id')) as Array<{ id: number; step_id: string }>;
      for (const step of steps) {
        const started = await h.database
          .db('events')
          .where({ subject: `run:${id}`, type: 'run.step.running' })
          .whereRaw(`data->>'step' = ?`, [step.step_id])
          .count<{ count: string }[]>('* as count');
        expect(Number(started[0]?.count), `${step.step_id} of run ${id}`).toBe(1);
      }
      const tasks = await h.database.db('tasks').where({ run_id: id }).count<{ count: string }[]>('* as count');
      expect(Number(tasks[0]?.count)).toBe(2);
    }
    const lines = readFileSync(join(scratch, 'fan'), 'utf8').trim().split('\n').sort();
    expect(lines).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'b0', 'b1', 'b2', 'b3', 'b4', 'b5']);
    await second.stop(1000);
    extra.splice(extra.indexOf(second), 1);
  });

  it('an http step whose process went away fails as runner lost on another replica, and is never sent again', async () => {
    const owner = h.app;
    const started = await call(owner, AUTHOR, 'POST', '/runbooks/slow/start');
    const id = started.body.run.id;
    await waitFor(async () => hits.includes('/slow'), 10_000, 'the request reached the server');
    const other = await h.startReplica();
    extra.push(other);
    await owner.stop(500);
    (h as unknown as { app: RunningApp }).app = other;
    const lost = await waitFor(
      async () => {
        const r = await run(id);
        return r.status === 'failure' ? r : null;
      },
      20_000,
      'the step failed as runner lost',
    );
    expect(lost.steps[0].failureMessage).toMatch(/^runner lost: .*never sent twice/);
    expect(hits.filter((path) => path === '/slow')).toHaveLength(1);
  });
});

function yaml(scratch: string, port: number): string {
  return `http:
  allow: [127.0.0.7]
runbooks:
  gate:
    steps:
      - { id: go, approval: { users: [${ALICE}, ${BOB}] } }
      - { id: write, script: { target: sandbox, script: "echo after the gate > ${scratch}/gate" } }
  fan:
    arguments:
      - { name: n, kind: input, required: true }
    steps:
      - { id: ping, http: { url: "http://127.0.0.7:${port}/ping?n=\${{ args.n }}", successPattern: '"ok"' } }
      - - { id: a, script: { target: sandbox, script: "echo a$1 >> ${scratch}/fan" } }
        - { id: b, script: { target: sandbox, script: "echo b$1 >> ${scratch}/fan" } }
  slow:
    steps:
      - { id: wait, http: { url: "http://127.0.0.7:${port}/slow", timeout: 1h } }
`;
}
