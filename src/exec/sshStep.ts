/**
 * Runs one script on one host over a pooled SSH connection: secrets and script on stdin,
 * stdout and stderr streamed to the caller with backpressure, stop and timeout by signalling
 * every process of the run (TERM, then KILL after a grace period) and then checking on the host
 * that none survived. Never throws: every way a step can end is an outcome the runner stores.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Client, ClientChannel } from 'ssh2';
import { formatDuration } from '../domain/duration.js';
import { hostLabel } from '../domain/plan.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import { ensureEnded, killAndCount, signalRun, withinMs } from './hostControl.js';
import { encodeStdin, remoteCommand, type ScriptArgument, type StopSignal } from './remoteCommand.js';
import { SshConnectError, type SessionHandle, type SshEndpoint, type SshPool } from './sshPool.js';

export interface SshStepOptions {
  pool: SshPool;
  endpoint: SshEndpoint;
  type: ScriptType;
  script: string;
  secrets: ReadonlyMap<string, string>;
  /** The task's arguments: "$1"... and ARG_<NAME>, sent on stdin after the secrets (not masked). */
  args?: readonly ScriptArgument[];
  runAs: readonly string[] | null;
  /** Names the run's files and marks its processes on the host (stored, so another process can stop it). */
  token: string;
  /** Counted from the moment the script is started, not while the step waits for a session slot. */
  runTimeoutMs: number;
  killGraceMs: number;
  /** Receives output; returning false pauses the stream until `drained` resolves (backpressure). */
  onOutput(stream: 'stdout' | 'stderr', text: string): boolean;
  drained(): Promise<void>;
  /** Aborting asks the remote processes to stop: TERM, then KILL after killGraceMs. */
  stop: AbortSignal;
  /** A run step: the script gets $COUNTERSIGN_OUTPUT (read back with readOutputFile). */
  outputFile?: boolean;
}

export type StepOutcome =
  /** The remote process ended; `stopped` says whether a stop or timeout ended it. */
  | { kind: 'exited'; exitCode: number | null; signal: string | null; stopped: boolean; timedOut: boolean; survivors: number }
  /**
   * Nothing ran (refused host key, connection or auth failure, stopped first), the link dropped
   * mid-run, or a stopped run could not be verified to have ended.
   */
  | { kind: 'failed'; message: string; ran: boolean; timedOut?: boolean };

/**
 * The pooled connection could not even open the channel: nothing ran, so another try is safe.
 * `busy`: the link is fine but the host refused the session for now (see BUSY_RETRIES).
 */
type NotStarted = { kind: 'not-started'; reason: string; busy?: boolean };

/**
 * sshd frees a session's slot a moment after its channel closes on our side, so under load an
 * open can find every slot still taken and be refused ("open failed") although our count says
 * one is free. Nothing ran: try again shortly, on the same connection, this many times.
 */
const BUSY_RETRIES = 40;

/**
 * The wait before busy retry `n` (from 1): the first few after a millisecond, since the slot is
 * usually freed by the time sshd reads its next packet (raw ssh2 under load: about one refusal
 * per exec); then doubling up to 50 ms, for a host whose sessions another client really holds.
 */
function busyWait(n: number): number {
  return n <= 5 ? 1 : Math.min(50, 2 ** (n - 5));
}

export { fingerprint } from './sshPool.js';

/** Beyond the connect timeout, what the KILL and the survivors check (which waits up to ~2 s for reaping) may take. */
const CHECK_MS = 5_000;
const UNVERIFIED = "could not verify that the run's processes ended";

