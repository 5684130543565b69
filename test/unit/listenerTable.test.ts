/**
 * ListenerTable behind a real Bolt app (ExpressReceiver, as countersign serves it), driven by
 * signed requests: each command, click, form and App Home event reaches exactly its handler
 * through one global middleware and no Bolt listener; what nobody handles goes on to Bolt's
 * listeners, or stays unacknowledged as Bolt leaves it; a middleware before the table (the
 * workspace guard) still decides first.
 */
import { App, ExpressReceiver, LogLevel, type BlockButtonAction } from '@slack/bolt';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ListenerTable } from '../../src/slack/listenerTable.js';
import { startFakeSlack, type FakeSlack, type FakeView } from '../support/fakeSlack.js';
import { SlackDriver } from '../support/slackDriver.js';

const TOKEN = 'xoxb-table';
const SECRET = 'table-signing-secret';

let fake: FakeSlack;
let app: App;
let table: ListenerTable;
let server: Server;
let driver: SlackDriver;
const handled: string[] = [];
/** Users the middleware registered before the table refuses (as the workspace guard refuses foreign teams). */
const REFUSED = 'UREFUSED';

const message = (actionIds: string[]) => ({
  channel: 'C1',
  ts: '1700000000.000100',
  blocks: [{ type: 'actions', elements: actionIds.map((id) => ({ type: 'button', action_id: id, text: { type: 'plain_text', text: id }, value: `v-${id}` })) }],
});
const form = (callbackId: string): FakeView =>
  ({
    id: `V-${callbackId}`,
    type: 'modal',
    callback_id: callbackId,
    private_metadata: '',
    blocks: [],
    hash: 'h',
    title: { type: 'plain_text', text: 't' },
  }) as unknown as FakeView;

beforeAll(async () => {
  fake = await startFakeSlack({ token: TOKEN });
  const receiver = new ExpressReceiver({ signingSecret: SECRET, logLevel: LogLevel.ERROR, unhandledRequestTimeoutMillis: 300 });
  app = new App({ token: TOKEN, receiver, logLevel: LogLevel.ERROR, clientOptions: { slackApiUrl: fake.url } });
  app.use(async (args) => {
    if ((args.body as { user?: { id?: string }; user_id?: string }).user?.id === REFUSED || (args.body as { user_id?: string }).user_id === REFUSED) {
      handled.push('refused');
      return;
    }
    await args.next();
  });
  table = new ListenerTable(app);
  table.command('/task', async ({ ack, command }) => {
    await ack({ response_type: 'ephemeral', text: `task ${command.text}` });
    handled.push(`command:${command.text}`);
  });
  table.event('app_home_opened', async ({ event }) => {
    handled.push(`home:${event.user}:${event.tab}`);
  });
  // Bolt's own listener, for what the table does not know (as the workflow step's is).
  app.command('/other', async ({ ack }) => {
    await ack({ response_type: 'ephemeral', text: 'bolt listener' });
    handled.push('bolt:/other');
  });
  for (const id of ['approve', 'reject', 'run']) {
    table.action<BlockButtonAction>(id, async ({ ack, action }) => {
      await ack();
      handled.push(`${id}:${action.value}`);
    });
  }
  table.action(/^home_link/, async ({ ack, action }) => {
    await ack();
    handled.push(`link:${action.action_id}`);
  });
  for (const id of ['reject_form', 'input_form']) {
    table.view(id, async ({ ack, view }) => {
      await ack({ response_action: 'errors', errors: { field: `seen by ${id}` } });
      handled.push(`form:${view.callback_id}`);
    });
  }
  server = (await app.start({ port: 0, host: '127.0.0.1' })) as Server;
  driver = new SlackDriver({ appUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, signingSecret: SECRET, fake });
});

afterAll(async () => {
  await app.stop();
  await fake.close();
});

