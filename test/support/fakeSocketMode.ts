// Slack's side of Socket Mode, for tests: `apps.connections.open`, the WebSocket it hands out,
// the envelopes Slack pushes over it and the acks that come back.
//
// How @slack/socket-mode 3 (under Bolt's SocketModeReceiver) talks to Slack (see
// node_modules/@slack/socket-mode/dist/src/SocketModeClient.js and SlackWebSocket.js):
// - POST <slackApiUrl>apps.connections.open with `Authorization: Bearer xapp-...` (the app-level
//   token, not the bot token); the answer's `url` is the WebSocket to open. Each URL's ticket is
//   good for one connection.
// - The client counts as connected (`start()` resolves) only when Slack sends `{"type":"hello"}`.
// - Slack pushes `{ envelope_id, type, accepts_response_payload, payload }`; the app acks with
//   `{ envelope_id, payload }` on the same socket (payload `{}` for a bare `ack()`), within 3 s.
// - `{"type":"disconnect","reason":"refresh_requested"|"warning"}`: the client closes (code 1000)
//   and, like after any lost connection, calls apps.connections.open again and reconnects, after
//   `clientPingTimeout` x consecutive failures (5 s with Bolt's defaults).
// - The client pings every clientPingTimeout/3 and drops a link whose pongs stop; RFC 6455 has the
//   server answer pings with pongs, which this does.
//
// Two deliberate choices:
// - The WebSocket server is written here on node:http's `upgrade` (RFC 6455 handshake and framing,
//   no extensions): `ws` is not installed (socket-mode 3 uses undici's WebSocket client and only
//   has `ws` as a devDependency), and this keeps the test free of a new dependency.
// - apps.connections.open is answered by a front door (`apiUrl`) that hands every other request to
//   the FakeSlack, rather than by `fake.setHandler`: the fake checks one token (the bot token)
//   before any handler runs and does not show handlers the token, so it would refuse the xapp
//   token that Slack accepts here, and could not refuse a bot token as Slack does.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { parse as parseQuery } from 'node:querystring';
import { FAKE_APP_ID, type FakeSlack, headersOf, type Json } from './fakeSlack.js';
import { SlackDriver, type DriverResponse, type SignOptions } from './slackDriver.js';

/** An app-level token as Slack shows them (`xapp-1-<app id>-...`). */
export const APP_TOKEN = `xapp-1-${FAKE_APP_ID}-1-fake`;
/** Slack's limit for acknowledging an envelope. */
export const ACK_TIMEOUT_MS = 3000;

export type EnvelopeType = 'slash_commands' | 'interactive' | 'events_api';

export interface Envelope {
  envelope_id: string;
  type: EnvelopeType;
  /** Whether Slack reads a payload in the ack (commands, view submissions, suggestions). */
  accepts_response_payload: boolean;
  payload: Json;
  /** events_api only: Slack's retry counter and reason. */
  retry_attempt?: number;
  retry_reason?: string;
}

export interface Ack {
  envelopeId: string;
  /** What the app put in its ack: `{}` for a bare `ack()`. */
  payload: Json;
  /** From writing the envelope to reading the ack. */
  ms: number;
  /** Which connection (1, 2, ...) carried the ack. */
  connection: number;
}

/** One WebSocket connection's life, for assertions. */
export interface ConnectionRecord {
  id: number;
  openedAt: number;
  closedAt?: number;
  /** Who ended it: the app (close frame), the fake (`dropConnection`, `close`), or a lost socket. */
  endedBy?: 'client' | 'server' | 'lost';
  /** The close code in the app's close frame (1000 after a `disconnect` message). */
  clientCloseCode?: number;
}

export interface FakeSocketModeOptions {
  /** The app-level token apps.connections.open accepts. */
  appToken?: string;
  /** How long `sendEnvelope` waits for the ack. */
  ackTimeoutMs?: number;
}

interface PendingAck {
  sentAt: number;
  resolve: (ack: Ack) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

export class FakeSocketMode {
  /** Every ack received, in order (including any for envelopes nobody waits on any more). */
  readonly acks: Ack[] = [];
  /** Every envelope sent, in order. */
  readonly sent: Envelope[] = [];
  readonly history: ConnectionRecord[] = [];
  /** Pings the app sent and this answered (its liveness check of the link). */
  pings = 0;

  private readonly tickets = new Set<string>();
  private readonly links = new Set<Link>();
  private readonly pending = new Map<string, PendingAck>();
  private readonly appToken: string;
  private readonly ackTimeoutMs: number;
  private opens = 0;

