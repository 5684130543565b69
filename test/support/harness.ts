/**
 * One countersign app wired to real parts for an end-to-end test file: its own Postgres
 * database, a real sshd, the fake Slack Web API, a countersign.yml written to disk and loaded
 * the way main.ts loads it, and a driver that sends signed Slack requests.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApp, type RunningApp } from '../../src/app.js';
import type { Config } from '../../src/config/config.js';
import { loadConfigFile } from '../../src/config/load.js';
import type { TaskStatus } from '../../src/domain/lifecycle.js';
import type { Task } from '../../src/domain/task.js';
import { createLogger } from '../../src/log.js';
import type { RunnerOptions } from '../../src/runner/runner.js';
import { getTask } from '../../src/store/tasks.js';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from './database.js';
import { startFakeSlack, type FakeMessage, type FakeSlack } from './fakeSlack.js';
import { SlackDriver, type DriverResponse } from './slackDriver.js';
import { startSshd, type SshServer } from './sshd.js';

export const SIGNING_SECRET = 'test-signing-secret';
export const BOT_TOKEN = 'xoxb-test-token';
export const TASKS_CHANNEL = 'CTASKS';
export const REVIEW_CHANNEL = 'CREVIEW';
export const AUTHOR = 'UAUTHOR';
export const ALICE = 'UALICE'; // sre reviewer
export const BOB = 'UBOB'; // sre reviewer
export const MALLORY = 'UMALLORY'; // nobody's reviewer
/** /metrics on the main port answers requests bearing this token (METRICS_TOKEN). */
export const METRICS_TOKEN = 'test-metrics-token-0123456789';
/**
 * Targets log in as this ordinary user (as production logs in as `deploy`), with /bin/sh as its
 * shell: no root, and no login scripts of the machine's root account in the way.
 */
export const LOGIN_USER = 'countersign-test';

export interface HarnessOptions {
  /** Extra YAML under `targets:` (indented two spaces), given the sshd and the key path. */
  extraTargets?: (ssh: SshServer) => string;
  /** A `runner:` block for countersign.yml (indented two spaces), read by every process. */
  runnerYaml?: string;
  /** Top-level YAML after `targets:` (e.g. `recipes:`, `hooks:`), given the sshd and the config's directory. */
  extraYaml?: (ssh: SshServer, dir: string) => string;
  runner?: Partial<RunnerOptions>;
  threadFlushMs?: number;
  postMessageBurst?: number;
  /** The app's chat.update budget for the workspace (6,000 a minute unless a test of the pacing sets Slack's 50). */
  chatUpdatesPerMinute?: number;
  slackRetryBaseMs?: number;
  slackReconcileMs?: number;
  sshKeepaliveMs?: number;
  /** A database to use instead of a fresh clone on the shared test server (e.g. on a Postgres the test crashes). */
  database?: TestDatabase;
}

/** An ed25519 public key nobody holds: a pinned key that cannot match. */
export function strangerHostKey(): string {
  const name = Buffer.from('ssh-ed25519');
  const blob = Buffer.concat([u32(name.length), name, u32(32), randomBytes(32)]);
  return `ssh-ed25519 ${blob.toString('base64')}`;
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};

/**
 * One target on `ssh` for countersign.yml's `targets:`: its host, the client key and the pinned
 * host key, then `more` lines as they stand under the target (`review:`, `  channel: …`).
 */
export function targetYaml(
  ssh: Pick<SshServer, 'host' | 'port' | 'user' | 'privateKeyPath' | 'knownHosts'>,
  name: string,
  more: readonly string[] = [],
): string {
  return [
    `  ${name}:`,
    '    hosts:',
    `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`,
    '    ssh:',
    `      privateKeyFile: ${ssh.privateKeyPath}`,
    `      knownHosts: "${ssh.knownHosts}"`,
    ...more.map((line) => `    ${line}`),
  ].join('\n');
}

function baseTargets(ssh: SshServer): string {
  const host = `      - { host: ${ssh.host}, port: ${ssh.port}, user: ${ssh.user} }`;
  const sshBlock = (knownHosts: string) => `    ssh:\n      privateKeyFile: ${ssh.privateKeyPath}\n      knownHosts: "${knownHosts}"`;
  const review = (autoRun: boolean) =>
    `    review:\n      channel: ${REVIEW_CHANNEL}\n      autoRun: ${autoRun}\n      groups:\n        - name: sre\n          users: [${ALICE}, ${BOB}]\n          approvals: 1`;
  return [
    '  web-prod:',
    '    description: Production web servers',
    '    hosts:',
    host,
    sshBlock(ssh.knownHosts),
    review(false),
    '  auto-prod:',
    '    hosts:',
    host,
    sshBlock(ssh.knownHostsBracketed),
    review(true),
    '  sandbox:',
    '    description: No review here',
    '    hosts:',
    host,
    sshBlock(ssh.knownHosts),
    '  impostor:',
    '    hosts:',
    host,
    sshBlock(`${ssh.host} ${strangerHostKey()}`),
    '  unpinned:',
    '    hosts:',
    host,
    sshBlock(`10.99.99.99 ${ssh.hostPublicKey}`),
  ].join('\n');
}

