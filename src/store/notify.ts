/**
 * Postgres LISTEN/NOTIFY between app processes: a ready task or a stop request reaches every
 * process within milliseconds of its commit, instead of at the next poll (which stays as the
 * safety net). Notifications are sent inside the transaction that made the change, so they are
 * delivered exactly when it commits and never for a change that rolled back. Output notifies
 * once per stored batch, never per line: NOTIFY takes a global lock at commit.
 */
import pg from 'pg';
import type { Queryable } from './db.js';

export const CHANNEL_READY = 'countersign_ready';
export const CHANNEL_STOP = 'countersign_stop';
/**
 * "Task N changed; look again": its output grew (one per stored batch) or its state changed.
 * Followers of the task's log in every process read it once per notice (src/service/taskFeed.ts).
 */
export const CHANNEL_TASK = 'countersign_task';

export async function notify(db: Queryable, channel: string, payload: string): Promise<void> {
  await db.raw('SELECT pg_notify(?, ?)', [channel, payload]);
}

export interface ListenerLogger {
  warn(context: Record<string, unknown>, message: string): void;
}

/**
 * One dedicated connection (not from the pool: a pooled connection could be handed to someone
 * else mid-LISTEN) that listens on the given channels and reconnects with backoff.
 */
export class PgListener {
  private client: pg.Client | null = null;
  private connecting: pg.Client | null = null;
  private stopped = false;
  private retryMs = 200;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly connectionString: string,
    private readonly channels: readonly string[],
    private readonly onNotification: (channel: string, payload: string) => void,
    private readonly log: ListenerLogger,
    /** Called after every (re)connect: anything sent while disconnected was missed, so look again. */
    private readonly onConnected: () => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    const clients = [this.client, this.connecting];
    this.client = null;
    this.connecting = null;
    await Promise.all(clients.map((client) => client?.end().catch(() => undefined)));
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    // keepAlive: a half-open link (a dropped NAT entry) must error out, not listen to nothing forever.
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'countersign-listener', keepAlive: true });
    this.connecting = client;
    // A client we gave up on may still emit: only the current one counts.
    const current = () => this.client === client || this.connecting === client;
    client.on('notification', (message) => {
      if (current()) this.onNotification(message.channel, message.payload ?? '');
    });
    client.on('error', (error) => {
      if (!current()) return;
      this.log.warn({ err: error }, 'the LISTEN connection failed; reconnecting');
      this.reconnectSoon(client);
    });
    client.on('end', () => {
      if (current()) this.reconnectSoon(client);
    });
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
      if (this.stopped || this.connecting !== client) {
        await client.end().catch(() => undefined);
        return;
      }
      this.connecting = null;
      this.client = client;
      this.retryMs = 200;
      this.onConnected();
    } catch (error) {
      if (this.stopped || this.connecting !== client) {
        await client.end().catch(() => undefined);
        return;
      }
      this.log.warn({ err: error }, 'could not LISTEN; retrying');
      this.reconnectSoon(client);
    }
  }

  private reconnectSoon(client: pg.Client): void {
    if (this.client === client) this.client = null;
    if (this.connecting === client) this.connecting = null;
    if (this.stopped || this.timer) {
      client.end().catch(() => undefined);
      return;
    }
    client.end().catch(() => undefined);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }
}

/**
 * "Task N changed" for the other processes' followers, coalesced: the ids noted in one turn of
 * the event loop go out in one statement (one NOTIFY each, one commit for all). A run's claim and
 * end, a burst of claims or a card redraw each used to cost a commit of its own.
 */
export class ChangeNotices {
  private pending = new Set<string>();
  private scheduled = false;

  constructor(
    private readonly db: Queryable,
    private readonly channel: string,
    private readonly onError: (error: unknown, payloads: string[]) => void,
  ) {}

  add(payload: string): void {
    this.pending.add(payload);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      const payloads = [...this.pending];
      this.pending = new Set();
      this.db
        .raw('SELECT pg_notify(?, payload) FROM unnest(?::text[]) AS payload', [this.channel, payloads])
        .catch((error: unknown) => this.onError(error, payloads));
    });
  }
}
