// A real OpenSSH sshd on loopback for integration tests: fresh host and client keys in a temp
// dir, key-only login as the current user, on a free port. Real sshd (not an ssh2 server) so
// MaxSessions, signals, process groups and host-key pinning behave as in production.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const SSHD = '/usr/sbin/sshd';
const START_TIMEOUT_MS = 10_000;
const LOG_LIMIT = 256 * 1024; // keep the tail of sshd's log, enough to debug a failure

export interface SshServer {
  host: string;
  /** Every address it listens on: `host` first, then `extraHosts`. */
  hosts: string[];
  port: number;
  /** The login user: whoever runs the tests. */
  user: string;
  /** The client's private key (OpenSSH format), accepted by ssh2's `privateKey`. */
  privateKey: string;
  privateKeyPath: string;
  /** The client's public key line, as in authorized_keys. */
  publicKey: string;
  /** `<host> ssh-ed25519 AAAA...`: a known_hosts line keyed by the plain host. */
  knownHosts: string;
  /** `[<host>]:<port> ssh-ed25519 AAAA...`: the form OpenSSH itself writes for a non-22 port. */
  knownHostsBracketed: string;
  /** `ssh-ed25519 AAAA...` */
  hostPublicKey: string;
  /** `SHA256:...` as `ssh-keygen -l` prints it. */
  hostKeyFingerprint: string;
  dir: string;
  /** The listening sshd's pid. */
  pid: number;
  /** sshd's log (stderr, LogLevel VERBOSE) so far. */
  log(): string;
  /** Pids of every process under sshd: connection handlers and the commands they run. */
  sessionPids(): number[];
  /** Kill sshd and everything it started, remove the temp dir. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SshdOptions {
  host?: string;
  /** More addresses the same sshd listens on (one host key for all), e.g. 127.0.0.11-19 for a fleet. */
  extraHosts?: string[];
  /** Log in as this user instead of the one running the tests (created if missing, /bin/sh shell). */
  loginUser?: string;
  /** Channels (exec sessions) per connection; OpenSSH's default is 10. */
  maxSessions?: number;
  /** Environment variables a client may set (ssh2's `env`); Debian's default is LANG LC_*. */
  acceptEnv?: string[];
}

/** Creates a login user for tests that need one who is not root (idempotent). */
export function ensureUser(name: string): void {
  if (spawnSync('id', ['-u', name]).status !== 0) {
    const made = spawnSync('useradd', ['--create-home', '--shell', '/bin/sh', name], { encoding: 'utf8' });
    if (made.status !== 0 && spawnSync('id', ['-u', name]).status !== 0) throw new Error(`cannot create user ${name}: ${made.stderr}`);
  }
  // useradd leaves the password "!" (locked), and sshd without PAM refuses locked accounts even
  // for key logins; "*" means "no password" without locking.
  spawnSync('usermod', ['-p', '*', name]);
}

/** The sshd binary, or a clear error saying how to get it. */
export function sshdPath(): string {
  if (!existsSync(SSHD)) {
    throw new Error('openssh-server is not installed: apt-get install -y openssh-server, or run .ci/run');
  }
  return SSHD;
}