export class Harness {
  private constructor(
    readonly fake: FakeSlack,
    readonly ssh: SshServer,
    readonly database: TestDatabase,
    readonly app: RunningApp,
    readonly driver: SlackDriver,
    readonly config: Config,
    /** The countersign.yml every process of this test reads. */
    readonly configPath: string,
    private readonly dir: string,
  ) {}

  /** The environment for src/main.ts as a separate process on this test's database, Slack and config. */
  processEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.database.url,
      COUNTERSIGN_CONFIG: this.configPath,
      SLACK_SIGNING_SECRET: SIGNING_SECRET,
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_API_URL: this.fake.url,
      METRICS_TOKEN,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      ...extra,
    };
  }

  /** Another app on the same database, fake Slack and config, in this process (a replica, or a restart). */
  async startReplica(extra: Partial<Parameters<typeof startApp>[0]> = {}): Promise<RunningApp> {
    return startApp({
      env: {
        slack: { signingSecret: SIGNING_SECRET, botToken: BOT_TOKEN },
        slackMissing: [],
        slackApiUrl: this.fake.url,
        port: 0,
        metricsToken: METRICS_TOKEN,
      },
      config: this.config,
      db: this.database.db,
      databaseUrl: this.database.url,
      log: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
      host: '127.0.0.1',
      runner: { pollMs: 500, killGraceMs: 1500 },
      slackRetryBaseMs: 200,
      slackReconcileMs: 2000,
      chatUpdatesPerMinute: 6000,
      ...extra,
    });
  }

  static async start(options: HarnessOptions = {}): Promise<Harness> {
    const [fake, ssh, database] = await Promise.all([
      startFakeSlack({ token: BOT_TOKEN, ...(options.postMessageBurst !== undefined ? { postMessageBurst: options.postMessageBurst } : {}) }),
      startSshd({ loginUser: LOGIN_USER }),
      options.database ?? createTestDatabase(),
    ]);
    // The tasks channel has the test's author and reviewers in it (a test may set other members).
    fake.setChannelMembers(TASKS_CHANNEL, [AUTHOR, ALICE, BOB]);
    const dir = mkdtempSync(join(tmpdir(), 'countersign-harness-'));
    const configPath = join(dir, 'countersign.yml');
    const runner = options.runnerYaml ? `runner:\n${options.runnerYaml}\n` : '';
    writeFileSync(configPath, `${runner}targets:\n${baseTargets(ssh)}\n${options.extraTargets?.(ssh) ?? ''}\n${options.extraYaml?.(ssh, dir) ?? ''}\n`);
    const config = loadConfigFile(configPath);
    const app = await startApp({
      env: { slack: { signingSecret: SIGNING_SECRET, botToken: BOT_TOKEN }, slackMissing: [], slackApiUrl: fake.url, port: 0, metricsToken: METRICS_TOKEN },
      config,
      db: database.db,
      databaseUrl: database.url,
      log: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent'),
      host: '127.0.0.1',
      runner: { pollMs: 500, killGraceMs: 1500, ...options.runner },
      threadFlushMs: options.threadFlushMs ?? 1000,
      slackRetryBaseMs: options.slackRetryBaseMs ?? 200,
      slackReconcileMs: options.slackReconcileMs ?? 2000,
      // Tests make many cards quickly; production keeps Slack's Tier 3 (50/min). A test of the pacing sets its own.
      chatUpdatesPerMinute: options.chatUpdatesPerMinute ?? 6000,
      ...(options.sshKeepaliveMs !== undefined ? { sshKeepaliveMs: options.sshKeepaliveMs } : {}),
    });
    const driver = new SlackDriver({ appUrl: app.url, signingSecret: SIGNING_SECRET, fake });
    return new Harness(fake, ssh, database, app, driver, config, configPath, dir);
  }

  /** A directory scripts on the target (running as LOGIN_USER) can write to, e.g. for pid files. */
  scratchDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'countersign-scratch-'));
    chmodSync(dir, 0o1777);
    this.scratch.push(dir);
    return dir;
  }

  private readonly scratch: string[] = [];

  private readonly sideClients: pg.Client[] = [];

  /**
   * A connection of the test's own (closed at stop): what a test reads or locks through it is not
   * counted among the app's statements, and does not wait on the app's pools.
   */
  async sideConnection(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.database.url });
    await client.connect();
    this.sideClients.push(client);
    return client;
  }

  /** A task started through the service as an API caller would, with no message or channel; its id. */
  async serviceTask(script: string, options: { target?: string; author?: string; message?: string | null } = {}): Promise<number> {
    const created = await this.app.service.create({
      author: options.author ?? AUTHOR,
      target: options.target ?? 'sandbox',
      message: options.message ?? null,
      type: null,
      script,
      source: 'api',
      sourceKey: null,
      channelId: null,
    });
    if (!created.ok) throw new Error(created.message);
    return created.task.id;
  }

  async stop(): Promise<void> {
    await Promise.all(this.sideClients.splice(0).map((client) => client.end().catch(() => undefined)));
    await this.app.stop(2000);
    await Promise.all([this.fake.close(), this.ssh.stop(), this.database.drop()]);
    rmSync(this.dir, { recursive: true, force: true });
    for (const dir of this.scratch) rmSync(dir, { recursive: true, force: true });
  }

  /** Sends `/task <text>` as typed by a user: Slack escapes &, < and > before sending it. */
  command(text: string, user = AUTHOR, extra: { triggerId?: string; channel?: string } = {}): Promise<DriverResponse> {
    return this.driver.command({
      text: slackEscape(text),
      user,
      channel: extra.channel ?? TASKS_CHANNEL,
      ...(extra.triggerId ? { triggerId: extra.triggerId } : {}),
    });
  }

  /** Runs `/task run ...` and returns the new task's id, read from the ephemeral answer. */
  async createTask(text: string, user = AUTHOR): Promise<number> {
    const response = await this.command(text, user);
    const match = /#(\d+)/.exec(String(response.json?.text ?? ''));
    if (response.status !== 200 || !match) throw new Error(`no task created: ${response.status} ${response.text}`);
    return Number(match[1]);
  }

  task(id: number): Promise<Task | null> {
    return getTask(this.database.db, id);
  }

  async waitForStatus(id: number, status: TaskStatus | TaskStatus[], timeoutMs = 15_000): Promise<Task> {
    const wanted = Array.isArray(status) ? status : [status];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const task = await this.task(id);
      if (task && wanted.includes(task.status)) return task;
      if (Date.now() > deadline) throw new Error(`task #${id} is ${task?.status ?? 'missing'}, expected ${wanted.join('|')}`);
      await sleep(25);
    }
  }

  /** The task's card in the tasks channel, once posted and showing `contains` (if given). */
  async card(id: number, contains?: string | RegExp): Promise<FakeMessage> {
    return this.fake.waitFor(
      () => {
        const card = this.fake.messages(TASKS_CHANNEL).find((m) => !m.thread_ts && blocksText(m).includes(`*#${id}*`));
        // A copy: what a user's screen shows, which stays as it was when the message changes later.
        return card && matches(blocksText(card), contains) ? structuredClone(card) : undefined;
      },
      10_000,
      `card of #${id}${contains ? ` showing ${String(contains)}` : ''}`,
    );
  }

  async reviewRequest(id: number, contains?: string | RegExp): Promise<FakeMessage> {
    return this.fake.waitFor(
      () => {
        const request = this.fake.messages(REVIEW_CHANNEL).find((m) => !m.thread_ts && blocksText(m).includes(`*#${id}*`));
        return request && matches(blocksText(request), contains) ? structuredClone(request) : undefined;
      },
      10_000,
      `review request of #${id}${contains ? ` showing ${String(contains)}` : ''}`,
    );
  }

  /** Ephemeral answers sent through response_url after `since` (index into fake.responses). */
  responsesSince(since: number): string[] {
    return this.fake.responses.slice(since).map((r) => String((r.body as { text?: string }).text ?? ''));
  }

  async click(message: FakeMessage, actionId: string, user: string): Promise<DriverResponse> {
    return this.driver.clickButton({ message, actionId, user });
  }

  async count(table: string, where: Record<string, unknown> = {}): Promise<number> {
    const [row] = await this.database.db(table).where(where).count<{ count: string }[]>('* as count');
    return Number(row?.count ?? 0);
  }
}

export function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The text of a command's immediate (ack) answer, blocks included. */
export function ackText(response: { json?: unknown }): string {
  return blocksText((response.json ?? {}) as { text?: string; blocks?: unknown[] });
}

/** Slack's three escapes undone, to compare answers with what was typed. */
export function unescapeSlack(text: string): string {
  return text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

/** All the text a message shows: its text and every block's text, joined. */
export function blocksText(message: { text?: string; blocks?: unknown[] }): string {
  return `${message.text ?? ''}\n${JSON.stringify(message.blocks ?? [])}`;
}

export function buttonIds(message: { blocks?: unknown[] }): string[] {
  const ids: string[] = [];
  for (const block of (message.blocks ?? []) as Array<{ type: string; elements?: Array<{ type: string; action_id?: string }> }>) {
    if (block.type === 'actions') for (const element of block.elements ?? []) if (element.action_id) ids.push(element.action_id);
  }
  return ids;
}

function matches(text: string, contains: string | RegExp | undefined): boolean {
  if (contains === undefined) return true;
  return typeof contains === 'string' ? text.includes(contains) : contains.test(text);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
