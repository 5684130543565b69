// Plays Slack's side of the Events/interactivity HTTP contract against the app: signed requests
// to POST /slack/events whose bodies are shaped like the payloads Slack really sends (slash
// commands, button clicks, modal submissions), with response_urls and trigger_ids from the fake
// Web API so what the app does with them can be observed there.
import { createHmac, randomBytes } from 'node:crypto';
import { FAKE_APP_ID, type FakeSlack, type FakeView } from './fakeSlack.js';

export interface SignOptions {
  /** Sign with this secret instead of the driver's (a forged request). */
  secret?: string;
  /** Request timestamp in seconds (a stale or future request). */
  timestamp?: number;
  /** Send no signature headers at all. */
  omit?: boolean;
  /** Send this X-Slack-Signature verbatim. */
  signature?: string;
}

export interface DriverResponse {
  status: number;
  text: string;
  /** The parsed body, or undefined when it is not JSON (e.g. Bolt's empty ack). `any`: tests read ack bodies freely. */
  json: any;
  /** Milliseconds until the HTTP answer (Slack gives up after 3000). */
  ms: number;
}

export interface CommandInput {
  text: string;
  user?: string;
  channel?: string;
  triggerId?: string;
  command?: string;
}

/** A message with buttons: a FakeMessage, or an ephemeral one (then pass `ephemeral: true`). */
export interface ClickableMessage {
  channel: string;
  ts?: string;
  message_ts?: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
}

export interface ClickInput {
  message: ClickableMessage;
  actionId: string;
  user: string;
  channel?: string;
  ephemeral?: boolean;
}

export interface SubmitInput {
  view: FakeView;
  user: string;
  /** `{ [block_id]: { [action_id]: value } }`; arrays for multi-selects and checkboxes. */
  values?: Record<string, Record<string, string | string[]>>;
}

export interface EventInput {
  event: Record<string, unknown>;
  /** Slack's retries carry X-Slack-Retry-Num / X-Slack-Retry-Reason. */
  retryNum?: number;
  retryReason?: string;
}

const FORM = 'application/x-www-form-urlencoded';
const TEAM_DOMAIN = 'countersign-test';

export class SlackDriver {
  private readonly appUrl: string;
  private readonly signingSecret: string;
  private readonly fake: FakeSlack;
  private readonly teamId: string;
  /** The Enterprise Grid organisation the workspace is in, if any. */
  private readonly enterpriseId: string | null;
  /** The acting user's own team (another one in a Slack Connect channel). */
  private readonly userTeamId: string;
  /** The legacy verification token Slack still puts in payloads (Bolt ignores it). */
  readonly verificationToken = 'fake-verification-token';

  constructor(opts: { appUrl: string; signingSecret: string; fake: FakeSlack; teamId?: string; enterpriseId?: string; userTeamId?: string }) {
    this.appUrl = opts.appUrl.replace(/\/+$/, '');
    this.signingSecret = opts.signingSecret;
    this.fake = opts.fake;
    this.teamId = opts.teamId ?? 'T0TEST';
    this.enterpriseId = opts.enterpriseId ?? null;
    this.userTeamId = opts.userTeamId ?? this.teamId;
  }

  private enterprise(): { id: string; name: string } | null {
    return this.enterpriseId === null ? null : { id: this.enterpriseId, name: 'Some Org' };
  }

  /** A slash command, form-encoded as Slack sends it. */
  command(input: CommandInput, sign?: SignOptions): Promise<DriverResponse> {
    const { text, user = 'U_AUTHOR', channel = 'C_TASKS', command = '/task' } = input;
    const body = new URLSearchParams({
      token: this.verificationToken,
      team_id: this.teamId,
      team_domain: TEAM_DOMAIN,
      channel_id: channel,
      channel_name: channelName(channel),
      user_id: user,
      user_name: userName(user),
      command,
      text,
      api_app_id: FAKE_APP_ID,
      ...(this.enterpriseId !== null ? { enterprise_id: this.enterpriseId, enterprise_name: 'Some Org' } : {}),
      is_enterprise_install: 'false',
      response_url: this.fake.newResponseUrl(),
      trigger_id: input.triggerId ?? this.fake.newTriggerId(),
    });
    return this.post(body.toString(), FORM, sign);
  }

