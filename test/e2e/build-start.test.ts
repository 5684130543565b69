/**
 * `npm start` on a fresh checkout builds dist/ and serves; started again with the build current,
 * it does not recompile (tsc -b finds it up to date); after a source change it recompiles.
 * `npm run build` produces what production runs (the Dockerfile runs dist/, see image.test.ts).
 * Run in a copy of the sources (node_modules linked), so this checkout's dist/ is left alone.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort } from '../support/sshd.js';

const ROOT = new URL('../..', import.meta.url).pathname;

interface Started {
  output: string;
  /** From `npm start` to /healthz answering 200. */
  readyMs: number;
}

describe('npm run build and npm start', () => {
  let dir: string;
  let database: TestDatabase;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'countersign-build-'));
    for (const entry of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'manifest.yml', 'src', 'migrations']) {
      cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
    }
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    writeFileSync(join(dir, 'countersign.yml'), 'targets: {}\n');
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs an npm script in the copy and waits for it to exit. */
  function npm(script: string): Promise<{ code: number | null; output: string }> {
    return new Promise((resolve) => {
      const child = spawn('npm', ['run', '--silent', script], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.on('data', (data: Buffer) => (output += data.toString()));
      child.stderr.on('data', (data: Buffer) => (output += data.toString()));
      child.on('exit', (code) => resolve({ code, output }));
    });
  }

  /** `npm start` until /healthz answers, then SIGTERM to its process group and a clean exit. */
  async function start(): Promise<Started> {
    const port = await freePort();
    const began = Date.now();
    const child = spawn('npm', ['start'], {
      cwd: dir,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', PORT: String(port), DATABASE_URL: database.url, LOG_LEVEL: 'info' },
    });
    let output = '';
    child.stdout.on('data', (data: Buffer) => (output += data.toString()));
    child.stderr.on('data', (data: Buffer) => (output += data.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      for (;;) {
        if (child.exitCode !== null) throw new Error(`npm start exited ${child.exitCode}:\n${output}`);
        if ((await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200) break;
        if (Date.now() - began > 240_000) throw new Error(`npm start never became healthy:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const readyMs = Date.now() - began;
      process.kill(-child.pid!, 'SIGTERM');
      await exited;
      return { output, readyMs };
    } finally {
      if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  }

  const mtime = (path: string) => statSync(join(dir, path)).mtimeMs;

  it('builds on a fresh checkout, serves, and skips the compiler while the build is current', async () => {
    expect(existsSync(join(dir, 'dist'))).toBe(false);
    const first = await start();
    for (const file of ['dist/src/main.js', 'dist/src/cli/check.js', 'dist/src/cli/token.js', 'dist/migrations/001_initial.js'])
      expect(existsSync(join(dir, file)), file).toBe(true);
    // Only the app: tests and benchmarks are not part of the build.
    expect(existsSync(join(dir, 'dist/test'))).toBe(false);
    expect(first.output).toContain('countersign is ready');
    const built = { main: mtime('dist/src/main.js'), info: mtime('dist/.tsbuildinfo') };

    const build = await npm('build');
    expect(build.code, build.output).toBe(0);
    const second = await start();
    expect(mtime('dist/src/main.js')).toBe(built.main);
    expect(mtime('dist/.tsbuildinfo')).toBe(built.info);
    console.log(`npm start: ${first.readyMs} ms to healthy with a build, ${second.readyMs} ms with the build current`);

    // A changed source is compiled before the next start.
    appendFileSync(join(dir, 'src/main.ts'), '\n// changed\n');
    await start();
    expect(mtime('dist/src/main.js')).toBeGreaterThan(built.main);
  }, 600_000);
});
