// Proves the test support behaves like the real thing: the fake Slack answers a real WebClient
// (messages, updates, uploads, limits, rate limits), the driver signs like Slack, the sshd takes
// a key login.
import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { App, LogLevel as BoltLogLevel } from '@slack/bolt';
import { ErrorCode, LogLevel, WebClient, type Logger } from '@slack/web-api';
import { Client } from 'ssh2';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeSlack, type FakeSlack } from './support/fakeSlack.js';
import { SlackDriver } from './support/slackDriver.js';
import { validateMessage, validateView } from './support/slackLimits.js';
import { isProcessAlive, startSshd } from './support/sshd.js';

const TOKEN = 'xoxb-test-token';

/** web-api logs Slack's `[ERROR]` hints; the refusals below are on purpose. */
const silent: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  setLevel() {},
  getLevel: () => LogLevel.ERROR,
  setName() {},
};

function clientFor(fake: FakeSlack, token: string | undefined): WebClient {
  return new WebClient(token, { slackApiUrl: fake.url, retryConfig: { retries: 0 }, rejectRateLimitedCalls: true, logger: silent });
}

const section = (text: string) => ({ type: 'section', text: { type: 'mrkdwn', text } });

describe('slackLimits', () => {
  it('accepts what Slack accepts', () => {
    expect(validateMessage({ text: 'hi' }, 'chat.postMessage')).toBeNull();
    expect(validateMessage({ blocks: [section('x'.repeat(3000))] }, 'chat.update')).toBeNull();
    expect(validateMessage({ text: 'x'.repeat(40_000) }, 'chat.postMessage')).toBeNull();
    expect(validateView({ type: 'modal', title: { type: 'plain_text', text: 'Run a task' }, blocks: [] })).toBeNull();
    expect(validateView({ type: 'home', blocks: [{ type: 'divider' }] })).toBeNull();
  });

  it('refuses what Slack refuses, with Slack error codes', () => {
    const button = (text: string, value = 'v') => ({ type: 'button', action_id: 'a', text: { type: 'plain_text', text }, value });
    const cases: Array<[string | null, string]> = [
      [validateMessage({}, 'chat.postMessage'), 'no_text'],
      [validateMessage({ text: '', blocks: [] }, 'chat.postMessage'), 'no_text'],
      [validateMessage({ text: 'x'.repeat(4001) }, 'chat.update'), 'msg_too_long'],
      [validateMessage({ text: 'x'.repeat(40_001) }, 'chat.postMessage'), 'msg_too_long'],
      [validateMessage({ blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })) }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: [section('x'.repeat(3001))] }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: [{ type: 'header', text: { type: 'plain_text', text: 'x'.repeat(151) } }] }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: [{ type: 'actions', elements: [button('x'.repeat(76))] }] }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: [{ type: 'actions', elements: [button('ok', 'v'.repeat(2001))] }] }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: [{ type: 'actions', elements: Array.from({ length: 26 }, () => button('b')) }] }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: [{ ...section('x'), block_id: 'b'.repeat(256) }] }, 'chat.postMessage'), 'invalid_blocks'],
      [validateMessage({ blocks: Array.from({ length: 5 }, () => section('x'.repeat(2900))) }, 'chat.postMessage'), 'msg_blocks_too_long'],
      [validateView({ type: 'modal', title: { type: 'plain_text', text: 'x'.repeat(25) }, blocks: [] }), 'invalid_arguments'],
      [validateView({ type: 'modal', title: { type: 'plain_text', text: 't' }, private_metadata: 'x'.repeat(3001), blocks: [] }), 'invalid_arguments'],
      [validateView({ type: 'home', blocks: Array.from({ length: 101 }, () => ({ type: 'divider' })) }), 'invalid_arguments'],
    ];
    for (const [got, want] of cases) expect(got).toBe(want);
  });
});

