/**
 * Webhooks through real HTTP: `POST /hooks/<id>` with the hook's kind of proof (a timestamped
 * HMAC by default, GitHub's signature, or a bearer secret when the hook opts in) starts the hook's
 * recipe; the script on a real sshd sees the arguments as "$1"… and ARG_<NAME>, literally; a
 * reviewed target's task waits for review; every refusal answers a JSON error and creates
 * nothing; a signed delivery sent again, to any replica and with any Idempotency-Key, starts
 * nothing.
 */
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALICE, blocksText, Harness, REVIEW_CHANNEL } from '../support/harness.js';

const SECRET = 'hook-secret-0123456789abcdef';
const OTHER_SECRET = 'another-secret-0123456789abcdef';
const SIGNED_SECRET = 'signed-secret-0123456789abcdef';
const HOOK_CHANNEL = 'CHOOKS';

async function storedOutput(h: Harness, taskId: number): Promise<string> {
  const rows = await h.database
    .db('output_chunks as o')
    .join('executions as e', 'e.id', 'o.execution_id')
    .where('e.task_id', taskId)
    .orderBy('o.id')
    .pluck('o.data');
  return rows.join('');
}

const sign = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
/** The headers of a countersign-signed delivery made now (or at `at`, Unix seconds). */
const signedHeaders = (secret: string, body: string, at = Math.floor(Date.now() / 1000)) => ({
  'x-countersign-timestamp': String(at),
  'x-countersign-signature': sign(secret, `${at}.${body}`),
});

