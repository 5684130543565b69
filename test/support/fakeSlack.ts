// A fake Slack Web API on 127.0.0.1, for integration tests: the app's WebClient points at it with
// `slackApiUrl: fake.url`. It answers the way Slack does (HTTP 200 `{ ok: false, error }` for
// errors, 429 + Retry-After when rate-limited), keeps what the app posted so tests can assert on
// it, and refuses what Slack would refuse (limits from slackLimits.ts).
//
// How @slack/web-api 8 talks to it (see node_modules/@slack/web-api/dist/WebClient.js):
// - POST <slackApiUrl><method>, `Content-Type: application/x-www-form-urlencoded`; every value
//   that is not a string/number/boolean (blocks, view, files...) is JSON-stringified first.
// - The token goes in `Authorization: Bearer` (a per-call `token` argument replaces the header's
//   token and is also left in the form body), so the fake reads the header, then a `token` field.
// - Any Buffer argument switches the whole body to multipart/form-data (that is how
//   filesUploadV2 sends the bytes to the upload URL: one part named `body`, filename `Untitled`).
// - A 429 with Retry-After is a WebAPIRateLimitedError when `rejectRateLimitedCalls` is set,
//   otherwise the client pauses its whole queue and retries.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseQuery } from 'node:querystring';
import { checkMessage, checkView, type LimitProblem } from './slackLimits.js';
import { FakeFunctions } from './fakeFunctions.js';

export type Json = Record<string, unknown>;

export interface FakeCall {
  method: string;
  /** Arguments as the app sent them (JSON-encoded values decoded), without the token. */
  args: Json;
  at: number;
  status: number;
  response: Json;
  /** The request's headers, names lower-cased, without the token (Authorization). */
  headers: Record<string, string>;
}

export interface MessageVersion {
  text?: string;
  blocks?: unknown[];
  at: number;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
  /** The bot user that posted it. */
  user: string;
  /** How many chat.update calls changed it. */
  updates: number;
  /** Every version, the first being the post itself. */
  history: MessageVersion[];
}

export interface FakeEphemeral {
  channel: string;
  user: string;
  message_ts: string;
  thread_ts?: string;
  text?: string;
  blocks?: unknown[];
  at: number;
}

export interface UploadedFile {
  id: string;
  filename: string;
  title: string;
  /** The bytes posted to the upload URL. */
  content: Buffer;
  /** The `length` given to files.getUploadURLExternal. */
  declaredLength: number;
  channel_id?: string;
  thread_ts?: string;
  initial_comment?: string;
  at: number;
}

export interface FakeResponse {
  url: string;
  /** The JSON body (Bolt's respond() posts JSON), or the raw text when it is not JSON. */
  body: unknown;
  status: number;
  at: number;
  /** The request's headers, names lower-cased. */
  headers: Record<string, string>;
}

/** A view as stored by the fake: what the app sent plus what Slack adds. */
export interface FakeView {
  id: string;
  type: string;
  callback_id: string;
  private_metadata: string;
  external_id: string;
  hash: string;
  blocks: unknown[];
  root_view_id: string;
  previous_view_id: string | null;
  /** views.publish: whose Home tab. */
  user_id?: string;
  /** The views.* call that created it. */
  opened_by: 'views.open' | 'views.push' | 'views.publish';
  updates: number;
  [key: string]: unknown;
}

export interface FakeViews {
  byId: Map<string, FakeView>;
  /** In the order they were opened (current state). */
  list: FakeView[];
}

/**
 * What `failNext` injects. `{ error }` answers HTTP 200 `{ ok: false, error }`; `{ status }` answers
 * that status (429 gets `Retry-After` and `{ ok: false, error: 'ratelimited' }`).
 */
export type InjectedFailure = { error: string } | { status: number; retryAfter?: number };

export type CustomHandler = (args: Json) => Json;

export interface FakeSlackOptions {
  /** When set, any other token is `invalid_auth`. */
  token?: string;
  /** chat.postMessage per channel: burst size; refills 1 per second (Slack's ~1/s). Infinity: off. */
  postMessageBurst?: number;
  /** chat.update across the workspace (Tier 3, ~50/min). Off (Infinity) unless set. */
  chatUpdatePerMinute?: number;
}

export const FAKE_TEAM_ID = 'T0TEST';
export const FAKE_BOT_USER_ID = 'UBOT';
export const FAKE_BOT_ID = 'BBOT';
export const FAKE_APP_ID = 'A0TEST';

