/**
 * Runs one script on one host over SSH (ssh2): key auth, host key pinned, script on stdin,
 * stdout and stderr streamed to the caller, stop and timeout by signalling the remote process
 * group (TERM, then KILL after a grace period). Never throws: every way a step can end is an
 * outcome the runner stores.
 */
import { createHash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { Client, type ClientChannel } from 'ssh2';
import type { HostAddress } from '../domain/plan.js';
import { hostLabel } from '../domain/plan.js';
import type { ScriptType } from '../domain/scriptTypes.js';
import { keysFor, type KnownHostEntry } from './knownHosts.js';
import { newRunToken, remoteCommand, stopCommand, type StopSignal } from './remoteCommand.js';

export interface SshStepOptions {
  address: HostAddress;
  privateKey: string;
  knownHosts: readonly KnownHostEntry[];
  type: ScriptType;
  script: string;
  connectTimeoutMs: number;
  runTimeoutMs: number;
  killGraceMs: number;
  onOutput(stream: 'stdout' | 'stderr', text: string): void;
  /** Aborting asks the remote process to stop: TERM, then KILL after killGraceMs. */
  stop: AbortSignal;
}

export type StepOutcome =
  /** The remote process ended; `stopped` says whether a stop or timeout ended it. */
  | { kind: 'exited'; exitCode: number | null; signal: string | null; stopped: boolean; timedOut: boolean }
  /** Nothing ran (refused host key, connection or auth failure) or the link dropped mid-run. */
  | { kind: 'failed'; message: string; ran: boolean };

/** known_hosts key types -> the ssh2 host key algorithms that produce them. */
const ALGORITHMS_FOR_KEY_TYPE: Readonly<Record<string, string[]>> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
};

export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