  private constructor(
    private readonly server: Server,
    private readonly origin: string,
    private readonly fake: FakeSlack,
    options: FakeSocketModeOptions,
  ) {
    this.appToken = options.appToken ?? APP_TOKEN;
    this.ackTimeoutMs = options.ackTimeoutMs ?? ACK_TIMEOUT_MS;
  }

  static async start(fake: FakeSlack, options: FakeSocketModeOptions = {}): Promise<FakeSocketMode> {
    let self: FakeSocketMode | undefined;
    const server = createServer((req, res) => {
      self!.onRequest(req, res).catch((error: unknown) => {
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`fakeSocketMode crashed: ${String(error)}`);
      });
    });
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => self!.onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    self = new FakeSocketMode(server, `http://127.0.0.1:${port}`, fake, options);
    return self;
  }

  /** `slackApiUrl` for the app: apps.connections.open is answered here, everything else by the FakeSlack. */
  get apiUrl(): string {
    return `${this.origin}/api/`;
  }

  /** Successful apps.connections.open calls. */
  get connectionsOpened(): number {
    return this.opens;
  }

  /** WebSocket connections that got their hello, over the whole test. */
  get connections(): number {
    return this.history.length;
  }

  /** Connections open right now (not closing). */
  get openConnections(): number {
    return [...this.links].filter((link) => link.usable).length;
  }

  /** Resolves once `count` connections in all have received their hello (i.e. the app is connected). */
  async waitForConnections(count: number, timeoutMs = 15_000): Promise<void> {
    await until(
      () => this.connections >= count && this.current() !== undefined,
      timeoutMs,
      () => `${count} Socket Mode connection(s); saw ${this.connections}, ${this.openConnections} open`,
    );
  }

