/**
 * countersign as a separate OS process (src/main.ts, exactly as `npm start` runs it), for the
 * tests that need a second replica on the same database or a process to kill -9 mid-run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './sshd.js';

const ROOT = new URL('../..', import.meta.url).pathname;

export interface AppProcess {
  pid: number;
  url: string;
  output(): string;
  exited: Promise<number | null>;
  /** SIGKILL: the process dies at once, without any chance to clean up. */
  kill9(): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<number | null>;
}

export async function startAppProcess(env: Record<string, string>): Promise<AppProcess> {
  // A free port can be taken by a parallel test between freePort() and the app's listen: try another.
  for (let attempt = 1; ; attempt++) {
    const started = await startOnce(env, await freePort());
    if (started !== 'port-taken') return started;
    if (attempt === 3) throw new Error('the app process found its port taken three times');
  }
}

async function startOnce(env: Record<string, string>, port: number): Promise<AppProcess | 'port-taken'> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_LEVEL: 'info', PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) {
      if (output.includes('EADDRINUSE')) return 'port-taken';
      throw new Error(`the app process exited early:\n${output}`);
    }
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`the app process never became healthy:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    pid: child.pid!,
    url,
    output: () => output,
    exited,
    async kill9() {
      child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}
