/**
 * Runs one script on one host over a pooled SSH connection: secrets and script on stdin,
 * stdout and stderr streamed to the caller with backpressure, stop and timeout by signalling
 * every process of the run (TERM, then KILL after a grace period) and then checking on the host
 * that none survived. Never throws: every way a step can end is an outcome the runner stores.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Client, ClientChannel } from 'ssh2';
import { hostLabel } from '../domain/plan.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import { encodeStdin, remoteCommand, stopCommand, survivorsCommand, type StopSignal } from './remoteCommand.js';
import { SshConnectError, type SshEndpoint, type SshPool } from './sshPool.js';

export interface SshStepOptions {
  pool: SshPool;
  endpoint: SshEndpoint;
  type: ScriptType;
  script: string;
  secrets: ReadonlyMap<string, string>;
  runAs: readonly string[] | null;
  /** Names the run's files and marks its processes on the host (stored, so another process can stop it). */
  token: string;
  runTimeoutMs: number;
  killGraceMs: number;
  /** Receives output; returning false pauses the stream until `drained` resolves (backpressure). */
  onOutput(stream: 'stdout' | 'stderr', text: string): boolean;
  drained(): Promise<void>;
  /** Aborting asks the remote processes to stop: TERM, then KILL after killGraceMs. */
  stop: AbortSignal;
}

export type StepOutcome =
  /** The remote process ended; `stopped` says whether a stop or timeout ended it. */
  | { kind: 'exited'; exitCode: number | null; signal: string | null; stopped: boolean; timedOut: boolean; survivors: number }
  /** Nothing ran (refused host key, connection or auth failure, stopped first) or the link dropped mid-run. */
  | { kind: 'failed'; message: string; ran: boolean; timedOut?: boolean };

export { fingerprint } from './sshPool.js';

export async function runSshStep(options: SshStepOptions): Promise<StepOutcome> {
  const label = hostLabel(options.endpoint.address);
  // The run's time counts from the start: a host that stalls the handshake is stopped too.
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort('timeout'), options.runTimeoutMs);
  const startAbort = AbortSignal.any([options.stop, timeout.signal]);
  try {
    return await options.pool.withSession(options.endpoint, (client, connection) => execute(client, connection, options, label, timeout.signal), {
      signal: startAbort,
    });
  } catch (error) {
    if (timeout.signal.aborted) return { kind: 'failed', ran: false, timedOut: true, message: `timed out connecting to ${label}` };
    if (options.stop.aborted) return { kind: 'failed', ran: false, message: 'stopped before it started' };
    if (error instanceof SshConnectError) return { kind: 'failed', ran: false, message: error.message };
    return { kind: 'failed', ran: false, message: `could not run on ${label}: ${(error as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}

function execute(
  client: Client,
  connection: { lostReason(): string | null },
  options: SshStepOptions,
  label: string,
  timedOutSignal: AbortSignal,
): Promise<StepOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    let channel: ClientChannel | null = null;
    let exit: { code: number | null; signal: string | null } | null = null;
    let stopping = false;
    const timers: NodeJS.Timeout[] = [];

    const finish = async (outcome: StepOutcome) => {
      if (settled) return;
      settled = true;
      timers.forEach(clearTimeout);
      options.stop.removeEventListener('abort', onStop);
      timedOutSignal.removeEventListener('abort', onTimeout);
      resolve(outcome);
    };

    /** Runs a control command (stop, survivors check) in the connection's reserved slot. */
    const control = (command: string): Promise<string> =>
      options.pool
        .withSession(
          options.endpoint,
          (conn) =>
            new Promise<string>((done, fail) => {
              conn.exec(command, (error, stream) => {
                if (error) return fail(error);
                let out = '';
                stream.on('data', (data: Buffer) => (out += data.toString()));
                stream.stderr.resume();
                stream.on('close', () => done(out));
              });
            }),
          { control: true },
        )
        .catch(() => '');

    const signalAll = (signal: StopSignal) => control(stopCommand(options.token, signal, options.runAs));

    const stopRemote = () => {
      // Already exited: the run ended on its own, whatever arrives now.
      if (stopping || exit || settled) return;
      stopping = true;
      void signalAll('TERM');
      timers.push(
        setTimeout(() => {
          void signalAll('KILL');
          // If even KILL gets no exit back (a busy host can take a while), give up on the channel rather than hang.
          timers.push(
            setTimeout(() => {
              channel?.close();
              void finish({ kind: 'failed', ran: true, message: `${label} did not report an exit after KILL` });
            }, Math.max(10_000, options.killGraceMs)),
          );
        }, options.killGraceMs),
      );
    };
    const onStop = () => stopRemote();
    const onTimeout = () => stopRemote();
    options.stop.addEventListener('abort', onStop);
    timedOutSignal.addEventListener('abort', onTimeout);

    const command = remoteCommand({ type: options.type, token: options.token, scriptBytes: Buffer.byteLength(options.script, 'utf8'), runAs: options.runAs });
    client.exec(command, (error, stream) => {
      if (error) {
        void finish({ kind: 'failed', ran: false, message: `${label} refused to start the script: ${error.message}` });
        return;
      }
      channel = stream;
      const stdout = new StringDecoder('utf8');
      const stderr = new StringDecoder('utf8');
      const deliver = (which: 'stdout' | 'stderr', text: string) => {
        if (text === '' || options.onOutput(which, text)) return;
        // The consumer is behind: stop reading, so the SSH window fills and the remote script waits.
        stream.pause();
        stream.stderr.pause();
        void options.drained().then(() => {
          stream.resume();
          stream.stderr.resume();
        });
      };
      stream.on('data', (data: Buffer) => deliver('stdout', stdout.write(data)));
      stream.stderr.on('data', (data: Buffer) => deliver('stderr', stderr.write(data)));
      stream.on('exit', (code: number | null, signal?: string) => {
        exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
      });
      stream.on('close', async () => {
        deliver('stdout', stdout.end());
        deliver('stderr', stderr.end());
        if (!exit) {
          const why = connection.lostReason();
          await finish({ kind: 'failed', ran: true, message: `lost the connection to ${label} mid-run${why ? ` (${why})` : ''}` });
          return;
        }
        // A stopped run is verified on the host: nothing of it may survive.
        let survivors = 0;
        if (stopping) {
          survivors = Number((await control(survivorsCommand(options.token, options.runAs))).trim()) || 0;
          if (survivors > 0) {
            await signalAll('KILL');
            survivors = Number((await control(survivorsCommand(options.token, options.runAs))).trim()) || 0;
          }
        }
        await finish({ kind: 'exited', exitCode: exit.code, signal: exit.signal, stopped: stopping, timedOut: timedOutSignal.aborted, survivors });
      });
      stream.end(encodeStdin(options.secrets, options.script));
      if (options.stop.aborted || timedOutSignal.aborted) stopRemote();
    });
  });
}
