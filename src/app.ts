/**
 * Wires one countersign process: HTTP (health, Slack's endpoint), the use cases, the runner and
 * the Slack views. main.ts feeds it the env, config and database; tests call it directly with
 * their own database, fake Slack and sshd, so they exercise exactly what production runs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { App, ExpressReceiver, SocketModeReceiver, type Receiver } from '@slack/bolt';
import { WebClient, WebClientEvent } from '@slack/web-api';
import type { Config } from './config/config.js';
import type { Env } from './config/env.js';
import { boltLogger, type Logger } from './log.js';
import { Runner, type RunnerOptions } from './runner/runner.js';
import { SshPool } from './exec/sshPool.js';
import { CHANNEL_READY, CHANNEL_STOP, CHANNEL_TASK, ChangeNotices, PgListener } from './store/notify.js';
import { RunnerLiveness } from './runner/liveness.js';
import { TaskFeed, type FeedOptions } from './service/taskFeed.js';
import { silentObserver, type RunObserver } from './runner/observer.js';
import { Bus } from './service/bus.js';
import { DEFAULT_REVIEW_EXPIRY_INTERVAL_MS, ReviewExpiry } from './service/reviewExpiry.js';
import { DEFAULT_USERGROUP_TTL_MS, Reviewers, webApiUsergroups } from './service/reviewers.js';
import { TaskService } from './service/taskService.js';
import { ScheduleService } from './service/schedules.js';
import { Scheduler, type ResultPoster, type SchedulerOptions } from './service/scheduler.js';
import { ScheduleSlack } from './slack/schedules.js';
import { RecipeService } from './service/recipes.js';
import { RunService } from './service/runs.js';
import { RunbookService } from './service/runbooks.js';
import { Advancer, type AdvancerOptions } from './runbook/advancer.js';
import { CHANNEL_RUN, CHANNEL_RUN_STEP_STOP } from './store/runs.js';
import { hooksRouter } from './http/hooks.js';
import { createDb, type Db } from './store/db.js';
import { SlackGateway } from './slack/gateway.js';
import { createSlackFetch } from './slack/slackFetch.js';
import { registerListeners } from './slack/listeners.js';
import { ListenerTable } from './slack/listenerTable.js';
import { WorkspaceGuard } from './slack/workspaceGuard.js';
import { registerWorkflowStep, webApiCompleter } from './slack/workflowStep.js';
import { WorkflowSteps } from './service/workflowSteps.js';
import { TaskMessages, webApiLookups } from './slack/taskMessages.js';
import { ThreadStreamer } from './slack/threadStreamer.js';
import { RunMessages } from './slack/runs/runMessages.js';
import { HomePublisher } from './slack/home.js';
import { HomeRunbooks } from './slack/homeRunbooks.js';
import { TaskQueries } from './service/taskQueries.js';
import { ensureLinkKeys } from './store/linkKeys.js';
import { Access } from './service/access.js';
import { ChannelMembers, webApiChannelMembers } from './service/channelMembers.js';
import { taskPageRouter } from './web/pageRouter.js';
import { API_PREFIX, apiRouter } from './api/router.js';
import { operations } from './api/operations.js';
import { runOperations } from './api/runOperations.js';
import { scheduleOperations } from './api/scheduleOperations.js';
import { ScheduleQueries } from './service/scheduleQueries.js';
import { PeopleDirectory, webApiUserNames } from './service/people.js';
import { requestContext } from './http/requestContext.js';
import { Metrics } from './observability/metrics.js';
import { createLinkSigner, DEFAULT_LINK_TTL_MS, type LinkSigner } from './web/signedLinks.js';

export interface AppOptions {
  env: Pick<Env, 'slack' | 'slackMissing' | 'slackApiUrl' | 'port'> & {
    publicUrl?: string | undefined;
    slackAppToken?: string | undefined;
    slackTeamId?: string | undefined;
    slackEnterpriseId?: string | undefined;
    metricsPort?: number | undefined;
    metricsToken?: string | undefined;
  };
  config: Config;
  db: Db;
  /** The same database as `db`, for the LISTEN connection. */
  databaseUrl: string;
  log: Logger;
  /** Listen host; 0.0.0.0 in production, 127.0.0.1 in tests. */
  host?: string;
  runner?: Partial<RunnerOptions>;
  /** Minimum time between two writes to one task's output thread. */
  threadFlushMs?: number;
  /** Average time between two chat.postMessage calls to one channel (bursts of 3 allowed). */
  postMessageSpacingMs?: number;
  /** Base delay of the card's retry after a failed Slack call. */
  slackRetryBaseMs?: number;
  /** How often messages behind their task are looked for and redrawn. */
  slackReconcileMs?: number;
  /** chat.update budget for the workspace (Slack's Tier 3: about 50 a minute). */
  chatUpdatesPerMinute?: number;
  /** SSH keepalive interval: a link silent for about 3 of these is declared dead. */
  sshKeepaliveMs?: number;
  /** The least time between two redraws of one user's App Home. */
  homeRefreshMs?: number;
  /** Live log followers: caps, the shared reader's safety poll. */
  followers?: FeedOptions;
  /** How long an API follow stream lasts at most (default an hour). */
  followMaxMs?: number;
  /** How often an open log stream (API follow, task page) checks its reader may still see the task (default 30 s). */
  streamRecheckMs?: number;
  /** Connections of the runner's own pool (default 10). */
  runnerPoolSize?: number;
  /** How long a log-page link in a card stays valid (else config `links.ttl`, else 24 h). */
  logLinkTtlMs?: number;
  /** How long a Slack user group's (and a channel's) members are trusted before Slack is asked again. */
  usergroupCacheMs?: number;
  /** How often pending reviews are checked for `review.expiresAfter`. */
  reviewExpiryMs?: number;
  /** The schedules' firing loop: its clock (`now`), poll interval, late tolerance. */
  scheduler?: Partial<SchedulerOptions>;
  /** The run engine: its poll interval, http step lease, a name resolver for tests. */
  advancer?: Partial<Omit<AdvancerOptions, 'runnerId' | 'runnerKey'>>;
}