describe('ListenerTable', () => {
  it('gives each click to the handler of its action id, and only to it', async () => {
    handled.length = 0;
    const card = message(['approve', 'reject', 'run', 'home_link_7', 'nobody']);
    expect((await driver.clickButton({ message: card, actionId: 'reject', user: 'U1' })).status).toBe(200);
    expect((await driver.clickButton({ message: card, actionId: 'approve', user: 'U1' })).status).toBe(200);
    expect((await driver.clickButton({ message: card, actionId: 'home_link_7', user: 'U1' })).status).toBe(200);
    expect(handled).toEqual(['reject:v-reject', 'approve:v-approve', 'link:home_link_7']);
  });

  it('leaves a click nobody handles unacknowledged, as Bolt does', async () => {
    handled.length = 0;
    const answer = await driver.clickButton({ message: message(['nobody']), actionId: 'nobody', user: 'U1' });
    // Bolt's own answer to a request no listener acknowledged (after unhandledRequestTimeoutMillis).
    expect(answer.status).toBe(404);
    expect(handled).toEqual([]);
  });

  it('gives each form submission to the handler of its callback id, which answers it', async () => {
    handled.length = 0;
    const answer = await driver.submitView({ view: form('input_form'), user: 'U1' });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ response_action: 'errors', errors: { field: 'seen by input_form' } });
    expect(handled).toEqual(['form:input_form']);
    expect((await driver.submitView({ view: form('unknown_form'), user: 'U1' })).status).toBe(404);
    expect(handled).toEqual(['form:input_form']);
  });

  it("gives /task to its handler, and a command it does not know to Bolt's listeners", async () => {
    handled.length = 0;
    const answer = await driver.command({ text: 'help', user: 'U1', channel: 'C1' });
    expect(answer.json).toEqual({ response_type: 'ephemeral', text: 'task help' });
    const other = await driver.command({ command: '/other', text: '', user: 'U1', channel: 'C1' });
    expect(other.json).toEqual({ response_type: 'ephemeral', text: 'bolt listener' });
    expect(handled).toEqual(['command:help', 'bolt:/other']);
    // No listener of ours and none of Bolt's: unacknowledged, as Bolt leaves it.
    expect((await driver.command({ command: '/nobody', text: '', user: 'U1', channel: 'C1' })).status).toBe(404);
    expect(handled).toEqual(['command:help', 'bolt:/other']);
  });

  it('gives app_home_opened to its handler', async () => {
    handled.length = 0;
    const answer = await driver.event({ event: { type: 'app_home_opened', user: 'U1', channel: 'D1', tab: 'home' } });
    expect(answer.status).toBe(200);
    await expect.poll(() => handled).toEqual(['home:U1:home']);
  });

  it('lets a middleware registered before it refuse a request before any handler sees it', async () => {
    handled.length = 0;
    await driver.command({ text: 'run x', user: REFUSED, channel: 'C1' });
    await driver.clickButton({ message: message(['approve']), actionId: 'approve', user: REFUSED });
    expect(handled).toEqual(['refused', 'refused']);
  });

  it('adds no Bolt listener: a request it handles walks no listener chain', () => {
    // What the table is for: Bolt walks every listener's middleware for every request that reaches them.
    // The one listener is the test's own /other, standing for the workflow step's.
    expect((app as unknown as { listeners: unknown[] }).listeners).toHaveLength(1);
  });

  it('refuses a second handler for the same action or form instead of shadowing the first', () => {
    expect(() => table.action('approve', async () => {})).toThrow(/two handlers for the action approve/);
    expect(() => table.view('reject_form', async () => {})).toThrow(/two handlers for the form reject_form/);
    expect(() => table.command('/task', async () => {})).toThrow(/two handlers for the command \/task/);
    expect(() => table.event('app_home_opened', async () => {})).toThrow(/two handlers for the event app_home_opened/);
    // An exact id a pattern already takes, a pattern taking a known id, a pattern whose test() keeps state.
    expect(() => table.action('home_link_9', async () => {})).toThrow(/two handlers for the action home_link_9/);
    expect(() => table.action(/^app/, async () => {})).toThrow(/two handlers for the action approve/);
    expect(() => table.action(/^other/g, async () => {})).toThrow(/must not be global or sticky/);
  });
});
