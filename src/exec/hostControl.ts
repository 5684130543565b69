/**
 * Control commands for one run on its host (stop, survivors check), run in a pooled connection's
 * reserved slot, so they never wait behind the runs they act on. Each answers null when it could
 * not tell (no connection, the command failed): a check that did not happen must never read as
 * "nothing survived".
 */
import type { ClientChannel } from 'ssh2';
import { outputFileCommand, stopCommand, survivorsCommand, type StopSignal } from './remoteCommand.js';
import type { SshEndpoint, SshPool } from './sshPool.js';

export interface RunOnHost {
  pool: SshPool;
  endpoint: SshEndpoint;
  token: string;
  runAs: readonly string[] | null;
}

/** Runs `command` and answers its stdout, or null unless it ran and exited 0. */
export async function runControl(run: RunOnHost, command: string): Promise<string | null> {
  return (await runControlBytes(run, command, 1024 * 1024))?.toString('utf8') ?? null;
}

/** Runs `command` and answers at most `maxBytes` of its stdout as bytes, or null unless it ran and exited 0. */
export async function runControlBytes(run: RunOnHost, command: string, maxBytes: number): Promise<Buffer | null> {
  try {
    return await run.pool.withSession(
      run.endpoint,
      (client, connection) =>
        new Promise<Buffer | null>((done) => {
          const opened = (error: Error | undefined, stream: ClientChannel) => {
            if (error) return done(null);
            const chunks: Buffer[] = [];
            let size = 0;
            let code: number | null = null;
            stream.on('data', (data: Buffer) => {
              if (size < maxBytes) chunks.push(data.subarray(0, maxBytes - size));
              size += data.length;
            });
            stream.stderr.resume();
            stream.on('exit', (exitCode: number | null) => (code = exitCode));
            stream.on('close', () => done(code === 0 ? Buffer.concat(chunks) : null));
          };
          try {
            client.exec(command, opened);
          } catch {
            // The pooled connection is closing under us ("Not connected"): the next one connects afresh.
            connection.discard();
            done(null);
          }
        }),
      { control: true },
    );
  } catch {
    return null;
  }
}

/**
 * A run step's $COUNTERSIGN_OUTPUT file: at most `maxBytes` + 1 bytes of it (one more than a
 * valid file may hold, so an oversized one is seen as such), and the file removed. Null when it
 * could not be read (no connection, the command failed).
 */
export async function readOutputFile(run: RunOnHost, maxBytes: number): Promise<Buffer | null> {
  return runControlBytes(run, outputFileCommand(run.token, maxBytes + 1, run.runAs), maxBytes + 1);
}

/** Signals every process of the run; false when the command could not be run. */
export async function signalRun(run: RunOnHost, signal: StopSignal): Promise<boolean> {
  return (await runControl(run, stopCommand(run.token, signal, run.runAs))) !== null;
}

/** How many of the run's processes are alive (removing its files when none are), or null when unknown. */
export async function countSurvivors(run: RunOnHost): Promise<number | null> {
  return parseCount(await runControl(run, survivorsCommand(run.token, run.runAs)));
}

/** KILLs whatever is left of the run, then counts what survived; one round trip, null when unknown. */
export async function killAndCount(run: RunOnHost): Promise<number | null> {
  return parseCount(await runControl(run, `${stopCommand(run.token, 'KILL', run.runAs)}; ${survivorsCommand(run.token, run.runAs)}`));
}

/**
 * Makes sure a stopped run ended: counts its processes and, if any are left or the count failed
 * (the link may have died; the next command connects afresh), KILLs them and counts again.
 * Each step is bounded by `boundMs`, after which the answer is unknown.
 */
export async function ensureEnded(run: RunOnHost, boundMs: number): Promise<number | null> {
  const first = await withinMs(countSurvivors(run), boundMs);
  if (first === 0) return 0;
  return withinMs(killAndCount(run), boundMs);
}

/** `promise`, or null once `ms` have passed (the work goes on, its result ignored). */
export async function withinMs<T>(promise: Promise<T | null>, ms: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), ms)));
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function parseCount(out: string | null): number | null {
  const text = out?.trim() ?? '';
  return /^\d+$/.test(text) ? Number(text) : null;
}