/** Slack: a response_url takes 5 posts (within 30 minutes). */
const RESPONSE_URL_USES = 5;
/** Slack: a trigger_id must be exchanged within 3 s. */
const TRIGGER_TTL_MS = 3000;
/** Arguments web-api JSON-encodes, decoded back here. */
const JSON_ARGS = new Set(['blocks', 'attachments', 'view', 'files', 'metadata', 'user_auth_blocks']);

/** A full HTTP answer; method handlers return a plain Json body unless they need another status. */
class Reply {
  constructor(
    readonly status: number,
    readonly body: Json,
    readonly headers: Record<string, string> = {},
  ) {}
}

/** A token bucket: `burst` tokens, refilled at `perSecond`. */
class Bucket {
  private tokens: number;
  private last = Date.now();
  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }
  /** 0 when a token was taken, else the seconds to wait for one (rounded up, at least 1). */
  take(): number {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - this.tokens) / this.perSecond));
  }
}

export class FakeSlack {
  readonly calls: FakeCall[] = [];
  readonly ephemerals: FakeEphemeral[] = [];
  readonly files: UploadedFile[] = [];
  readonly responses: FakeResponse[] = [];
  readonly views: FakeViews;
  /** Workflow Builder steps: executions, and the completions the app sent (fakeFunctions.ts). */
  readonly functions = new FakeFunctions();

  private readonly store = new Map<string, FakeMessage>(); // key: channel + '/' + ts
  private readonly viewById = new Map<string, FakeView>();
  private readonly viewOrder: string[] = [];
  private readonly homeViewByUser = new Map<string, string>();
  private readonly pendingUploads = new Map<string, { filename: string; length: number; content?: Buffer }>();
  private readonly usergroups = new Map<string, string[]>();
  private readonly channelMembers = new Map<string, string[]>();
  /** users.info profiles set by tests; other users get a name made from their id. */
  private readonly users = new Map<string, { display_name: string; real_name: string }>();
  /** Milliseconds each call to a method waits before it is answered (a slow Slack). */
  private readonly delays = new Map<string, number>();
  private readonly failures = new Map<string, { failure: InjectedFailure; times: number; when: ((args: Json) => boolean) | undefined }>();
  private readonly handlers = new Map<string, CustomHandler>();
  private readonly triggersIssued = new Map<string, number>();
  private readonly triggersUsed = new Set<string>();
  private readonly responseUrlUses = new Map<number, number>();
  private readonly postBuckets = new Map<string, Bucket>();
  private updateBucket: Bucket | undefined;
  private tokenScopes: string[] | null = null;
  private seq = 0; // never reset, so ids and ts stay unique across reset()

  constructor(
    private readonly server: Server,
    readonly origin: string,
    private readonly opts: FakeSlackOptions,
  ) {
    const viewById = this.viewById;
    const viewOrder = this.viewOrder;
    this.views = {
      byId: viewById,
      get list() {
        return viewOrder.map((id) => viewById.get(id)).filter((v): v is FakeView => v !== undefined);
      },
    };
    this.resetBuckets();
  }

  /** Base URL for WebClient's `slackApiUrl`. */
  get url(): string {
    return `${this.origin}/api/`;
  }

  callsTo(method: string): FakeCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** Stored (non-ephemeral) messages in posting order, current state. */
  messages(channel?: string): FakeMessage[] {
    const all = [...this.store.values()];
    return channel === undefined ? all : all.filter((m) => m.channel === channel);
  }

  message(channel: string, ts: string): FakeMessage | undefined {
    return this.store.get(`${channel}/${ts}`);
  }

  /** Replies in a thread, oldest first (the parent itself excluded). */
  thread(channel: string, threadTs: string): FakeMessage[] {
    return this.messages(channel).filter((m) => m.thread_ts === threadTs && m.ts !== threadTs);
  }

  /** The last view opened (optionally with this callback_id). */
  lastView(callbackId?: string): FakeView | undefined {
    const list = this.views.list.filter((v) => callbackId === undefined || v.callback_id === callbackId);
    return list.at(-1);
  }

  /** The user's published App Home view, current state. */
  homeOf(userId: string): FakeView | undefined {
    return this.viewById.get(this.homeViewByUser.get(userId) ?? '');
  }

  /** The bot token's scopes, sent in auth.test's `x-oauth-scopes` header (null: no header). */
  setTokenScopes(scopes: readonly string[] | null): void {
    this.tokenScopes = scopes === null ? null : [...scopes];
  }

  setUsergroup(id: string, users: string[]): void {
    this.usergroups.set(id, [...users]);
  }