describe('fake Slack Web API', () => {
  let fake: FakeSlack;
  let client: WebClient;

  beforeAll(async () => {
    fake = await startFakeSlack({ token: TOKEN });
    client = clientFor(fake, TOKEN);
  });
  afterAll(() => fake.close());
  beforeEach(() => fake.reset());

  it('answers auth, posts, updates and permalinks like Slack', async () => {
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/api\/$/);
    expect(await client.auth.test()).toMatchObject({ ok: true, team_id: 'T0TEST', user_id: 'UBOT', bot_id: 'BBOT' });

    const parent = await client.chat.postMessage({ channel: 'C1', text: 'card', blocks: [section('*#1* pending')] });
    const reply = await client.chat.postMessage({ channel: 'C1', thread_ts: parent.ts!, text: 'log line' });
    expect(parent.ts).toMatch(/^\d{10}\.\d{6}$/);
    expect(reply.ts! > parent.ts!).toBe(true);
    await client.chat.update({ channel: 'C1', ts: parent.ts!, text: 'card', blocks: [section('*#1* running')] });

    const card = fake.message('C1', parent.ts!)!;
    expect(card.updates).toBe(1);
    expect(card.blocks).toEqual([section('*#1* running')]);
    expect(card.history).toHaveLength(2);
    expect(fake.thread('C1', parent.ts!).map((m) => m.text)).toEqual(['log line']);
    expect(fake.callsTo('chat.update')[0]!.args.blocks).toEqual([section('*#1* running')]); // form JSON decoded

    const link = await client.chat.getPermalink({ channel: 'C1', message_ts: parent.ts! });
    expect(link.permalink).toBe(`https://fake.slack/archives/C1/p${parent.ts!.replace('.', '')}`);
  });

  it('answers users.info with the profiles set, and delays a method on demand', async () => {
    fake.setUser('UADA', { displayName: 'ada', realName: 'Ada Lovelace' });
    expect(await client.users.info({ user: 'UADA' })).toMatchObject({
      ok: true,
      user: { id: 'UADA', real_name: 'Ada Lovelace', profile: { display_name: 'ada', real_name: 'Ada Lovelace' } },
    });
    expect(await client.users.info({ user: 'UOTHER' })).toMatchObject({ ok: true, user: { profile: { display_name: 'uother' } } });
    fake.delay('users.info', 300);
    const started = Date.now();
    await client.users.info({ user: 'UADA' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    fake.delay('users.info', 0);
  });

  it('refuses bad tokens, unknown methods and unknown messages', async () => {
    await expect(clientFor(fake, undefined).chat.postMessage({ channel: 'C1', text: 'x' })).rejects.toMatchObject({ data: { error: 'not_authed' } });
    await expect(clientFor(fake, 'xoxb-wrong').auth.test()).rejects.toMatchObject({ data: { error: 'invalid_auth' } });
    await expect(client.apiCall('nope.nothing')).rejects.toMatchObject({ data: { error: 'unknown_method' } });
    await expect(client.chat.update({ channel: 'C1', ts: '1.000001', text: 'x' })).rejects.toMatchObject({ data: { error: 'message_not_found' } });
    await expect(client.apiCall('chat.postMessage', { text: 'no channel' })).rejects.toMatchObject({ data: { error: 'channel_not_found' } });
    await expect(client.apiCall('files.upload', { content: 'x' })).rejects.toMatchObject({ data: { error: 'method_deprecated' } });
  });

  it('refuses over-limit messages with Slack errors', async () => {
    // Refused posts still count toward the channel's rate limit (as on Slack): one channel each.
    let n = 0;
    const post = (args: { text?: string; blocks?: unknown[] }) => client.apiCall('chat.postMessage', { channel: `C_LIMITS${++n}`, ...args });
    await expect(post({ blocks: Array.from({ length: 51 }, () => ({ type: 'divider' })) })).rejects.toMatchObject({ data: { error: 'invalid_blocks' } });
    await expect(post({ blocks: [section('x'.repeat(3001))] })).rejects.toMatchObject({ data: { error: 'invalid_blocks' } });
    await expect(post({})).rejects.toMatchObject({ data: { error: 'no_text' } });
    const { channel, ts } = (await post({ text: 'short' })) as unknown as { channel: string; ts: string };
    const target = { channel, ts };
    await expect(client.chat.update({ ...target, text: 'x'.repeat(4001) })).rejects.toMatchObject({ data: { error: 'msg_too_long' } });
    await expect(client.chat.update({ ...target, blocks: Array.from({ length: 5 }, () => section('x'.repeat(2900))) })).rejects.toMatchObject({
      data: { error: 'msg_blocks_too_long' },
    });
    expect(fake.messages()).toHaveLength(1);
    expect(fake.message(target.channel, target.ts)).toMatchObject({ text: 'short', updates: 0 });
  });

  it('rate-limits chat.postMessage per channel with 429 and Retry-After', async () => {
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => client.chat.postMessage({ channel: 'C_BUSY', text: `m${i}` })));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    const rejected = results[3] as PromiseRejectedResult;
    expect(rejected.reason).toMatchObject({ code: ErrorCode.RateLimitedError, retryAfter: 1 });
    expect(fake.callsTo('chat.postMessage').map((c) => c.status)).toEqual([200, 200, 200, 429, 429]);
    // Another channel has its own bucket.
    await expect(client.chat.postMessage({ channel: 'C_QUIET', text: 'fine' })).resolves.toMatchObject({ ok: true });
    // The raw answer, as Slack sends it.
    const raw = await fetch(`${fake.url}chat.postMessage`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'C_BUSY', text: 'again' }),
    });
    expect(raw.status).toBe(429);
    expect(raw.headers.get('retry-after')).toBe('1');
    expect(await raw.json()).toEqual({ ok: false, error: 'ratelimited' });
  });

  it('takes filesUploadV2 uploads byte for byte', async () => {
    // Binary bytes, CRLFs and a fake multipart delimiter: the multipart parsing must not care.
    const bytes = Buffer.concat([Buffer.from([0, 1, 2, 255, 254, 13, 10]), Buffer.from('\r\n------formdata-undici-0\r\nlog ✓\n'), Buffer.alloc(70_000, 7)]);
    const { ts } = await client.chat.postMessage({ channel: 'C_LOGS', text: 'task #7' });
    const result = await client.filesUploadV2({ channel_id: 'C_LOGS', thread_ts: ts!, file: bytes, filename: 'task-7.log', initial_comment: 'full log' });
    expect(result.ok).toBe(true);
    expect(fake.files).toHaveLength(1);
    const [file] = fake.files;
    expect(file).toMatchObject({ filename: 'task-7.log', title: 'task-7.log', channel_id: 'C_LOGS', thread_ts: ts, initial_comment: 'full log' });
    expect(file!.content.equals(bytes)).toBe(true);
    expect(file!.declaredLength).toBe(bytes.length);
    expect(fake.callsTo('files.getUploadURLExternal')).toHaveLength(1);
    expect(fake.callsTo('files.completeUploadExternal')[0]!.args.files).toEqual([{ id: file!.id, title: 'task-7.log' }]);
  });

  it('opens views once per trigger, refuses big ones, and injects failures', async () => {
    const view = { type: 'modal' as const, callback_id: 'new_task', title: { type: 'plain_text' as const, text: 'New task' }, blocks: [] };
    const triggerId = fake.newTriggerId();
    const opened = await client.views.open({ trigger_id: triggerId, view });
    expect(opened.view?.id).toMatch(/^V/);
    expect(fake.lastView('new_task')?.id).toBe(opened.view?.id);
    await expect(client.views.open({ trigger_id: triggerId, view })).rejects.toMatchObject({ data: { error: 'exchanged_trigger_id' } });
    const tooLong = { ...view, title: { type: 'plain_text' as const, text: 'x'.repeat(25) } };
    await expect(client.views.open({ trigger_id: fake.newTriggerId(), view: tooLong })).rejects.toMatchObject({ data: { error: 'invalid_arguments' } });
    await client.views.update({ view_id: opened.view!.id!, view: { ...view, private_metadata: '42' } });
    expect(fake.views.byId.get(opened.view!.id!)).toMatchObject({ private_metadata: '42', updates: 1 });

    fake.failNext('chat.postMessage', { error: 'channel_not_found' });
    await expect(client.chat.postMessage({ channel: 'C1', text: 'x' })).rejects.toMatchObject({ data: { error: 'channel_not_found' } });
    fake.failNext('chat.update', { status: 429, retryAfter: 7 }, 2);
    for (let i = 0; i < 2; i++) {
      await expect(client.chat.update({ channel: 'C1', ts: '1.1', text: 'x' })).rejects.toMatchObject({ code: ErrorCode.RateLimitedError, retryAfter: 7 });
    }
    await expect(client.chat.update({ channel: 'C1', ts: '1.1', text: 'x' })).rejects.toMatchObject({ data: { error: 'message_not_found' } });

    fake.setUsergroup('S1', ['U1', 'U2']);
    expect((await client.usergroups.users.list({ usergroup: 'S1' })).users).toEqual(['U1', 'U2']);
    await expect(client.usergroups.users.list({ usergroup: 'S2' })).rejects.toMatchObject({ data: { error: 'no_such_subteam' } });
  });

  it('records response_url posts and stops after 5 uses', async () => {
    const url = fake.newResponseUrl();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ text: `r${i}` }) });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 404]);
    expect(fake.responses[0]).toMatchObject({ url, body: { text: 'r0' }, status: 200 });
  });

  it('waitFor returns the value, or fails with the label and recent calls', async () => {
    setTimeout(() => void client.chat.postMessage({ channel: 'C_LATER', text: 'later' }), 50);
    const later = await fake.waitFor(() => fake.messages('C_LATER')[0], 2000, 'the later message');
    expect(later.text).toBe('later');
    await expect(fake.waitFor(() => fake.messages('C_NEVER')[0], 100, 'a message in C_NEVER')).rejects.toThrow(
      /timed out after 100 ms: a message in C_NEVER[\s\S]*chat\.postMessage -> 200 ok/,
    );
  });
});