export async function startSshd(opts: SshdOptions = {}): Promise<SshServer> {
  const sshd = sshdPath();
  const host = opts.host ?? '127.0.0.1';
  const dir = await mkdtemp(join(tmpdir(), 'countersign-sshd-'));
  try {
    return await launch(sshd, host, dir, opts);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

async function launch(sshd: string, host: string, dir: string, opts: SshdOptions): Promise<SshServer> {
  const hostKeyPath = join(dir, 'host_ed25519');
  const privateKeyPath = join(dir, 'client_ed25519');
  await Promise.all([keygen(hostKeyPath, 'countersign-test-host'), keygen(privateKeyPath, 'countersign-test-client')]);
  const [hostPublicKeyLine, publicKey, privateKey] = await Promise.all([
    readFile(`${hostKeyPath}.pub`, 'utf8'),
    readFile(`${privateKeyPath}.pub`, 'utf8'),
    readFile(privateKeyPath, 'utf8'),
  ]);
  const authorizedKeys = join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, publicKey, { mode: 0o600 });
  if (opts.loginUser) {
    ensureUser(opts.loginUser);
    // sshd reads authorized_keys as the login user.
    await chmod(dir, 0o755);
    await chmod(authorizedKeys, 0o644);
  }

  const port = await freePort(host);
  const config = join(dir, 'sshd_config');
  await writeFile(config, sshdConfig({ host, port, dir, hostKeyPath, authorizedKeys, opts }));
  await mkdir('/run/sshd', { recursive: true }); // sshd's privilege separation dir must exist

  const child = spawn(sshd, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    log = (log + chunk.replace(/\r/g, '')).slice(-LOG_LIMIT); // -e writes CRLF line ends
  });
  // A forgotten stop() must neither hang the test runner nor leave sshd behind.
  child.unref();
  (child.stderr as Socket).unref();
  const killOnExit = (): void => killTree(child.pid);
  process.once('exit', killOnExit);

  try {
    await waitForPort(host, port, child, () => log);
  } catch (error) {
    process.off('exit', killOnExit);
    killTree(child.pid);
    throw error;
  }

  const hostPublicKey = hostPublicKeyLine.trim().split(/\s+/).slice(0, 2).join(' ');
  let stopped: Promise<void> | undefined;
  const hosts = [host, ...(opts.extraHosts ?? [])];
  return {
    host,
    hosts,
    port,
    user: opts.loginUser ?? userInfo().username,
    privateKey,
    privateKeyPath,
    publicKey: publicKey.trim(),
    knownHosts: `${hosts.join(',')} ${hostPublicKey}`,
    knownHostsBracketed: `[${host}]:${port} ${hostPublicKey}`,
    hostPublicKey,
    hostKeyFingerprint: fingerprint(hostPublicKey),
    dir,
    pid: child.pid!,
    log: () => log,
    sessionPids: () => descendants(child.pid!),
    stop: () => {
      stopped ??= (async () => {
        process.off('exit', killOnExit);
        killTree(child.pid);
        await exited(child, 2000);
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

function sshdConfig(c: { host: string; port: number; dir: string; hostKeyPath: string; authorizedKeys: string; opts: SshdOptions }): string {
  const lines = [
    `Port ${c.port}`,
    `ListenAddress ${c.host}`,
    ...(c.opts.extraHosts ?? []).map((address) => `ListenAddress ${address}`),
    `HostKey ${c.hostKeyPath}`,
    `PidFile ${join(c.dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${c.authorizedKeys}`, // absolute: independent of the user's home
    'PermitRootLogin prohibit-password', // tests run as root; keys only
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'UsePAM no', // no PAM stack needed in a container
    'StrictModes no', // the temp dir's permissions are not sshd's business here
    `MaxSessions ${c.opts.maxSessions ?? 10}`,
    'MaxStartups 100:30:200', // tests open many connections at once; the default 10 drops some
    'LogLevel VERBOSE',
    'ClientAliveInterval 0',
    `AcceptEnv ${(c.opts.acceptEnv ?? ['LANG', 'LC_*']).join(' ')}`,
  ];
  // OpenSSH 9.8+ penalises sources that fail auth (tests do so on purpose) by refusing them.
  if (opensshAtLeast(9, 8)) lines.push('PerSourcePenalties no');
  return `${lines.join('\n')}\n`;
}

/** A TCP port nobody listens on right now. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('freePort: no port');
  return address.port;
}

/** Whether pid is a live process; a zombie (exited, not yet reaped) counts as dead. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, not ours
  }
  const state = procState(pid);
  return state !== 'Z' && state !== 'X';
}

/**
 * sshd's per-connection processes under `server` (the privileged monitor and the user's network
 * process; `sshd-session` on OpenSSH 9.8+): killing them drops every link as a dead network
 * would, while the commands those links started go on running.
 */
export function connectionPids(server: SshServer): number[] {
  return server.sessionPids().filter((pid) => {
    const comm = procComm(pid);
    return comm === 'sshd' || comm === 'sshd-session';
  });
}

function procComm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** All descendants of pid (children, grandchildren...), from /proc. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of safeReaddir('/proc')) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const parent = procParent(child);
    if (parent !== undefined) children.set(parent, [...(children.get(parent) ?? []), child]);
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

// -------------------------------------------------------------------- internals

const execFileAsync = promisify(execFile);

async function keygen(path: string, comment: string): Promise<void> {
  await execFileAsync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

/** sshd and the connection handlers it forks (each in its own session, so no group kill reaches them). */
function killTree(pid: number | undefined): void {
  if (pid === undefined) return;
  const tree = descendants(pid);
  signal(pid, 'SIGTERM');
  for (const p of tree) signal(p, 'SIGKILL');
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function exited(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs));
  if ((await Promise.race([done, timer])) === 'timeout') {
    signal(child.pid!, 'SIGKILL');
    await done;
  }
}

/** Resolve once host:port accepts TCP; reject with sshd's log if it exits or takes too long. */
async function waitForPort(host: string, port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exit: string | undefined;
  child.once('exit', (code, sig) => {
    exit = `exited with ${code ?? sig}`;
  });
  child.once('error', (error) => {
    exit = `failed to start: ${error.message}`;
  });
  for (;;) {
    if (exit) throw new Error(`sshd ${exit}:\n${log()}`);
    if (await accepts(host, port)) return;
    if (Date.now() > deadline) throw new Error(`sshd did not listen on ${host}:${port} within ${START_TIMEOUT_MS} ms:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** `SHA256:<base64 without padding>` of the key blob, as OpenSSH prints fingerprints. */
function fingerprint(publicKey: string): string {
  const blob = Buffer.from(publicKey.split(' ')[1] ?? '', 'base64');
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

let opensshVersion: [number, number] | undefined;

function opensshAtLeast(major: number, minor: number): boolean {
  if (!opensshVersion) {
    // `sshd -V` exits non-zero on older versions but still prints "OpenSSH_9.2p1 ..." to stderr.
    const out = spawnSyncText(SSHD, ['-V']);
    const match = /OpenSSH_(\d+)\.(\d+)/.exec(out);
    opensshVersion = match ? [Number(match[1]), Number(match[2])] : [0, 0];
  }
  const [hasMajor, hasMinor] = opensshVersion;
  return hasMajor > major || (hasMajor === major && hasMinor >= minor);
}

function spawnSyncText(file: string, args: string[]): string {
  const result = spawnSync(file, args, { encoding: 'utf8' });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`;
}

function procStat(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

/** The state letter of /proc/<pid>/stat (after the parenthesised command name, which may hold spaces). */
function procState(pid: number): string | undefined {
  const stat = procStat(pid);
  if (stat === undefined) return existsSync('/proc/self/stat') ? 'X' : undefined; // gone, or no /proc
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
}

function procParent(pid: number): number | undefined {
  const stat = procStat(pid);
  if (stat === undefined) return undefined;
  const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  return Number.isInteger(ppid) ? ppid : undefined;
}

function safeReaddir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