  /** Who is in a channel (conversations.members); a channel never set is `channel_not_found`. Kept by reset(). */
  setChannelMembers(channel: string, users: string[]): void {
    this.channelMembers.set(channel, [...users]);
  }

  /** A user's profile as users.info answers it (display name may be '' as in Slack). Kept by reset(). */
  setUser(id: string, profile: { displayName: string; realName?: string }): void {
    this.users.set(id, { display_name: profile.displayName, real_name: profile.realName ?? profile.displayName });
  }

  /** Make every call to `method` wait `ms` before it is answered (0: no wait). */
  delay(method: string, ms: number): void {
    if (ms > 0) this.delays.set(method, ms);
    else this.delays.delete(method);
  }

  /** Answer `method` with `handler` (adds a method the fake lacks, or overrides one). Kept by reset(). */
  setHandler(method: string, handler: CustomHandler): void {
    this.handlers.set(method, handler);
  }

  /** A response_url for a command or click payload: POSTs to it land in `responses`. */
  newResponseUrl(): string {
    const n = this.next();
    this.responseUrlUses.set(n, 0);
    return `${this.origin}/respond/${n}`;
  }

  /** A trigger_id shaped like Slack's; views.open refuses it after 3 s or a second use. */
  newTriggerId(): string {
    const n = this.next();
    const id = `${1_000_000_000 + n}.${FAKE_TEAM_ID.length}${n}.${n.toString(16).padStart(8, '0')}`;
    this.triggersIssued.set(id, Date.now());
    return id;
  }

  /**
   * Make the next `times` calls to `method` fail. `method` is a Web API method, or `upload`
   * (the upload URL) or `respond` (response_urls). `when`: only calls whose arguments it accepts
   * fail (and count), e.g. posts to one channel.
   */
  failNext(method: string, failure: InjectedFailure, times = 1, when?: (args: Json) => boolean): void {
    this.failures.set(method, { failure, times, when });
  }

  /** Stop injecting failures (for one method, or all): Slack has recovered. */
  clearFailures(method?: string): void {
    if (method === undefined) this.failures.clear();
    else this.failures.delete(method);
  }