  /**
   * Push an envelope to the app over the newest open connection (Slack picks one of them) and
   * resolve with its ack; reject when none comes within 3 s, as Slack would give up.
   */
  sendEnvelope(type: EnvelopeType, payload: Json, extra: { retryAttempt?: number; retryReason?: string } = {}): Promise<Ack> {
    const link = this.current();
    if (!link) return Promise.reject(new Error(`fakeSocketMode: no open connection to send a ${type} envelope on`));
    const envelope: Envelope = {
      envelope_id: randomUUID(),
      type,
      accepts_response_payload: type === 'slash_commands' || (type === 'interactive' && ['view_submission', 'block_suggestion'].includes(String(payload.type))),
      payload,
      ...(type === 'events_api' ? { retry_attempt: extra.retryAttempt ?? 0, retry_reason: extra.retryReason ?? '' } : {}),
    };
    this.sent.push(envelope);
    return new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(envelope.envelope_id);
        reject(new Error(`fakeSocketMode: no ack for ${describeEnvelope(envelope)} within ${this.ackTimeoutMs} ms`));
      }, this.ackTimeoutMs);
      this.pending.set(envelope.envelope_id, { sentAt: performance.now(), resolve, reject, timer });
      link.sendText(JSON.stringify(envelope));
    });
  }

  /** Slack's `disconnect` message on every open connection: the app should reconnect by itself. */
  disconnect(reason: 'refresh_requested' | 'warning' | 'link_disabled' = 'refresh_requested'): void {
    for (const link of this.links) if (link.usable) link.sendText(JSON.stringify({ type: 'disconnect', reason, debug_info: { host: 'applink-fake' } }));
  }

  /** Cut every connection without a close frame, as a lost network or a crashed Slack host does. */
  dropConnection(): void {
    for (const link of this.links) link.terminate();
  }

  async close(): Promise<void> {
    for (const link of this.links) link.terminate();
    for (const [, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error('fakeSocketMode closed'));
    }
    this.pending.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---------------------------------------------------------------- HTTP: apps.connections.open

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', this.origin).pathname;
    // Every other Web API call (and response_url, upload) is the FakeSlack's, recorded there.
    if (path !== '/api/apps.connections.open') return this.fake.onRequest(req, res);
    const raw = await readBody(req);
    const form = parseQuery(raw.toString('utf8'));
    const token = bearer(req.headers.authorization) ?? (typeof form.token === 'string' ? form.token : undefined);
    let answer: Json;
    if (!token) answer = { ok: false, error: 'not_authed' };
    // A bot or user token is the wrong kind here, whatever its value.
    else if (!token.startsWith('xapp-')) answer = { ok: false, error: 'not_allowed_token_type' };
    else if (token !== this.appToken) answer = { ok: false, error: 'invalid_auth' };
    else {
      const ticket = randomBytes(16).toString('hex');
      this.tickets.add(ticket);
      this.opens += 1;
      const { port } = this.server.address() as AddressInfo;
      answer = { ok: true, url: `ws://127.0.0.1:${port}/link/?ticket=${ticket}&app_id=${FAKE_APP_ID}` };
    }
    // Recorded with the fake's calls so `fake.callsTo('apps.connections.open')` tells the story.
    this.fake.calls.push({ method: 'apps.connections.open', args: {}, at: Date.now(), status: 200, response: answer, headers: headersOf(req) });
    res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8' }).end(JSON.stringify(answer));
  }

  // ---------------------------------------------------------------- WebSocket

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', this.origin);
    const ticket = url.searchParams.get('ticket') ?? '';
    const key = req.headers['sec-websocket-key'];
    const refuse = (status: string) => socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    if (url.pathname !== '/link/' || String(req.headers.upgrade).toLowerCase() !== 'websocket' || typeof key !== 'string')
      return void refuse('400 Bad Request');
    // One connection per ticket, as Slack: a reconnect must call apps.connections.open again.
    if (!this.tickets.delete(ticket)) return void refuse('401 Unauthorized');
    const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    // No Sec-WebSocket-Extensions in the answer: the client's offer of permessage-deflate is declined.
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);

    const record: ConnectionRecord = { id: this.history.length + 1, openedAt: Date.now() };
    const link = new Link(socket, record, {
      text: (text) => this.onText(text, record.id),
      ping: () => (this.pings += 1),
      gone: () => this.links.delete(link),
    });
    this.links.add(link);
    this.history.push(record);
    if (head.length > 0) link.receive(head);
    link.sendText(
      JSON.stringify({
        type: 'hello',
        num_connections: this.openConnections,
        debug_info: { host: 'applink-fake', build_number: 1, approximate_connection_time: 18060 },
        connection_info: { app_id: FAKE_APP_ID },
      }),
    );
  }

  /** An ack from the app: `{ envelope_id, payload }`. */
  private onText(text: string, connection: number): void {
    let message: { envelope_id?: unknown; payload?: unknown };
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      return; // Slack ignores what it cannot read; so does the fake (the missing ack will show)
    }
    if (typeof message.envelope_id !== 'string') return;
    const pending = this.pending.get(message.envelope_id);
    const ack: Ack = {
      envelopeId: message.envelope_id,
      payload: isObject(message.payload) ? message.payload : {},
      ms: pending ? performance.now() - pending.sentAt : Number.NaN,
      connection,
    };
    this.acks.push(ack);
    if (!pending) return;
    this.pending.delete(message.envelope_id);
    clearTimeout(pending.timer);
    pending.resolve(ack);
  }

  /** The newest connection that is open and not closing: where Slack would push the next envelope. */
  private current(): Link | undefined {
    return [...this.links].reverse().find((link) => link.usable);
  }
}

export async function startFakeSocketMode(fake: FakeSlack, options: FakeSocketModeOptions = {}): Promise<FakeSocketMode> {
  return FakeSocketMode.start(fake, options);
}

/**
 * The SlackDriver's payloads (the same bodies it signs and POSTs to /slack/events) delivered as
 * Socket Mode envelopes instead: a slash command's form fields become the payload object, an
 * interactive `payload=` JSON becomes an `interactive` envelope, an event callback an `events_api`
 * one. Answers with the ack as a DriverResponse: `json` is the ack payload, `ms` the ack time.
 */
export class SocketModeDriver extends SlackDriver {
  constructor(
    private readonly socket: FakeSocketMode,
    fake: FakeSlack,
  ) {
    // No URL or signing secret: nothing goes over HTTP.
    super({ appUrl: 'socket-mode:', signingSecret: '', fake });
  }

  override async post(body: string, contentType: string, _sign?: SignOptions, extraHeaders: Record<string, string> = {}): Promise<DriverResponse> {
    let ack: Ack;
    if (contentType === 'application/json') {
      const retry = extraHeaders['X-Slack-Retry-Num'];
      ack = await this.socket.sendEnvelope('events_api', JSON.parse(body) as Json, {
        ...(retry !== undefined ? { retryAttempt: Number(retry) } : {}),
        ...(extraHeaders['X-Slack-Retry-Reason'] !== undefined ? { retryReason: extraHeaders['X-Slack-Retry-Reason'] } : {}),
      });
    } else {
      const form = Object.fromEntries(new URLSearchParams(body));
      ack =
        form.payload !== undefined
          ? await this.socket.sendEnvelope('interactive', JSON.parse(form.payload) as Json)
          : await this.socket.sendEnvelope('slash_commands', form);
    }
    return { status: 200, text: JSON.stringify(ack.payload), json: ack.payload, ms: ack.ms };
  }
}