  /** Click the button with `actionId` in a message the app posted: a block_actions payload. */
  clickButton(input: ClickInput, sign?: SignOptions): Promise<DriverResponse> {
    const { message, actionId, user } = input;
    const channel = input.channel ?? message.channel;
    const messageTs = message.ts ?? message.message_ts;
    if (!messageTs) throw new Error('clickButton: the message has no ts (ts or message_ts)');
    const blocks = withBlockIds(message.blocks ?? []);
    const found = findButton(blocks, actionId);
    if (!found) {
      const available = interactiveElements(blocks).map((e) => `${String(e.element.action_id)} (${String(e.element.type)})`);
      throw new Error(
        `clickButton: no button with action_id "${actionId}" in message ${channel}/${messageTs}; ` +
          `available: ${available.length ? available.join(', ') : 'none'}`,
      );
    }
    const { element, blockId } = found;
    const payload = {
      type: 'block_actions',
      user: this.user(user),
      api_app_id: FAKE_APP_ID,
      token: this.verificationToken,
      container: {
        type: 'message',
        message_ts: messageTs,
        channel_id: channel,
        is_ephemeral: input.ephemeral === true,
        ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}),
      },
      trigger_id: this.fake.newTriggerId(),
      team: { id: this.teamId, domain: TEAM_DOMAIN },
      enterprise: this.enterprise(),
      is_enterprise_install: false,
      channel: { id: channel, name: channelName(channel) },
      message: {
        type: 'message',
        user: 'UBOT',
        bot_id: 'BBOT',
        app_id: FAKE_APP_ID,
        team: this.teamId,
        ts: messageTs,
        text: message.text ?? '',
        blocks,
        ...(message.thread_ts ? { thread_ts: message.thread_ts } : {}),
      },
      state: { values: stateValues(blocks, {}) },
      response_url: this.fake.newResponseUrl(),
      actions: [
        {
          action_id: element.action_id,
          block_id: blockId,
          text: element.text,
          ...(element.value !== undefined ? { value: element.value } : {}),
          ...(element.style !== undefined ? { style: element.style } : {}),
          type: 'button',
          action_ts: slackNow(),
        },
      ],
    };
    return this.postPayload(payload, sign);
  }

  /**
   * Click a button in a view (the App Home tab or an open modal): a block_actions payload with a
   * view container and, as Slack sends it, no response_url. `value` picks among buttons sharing
   * an action_id (one Approve per task on Home); `42` also matches a value `42:<suffix>`.
   */
  clickViewButton(input: { view: FakeView; actionId: string; user: string; value?: string }, sign?: SignOptions): Promise<DriverResponse> {
    const { view, actionId, user, value } = input;
    const blocks = withBlockIds(view.blocks);
    const found = interactiveElements(blocks).find(
      (e) =>
        e.element.type === 'button' &&
        e.element.action_id === actionId &&
        (value === undefined || e.element.value === value || String(e.element.value).startsWith(`${value}:`)),
    );
    if (!found) throw new Error(`clickViewButton: no button ${actionId}${value ? ` with value ${value}` : ''} in view ${view.id}`);
    const { opened_by: _openedBy, updates: _updates, ...slackView } = view;
    const payload = {
      type: 'block_actions',
      user: this.user(user),
      api_app_id: FAKE_APP_ID,
      token: this.verificationToken,
      container: { type: 'view', view_id: view.id },
      trigger_id: this.fake.newTriggerId(),
      team: { id: this.teamId, domain: TEAM_DOMAIN },
      enterprise: this.enterprise(),
      is_enterprise_install: false,
      view: { ...slackView, blocks, state: { values: stateValues(blocks, {}) }, app_id: FAKE_APP_ID, bot_id: 'BBOT', team_id: this.teamId },
      actions: [
        {
          action_id: found.element.action_id,
          block_id: found.blockId,
          text: found.element.text,
          ...(found.element.value !== undefined ? { value: found.element.value } : {}),
          ...(found.element.style !== undefined ? { style: found.element.style } : {}),
          type: 'button',
          action_ts: slackNow(),
        },
      ],
    };
    return this.postPayload(payload, sign);
  }

  /** Submit a modal the app opened, with `values` typed into its inputs: a view_submission payload. */
  submitView(input: SubmitInput, sign?: SignOptions): Promise<DriverResponse> {
    const { view, user, values = {} } = input;
    // Fake-only bookkeeping is not part of Slack's payload.
    const { opened_by: _openedBy, updates: _updates, ...slackView } = view;
    const blocks = withBlockIds(view.blocks);
    const payload = {
      type: 'view_submission',
      team: { id: this.teamId, domain: TEAM_DOMAIN },
      user: this.user(user),
      api_app_id: FAKE_APP_ID,
      token: this.verificationToken,
      trigger_id: this.fake.newTriggerId(),
      view: {
        ...slackView,
        id: view.id,
        team_id: this.teamId,
        type: view.type,
        blocks,
        callback_id: view.callback_id,
        private_metadata: view.private_metadata,
        state: { values: stateValues(blocks, values) },
        hash: view.hash,
        title: view.title,
        root_view_id: view.root_view_id,
        previous_view_id: view.previous_view_id,
        app_id: FAKE_APP_ID,
        bot_id: 'BBOT',
      },
      response_urls: [],
      is_enterprise_install: false,
      enterprise: this.enterprise(),
    };
    return this.postPayload(payload, sign);
  }

  /** An Events API callback (JSON), e.g. app_home_opened. */
  event(input: EventInput, sign?: SignOptions): Promise<DriverResponse> {
    const body = JSON.stringify({
      token: this.verificationToken,
      team_id: this.teamId,
      api_app_id: FAKE_APP_ID,
      event: { event_ts: slackNow(), ...input.event },
      type: 'event_callback',
      event_id: `Ev${randomBytes(5).toString('hex').toUpperCase()}`,
      event_time: Math.floor(Date.now() / 1000),
      ...(this.enterpriseId !== null ? { enterprise_id: this.enterpriseId } : {}),
      authorizations: [{ enterprise_id: this.enterpriseId, team_id: this.teamId, user_id: 'UBOT', is_bot: true, is_enterprise_install: false }],
      is_ext_shared_channel: false,
    });
    const headers: Record<string, string> = {};
    if (input.retryNum !== undefined) headers['X-Slack-Retry-Num'] = String(input.retryNum);
    if (input.retryReason !== undefined) headers['X-Slack-Retry-Reason'] = input.retryReason;
    return this.post(body, 'application/json', sign, headers);
  }

  /** POST a raw body to /slack/events, signed unless `sign.omit`. */
  async post(body: string, contentType: string, sign: SignOptions = {}, extraHeaders: Record<string, string> = {}): Promise<DriverResponse> {
    const headers: Record<string, string> = { 'Content-Type': contentType, ...extraHeaders };
    if (!sign.omit) {
      const timestamp = sign.timestamp ?? Math.floor(Date.now() / 1000);
      headers['X-Slack-Request-Timestamp'] = String(timestamp);
      headers['X-Slack-Signature'] = sign.signature ?? slackSignature(sign.secret ?? this.signingSecret, timestamp, body);
    }
    const started = performance.now();
    const response = await fetch(`${this.appUrl}/slack/events`, { method: 'POST', headers, body });
    const ms = performance.now() - started;
    const text = await response.text();
    return { status: response.status, text, json: parseJson(text), ms };
  }

  private postPayload(payload: unknown, sign?: SignOptions): Promise<DriverResponse> {
    return this.post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), FORM, sign);
  }

  private user(id: string): { id: string; username: string; name: string; team_id: string } {
    return { id, username: userName(id), name: userName(id), team_id: this.userTeamId };
  }
}