export function runSshStep(options: SshStepOptions): Promise<StepOutcome> {
  const label = hostLabel(options.address);
  const pinned = keysFor(options.knownHosts, options.address.host, options.address.port);
  if (pinned.length === 0) {
    return Promise.resolve({
      kind: 'failed',
      ran: false,
      message: `no pinned host key for ${label} in the target's ssh.knownHosts, so nothing was run (add the line ssh-keyscan prints)`,
    });
  }
  const serverHostKey = [...new Set(pinned.flatMap((entry) => ALGORITHMS_FOR_KEY_TYPE[entry.keyType] ?? [entry.keyType]))];

  return new Promise((resolve) => {
    const conn = new Client();
    let settled = false;
    let channel: ClientChannel | null = null;
    let hostKeyProblem: string | null = null;
    let exit: { code: number | null; signal: string | null } | null = null;
    let stopping = false;
    let timedOut = false;
    const timers: NodeJS.Timeout[] = [];

    const finish = (outcome: StepOutcome) => {
      if (settled) return;
      settled = true;
      timers.forEach(clearTimeout);
      options.stop.removeEventListener('abort', onStop);
      conn.end();
      resolve(outcome);
    };

    const token = newRunToken();
    /** Signals the remote process group from a second channel; falls back to SSH's signal request. */
    const signalGroup = (signal: StopSignal) => {
      const fallback = () => channel?.signal(signal);
      conn.exec(stopCommand(token, signal), (error, killer) => {
        if (error) return fallback();
        killer.on('exit', (code: number | null) => {
          if (code !== 0) fallback();
        });
        killer.resume();
        killer.stderr.resume();
      });
    };
    const signalRemote = (reason: 'stop' | 'timeout') => {
      // Already exited: the run ended on its own, whatever arrives now.
      if (stopping || exit) return;
      stopping = true;
      timedOut = reason === 'timeout';
      if (!channel) {
        finish({ kind: 'failed', ran: false, message: reason === 'timeout' ? `timed out connecting to ${label}` : 'stopped before it started' });
        return;
      }
      signalGroup('TERM');
      timers.push(
        setTimeout(() => {
          signalGroup('KILL');
          // If even KILL gets no exit back, give up on the link rather than hang.
          timers.push(setTimeout(() => finishAfterStop(`${label} did not report an exit after KILL`), options.killGraceMs));
        }, options.killGraceMs),
      );
    };
    const finishAfterStop = (message: string) => finish({ kind: 'failed', ran: true, message });
    const onStop = () => signalRemote('stop');
    options.stop.addEventListener('abort', onStop);
    // The run's time counts from the first packet: a host that accepts TCP and then stalls is stopped too.
    timers.push(setTimeout(() => signalRemote('timeout'), options.runTimeoutMs));
    if (options.stop.aborted) {
      finish({ kind: 'failed', ran: false, message: 'stopped before it started' });
      return;
    }

    conn.on('ready', () => {
      conn.exec(remoteCommand(options.type, token, Buffer.byteLength(options.script, 'utf8')), (error, stream) => {
        if (error) {
          finish({ kind: 'failed', ran: false, message: `${label} refused to start the script: ${error.message}` });
          return;
        }
        channel = stream;
        if (options.stop.aborted) signalRemote('stop');
        const stdout = new StringDecoder('utf8');
        const stderr = new StringDecoder('utf8');
        stream.on('data', (data: Buffer) => emit('stdout', stdout.write(data)));
        stream.stderr.on('data', (data: Buffer) => emit('stderr', stderr.write(data)));
        stream.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
        });
        stream.on('close', () => {
          emit('stdout', stdout.end());
          emit('stderr', stderr.end());
          if (exit) {
            finish({ kind: 'exited', exitCode: exit.code, signal: exit.signal, stopped: stopping, timedOut });
          } else {
            finish({ kind: 'failed', ran: true, message: `the connection to ${label} closed before the script reported an exit status` });
          }
        });
        stream.end(options.script);
      });
    });

    const emit = (which: 'stdout' | 'stderr', text: string) => {
      if (text !== '') options.onOutput(which, text);
    };

    conn.on('error', (error: Error & { level?: string }) => {
      if (hostKeyProblem) {
        finish({ kind: 'failed', ran: false, message: hostKeyProblem });
      } else if (channel) {
        finish({ kind: 'failed', ran: true, message: `lost the connection to ${label} mid-run: ${error.message}` });
      } else if (error.level === 'client-authentication') {
        finish({ kind: 'failed', ran: false, message: `${label} did not accept the target's SSH key for user ${options.address.user}` });
      } else {
        finish({ kind: 'failed', ran: false, message: `cannot connect to ${label}: ${error.message}` });
      }
    });
    conn.on('close', () => {
      if (channel) {
        finish({ kind: 'failed', ran: true, message: `the connection to ${label} closed mid-run` });
      } else {
        finish({ kind: 'failed', ran: false, message: hostKeyProblem ?? `the connection to ${label} closed before the script started` });
      }
    });

    conn.connect({
      host: options.address.host,
      port: options.address.port,
      username: options.address.user,
      privateKey: options.privateKey,
      // Key auth only: ssh2 otherwise tries "none" first and pays a round trip for it.
      authHandler: ['publickey'],
      readyTimeout: options.connectTimeoutMs,
      // Off by default in ssh2: without it a silently dropped link hangs forever.
      keepaliveInterval: 5_000,
      keepaliveCountMax: 3,
      algorithms: { serverHostKey: serverHostKey as never },
      hostVerifier: (key: Buffer) => {
        const offered = key.toString('base64');
        if (pinned.some((entry) => entry.keyBase64 === offered)) return true;
        hostKeyProblem = `the host key of ${label} (${fingerprint(key)}) does not match the key pinned in the target's ssh.knownHosts, so nothing was run`;
        return false;
      },
    });
    // Nagle plus delayed ACKs cost ~40 ms per round trip of the handshake and of every exec.
    conn.setNoDelay(true);
  });
}