  /** Poll `fn` every 20 ms until it returns something truthy; on timeout, say what Slack saw. */
  async waitFor<T>(fn: () => T | undefined | null | false, timeoutMs = 5000, label?: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    for (;;) {
      try {
        const value = fn();
        if (value) return value;
      } catch (error) {
        lastError = error; // not there yet (e.g. an index out of range): keep polling
      }
      if (Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const recent = this.calls.slice(-10).map(describeCall).join('\n  ');
    const cause = lastError instanceof Error ? `\nlast error from the check: ${lastError.message}` : '';
    throw new Error(
      `fakeSlack.waitFor timed out after ${timeoutMs} ms${label ? `: ${label}` : ''}${cause}\n` +
        `last ${Math.min(10, this.calls.length)} of ${this.calls.length} calls:\n  ${recent || '(none)'}`,
    );
  }

  /** Forget what happened (calls, messages, views, files, failures, delays, rate limits); keep usergroups, channel members, users and handlers. */
  reset(): void {
    this.calls.length = 0;
    this.ephemerals.length = 0;
    this.files.length = 0;
    this.responses.length = 0;
    this.viewOrder.length = 0;
    for (const map of [this.store, this.viewById, this.homeViewByUser, this.pendingUploads, this.failures, this.triggersIssued, this.responseUrlUses]) {
      map.clear();
    }
    this.triggersUsed.clear();
    this.delays.clear();
    this.resetBuckets();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------- HTTP

  /** @internal the server's request listener. */
  async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const raw = await readBody(req);
    const contentType = req.headers['content-type'] ?? '';
    const [, root, rest] = url.pathname.split('/');
    if (root === 'api' && rest) {
      const wait = this.delays.get(rest);
      if (wait) await new Promise((resolve) => setTimeout(resolve, wait));
      const reply = this.api(rest, req, raw, contentType, url.searchParams);
      res.writeHead(reply.status, { 'Content-Type': 'application/json; charset=utf-8', ...reply.headers });
      res.end(JSON.stringify(reply.body));
    } else if (root === 'upload' && rest) {
      const { status, text } = this.upload(rest, raw, contentType);
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(text);
    } else if (root === 'respond' && rest) {
      const { status, text } = this.respond(url.href, Number(rest), raw, headersOf(req));
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(text);
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
    }
  }

  private api(method: string, req: IncomingMessage, raw: Buffer, contentType: string, query: URLSearchParams): Reply {
    const parsed = parseArgs(raw, contentType, query);
    const token = bearer(req.headers.authorization) ?? stringArg(parsed.args, 'token');
    delete parsed.args.token; // never keep tokens in the recorded calls
    const reply = this.answer(method, parsed, token);
    this.calls.push({ method, args: parsed.args, at: Date.now(), status: reply.status, response: reply.body, headers: headersOf(req) });
    return reply;
  }

  private answer(method: string, parsed: ParsedArgs, token: string | undefined): Reply {
    const handler = this.handlers.get(method) ?? (Object.hasOwn(this.methods, method) ? this.methods[method] : undefined);
    // Slack says unknown_method before looking at the token.
    if (!handler) return ok200({ ok: false, error: 'unknown_method', req_method: method });
    if (!token) return ok200({ ok: false, error: 'not_authed' });
    if (this.opts.token !== undefined && token !== this.opts.token) return ok200({ ok: false, error: 'invalid_auth' });
    const injected = this.injectedFailure(method, parsed.args);
    if (injected) return injected;
    if (parsed.error) return ok200({ ok: false, error: parsed.error });
    const answer = handler(parsed.args);
    return answer instanceof Reply ? answer : ok200(answer);
  }

  private injectedFailure(method: string, args?: Json): Reply | undefined {
    const entry = this.failures.get(method);
    if (!entry || (entry.when && !(args && entry.when(args)))) return undefined;
    entry.times -= 1;
    if (entry.times <= 0) this.failures.delete(method);
    const { failure } = entry;
    if ('error' in failure) return ok200({ ok: false, error: failure.error });
    if (failure.status === 429) return rateLimited(failure.retryAfter ?? 1);
    return new Reply(failure.status, { ok: false, error: `http_${failure.status}` });
  }

  // ---------------------------------------------------------------- methods

  private readonly methods: Record<string, (args: Json) => Json | Reply> = {
    'auth.test': () => {
      const body = {
        ok: true,
        url: 'https://countersign-test.slack.com/',
        team: 'Countersign Test',
        user: 'countersign',
        team_id: FAKE_TEAM_ID,
        user_id: FAKE_BOT_USER_ID,
        bot_id: FAKE_BOT_ID,
        is_enterprise_install: false,
      };
      // Slack lists the token's scopes in this header on every answer; auth.test is where apps read it.
      return this.tokenScopes === null ? body : new Reply(200, body, { 'x-oauth-scopes': this.tokenScopes.join(',') });
    },

    'chat.postMessage': (args) => {
      const channel = stringArg(args, 'channel');
      if (!channel) return { ok: false, error: 'channel_not_found' };
      const wait = this.postBucket(channel).take();
      if (wait > 0) return rateLimited(wait);
      const content = messageContent(args);
      const problem = content.error ?? checkMessage(content, 'chat.postMessage');
      if (problem) return limitError(problem);
      const ts = this.nextTs();
      const thread_ts = stringArg(args, 'thread_ts');
      const stored: FakeMessage = {
        channel,
        ts,
        ...(thread_ts ? { thread_ts } : {}),
        ...defined(content),
        user: FAKE_BOT_USER_ID,
        updates: 0,
        history: [{ ...defined(content), at: Date.now() }],
      };
      this.store.set(`${channel}/${ts}`, stored);
      return { ok: true, channel, ts, message: slackMessage(stored) };
    },

    'chat.update': (args) => {
      const channel = stringArg(args, 'channel');
      const ts = stringArg(args, 'ts');
      if (!channel) return { ok: false, error: 'channel_not_found' };
      const stored = ts ? this.message(channel, ts) : undefined;
      if (!stored) return { ok: false, error: 'message_not_found' };
      const wait = this.updateBucket?.take() ?? 0;
      if (wait > 0) return rateLimited(wait);
      const content = messageContent(args);
      const problem = content.error ?? checkMessage(content, 'chat.update');
      if (problem) return limitError(problem);
      // Slack keeps what an update leaves out (e.g. updating text alone keeps the blocks).
      if (content.text !== undefined) stored.text = content.text;
      if (content.blocks !== undefined) stored.blocks = content.blocks;
      stored.updates += 1;
      stored.history.push({ ...defined({ text: stored.text, blocks: stored.blocks }), at: Date.now() });
      return { ok: true, channel, ts: stored.ts, text: stored.text ?? '', message: slackMessage(stored) };
    },

    'chat.delete': (args) => {
      const channel = stringArg(args, 'channel') ?? '';
      const ts = stringArg(args, 'ts') ?? '';
      if (!this.store.delete(`${channel}/${ts}`)) return { ok: false, error: 'message_not_found' };
      return { ok: true, channel, ts };
    },

    'chat.postEphemeral': (args) => {
      const channel = stringArg(args, 'channel');
      const user = stringArg(args, 'user');
      if (!channel) return { ok: false, error: 'channel_not_found' };
      if (!user) return { ok: false, error: 'user_not_in_channel' };
      const content = messageContent(args);
      const problem = content.error ?? checkMessage(content, 'chat.postEphemeral');
      if (problem) return limitError(problem);
      const message_ts = this.nextTs();
      const thread_ts = stringArg(args, 'thread_ts');
      this.ephemerals.push({
        channel,
        user,
        message_ts,
        ...(thread_ts ? { thread_ts } : {}),
        ...defined(content),
        at: Date.now(),
      });
      return { ok: true, message_ts };
    },

    'chat.getPermalink': (args) => {
      const channel = stringArg(args, 'channel');
      const ts = stringArg(args, 'message_ts');
      if (!channel) return { ok: false, error: 'channel_not_found' };
      if (!ts || !this.message(channel, ts)) return { ok: false, error: 'message_not_found' };
      return { ok: true, channel, permalink: `https://fake.slack/archives/${channel}/p${ts.replace('.', '')}` };
    },

    'views.open': (args) => this.openView('views.open', args),
    'views.push': (args) => this.openView('views.push', args),

    'views.update': (args) => {
      const viewId = stringArg(args, 'view_id');
      const externalId = stringArg(args, 'external_id');
      if (!viewId && !externalId) return { ok: false, error: 'invalid_arguments' };
      const stored = viewId ? this.viewById.get(viewId) : [...this.viewById.values()].find((v) => v.external_id === externalId);
      if (!stored) return { ok: false, error: 'not_found' };
      return this.replaceView(stored, args);
    },

    'views.publish': (args) => {
      const userId = stringArg(args, 'user_id');
      if (!userId) return { ok: false, error: 'invalid_arguments' };
      const view = args.view;
      if (isObject(view) && view.type !== 'home') return viewError({ error: 'invalid_arguments', reason: '/view/type: must be home' });
      const existing = this.viewById.get(this.homeViewByUser.get(userId) ?? '');
      if (existing) return this.replaceView(existing, args);
      const created = this.createView('views.publish', args, { user_id: userId });
      if (created.refusal) return created.refusal;
      this.homeViewByUser.set(userId, created.view.id);
      return { ok: true, view: created.view };
    },

    'files.upload': () => ({ ok: false, error: 'method_deprecated' }),

    'files.getUploadURLExternal': (args) => {
      const filename = stringArg(args, 'filename');
      const length = Number(args.length);
      if (!filename || !Number.isInteger(length) || length <= 0) return { ok: false, error: 'invalid_arguments' };
      const file_id = `F${this.id()}`;
      this.pendingUploads.set(file_id, { filename, length });
      return { ok: true, upload_url: `${this.origin}/upload/${file_id}`, file_id };
    },

    'files.completeUploadExternal': (args) => {
      const files = args.files;
      if (!Array.isArray(files) || files.length === 0) return { ok: false, error: 'invalid_arguments' };
      const channel_id = stringArg(args, 'channel_id');
      const thread_ts = stringArg(args, 'thread_ts');
      const initial_comment = stringArg(args, 'initial_comment');
      if (thread_ts && !channel_id) return { ok: false, error: 'invalid_arguments' };
      const entries = files.map((f) => (isObject(f) ? f : {}));
      for (const entry of entries) {
        const pending = this.pendingUploads.get(String(entry.id));
        // Unknown id, or nothing was posted to its upload URL.
        if (!pending?.content) return { ok: false, error: 'file_not_found' };
      }
      const answered = entries.map((entry) => {
        const id = String(entry.id);
        const pending = this.pendingUploads.get(id)!;
        const title = typeof entry.title === 'string' ? entry.title : pending.filename;
        this.pendingUploads.delete(id);
        this.files.push({
          id,
          filename: pending.filename,
          title,
          content: pending.content!,
          declaredLength: pending.length,
          ...defined({ channel_id, thread_ts, initial_comment }),
          at: Date.now(),
        });
        return { id, title };
      });
      return { ok: true, files: answered };
    },

    // A DM channel per user, as Slack's: the same id every time for the same user.
    'conversations.open': (args) => {
      const users = stringArg(args, 'users') ?? '';
      if (!/^[UW][A-Z0-9]+$/.test(users)) return { ok: false, error: users === '' ? 'users_list_not_supplied' : 'user_not_found' };
      return { ok: true, channel: { id: `D${users.slice(1)}` } };
    },

    // Paginated as Slack's: `limit` per page (default 100, at most 1000), an opaque next_cursor while more remain.
    'conversations.members': (args) => {
      const members = this.channelMembers.get(stringArg(args, 'channel') ?? '');
      if (!members) return { ok: false, error: 'channel_not_found' };
      const limit = Number(stringArg(args, 'limit') ?? 100);
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return { ok: false, error: 'invalid_limit' };
      const cursor = stringArg(args, 'cursor');
      const start =
        cursor === undefined
          ? 0
          : Number(
              Buffer.from(cursor, 'base64')
                .toString('utf8')
                .replace(/^offset:/, ''),
            );
      if (!Number.isInteger(start) || start < 0 || start > members.length) return { ok: false, error: 'invalid_cursor' };
      const page = members.slice(start, start + limit);
      const next = start + limit < members.length ? Buffer.from(`offset:${start + limit}`).toString('base64') : '';
      return { ok: true, members: page, response_metadata: { next_cursor: next } };
    },

    'functions.completeSuccess': (args) => this.functions.completeSuccess(args),
    'functions.completeError': (args) => this.functions.completeError(args),

    'usergroups.users.list': (args) => {
      const users = this.usergroups.get(stringArg(args, 'usergroup') ?? '');
      return users ? { ok: true, users: [...users] } : { ok: false, error: 'no_such_subteam' };
    },

    'users.info': (args) => {
      const id = stringArg(args, 'user');
      if (!id) return { ok: false, error: 'user_not_found' };
      const name = id.toLowerCase();
      const profile = this.users.get(id) ?? { display_name: name, real_name: name };
      return {
        ok: true,
        user: { id, team_id: FAKE_TEAM_ID, name, real_name: profile.real_name, tz: 'UTC', is_bot: false, profile },
      };
    },
  };

  // ---------------------------------------------------------------- views

  private openView(method: 'views.open' | 'views.push', args: Json): Json {
    const triggerId = stringArg(args, 'trigger_id');
    if (!triggerId) return { ok: false, error: 'invalid_arguments' };
    // Slack: one exchange per trigger_id ("exchanged_trigger_id"), within 3 s ("expired_trigger_id").
    if (this.triggersUsed.has(triggerId)) return { ok: false, error: 'exchanged_trigger_id' };
    const issued = this.triggersIssued.get(triggerId);
    if (issued !== undefined && Date.now() - issued > TRIGGER_TTL_MS) return { ok: false, error: 'expired_trigger_id' };
    const created = this.createView(method, args, {});
    if (created.refusal) return created.refusal;
    this.triggersUsed.add(triggerId);
    return { ok: true, view: created.view };
  }

  /** A new stored view, or Slack's refusal. */
  private createView(method: FakeView['opened_by'], args: Json, extra: Partial<FakeView>): { view: FakeView; refusal?: undefined } | { refusal: Json } {
    const view = args.view;
    const problem = checkView(view);
    if (problem || !isObject(view)) return { refusal: viewError(problem ?? { error: 'invalid_arguments', reason: 'view' }) };
    const id = `V${this.id()}`;
    const stored: FakeView = {
      ...view,
      ...slackViewFields(view, id, this.id()),
      root_view_id: id,
      previous_view_id: null,
      opened_by: method,
      updates: 0,
      ...extra,
    };
    this.viewById.set(id, stored);
    this.viewOrder.push(id);
    return { view: stored };
  }

  private replaceView(stored: FakeView, args: Json): Json {
    const hash = stringArg(args, 'hash');
    if (hash && hash !== stored.hash) return { ok: false, error: 'hash_conflict' };
    const view = args.view;
    const problem = checkView(view);
    if (problem || !isObject(view)) return viewError(problem ?? { error: 'invalid_arguments', reason: 'view' });
    const kept = { id: stored.id, root_view_id: stored.root_view_id, previous_view_id: stored.previous_view_id };
    const next: FakeView = {
      ...view,
      ...slackViewFields(view, stored.id, this.id()),
      ...kept,
      opened_by: stored.opened_by,
      updates: stored.updates + 1,
      ...(stored.user_id ? { user_id: stored.user_id } : {}),
    };
    // Same object, new contents: references held by tests see the current state.
    for (const key of Object.keys(stored)) delete stored[key];
    Object.assign(stored, next);
    return { ok: true, view: stored };
  }

  // ---------------------------------------------------------------- uploads and response_urls

  private upload(fileId: string, raw: Buffer, contentType: string): { status: number; text: string } {
    const injected = this.injectedFailure('upload');
    if (injected) return { status: injected.status === 200 ? 500 : injected.status, text: 'injected failure' };
    const pending = this.pendingUploads.get(fileId);
    if (!pending) return { status: 404, text: 'file not found' };
    pending.content = uploadedBytes(raw, contentType);
    return { status: 200, text: `OK - ${pending.content.length}` };
  }

  private respond(url: string, n: number, raw: Buffer, headers: Record<string, string>): { status: number; text: string } {
    const text = raw.toString('utf8');
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    const uses = this.responseUrlUses.get(n);
    const injected = this.injectedFailure('respond');
    let status = 200;
    let answer = 'ok';
    if (injected) [status, answer] = [injected.status === 200 ? 500 : injected.status, 'injected failure'];
    else if (uses === undefined) [status, answer] = [404, 'no_service'];
    else if (uses >= RESPONSE_URL_USES) [status, answer] = [404, 'used_url'];
    else this.responseUrlUses.set(n, uses + 1);
    this.responses.push({ url, body, status, at: Date.now(), headers });
    return { status, text: answer };
  }

  // ---------------------------------------------------------------- helpers

  private postBucket(channel: string): Bucket {
    let bucket = this.postBuckets.get(channel);
    if (!bucket) {
      bucket = new Bucket(this.opts.postMessageBurst ?? 3, 1);
      this.postBuckets.set(channel, bucket);
    }
    return bucket;
  }

  private resetBuckets(): void {
    this.postBuckets.clear();
    const perMinute = this.opts.chatUpdatePerMinute;
    this.updateBucket = perMinute !== undefined && Number.isFinite(perMinute) ? new Bucket(perMinute, perMinute / 60) : undefined;
  }

  private next(): number {
    this.seq += 1;
    return this.seq;
  }

  /** Uppercase id body, like Slack's `V0123ABCD`. */
  private id(): string {
    return this.next().toString(36).toUpperCase().padStart(8, '0');
  }

  /** Unique, increasing, Slack-shaped: 1700000000.000100, 1700000000.000200, ... */
  private nextTs(): string {
    const micros = this.next() * 100;
    return `${1_700_000_000 + Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;
  }
}

export async function startFakeSlack(opts: FakeSlackOptions = {}): Promise<FakeSlack> {
  let fake: FakeSlack | undefined;
  const server = createServer((req, res) => {
    fake!.onRequest(req, res).catch((error: unknown) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`fakeSlack crashed: ${String(error)}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  fake = new FakeSlack(server, `http://127.0.0.1:${port}`, opts);
  return fake;
}

// -------------------------------------------------------------------- request parsing

interface ParsedArgs {
  args: Json;
  /** Set when the body itself is unreadable. */
  error?: string;
}

/** A request's headers as the fake records them: every one but the token. */
export function headersOf(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) if (name !== 'authorization' && value !== undefined) out[name] = String(value);
  return out;
}

function parseArgs(raw: Buffer, contentType: string, query: URLSearchParams): ParsedArgs {
  const args: Json = Object.fromEntries(query);
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    try {
      const body: unknown = raw.length ? JSON.parse(raw.toString('utf8')) : {};
      if (!isObject(body)) return { args, error: 'invalid_json' };
      return { args: { ...args, ...body } };
    } catch {
      return { args, error: 'invalid_json' };
    }
  }
  if (type === 'multipart/form-data') {
    for (const part of parseMultipart(raw, contentType)) {
      args[part.name] = part.filename === undefined ? part.data.toString('utf8') : part.data;
    }
  } else {
    for (const [key, value] of Object.entries(parseQuery(raw.toString('utf8')))) {
      args[key] = Array.isArray(value) ? value.at(-1) : value;
    }
  }
  // Form bodies carry nested values as JSON strings: decode the ones Slack expects as JSON.
  for (const key of JSON_ARGS) {
    const value = args[key];
    if (typeof value !== 'string') continue;
    try {
      args[key] = JSON.parse(value);
    } catch {
      // left as a string; the method refuses it (e.g. invalid_blocks_format)
    }
  }
  return { args };
}

interface FormPart {
  name: string;
  filename?: string;
  data: Buffer;
}

/** Just enough multipart/form-data parsing for the parts undici's FormData sends. */
function parseMultipart(raw: Buffer, contentType: string): FormPart[] {
  const match = /boundary=(?:"([^"]+)"|([^;]+))/i.exec(contentType);
  if (!match) return [];
  const delimiter = Buffer.from(`--${(match[1] ?? match[2])!.trim()}`);
  const parts: FormPart[] = [];
  let start = raw.indexOf(delimiter);
  while (start !== -1) {
    const afterDelimiter = start + delimiter.length;
    if (raw.subarray(afterDelimiter, afterDelimiter + 2).toString() === '--') break; // closing delimiter
    const partStart = afterDelimiter + 2; // skip CRLF
    const end = raw.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), partStart);
    if (end === -1) break;
    const part = raw.subarray(partStart, end);
    const headerEnd = part.indexOf('\r\n\r\n');
    if (headerEnd !== -1) {
      const headers = part.subarray(0, headerEnd).toString('utf8');
      const name = /name="([^"]*)"/i.exec(headers)?.[1] ?? '';
      const filename = /filename="([^"]*)"/i.exec(headers)?.[1];
      parts.push({ name, ...(filename === undefined ? {} : { filename }), data: part.subarray(headerEnd + 4) });
    }
    start = end + 2;
  }
  return parts;
}