/** Slack's request signature: `v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<raw body>`. */
export function slackSignature(secret: string, timestampSeconds: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestampSeconds}:${body}`).digest('hex')}`;
}

// -------------------------------------------------------------------- block helpers

type Obj = Record<string, unknown>;

interface FoundElement {
  element: Obj;
  blockId: string;
}

/** Slack gives every block a block_id; blocks the app left without one get a stable made-up id. */
function withBlockIds(blocks: unknown[]): Obj[] {
  return blocks.filter(isObject).map((b, i) => (typeof b.block_id === 'string' ? b : { ...b, block_id: `fake-b${i}` }));
}

/** Elements a user can act on: actions elements, section accessories, input elements. */
function interactiveElements(blocks: Obj[]): FoundElement[] {
  const found: FoundElement[] = [];
  for (const block of blocks) {
    const blockId = String(block.block_id);
    const candidates = block.type === 'actions' && Array.isArray(block.elements) ? block.elements : [block.accessory, block.element];
    for (const element of candidates) {
      if (isObject(element) && typeof element.action_id === 'string') found.push({ element, blockId });
    }
  }
  return found;
}

function findButton(blocks: Obj[], actionId: string): FoundElement | undefined {
  return interactiveElements(blocks).find((e) => e.element.type === 'button' && e.element.action_id === actionId);
}