describe('webhooks', () => {
  let h: Harness;
  const post = (id: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${h.app.url}/hooks/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const tasks = () => h.count('tasks');

  beforeAll(async () => {
    process.env.COUNTERSIGN_TEST_HOOK_SECRET = SECRET;
    process.env.COUNTERSIGN_TEST_SIGNED_SECRET = SIGNED_SECRET;
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
          '    signature: bearer',
          `    channel: ${HOOK_CHANNEL}`,
          '  signed:',
          '    recipe: echo-args',
          '    secret: { env: COUNTERSIGN_TEST_SIGNED_SECRET }',
          '  deploy:',
          '    recipe: deploy',
          '    secret: { file: deploy-hook.secret }',
          '    signature: github',
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
    expect(output).toContain("1=[*****]\n2=[eu]\n3=['; rm -rf / # $(id) `id`]\nn=3\n");
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

  it("takes a timestamped HMAC by default; refuses no timestamp, a stale one, a bearer token and GitHub's signature", async () => {
    const body = JSON.stringify({ arguments: { region: 'us', note: 'signed' } });
    const stamped = await post('signed', body, signedHeaders(SIGNED_SECRET, body));
    expect(stamped.status).toBe(202);
    expect(((await stamped.json()) as { created: boolean }).created).toBe(true);
    const before = await tasks();
    const old = Math.floor(Date.now() / 1000) - 600;
    const refusals: Array<[Response, string, RegExp]> = [
      // The HMAC of the body alone, as before: nothing binds it to a time, so it is refused.
      [await post('signed', body, { 'x-countersign-signature': sign(SIGNED_SECRET, body) }), 'unauthenticated', /X-Countersign-Timestamp is missing/],
      [await post('signed', body, signedHeaders(SIGNED_SECRET, body, old)), 'stale_timestamp', /more than 5 minutes/],
      [await post('signed', body, signedHeaders(SIGNED_SECRET, body, old + 1200)), 'stale_timestamp', /more than 5 minutes/],
      // Signed over another timestamp than the one sent.
      [
        await post('signed', body, { ...signedHeaders(SIGNED_SECRET, body), 'x-countersign-timestamp': String(Math.floor(Date.now() / 1000) - 1) }),
        'unauthenticated',
        /does not match/,
      ],
      [await post('signed', body, { authorization: `Bearer ${SIGNED_SECRET}` }), 'unauthenticated', /signature: bearer/],
      [await post('signed', body, { 'x-hub-signature-256': sign(SIGNED_SECRET, body) }), 'unauthenticated', /signature: github/],
      [await post('signed', body), 'unauthenticated', /X-Countersign-Timestamp: <unix seconds> and X-Countersign-Signature/],
    ];
    for (const [response, code, message] of refusals) {
      expect(response.status).toBe(401);
      const error = ((await response.json()) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe(code);
      expect(error.message).toMatch(message);
    }
    expect(await tasks()).toBe(before);
  });

  it('a captured signed delivery sent again, with a new Idempotency-Key and to another replica, starts nothing', async () => {
    const body = JSON.stringify({ arguments: { region: 'eu', note: 'deploy once' } });
    const captured = { ...signedHeaders(SIGNED_SECRET, body), 'idempotency-key': 'first' };
    const first = await post('signed', body, captured);
    expect(first.status).toBe(202);
    const original = (await first.json()) as { task: { id: number }; created: boolean };
    expect(original.created).toBe(true);
    const before = await tasks();
    const replica = await h.startReplica();
    try {
      for (const [url, key] of [
        [h.app.url, 'second'],
        [replica.url, 'third'],
        [replica.url, undefined],
      ] as const) {
        const headers: Record<string, string> = { 'content-type': 'application/json', ...captured };
        if (key === undefined) delete headers['idempotency-key'];
        else headers['idempotency-key'] = key;
        const again = await fetch(`${url}/hooks/signed`, { method: 'POST', headers, body });
        expect(again.status).toBe(202);
        expect(await again.json()).toMatchObject({ task: { id: original.task.id }, created: false });
      }
      // One delivery sent to both replicas at once: still one task.
      const fresh = JSON.stringify({ arguments: { region: 'us', note: 'raced' } });
      const headers = { 'content-type': 'application/json', ...signedHeaders(SIGNED_SECRET, fresh) };
      const racing = await Promise.all(
        [h.app.url, replica.url, h.app.url, replica.url].map((url) => fetch(`${url}/hooks/signed`, { method: 'POST', headers, body: fresh })),
      );
      const answers = await Promise.all(racing.map(async (response) => (await response.json()) as { task: { id: number }; created: boolean }));
      const ids = new Set(answers.map((answer) => answer.task.id));
      expect(answers.filter((answer) => answer.created)).toHaveLength(1);
      expect(ids.size).toBe(1);
    } finally {
      await replica.stop(1000);
    }
    expect(await tasks()).toBe(before + 1);
  }, 30_000);

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
      [
        await post('echo', JSON.stringify({ arguments: { region: 'eu', note: 'x', token: 'mine' } }), { authorization: `Bearer ${SECRET}` }),
        422,
        'invalid_arguments',
      ],
      [
        await post('echo', JSON.stringify({ arguments: { region: 'eu', note: 'x', extra: '1' } }), { authorization: `Bearer ${SECRET}` }),
        422,
        'invalid_arguments',
      ],
    ];
    for (const [response, status, code] of cases) {
      expect(response.status).toBe(status);
      expect(response.headers.get('content-type')).toMatch(/application\/json/);
      const body = (await response.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message.length).toBeGreaterThan(0);
    }
    const bad = (await (await post('echo', JSON.stringify({ arguments: { region: 'mars', note: 'x' } }), { authorization: `Bearer ${SECRET}` })).json()) as {
      error: { message: string };
    };
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

  it("GitHub hooks: maps an argument from the body, follows the target's review, and checks the pattern", async () => {
    const payload = { action: 'closed', pull_request: { head: { ref: 'release/1.2' } } };
    const body = JSON.stringify(payload);
    const response = await post('deploy', body, {
      'x-hub-signature-256': sign(OTHER_SECRET, body),
      'x-github-delivery': 'b6b0e1a0-0000-11ef-8000-000000000001',
    });
    expect(response.status).toBe(202);
    const { task } = (await response.json()) as { task: { id: number; status: string } };
    expect(task.status).toBe('pending-review');
    const request = await h.reviewRequest(task.id);
    expect(request.channel).toBe(REVIEW_CHANNEL);
    await h.click(request, 'task_approve', ALICE);
    await h.waitForStatus(task.id, 'approved');
    const before = await tasks();
    const evil = JSON.stringify({ pull_request: { head: { ref: '$(id); rm -rf /' } } });
    const refused = await post('deploy', evil, {
      'x-hub-signature-256': sign(OTHER_SECRET, evil),
      'x-github-delivery': 'b6b0e1a0-0000-11ef-8000-000000000002',
    });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('ref: expected a value matching');
    expect(await tasks()).toBe(before);
  });

  it('GitHub hooks: a delivery replayed with a fresh X-GitHub-Delivery (which is not signed) starts nothing; no delivery id, no start', async () => {
    const body = JSON.stringify({ action: 'closed', pull_request: { head: { ref: 'release/2.0' } } });
    const first = await post('deploy', body, { 'x-hub-signature-256': sign(OTHER_SECRET, body), 'x-github-delivery': 'b6b0e1a0-0000-11ef-8000-000000000003' });
    const original = (await first.json()) as { task: { id: number }; created: boolean };
    expect(original.created).toBe(true);
    const before = await tasks();
    const replayed = await post('deploy', body, {
      'x-hub-signature-256': sign(OTHER_SECRET, body),
      'x-github-delivery': 'b6b0e1a0-0000-11ef-8000-0000000000ff',
      'idempotency-key': 'new',
    });
    expect(replayed.status).toBe(202);
    expect(await replayed.json()).toMatchObject({ task: { id: original.task.id }, created: false });
    const fresh = JSON.stringify({ action: 'closed', pull_request: { head: { ref: 'release/2.1' } } });
    const anonymous = await post('deploy', fresh, { 'x-hub-signature-256': sign(OTHER_SECRET, fresh) });
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { message: string } }).error.message).toContain('X-GitHub-Delivery');
    const timestamped = await post('deploy', fresh, signedHeaders(OTHER_SECRET, fresh));
    expect(timestamped.status).toBe(401);
    expect(await tasks()).toBe(before);
  });
});