export async function runSshStep(options: SshStepOptions): Promise<StepOutcome> {
  const label = hostLabel(options.endpoint.address);
  let busyRetries = 0;
  for (let attempt = 1; ; attempt++) {
    let result: StepOutcome | NotStarted;
    try {
      result = await options.pool.withSession(options.endpoint, (client, connection) => new StepRun(client, connection, options, label).start(), {
        signal: options.stop,
      });
    } catch (error) {
      if (options.stop.aborted) return { kind: 'failed', ran: false, message: 'stopped before it started' };
      if (error instanceof SshConnectError) return { kind: 'failed', ran: false, message: error.message };
      return { kind: 'failed', ran: false, message: `could not run on ${label}: ${(error as Error).message}` };
    }
    if (result.kind !== 'not-started') return result;
    if (options.stop.aborted) return { kind: 'failed', ran: false, message: 'stopped before it started' };
    if (result.busy && busyRetries < BUSY_RETRIES) {
      busyRetries++;
      attempt--;
      await pause(busyWait(busyRetries), options.stop);
      continue;
    }
    // Once more, on a fresh connection: the pooled one went away between its last use and now.
    if (attempt >= 2) return { kind: 'failed', ran: false, message: result.busy ? result.reason : `could not run on ${label}: ${result.reason}` };
  }
}

