/**
 * The parent's side of a benchmark child process: forked with tsx, it says `ready` with what it
 * started (a URL, a pid), then answers requests ({ id, cmd, arg } -> { id, ok, value | error }).
 * Each system under test runs in its own process, so the load generator, the fake Slack and the
 * sshds in the parent do not share its event loop, and its memory is its own.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Child<Ready> {
  ready: Ready;
  pid: number;
  request<T = unknown>(cmd: string, arg?: unknown): Promise<T>;
  stop(): Promise<void>;
}

export async function startChild<Ready>(script: string, arg: unknown, timeoutMs = 60_000): Promise<Child<Ready>> {
  const path = fileURLToPath(new URL(`./children/${script}`, import.meta.url));
  // BENCH_PROFILE=<dir>: each child writes a V8 CPU profile there when it exits (open it in Chrome's DevTools).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  // BENCH_NODE_FLAGS="--trace-gc": V8 flags for every child (NODE_OPTIONS refuses most of them).
  const flags = process.env.BENCH_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
  const child: ChildProcess = fork(path, [JSON.stringify(arg)], {
    execArgv: [...(script.endsWith('.ts') ? ['--import', 'tsx'] : []), ...profile, ...flags],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  let next = 1;
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${script} did not start within ${timeoutMs} ms`)), timeoutMs);
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code} before it was ready`)));
    child.on('message', (message: { type?: string; id?: number; ok?: boolean; value?: unknown; error?: string; ready?: Ready }) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve(message.ready as Ready);
        return;
      }
      const waiter = message.id !== undefined ? pending.get(message.id) : undefined;
      if (!waiter) return;
      pending.delete(message.id!);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(new Error(`${script}: ${message.error}`));
    });
  });
  return {
    ready,
    pid: child.pid!,
    request<T>(cmd: string, value?: unknown): Promise<T> {
      const id = next++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
        child.send({ id, cmd, arg: value });
      });
    },
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.send({ id: 0, cmd: 'stop' });
      const timer = setTimeout(() => child.kill('SIGKILL'), 40_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