describe('SlackDriver', () => {
  interface Recorded {
    headers: IncomingHttpHeaders;
    body: string;
    path: string;
  }
  const recorded: Recorded[] = [];
  const secret = 'test-signing-secret';
  let fake: FakeSlack;
  let driver: SlackDriver;
  let close: () => Promise<void>;

  beforeAll(async () => {
    fake = await startFakeSlack();
    const app = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        recorded.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), path: req.url ?? '' });
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"response_action":"clear"}');
      });
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const { port } = app.address() as AddressInfo;
    driver = new SlackDriver({ appUrl: `http://127.0.0.1:${port}`, signingSecret: secret, fake });
    close = async () => {
      app.closeAllConnections();
      await new Promise((resolve) => app.close(resolve));
      await fake.close();
    };
  });
  afterAll(() => close());

  const last = () => recorded.at(-1)!;
  const expectedSignature = (key: string, r: Recorded) =>
    `v0=${createHmac('sha256', key)
      .update(`v0:${String(r.headers['x-slack-request-timestamp'])}:${r.body}`)
      .digest('hex')}`;

  it('signs a slash command the way Slack does', async () => {
    const res = await driver.command({ text: 'run web-prod -m "why" echo hi' });
    expect(res).toMatchObject({ status: 200, json: { response_action: 'clear' } });
    expect(res.ms).toBeGreaterThan(0);
    const r = last();
    expect(r.path).toBe('/slack/events');
    expect(r.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(Math.abs(Number(r.headers['x-slack-request-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
    expect(r.headers['x-slack-signature']).toBe(expectedSignature(secret, r));
    const form = Object.fromEntries(new URLSearchParams(r.body));
    expect(form).toMatchObject({ command: '/task', text: 'run web-prod -m "why" echo hi', user_id: 'U_AUTHOR', channel_id: 'C_TASKS', team_id: 'T0TEST' });
    expect(form.response_url).toMatch(new RegExp(`^${fake.origin}/respond/\\d+$`));
    expect(form.trigger_id).toBeTruthy();
  });

  it('forges, stale-dates or omits signatures on demand', async () => {
    await driver.command({ text: 'help' }, { secret: 'wrong' });
    expect(last().headers['x-slack-signature']).toBe(expectedSignature('wrong', last()));
    await driver.command({ text: 'help' }, { timestamp: 1_000 });
    expect(last().headers['x-slack-request-timestamp']).toBe('1000');
    expect(last().headers['x-slack-signature']).toBe(expectedSignature(secret, last()));
    await driver.command({ text: 'help' }, { omit: true });
    expect(last().headers['x-slack-signature']).toBeUndefined();
  });

  it('clicks a button of a stored message and submits a stored modal', async () => {
    const client = clientFor(fake, 'xoxb-any');
    const blocks = [
      section('Task #1'),
      {
        type: 'actions',
        block_id: 'review',
        elements: [{ type: 'button', action_id: 'approve', text: { type: 'plain_text', text: 'Approve' }, value: '1', style: 'primary' }],
      },
    ];
    const { ts } = await client.chat.postMessage({ channel: 'C_REVIEW', text: 'review #1', blocks });
    const message = fake.message('C_REVIEW', ts!)!;
    await driver.clickButton({ message, actionId: 'approve', user: 'U_REVIEWER' });
    const payload = JSON.parse(new URLSearchParams(last().body).get('payload')!);
    expect(payload).toMatchObject({
      type: 'block_actions',
      user: { id: 'U_REVIEWER' },
      container: { type: 'message', message_ts: ts, channel_id: 'C_REVIEW', is_ephemeral: false },
      channel: { id: 'C_REVIEW' },
      message: { ts, text: 'review #1' },
      actions: [{ action_id: 'approve', block_id: 'review', value: '1', style: 'primary', type: 'button' }],
    });
    expect(last().headers['x-slack-signature']).toBe(expectedSignature(secret, last()));
    expect(() => driver.clickButton({ message, actionId: 'reject', user: 'U_REVIEWER' })).toThrow(/available: approve \(button\)/);

    const opened = await client.views.open({
      trigger_id: fake.newTriggerId(),
      view: {
        type: 'modal',
        callback_id: 'reject_reason',
        title: { type: 'plain_text', text: 'Reject' },
        blocks: [
          { type: 'input', block_id: 'reason', label: { type: 'plain_text', text: 'Why' }, element: { type: 'plain_text_input', action_id: 'text' } },
          {
            type: 'input',
            block_id: 'target',
            label: { type: 'plain_text', text: 'Target' },
            element: { type: 'static_select', action_id: 'pick', options: [{ text: { type: 'plain_text', text: 'Web' }, value: 'web-prod' }] },
          },
          {
            type: 'input',
            block_id: 'note',
            optional: true,
            label: { type: 'plain_text', text: 'Note' },
            element: { type: 'plain_text_input', action_id: 'n' },
          },
        ],
      },
    });
    await driver.submitView({
      view: fake.views.byId.get(opened.view!.id!)!,
      user: 'U_REVIEWER',
      values: { reason: { text: 'not now' }, target: { pick: 'web-prod' } },
    });
    const submission = JSON.parse(new URLSearchParams(last().body).get('payload')!);
    expect(submission).toMatchObject({ type: 'view_submission', user: { id: 'U_REVIEWER' }, view: { id: opened.view!.id, callback_id: 'reject_reason' } });
    expect(submission.view.state.values).toEqual({
      reason: { text: { type: 'plain_text_input', value: 'not now' } },
      target: { pick: { type: 'static_select', selected_option: { text: { type: 'plain_text', text: 'Web' }, value: 'web-prod' } } },
      note: { n: { type: 'plain_text_input', value: null } },
    });
    expect(submission.view.opened_by).toBeUndefined();
  });
});

describe('sshd', () => {
  it('accepts a key login and runs a command', async () => {
    const sshd = await startSshd();
    try {
      expect(sshd.knownHosts).toBe(`127.0.0.1 ${sshd.hostPublicKey}`);
      expect(sshd.knownHostsBracketed).toBe(`[127.0.0.1]:${sshd.port} ${sshd.hostPublicKey}`);
      const pinned = Buffer.from(sshd.hostPublicKey.split(' ')[1]!, 'base64');
      const output = await new Promise<string>((resolve, reject) => {
        const conn = new Client();
        conn
          .on('ready', () => {
            conn.exec('echo hi', (err, stream) => {
              if (err) return reject(err);
              let out = '';
              stream
                .on('data', (d: Buffer) => (out += d.toString()))
                .on('close', () => {
                  conn.end();
                  resolve(out);
                });
            });
          })
          .on('error', reject)
          .connect({
            host: sshd.host,
            port: sshd.port,
            username: sshd.user,
            privateKey: sshd.privateKey,
            hostVerifier: (key: Buffer) => key.equals(pinned),
          });
      });
      expect(output).toBe('hi\n');
    } finally {
      await sshd.stop();
    }
    expect(isProcessAlive(sshd.pid)).toBe(false);
  });
});

describe('driver + fake against a real Bolt app', () => {
  it('a signed command reaches Bolt, whose client and respond() land in the fake', async () => {
    const fake = await startFakeSlack({ token: TOKEN });
    const secret = 'bolt-signing-secret';
    const app = new App({ token: TOKEN, signingSecret: secret, logLevel: BoltLogLevel.ERROR, clientOptions: { slackApiUrl: fake.url } });
    app.command('/task', async ({ ack, body, client, respond }) => {
      await ack();
      await client.views.open({
        trigger_id: body.trigger_id,
        view: { type: 'modal', callback_id: 'why', title: { type: 'plain_text', text: 'Why' }, blocks: [] },
      });
      await respond({ response_type: 'ephemeral', text: `got ${body.text}` });
    });
    const server = (await app.start({ port: 0, host: '127.0.0.1' })) as Server;
    try {
      const { port } = server.address() as AddressInfo;
      const driver = new SlackDriver({ appUrl: `http://127.0.0.1:${port}`, signingSecret: secret, fake });
      const res = await driver.command({ text: 'help' });
      expect(res.status).toBe(200);
      await fake.waitFor(() => fake.responses[0], 3000, 'respond() through the response_url');
      expect(fake.responses[0]!.body).toEqual({ response_type: 'ephemeral', text: 'got help' });
      expect(fake.lastView('why')).toBeDefined();
      expect((await driver.command({ text: 'help' }, { secret: 'forged' })).status).toBe(401);
      expect((await driver.command({ text: 'help' }, { timestamp: Math.floor(Date.now() / 1000) - 600 })).status).toBe(401);
    } finally {
      await app.stop();
      await fake.close();
    }
  });
});