// -------------------------------------------------------------------- RFC 6455, server side

const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** One accepted WebSocket: parses the client's (masked) frames, writes unmasked ones. */
class Link {
  private buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private closeSent = false;
  private ended = false;

  constructor(
    private readonly socket: Duplex,
    private readonly record: ConnectionRecord,
    private readonly on: { text: (text: string) => void; ping: () => void; gone: () => void },
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.end('lost'));
  }

  /** Open, and neither side has started closing. */
  get usable(): boolean {
    return !this.ended && !this.closeSent;
  }

  sendText(text: string): void {
    this.write(OP.text, Buffer.from(text, 'utf8'));
  }

  terminate(): void {
    this.end('server');
    this.socket.destroy();
  }

  receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const frame = readFrame(this.buffer);
      if (!frame) return;
      this.buffer = this.buffer.subarray(frame.size);
      this.onFrame(frame.fin, frame.opcode, frame.data);
    }
  }

  private onFrame(fin: boolean, opcode: number, data: Buffer): void {
    switch (opcode) {
      case OP.text:
      case OP.binary:
      case OP.continuation:
        this.fragments.push(data);
        if (fin) {
          const message = Buffer.concat(this.fragments);
          this.fragments = [];
          this.on.text(message.toString('utf8'));
        }
        return;
      case OP.ping:
        this.on.ping();
        this.write(OP.pong, data);
        return;
      case OP.close: {
        this.record.clientCloseCode = data.length >= 2 ? data.readUInt16BE(0) : 1005;
        // Answer the close handshake with the same code, then close the TCP connection (the server does).
        if (!this.closeSent) this.write(OP.close, data.subarray(0, 2));
        this.closeSent = true;
        this.end('client');
        this.socket.end();
        return;
      }
      default:
        return; // pong, or reserved opcodes: nothing to do
    }
  }

  private write(opcode: number, data: Buffer): void {
    if (this.ended || this.socket.destroyed) return;
    if (opcode === OP.close) this.closeSent = true;
    const length = data.length;
    let header: Buffer;
    if (length < 126) {
      header = Buffer.from([0x80 | opcode, length]);
    } else if (length < 65536) {
      header = Buffer.alloc(4);
      header.writeUInt16BE(length, 2);
      header[1] = 126;
    } else {
      header = Buffer.alloc(10);
      header.writeBigUInt64BE(BigInt(length), 2);
      header[1] = 127;
    }
    header[0] = 0x80 | opcode;
    this.socket.write(Buffer.concat([header, data]));
  }

  private end(by: NonNullable<ConnectionRecord['endedBy']>): void {
    if (this.ended) return;
    this.ended = true;
    this.record.closedAt = Date.now();
    this.record.endedBy = by;
    this.on.gone();
  }
}

/** The next complete frame at the start of `buffer` (unmasked), or undefined when more bytes are needed. */
function readFrame(buffer: Buffer): { fin: boolean; opcode: number; data: Buffer; size: number } | undefined {
  if (buffer.length < 2) return undefined;
  const fin = (buffer[0]! & 0x80) !== 0;
  const opcode = buffer[0]! & 0x0f;
  const masked = (buffer[1]! & 0x80) !== 0;
  let length = buffer[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return undefined;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return undefined;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return undefined;
  const data = Buffer.from(buffer.subarray(offset, offset + length));
  // Clients mask every frame (RFC 6455 5.3): XOR with the 4-byte key.
  if (masked) for (let i = 0; i < data.length; i += 1) data[i]! ^= buffer[maskOffset + (i % 4)]!;
  return { fin, opcode, data, size: offset + length };
}

// -------------------------------------------------------------------- small things

async function until(check: () => boolean, timeoutMs: number, label: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) throw new Error(`fakeSocketMode: timed out after ${timeoutMs} ms waiting for ${label()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function describeEnvelope(envelope: Envelope): string {
  const payload = envelope.payload;
  const what = envelope.type === 'slash_commands' ? `${String(payload.command)} ${String(payload.text)}` : String(payload.type ?? '');
  return `${envelope.type} envelope ${envelope.envelope_id} (${what})`;
}

function bearer(header: string | undefined): string | undefined {
  return /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1];
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