export interface RunningApp {
  url: string;
  port: number;
  server: Server;
  bus: Bus;
  service: TaskService;
  runner: Runner;
  pool: SshPool;
  messages: TaskMessages | null;
  /** The runs' cards and requests in Slack (null without Slack). */
  runMessages: RunMessages | null;
  /** Every Slack write's pacing (null without Slack). */
  slackGateway: SlackGateway | null;
  /** Signs links to task pages (the card's log link). */
  signer: LinkSigner;
  schedules: ScheduleService;
  scheduler: Scheduler;
  runs: RunService;
  runbooks: RunbookService;
  advancer: Advancer;
  feed: TaskFeed;
  liveness: RunnerLiveness;
  /** The metrics listener's URL, when METRICS_PORT is set. */
  metricsUrl: string | null;
  /**
   * Stops within graceMs + killGraceMs + SHUTDOWN_MARGIN_MS whatever hangs (an SSH host, the
   * database, Slack): running tasks get graceMs, then are stopped.
   */
  stop(graceMs?: number): Promise<void>;
}

/** What a stop may take beyond the runs' grace and kill grace: stopping the rest, bounded. */
export const SHUTDOWN_MARGIN_MS = 14_000;

export async function startApp(options: AppOptions): Promise<RunningApp> {
  const { config, db, log, env } = options;
  const bus = new Bus();
  const slackApiUrl = env.slackApiUrl ?? 'https://slack.com/api/';
  // One keep-alive HTTP client for both Web API clients and Bolt's respond() (see slackFetch.ts).
  const slackHttp = createSlackFetch();
  // Background calls (cards, review DMs, permalinks, user group members) get their own client: a
  // 429 there must not delay the listeners' answers.
  const background = env.slack
    ? new WebClient(env.slack.botToken, {
        slackApiUrl,
        rejectRateLimitedCalls: true,
        retryConfig: { retries: 0 },
        timeout: 15_000,
        logger: boltLogger(log),
        fetch: slackHttp.fetch,
      })
    : null;
  const reviewers = new Reviewers(background ? webApiUsergroups(background) : null, {
    ttlMs: options.usergroupCacheMs ?? DEFAULT_USERGROUP_TTL_MS,
    log: log.child({ component: 'reviewers' }),
  });
  const service = new TaskService(db, config, bus, reviewers, (error, births) => log.warn({ err: error, births }, 'inserting new tasks together failed'));
  // Who may see which task: asked by every surface that shows a task or its output.
  const channelMembers = new ChannelMembers(background ? webApiChannelMembers(background) : null, {
    ttlMs: options.usergroupCacheMs ?? DEFAULT_USERGROUP_TTL_MS,
    log: log.child({ component: 'access' }),
  });
  const access = new Access(config, reviewers, channelMembers);
  const scheduleQueries = new ScheduleQueries(db, config, access);
  const queries = new TaskQueries(db, access, (schedule) => scheduleQueries.subject(schedule));
  const runs = new RunService(db, config, bus, reviewers);
  const scheduleNow = options.scheduler?.now ?? (() => new Date());
  const schedules = new ScheduleService(db, config, reviewers, scheduleNow);
  let schedulePoster: ResultPoster | null = null;
  let scheduleViews: ScheduleSlack | null = null;
  const http = express();
  http.disable('x-powered-by');
  let stopping = false;
  // Known once the server listens (tests use port 0); PUBLIC_URL wins when set.
  let selfUrl = '';
  const signer = await createLinkSigner({
    loadKeys: () => ensureLinkKeys(db),
    publicUrl: () => env.publicUrl ?? selfUrl,
    ttlMs: options.logLinkTtlMs ?? config.links?.ttlMs ?? DEFAULT_LINK_TTL_MS,
    onRefreshError: (error) => log.warn({ err: error }, 'reading the link keys failed: using the ones read before'),
  });
  const pool = new SshPool({ idleMs: 60_000, keepaliveMs: options.sshKeepaliveMs ?? 5_000, keepaliveCountMax: 3 });
  const settings = config.runner;
  const runnerOptions: RunnerOptions = {
    runnerId: `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`,
    pollMs: settings.pollMs,
    leaseMs: settings.leaseMs,
    livenessMs: settings.livenessMs,
    maxConcurrent: settings.maxConcurrentRuns,
    killGraceMs: settings.killGraceMs,
    outputFlushMs: 200,
    maxOutputBytes: settings.maxOutputBytes,
    ...options.runner,
  };
  // Runs hold their lock, claim, store output and results on their own pool: API followers and
  // Slack views cannot starve them.
  const runnerDb = createDb(options.databaseUrl, options.runnerPoolSize ?? 10, 'countersign-runner');
  const feed = new TaskFeed(db, log.child({ component: 'followers' }), options.followers);
  let runnerRef: Runner | null = null;
  const liveness = new RunnerLiveness({
    connectionString: options.databaseUrl,
    livenessMs: runnerOptions.livenessMs,
    log: log.child({ component: 'liveness' }),
    onAcquired: () => runnerRef?.wake(),
  });
  const metrics = new Metrics(db, () => pool.stats(), { followers: () => feed.followers, livenessHeld: () => liveness.holds });
  // /metrics: on its own listener (METRICS_PORT), or on the main port behind a bearer token
  // (METRICS_TOKEN), or not at all. With both set, the metrics port asks for the token too.
  const expectedAuth = env.metricsToken !== undefined ? createHash('sha256').update(`Bearer ${env.metricsToken}`).digest() : null;
  const serveMetrics = (req: express.Request, res: express.Response, next: express.NextFunction) => {
    if (
      expectedAuth &&
      !timingSafeEqual(
        createHash('sha256')
          .update(req.get('authorization') ?? '')
          .digest(),
        expectedAuth,
      )
    ) {
      res.status(401).set('WWW-Authenticate', 'Bearer').type('text/plain').send('Send Authorization: Bearer <METRICS_TOKEN>.\n');
      return;
    }
    metrics.registry.metrics().then((text) => res.type(metrics.registry.contentType).send(text), next);
  };
  let metricsServer: Server | null = null;
  if (env.metricsPort !== undefined) {
    const metricsHttp = express();
    metricsHttp.disable('x-powered-by');
    metricsHttp.get('/metrics', serveMetrics);
    metricsServer = createServer(metricsHttp);
    const listening = metricsServer;
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject);
      listening.listen(env.metricsPort, options.host ?? '0.0.0.0', () => resolve());
    });
  } else if (env.metricsToken !== undefined) {
    http.get('/metrics', serveMetrics);
  } else {
    log.info('metrics are off: set METRICS_PORT (a separate listener) or METRICS_TOKEN (bearer token on the main port) to serve /metrics');
  }
  http.use(requestContext(log));
  // People's names on the task page (users.info, cached): a page never waits long for Slack.
  const people = new PeopleDirectory(background ? webApiUserNames(background) : null, { log: log.child({ component: 'people' }) });
  const recheck = options.streamRecheckMs !== undefined ? { recheckMs: options.streamRecheckMs } : {};
  http.use(taskPageRouter({ db, signer, access, log: log.child({ component: 'page' }), feed, people, ...recheck }));
  const links = {
    statusUrl: (id: number) => `${env.publicUrl ?? selfUrl}${API_PREFIX}/tasks/${id}`,
    logUrl: (id: number) => signer.taskUrl(id),
    runStatusUrl: (id: number) => `${env.publicUrl ?? selfUrl}${API_PREFIX}/runs/${id}`,
  };
  const recipes = new RecipeService(db, config, service, reviewers);
  const runbooks = new RunbookService(db, config, recipes, runs, reviewers);
  schedules.useRunbooks(runbooks.scheduling());
  if ((config.recipes?.size ?? 0) > 0) {
    log.info(
      { recipes: [...(config.recipes?.keys() ?? [])] },
      'recipes: and recipeFiles are read as one-step runbooks; they are deprecated: move them under runbooks: (a recipe is a runbook with one script step)',
    );
  }
  http.use('/hooks', hooksRouter({ config, runbooks, statusUrl: links.statusUrl, runStatusUrl: links.runStatusUrl, log: log.child({ component: 'hooks' }) }));

  http.get('/healthz', async (_req, res) => {
    try {
      if (stopping) throw new Error('shutting down');
      await db.raw('select 1');
      res.json({ status: 'ok', slack: env.slack ? 'configured' : `not configured (missing ${env.slackMissing.join(', ')})`, runner: runner.runningCount });
    } catch (error) {
      res.status(503).json({ status: 'unavailable', reason: (error as Error).message });
    }
  });

  let socketReceiver: SocketModeReceiver | null = null;
  let home: HomePublisher | null = null;
  let messages: TaskMessages | null = null;
  let runMessages: RunMessages | null = null;
  let slackGateway: SlackGateway | null = null;
  let streamer: ThreadStreamer | null = null;
  let observer: RunObserver = silentObserver;
  let workflowSteps: WorkflowSteps | null = null;
  if (env.slack && background) {
    const gateway = new SlackGateway(background, {
      // A little under Slack's one a second: pacing exactly at a limit meets it now and then.
      postMessageSpacingMs: options.postMessageSpacingMs ?? 1100,
      postMessageBurst: 3,
      updatesPerMinute: options.chatUpdatesPerMinute ?? 50,
      updateBurst: 10,
      updateReserveForViews: 4,
      onCall: (method, outcome) => metrics.slackCalls.inc({ method, outcome }),
    });
    slackGateway = gateway;
    // One for every view: it remembers DM channels (conversations.open is Tier 3).
    const lookups = webApiLookups(background);
    const views = {
      retryBaseMs: options.slackRetryBaseMs ?? 1000,
      reconcileMs: options.slackReconcileMs ?? 15_000,
      logUrl: (taskId: number) => signer.taskUrl(taskId),
      reviewers,
      lookups,
    };
    messages = new TaskMessages(db, config, gateway, log.child({ component: 'cards' }), views);
    // Runs' cards, review requests and step messages (issue 11), redrawn on 'run-changed'.
    runMessages = new RunMessages(db, runs, gateway, log.child({ component: 'run-cards' }), views);
    streamer = new ThreadStreamer(
      db,
      gateway,
      { flushMs: options.threadFlushMs ?? 1000, liveHostLimit: 5, maxMessages: 10, cardWaitMs: 60_000, logUrl: (taskId) => signer.taskUrl(taskId) },
      log.child({ component: 'thread' }),
    );
    observer = streamer;
    // Socket Mode when an app token is set: Slack's payloads arrive over a WebSocket opened with
    // apps.connections.open (at SLACK_API_URL too), and /slack/events is not served.
    const receiver: Receiver = env.slackAppToken
      ? new SocketModeReceiver({
          appToken: env.slackAppToken,
          logger: boltLogger(log),
          installerOptions: { clientOptions: { slackApiUrl, fetch: slackHttp.fetch } },
        })
      : new ExpressReceiver({ signingSecret: env.slack.signingSecret, endpoints: '/slack/events', app: http, logger: boltLogger(log) });
    socketReceiver = receiver instanceof SocketModeReceiver ? receiver : null;
    const bolt = new App({
      token: env.slack.botToken,
      receiver,
      logger: boltLogger(log),
      clientOptions: {
        slackApiUrl,
        retryConfig: { retries: 2, factor: 1, minTimeout: 200, maxTimeout: 1000 },
        fetch: slackHttp.fetch,
      },
      // Workflow steps complete with the bot token, later and maybe elsewhere (src/slack/workflowStep.ts).
      attachFunctionToken: false,
      // Bolt's conversation store is unused here, and on every request it looked the channel up and
      // rejected with a new Error ("Conversation not found"): about a third of Bolt's CPU per request.
      convoStore: false,
    });
    // First in line: requests from any workspace but ours reach no listener.
    const workspace = new WorkspaceGuard({
      teamId: env.slackTeamId,
      enterpriseId: env.slackEnterpriseId,
      authTest: () => background.auth.test(),
      log: log.child({ component: 'workspace' }),
    });
    workspace.start();
    bolt.use(workspace.middleware());
    const resolvedPolicy = (targetName: string) => service.resolvedPolicy(targetName);
    home = new HomePublisher(
      db,
      gateway,
      queries,
      log.child({ component: 'home' }),
      { minIntervalMs: options.homeRefreshMs ?? 2000 },
      scheduleQueries,
      new HomeRunbooks(db, runbooks, runs),
    );
    const commands = { db, config, service, queries, access, logUrl: (taskId: number) => signer.taskUrl(taskId), resolvedPolicy };
    const scheduleSlack = new ScheduleSlack({
      schedules,
      gateway,
      log: log.child({ component: 'schedules' }),
      now: scheduleNow,
      lookups,
      queries: scheduleQueries,
      home,
    });
    // /task, every button, every form and App Home through one Bolt middleware (listenerTable.ts
    // says why). After the workspace guard, above: Bolt runs global middleware in the order it was
    // added (test/e2e/foreign-workspace.test.ts sends a foreign command, click, form and event).
    const listeners = new ListenerTable(bolt);
    scheduleSlack.register(listeners);
    schedulePoster = scheduleSlack.poster();
    scheduleSlack.startReconcile(options.slackReconcileMs ?? 15_000);
    scheduleViews = scheduleSlack;
    registerListeners(listeners, {
      service,
      messages,
      log,
      commands,
      home,
      schedules: scheduleSlack,
      recipes,
      runs,
      runbooks: { runbooks, log: log.child({ component: 'runbooks' }), resolvedPolicy, runPolicy: (run) => runs.policyOf(run) },
    });
    // The Workflow Builder step (issue 13): runs started from Slack workflows, completed when they end.
    const reconcileMs = options.slackReconcileMs ?? 15_000;
    const steps = new WorkflowSteps(db, runbooks, webApiCompleter(background), log.child({ component: 'workflow' }), {
      claimant: runnerOptions.runnerId,
      runUrl: links.runStatusUrl,
      permalink: lookups.permalink,
      reconcileMs,
      staleMs: Math.max(5_000, 2 * reconcileMs),
    });
    registerWorkflowStep(bolt, steps, log.child({ component: 'workflow' }));
    bus.on('run-changed', (runId) => void steps.runChanged(runId));
    steps.start();
    workflowSteps = steps;
    // The listeners' own calls (respond, views) go through Bolt's client: count its 429s too.
    bolt.client.on(WebClientEvent.RATE_LIMITED, (_seconds: number, request: { url?: string }) => {
      metrics.slackCalls.inc({ method: String(request?.url ?? 'unknown').replace(/^.*\//, ''), outcome: 'ratelimited' });
    });
    bolt.error(async (error) => {
      log.error({ err: error }, 'unhandled error in a Slack listener');
    });
    const cards = messages;
    const homes = home;
    schedules.onChange(
      (scheduleId) => void homes.scheduleChanged(scheduleId).catch((error) => log.warn({ err: error, scheduleId }, 'App Home refresh failed')),
    );
    bus.on('task-changed', (taskId, channels, _notified, born) => cards.changed(taskId, channels, born));
    bus.on('task-changed', (taskId) => void homes.taskChanged(taskId).catch((error) => log.warn({ err: error, taskId }, 'App Home refresh failed')));
    bus.on('run-changed', (runId) => void homes.runChanged(runId).catch((error) => log.warn({ err: error, runId }, 'App Home refresh failed')));
    cards.start();
    const runCards = runMessages;
    bus.on('run-changed', (runId) => void runCards.sync(runId).catch((error) => log.error({ err: error, runId }, 'run card sync failed')));
    runCards.start();
  } else {
    log.warn({ missing: env.slackMissing }, `Slack is not configured (missing ${env.slackMissing.join(', ')}): serving HTTP only`);
  }

  // After the recipes and runbooks exist: the API starts both.
  http.use(
    API_PREFIX,
    apiRouter({
      db,
      log: log.child({ component: 'api' }),
      operations: [
        ...operations({
          db,
          config,
          service,
          links,
          access,
          queries,
          feed,
          ...recheck,
          ...(options.followMaxMs !== undefined ? { followMaxMs: options.followMaxMs } : {}),
        }),
        ...scheduleOperations({ schedules, queries: scheduleQueries, now: scheduleNow }),
        ...runOperations({ db, config, runs, runbooks, tasks: service, access, links }),
      ],
    }),
  );

  const runner = new Runner(runnerDb, config, pool, bus, observer, liveness, runnerOptions, log.child({ component: 'runner' }), {
    claimed: (waitMs) => metrics.queueWait.observe(waitMs / 1000),
    finished: (status, durationMs) => metrics.runDuration.observe({ status }, durationMs / 1000),
    outputKept: (stream, bytes) => metrics.logBytes.inc({ stream }, bytes),
  });
  runnerRef = runner;
  service.useRunner({
    runApproved: (taskId, actor) => runner.runApproved(taskId, actor),
    failed: (error, taskId) => log.warn({ err: error, taskId }, 'claiming a Run at its click failed; making the task ready instead'),
  });
  // "Task N changed" reaches followers here at once, and other processes' followers over NOTIFY.
  const notices = new ChangeNotices(db, CHANNEL_TASK, (error, tasks) => log.debug({ err: error, tasks }, 'could not notify followers of a change'));
  bus.on('task-changed', (taskId, _channels, notified) => {
    feed.changed(taskId);
    if (notified !== true) notices.add(String(taskId));
  });
  // The run engine: http steps it sends carry this process's liveness key.
  const advancer = new Advancer(
    db,
    config,
    bus,
    runs,
    (trx) => runbooks.catalog(trx),
    {
      runnerId: runnerOptions.runnerId,
      runnerKey: liveness.key,
      pollMs: settings.pollMs,
      leaseMs: settings.leaseMs,
      livenessMs: runnerOptions.livenessMs,
      ...options.advancer,
    },
    log.child({ component: 'advancer' }),
  );
  // Other processes' ready tasks, stop requests, task and run changes arrive here within milliseconds of their commit.
  const listener = new PgListener(
    options.databaseUrl,
    [CHANNEL_READY, CHANNEL_STOP, CHANNEL_TASK, CHANNEL_RUN, CHANNEL_RUN_STEP_STOP],
    (channel, payload) => {
      if (channel === CHANNEL_READY) runner.wake(Number(payload) || undefined);
      else if (channel === CHANNEL_STOP) runner.stopRun(Number(payload), 'kill');
      else if (channel === CHANNEL_TASK) feed.changed(Number(payload));
      else if (channel === CHANNEL_RUN) bus.emit('run-changed', Number(payload));
      else if (channel === CHANNEL_RUN_STEP_STOP) advancer.stopHttpStep(Number(payload));
    },
    log.child({ component: 'listener' }),
    () => {
      runner.wake();
      feed.changedAll();
      void advancer.poll();
    },
  );
  await liveness.start();
  await listener.start();
  runner.start();
  advancer.start();
  // Every process sweeps; the guarded transition lets one of them expire each review.
  const expiry = new ReviewExpiry(db, config, bus, log.child({ component: 'review-expiry' }), {
    intervalMs: options.reviewExpiryMs ?? DEFAULT_REVIEW_EXPIRY_INTERVAL_MS,
    schedules,
    runs,
  });
  expiry.start();
  // Every process ticks; the firing key (schedule, fire time) lets one of them fire each time.
  const scheduler = new Scheduler(db, config, bus, schedules, log.child({ component: 'scheduler' }), {
    post: schedulePoster,
    logUrl: (taskId) => signer.taskUrl(taskId),
    ...options.scheduler,
    now: scheduleNow,
  });
  schedules.onChange(() => scheduler.wake());
  scheduler.start();

  // Last in line: an error no route answered is ours; log it, never show a stack trace.
  http.use((error: unknown, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    ((res.locals.log as Logger | undefined) ?? log).error({ err: error, method: req.method, path: req.path }, 'request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    res.status(500).type('text/plain').send('Something went wrong on our side; it has been logged.');
  });

  // Connects and waits for Slack's hello; reconnects by itself when the link drops.
  if (socketReceiver) await socketReceiver.start();
  const server = createServer(http);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(env.port, options.host ?? '0.0.0.0', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host ?? '127.0.0.1';
  selfUrl = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  log.info({ port }, 'countersign is listening');

  return {
    url: selfUrl,
    port,
    server,
    bus,
    service,
    runner,
    pool,
    messages,
    runMessages,
    slackGateway,
    signer,
    schedules,
    scheduler,
    runs,
    runbooks,
    advancer,
    feed,
    liveness,
    metricsUrl: metricsServer ? `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${(metricsServer.address() as AddressInfo).port}` : null,
    async stop(graceMs = 30_000) {
      // HTTP keeps serving until the runs have ended: a Kill clicked during the grace period must
      // still land. /healthz says 503 meanwhile so a load balancer sends new work elsewhere.
      // Every step is bounded: a hung database, SSH host or Slack must not keep the process alive.
      stopping = true;
      // The runner takes at most graceMs + killGraceMs + 7 s; main.ts then needs a second or two.
      const deadline = Date.now() + graceMs + runnerOptions.killGraceMs + SHUTDOWN_MARGIN_MS - 3000;
      const within = (work: Promise<unknown> | undefined, ms: number, what: string) =>
        bounded(work, Math.min(ms, Math.max(0, deadline - Date.now())), () => log.warn({ step: what }, 'shutdown step did not finish in time; going on'));
      await Promise.all([within(expiry.stop(), 1000, 'review expiry'), within(scheduler.stop(), 1000, 'scheduler')]);
      scheduleViews?.stop();
      await within(advancer.stop(Math.min(graceMs, 5_000)), 6_000, 'run engine');
      await within(workflowSteps?.stop(), 2_000, 'workflow steps');
      await runner.stop(graceMs);
      await within(
        socketReceiver?.stop().catch((error: unknown) => log.warn({ err: error }, 'closing the Socket Mode connection failed')),
        1000,
        'socket mode',
      );
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Followers end their streams (and free the pool) before the listeners go.
      feed.stop();
      await within(Promise.all([listener.stop(), liveness.stop(500)]), 1000, 'listeners');
      pool.closeAll();
      await within(streamer?.idle(10_000), 10_000, 'thread output');
      await within(messages?.idle(5_000), 5_000, 'cards');
      await within(runMessages?.idle(5_000), 5_000, 'run cards');
      messages?.stop();
      runMessages?.stop();
      home?.stop();
      server.closeAllConnections();
      metricsServer?.closeAllConnections();
      await within(Promise.all([closed, metricsServer ? new Promise<void>((resolve) => metricsServer!.close(() => resolve())) : undefined]), 1000, 'http');
      await within(runnerDb.destroy(), 1000, 'runner pool');
      await within(slackHttp.close(500), 1000, 'slack connections');
    },
  };
}

/** Waits for `work` at most `ms`; past that, calls `late` and goes on (the work is left behind). */
async function bounded(work: Promise<unknown> | undefined, ms: number, late: () => void): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), ms)));
  const wasLate = await Promise.race([
    work.then(
      () => false,
      () => false,
    ),
    timedOut,
  ]);
  clearTimeout(timer);
  if (wasLate) late();
}