/** The file's bytes from an upload POST: the file part of a multipart body, else the raw body. */
function uploadedBytes(raw: Buffer, contentType: string): Buffer {
  if (!contentType.toLowerCase().startsWith('multipart/form-data')) return Buffer.from(raw);
  const parts = parseMultipart(raw, contentType);
  const part = parts.find((p) => p.filename !== undefined) ?? parts.find((p) => p.name === 'file' || p.name === 'body') ?? parts[0];
  return Buffer.from(part?.data ?? raw);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// -------------------------------------------------------------------- answers

function ok200(body: Json): Reply {
  return new Reply(200, body);
}

function rateLimited(retryAfterSeconds: number): Reply {
  return new Reply(429, { ok: false, error: 'ratelimited' }, { 'Retry-After': String(retryAfterSeconds) });
}

/** Slack's error, with its hint of what was wrong (web-api logs these `[ERROR]` lines). */
function limitError(problem: LimitProblem): Json {
  return { ok: false, error: problem.error, response_metadata: { messages: [`[ERROR] ${problem.reason}`] } };
}

const viewError = limitError;

function slackMessage(m: FakeMessage): Json {
  return {
    type: 'message',
    user: m.user,
    bot_id: FAKE_BOT_ID,
    app_id: FAKE_APP_ID,
    team: FAKE_TEAM_ID,
    ts: m.ts,
    text: m.text ?? '',
    ...(m.blocks ? { blocks: m.blocks } : {}),
    ...(m.thread_ts ? { thread_ts: m.thread_ts } : {}),
  };
}

/** What Slack adds to a view it stores. */
function slackViewFields(
  view: Json,
  id: string,
  hashSeed: string,
): Pick<FakeView, 'id' | 'type' | 'blocks' | 'callback_id' | 'private_metadata' | 'external_id' | 'hash'> & Json {
  return {
    id,
    team_id: FAKE_TEAM_ID,
    type: String(view.type),
    blocks: Array.isArray(view.blocks) ? view.blocks : [],
    callback_id: typeof view.callback_id === 'string' ? view.callback_id : '',
    private_metadata: typeof view.private_metadata === 'string' ? view.private_metadata : '',
    external_id: typeof view.external_id === 'string' ? view.external_id : '',
    state: { values: {} },
    hash: `${Math.floor(Date.now() / 1000)}.${hashSeed}`,
    clear_on_close: view.clear_on_close === true,
    notify_on_close: view.notify_on_close === true,
    app_id: FAKE_APP_ID,
    app_installed_team_id: FAKE_TEAM_ID,
    bot_id: FAKE_BOT_ID,
  };
}

// -------------------------------------------------------------------- small things

/** text and blocks of a chat.* call, or the format error Slack gives for unreadable blocks. */
function messageContent(args: Json): { text?: string; blocks?: unknown[]; error?: LimitProblem } {
  const text = typeof args.text === 'string' ? args.text : undefined;
  const blocks = args.blocks;
  if (blocks !== undefined && !Array.isArray(blocks)) {
    return { text, error: { error: 'invalid_blocks_format', reason: 'blocks is not a JSON array' } };
  }
  return defined({ text, blocks });
}

function stringArg(args: Json, key: string): string | undefined {
  const value = args[key];
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number') return String(value);
  return undefined;
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  return match?.[1];
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Drop undefined values (so stored objects have no `key: undefined`). */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function describeCall(call: FakeCall): string {
  const outcome = call.response.ok === true ? 'ok' : String(call.response.error);
  const args = JSON.stringify(call.args);
  return `${call.method} -> ${call.status} ${outcome} ${args.length > 160 ? `${args.slice(0, 160)}...` : args}`;
}
