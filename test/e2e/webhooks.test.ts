/**
 * Webhooks through real HTTP: `POST /hooks/<id>` with a bearer secret or an HMAC signature starts
 * the hook's recipe; the script on a real sshd sees the arguments as "$1"… and ARG_<NAME>,
 * literally; a reviewed target's task waits for review; every refusal answers a JSON error and
 * creates nothing; a replayed delivery makes one task.
 */
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, blocksText, Harness, REVIEW_CHANNEL } from '../support/harness.js';

const SECRET = 'hook-secret-0123456789abcdef';
const OTHER_SECRET = 'another-secret-0123456789abcdef';
const HOOK_CHANNEL = 'CHOOKS';

async function storedOutput(h: Harness, taskId: number): Promise<string> {
  const rows = await h.database.db('output_chunks as o').join('executions as e', 'e.id', 'o.execution_id').where('e.task_id', taskId).orderBy('o.id').pluck('o.data');
  return rows.join('');
}

const sign = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe('webhooks', () => {
  let h: Harness;
  const post = (id: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${h.app.url}/hooks/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const tasks = () => h.count('tasks');

  beforeAll(async () => {
    process.env.COUNTERSIGN_TEST_HOOK_SECRET = SECRET;
    h = await Harness.start({
      extraYaml: (_ssh, dir) => {
        writeFileSync(`${dir}/deploy-hook.secret`, `${OTHER_SECRET}\n`, { mode: 0o600 });
        return [
          'recipes:',
          '  echo-args:',
          '    target: sandbox',
          '    message: echo the arguments',
          '    script: |',
          '      printf "1=[%s]\\n" "$1"; printf "2=[%s]\\n" "$2"; printf "3=[%s]\\n" "$3"; echo "n=$#"',
          '      printf "ENV=[%s][%s][%s]\\n" "$ARG_REGION" "$ARG_NOTE" "$ARG_TOKEN"',
          '    arguments:',
          '      - { name: token, kind: fixed, value: "fixed-value" }',
          '      - { name: region, kind: options, options: [eu, us] }',
          '      - { name: note, kind: input, required: true }',
          '  deploy:',
          '    target: web-prod',
          '    type: python3',
          '    script: |',
          '      import os, sys',
          '      print("argv", sys.argv[1:], os.environ["ARG_REF"])',
          '    arguments:',
          '      - { name: ref, kind: input, pattern: "[a-z0-9][a-z0-9._/-]*", required: true }',
          'hooks:',
          '  echo:',
          '    recipe: echo-args',
          '    secret: { env: COUNTERSIGN_TEST_HOOK_SECRET }',
          `    channel: ${HOOK_CHANNEL}`,
          '  deploy:',
          '    recipe: deploy',
          '    secret: { file: deploy-hook.secret }',
          '    arguments:',
          '      ref: { from: pull_request.head.ref }',
        ].join('\n');
      },
    });
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('starts the recipe with a bearer secret; the script gets "$1"… and ARG_<NAME> literally', async () => {
    const body = JSON.stringify({ arguments: { region: 'eu', note: `'; rm -rf / # $(id) \`id\`` }, message: 'from CI' });
    const response = await post('echo', body, { authorization: `Bearer ${SECRET}` });
    expect(response.status).toBe(202);
    const answer = (await response.json()) as { task: { id: number; status: string }; statusUrl: string };
    expect(answer.task.status).toBe('ready');
    expect(answer.statusUrl).toBe(`${h.app.url}/api/v1/tasks/${answer.task.id}`);
    const task = await h.waitForStatus(answer.task.id, ['success', 'failure'], 20_000);
    const output = await storedOutput(h, task.id);
    // The fixed value arrives (exactly: the mask replaces that string only) and is masked like a secret.
    expect(output).toContain('1=[*****]\n2=[eu]\n3=[\'; rm -rf / # $(id) `id`]\nn=3\n');
    expect(output).toContain("ENV=[eu]['; rm -rf / # $(id) `id`][*****]");
    expect(output).not.toContain('fixed-value');
    expect(task.status).toBe('success');
    expect(task.source).toBe('webhook');
    expect(task.message).toBe('from CI');
    expect(task.script).not.toContain('rm -rf');
    expect(task.arguments).toEqual([
      { name: 'token', kind: 'fixed', value: 'fixed-value' },
      { name: 'region', kind: 'options', value: 'eu' },
      { name: 'note', kind: 'input', value: `'; rm -rf / # $(id) \`id\`` },
    ]);
    // The card goes to the hook's channel.
    await h.fake.waitFor(() => h.fake.messages(HOOK_CHANNEL).find((m) => blocksText(m).includes(`*#${task.id}*`)), 10_000, 'card in the hook channel');
  }, 30_000);

  it('accepts an HMAC signature of the body, with or without a timestamp; a stale timestamp is refused', async () => {
    const body = JSON.stringify({ arguments: { region: 'us', note: 'signed' } });
    const plain = await post('echo', body, { 'x-countersign-signature': sign(SECRET, body) });
    expect(plain.status).toBe(202);
    const ts = String(Math.floor(Date.now() / 1000));
    const stamped = await post('echo', body, { 'x-countersign-timestamp': ts, 'x-countersign-signature': sign(SECRET, `${ts}.${body}`) });
    expect(stamped.status).toBe(202);
    const before = await tasks();
    const old = String(Math.floor(Date.now() / 1000) - 600);
    const stale = await post('echo', body, { 'x-countersign-timestamp': old, 'x-countersign-signature': sign(SECRET, `${old}.${body}`) });
    expect(stale.status).toBe(401);
    expect(((await stale.json()) as { error: { code: string } }).error.code).toBe('stale_timestamp');
    expect(await tasks()).toBe(before);
  });

  it('refuses unknown hooks (404), bad secrets (401), malformed bodies (400) and bad arguments (422), creating nothing', async () => {
    const before = await tasks();
    const good = JSON.stringify({ arguments: { region: 'eu', note: 'x' } });
    const cases: Array<[Response, number, string]> = [
      [await post('nope', good, { authorization: `Bearer ${SECRET}` }), 404, 'unknown_hook'],
      [await post('echo', good), 401, 'unauthenticated'],
      [await post('echo', good, { authorization: `Bearer ${SECRET}x` }), 401, 'unauthenticated'],
      [await post('echo', good, { authorization: `Bearer ${OTHER_SECRET}` }), 401, 'unauthenticated'],
      [await post('echo', good, { 'x-countersign-signature': sign(SECRET, `${good} `) }), 401, 'unauthenticated'],
      [await post('echo', '{"arguments":', { authorization: `Bearer ${SECRET}` }), 400, 'invalid_json'],
      [await post('echo', '[1,2]', { authorization: `Bearer ${SECRET}` }), 400, 'invalid_request'],
      [await post('echo', JSON.stringify({ args: {} }), { authorization: `Bearer ${SECRET}` }), 400, 'invalid_request'],
      [await post('echo', JSON.stringify({ arguments: { region: 'mars', note: 'x' } }), { authorization: `Bearer ${SECRET}` }), 422, 'invalid_arguments'],
      [await post('echo', JSON.stringify({ arguments: { region: 'eu' } }), { authorization: `Bearer ${SECRET}` }), 422, 'invalid_arguments'],
      [await post('echo', JSON.stringify({ arguments: { region: 'eu', note: 'x', token: 'mine' } }), { authorization: `Bearer ${SECRET}` }), 422, 'invalid_arguments'],
      [await post('echo', JSON.stringify({ arguments: { region: 'eu', note: 'x', extra: '1' } }), { authorization: `Bearer ${SECRET}` }), 422, 'invalid_arguments'],
    ];
    for (const [response, status, code] of cases) {
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/application\/json/);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message.length).toBeGreaterThan(0);
    }
    const bad = (await (await post('echo', JSON.stringify({ arguments: { region: 'mars', note: 'x' } }), { authorization: `Bearer ${SECRET}` })).json()) as { error: { message: string } };
    expect(bad.error.message).toContain('region: expected one of eu, us');
    expect(await tasks()).toBe(before);
  });

  it('a replayed delivery with the same Idempotency-Key makes one task, scoped to the hook', async () => {
    const body = JSON.stringify({ arguments: { region: 'eu', note: 'once' } });
    const headers = { authorization: `Bearer ${SECRET}`, 'idempotency-key': 'delivery-42' };
    const first = (await (await post('echo', body, headers)).json()) as { task: { id: number } };
    const second = await post('echo', body, headers);
    expect(second.status).toBe(202);
    expect(((await second.json()) as { task: { id: number } }).task.id).toBe(first.task.id);
    const viaRequestId = (await (await post('echo', body, { authorization: `Bearer ${SECRET}`, 'x-request-id': 'req-7' })).json()) as { task: { id: number } };
    const again = (await (await post('echo', body, { authorization: `Bearer ${SECRET}`, 'x-request-id': 'req-7' })).json()) as { task: { id: number } };
    expect(again.task.id).toBe(viaRequestId.task.id);
    expect(await h.count('tasks', { source_key: 'hook:echo:delivery-42' })).toBe(1);
  });

  it('maps an argument from the body, follows the target\'s review, and checks the pattern', async () => {
    const payload = { action: 'closed', pull_request: { head: { ref: 'release/1.2' } } };
    const body = JSON.stringify(payload);
    const response = await post('deploy', body, { 'x-hub-signature-256': sign(OTHER_SECRET, body) });
    expect(response.status).toBe(202);
    const { task } = (await response.json()) as { task: { id: number; status: string } };
    expect(task.status).toBe('pending-review');
    const request = await h.reviewRequest(task.id);
    expect(request.channel).toBe(REVIEW_CHANNEL);
    await h.click(request, 'task_approve', ALICE);
    await h.waitForStatus(task.id, 'approved');
    const before = await tasks();
    const evil = JSON.stringify({ pull_request: { head: { ref: '$(id); rm -rf /' } } });
    const refused = await post('deploy', evil, { 'x-hub-signature-256': sign(OTHER_SECRET, evil) });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('ref: expected a value matching');
    expect(await tasks()).toBe(before);
  });
});