/** One attempt at running the script on an acquired session. */
class StepRun {
  private resolve: (result: StepOutcome | NotStarted) => void = () => undefined;
  private settled = false;
  private channel: ClientChannel | null = null;
  private channelClosed = false;
  private exit: { code: number | null; signal: string | null } | null = null;
  private stopping = false;
  private timedOut = false;
  private scriptSent = false;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly client: Client,
    private readonly connection: SessionHandle,
    private readonly options: SshStepOptions,
    private readonly label: string,
  ) {}

  start(): Promise<StepOutcome | NotStarted> {
    return new Promise((resolve) => {
      this.resolve = resolve;
      const { options } = this;
      if (options.stop.aborted) return this.finish({ kind: 'failed', ran: false, message: 'stopped before it started' });
      const command = remoteCommand({
        type: options.type,
        token: options.token,
        scriptBytes: Buffer.byteLength(options.script, 'utf8'),
        runAs: options.runAs,
        outputFile: options.outputFile ?? false,
      });
      try {
        this.client.exec(command, (error, stream) => this.opened(error, stream));
      } catch (error) {
        // ssh2 throws "Not connected" when the socket is already closing: nothing started.
        this.connection.discard();
        return this.finish({ kind: 'not-started', reason: (error as Error).message });
      }
      // The run's time counts from here: the wait for a session slot is not the script's.
      this.timers.push(
        setTimeout(() => {
          this.timedOut = true;
          this.stop();
        }, options.runTimeoutMs),
      );
      options.stop.addEventListener('abort', this.stop);
    });
  }

  private opened(error: Error | undefined, stream: ClientChannel): void {
    if (this.settled) return;
    if (error) {
      if (this.stopping) {
        this.finish({ kind: 'failed', ran: false, message: 'stopped before it started', timedOut: this.timedOut });
        return;
      }
      // The link died while the channel was opening. The script travels on stdin only once the
      // exec succeeded, so even a wrapper the host did start read nothing and ran nothing.
      if (this.connection.lostReason() !== null) {
        this.finish({ kind: 'not-started', reason: error.message });
        return;
      }
      if (/open failed/i.test(error.message)) {
        this.finish({ kind: 'not-started', reason: `${this.label} refused to start the script: ${error.message}`, busy: true });
        return;
      }
      this.finish({ kind: 'failed', ran: false, message: `${this.label} refused to start the script: ${error.message}` });
      return;
    }
    this.channel = stream;
    const stdout = new StringDecoder('utf8');
    const stderr = new StringDecoder('utf8');
    const deliver = (which: 'stdout' | 'stderr', text: string) => {
      if (text === '' || this.options.onOutput(which, text)) return;
      // The consumer is behind: stop reading, so the SSH window fills and the remote script waits.
      stream.pause();
      stream.stderr.pause();
      void this.options.drained().then(() => {
        stream.resume();
        stream.stderr.resume();
      });
    };
    stream.on('data', (data: Buffer) => deliver('stdout', stdout.write(data)));
    stream.stderr.on('data', (data: Buffer) => deliver('stderr', stderr.write(data)));
    stream.on('exit', (code: number | null, signal?: string) => {
      this.exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
    });
    stream.on('close', () => {
      deliver('stdout', stdout.end());
      deliver('stderr', stderr.end());
      void this.closed();
    });
    if (this.stopping) {
      // The stop came while the channel was opening, so its TERM found nothing. Send no script
      // (the wrapper exits at its first read, running nothing) and signal again, in case the
      // wrapper got further than that.
      stream.end();
      void this.signal('TERM');
      return;
    }
    this.scriptSent = true;
    stream.end(encodeStdin(this.options.secrets, this.options.script, this.options.args ?? []));
  }

  /**
   * Stop or timeout. Guarded by `stopping`/`settled`, not by the exit status having arrived: a
   * script that exited can leave children (`sleep 30 &`) holding its output open, and those must
   * be stopped too.
   */
  private readonly stop = (): void => {
    if (this.stopping || this.settled || this.channelClosed) return;
    this.stopping = true;
    void this.signal('TERM');
    this.timers.push(
      setTimeout(() => {
        void this.signal('KILL');
        // If even KILL gets no close back (a busy host can take a while), give up on the channel rather than hang.
        this.timers.push(
          setTimeout(
            () => {
              this.channel?.close();
              this.finish({
                kind: 'failed',
                ran: this.scriptSent,
                message: `${this.label} did not report an exit after KILL, so countersign ${UNVERIFIED}: check it by hand`,
              });
            },
            Math.max(10_000, this.options.killGraceMs),
          ),
        );
      }, this.options.killGraceMs),
    );
  };

  private signal(signal: StopSignal): Promise<boolean> {
    return signalRun(this.options, signal);
  }

  private async closed(): Promise<void> {
    this.channelClosed = true;
    if (this.settled) return;
    // The channel is done: no more stop signals or timeouts, only the checks below.
    this.timers.forEach(clearTimeout);
    const bound = this.options.endpoint.connectTimeoutMs + CHECK_MS;
    if (!this.exit) return this.finish(await this.lost(bound));
    const exit = this.exit;
    if (!this.stopping) return this.finish({ kind: 'exited', exitCode: exit.code, signal: exit.signal, stopped: false, timedOut: false, survivors: 0 });
    // A stopped run is verified on the host: nothing of it may survive.
    const survivors = await ensureEnded(this.options, bound);
    if (!this.scriptSent) return this.finish({ kind: 'failed', ran: false, message: 'stopped before it started', timedOut: this.timedOut });
    if (survivors === null) {
      const what = this.timedOut ? `timed out after ${formatDuration(this.options.runTimeoutMs)} and was stopped` : 'stopped';
      return this.finish({ kind: 'failed', ran: true, message: `${what}, but countersign ${UNVERIFIED}: check ${this.label} by hand` });
    }
    this.finish({ kind: 'exited', exitCode: exit.code, signal: exit.signal, stopped: true, timedOut: this.timedOut, survivors });
  }

  /**
   * The channel closed without an exit status: the link dropped. Without a terminal nothing hangs
   * the script up, so its processes go on with nobody reading them: KILL them by the run's token
   * over a fresh connection (bounded, best effort) and say whether that worked.
   */
  private async lost(boundMs: number): Promise<StepOutcome> {
    const why = this.connection.lostReason();
    const lost = `lost the connection to ${this.label} mid-run${why ? ` (${why})` : ''}`;
    const survivors = await withinMs(killAndCount(this.options), boundMs);
    const after =
      survivors === 0
        ? "the run's processes left on the host were killed"
        : survivors === null
          ? `countersign ${UNVERIFIED}: check ${this.label} by hand`
          : `${survivors} of its processes survived KILL: check ${this.label} by hand`;
    return { kind: 'failed', ran: this.scriptSent, message: `${lost}; ${after}` };
  }

  private finish(result: StepOutcome | NotStarted): void {
    if (this.settled) return;
    this.settled = true;
    this.timers.forEach(clearTimeout);
    this.options.stop.removeEventListener('abort', this.stop);
    this.resolve(result);
  }
}

/** Waits `ms`, or less when `stop` aborts. */
function pause(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      stop.removeEventListener('abort', done);
      resolve();
    }
    stop.addEventListener('abort', done, { once: true });
  });
}