/**
 * Slack's `state.values`: every stateful element, keyed by block_id then action_id, with what the
 * user entered (null when left empty, as Slack does).
 */
function stateValues(blocks: Obj[], values: Record<string, Record<string, string | string[]>>): Record<string, Record<string, Obj>> {
  const state: Record<string, Record<string, Obj>> = {};
  const known = new Set<string>();
  for (const { element, blockId } of interactiveElements(blocks)) {
    if (element.type === 'button' || element.type === 'overflow') continue;
    const actionId = String(element.action_id);
    known.add(`${blockId}/${actionId}`);
    const entered = values[blockId]?.[actionId];
    (state[blockId] ??= {})[actionId] = elementState(element, entered, `${blockId}/${actionId}`);
  }
  for (const [blockId, byAction] of Object.entries(values)) {
    for (const actionId of Object.keys(byAction)) {
      if (!known.has(`${blockId}/${actionId}`)) {
        throw new Error(`submitView: no input ${blockId}/${actionId} in the view; inputs: ${[...known].join(', ') || 'none'}`);
      }
    }
  }
  return state;
}

function elementState(element: Obj, entered: string | string[] | undefined, where: string): Obj {
  const type = String(element.type);
  const one = Array.isArray(entered) ? entered[0] : entered;
  const many = entered === undefined ? [] : Array.isArray(entered) ? entered : [entered];
  switch (type) {
    case 'static_select':
    case 'radio_buttons':
      return { type, selected_option: one === undefined ? null : option(element, one, where) };
    case 'multi_static_select':
    case 'checkboxes':
      return { type, selected_options: many.map((v) => option(element, v, where)) };
    case 'users_select':
      return { type, selected_user: one ?? null };
    case 'multi_users_select':
      return { type, selected_users: many };
    case 'conversations_select':
      return { type, selected_conversation: one ?? null };
    case 'channels_select':
      return { type, selected_channel: one ?? null };
    case 'datepicker':
      return { type, selected_date: one ?? null };
    case 'timepicker':
      return { type, selected_time: one ?? null };
    default:
      // plain_text_input, number_input, email_text_input, url_text_input...
      return { type, value: one ?? null };
  }
}

/** The option object Slack sends back for a chosen value (the view's own option, as Slack does). */
function option(element: Obj, value: string, where: string): Obj {
  const groups = Array.isArray(element.option_groups) ? element.option_groups.filter(isObject) : [];
  const options = [...(Array.isArray(element.options) ? element.options : []), ...groups.flatMap((g) => (Array.isArray(g.options) ? g.options : []))].filter(
    isObject,
  );
  const found = options.find((o) => o.value === value);
  if (!found) {
    throw new Error(`submitView: ${where} has no option "${value}"; options: ${options.map((o) => String(o.value)).join(', ')}`);
  }
  return { text: found.text, value: found.value };
}

// -------------------------------------------------------------------- small things

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Slack's "1700000000.123456" for the current time. */
function slackNow(): string {
  return (Date.now() / 1000).toFixed(6);
}

function channelName(id: string): string {
  return id.replace(/^C_?/, '').toLowerCase() || 'general';
}

function userName(id: string): string {
  return id.replace(/^U_?/, '').toLowerCase() || 'someone';
}
