/**
 * The real entry point (src/main.ts) as `npm start` runs it: a bad config or env stops the
 * start naming the field; without DATABASE_URL it starts an embedded Postgres under the data
 * dir, migrates, serves /healthz and shuts down cleanly on SIGTERM, and starts again on the
 * same data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/sshd.js';

const ROOT = new URL('../..', import.meta.url).pathname;

interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startMain(env: Record<string, string>): Started {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitForHealth(url: string, started: Started, timeoutMs = 60_000): Promise<Response> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const response = await fetch(url);
      if (response.status === 200) return response;
    } catch {
      // not listening yet
    }
    if (started.child.exitCode !== null) throw new Error(`main exited early:\n${started.output()}`);
    if (Date.now() > deadline) throw new Error(`no healthy answer from ${url}:\n${started.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('src/main.ts, as npm start runs it', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'countersign-main-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start on a bad countersign.yml, naming each field', async () => {
    const config = join(dir, 'bad.yml');
    writeFileSync(
      config,
      'targets:\n  web-prod:\n    hosts:\n      - { host: 10.0.0.5, port: "22", user: deploy }\n    ssh:\n      privateKeyFile: /nonexistent\n      knownHosts: "10.0.0.5 ssh-ed25519 AAAA"\n    review:\n      channel: C0REVIEW\n      groups: [{ name: sre, users: [U0123], aprovals: 1 }]\n',
    );
    const started = startMain({ COUNTERSIGN_CONFIG: config, COUNTERSIGN_DATA_DIR: join(dir, 'never') });
    expect(await started.exited).toBe(1);
    expect(started.output()).toContain('countersign cannot start');
    expect(started.output()).toContain('targets.web-prod.hosts[0].port: expected number, received string');
    expect(started.output()).toContain('targets.web-prod.review.groups[0]: Unrecognized key: "aprovals"');
  });

  it('refuses to start on a bad environment, naming the variable', async () => {
    const started = startMain({ PORT: 'eighty', SLACK_BOT_TOKEN: 'not-a-token', COUNTERSIGN_DATA_DIR: join(dir, 'never') });
    expect(await started.exited).toBe(1);
    expect(started.output()).toContain('PORT: expected a port number 0-65535');
    expect(started.output()).toContain('SLACK_BOT_TOKEN: a bot token starts with xoxb-');
  });

  it('starts on the embedded Postgres, serves /healthz, stops on SIGTERM, and starts again on the same data', async () => {
    const dataDir = join(dir, 'data');
    // The shipped example, with its key path pointed at a key that exists here.
    const keyFile = join(dir, 'id_ed25519');
    writeFileSync(keyFile, '-----BEGIN OPENSSH PRIVATE KEY-----\nnot used by this test\n-----END OPENSSH PRIVATE KEY-----\n');
    const config = join(dir, 'countersign.yml');
    writeFileSync(config, readFileSync(join(ROOT, 'countersign.example.yml'), 'utf8').replace('/etc/countersign/id_ed25519', keyFile));
    for (const round of [1, 2]) {
      const port = await freePort();
      const started = startMain({ PORT: String(port), COUNTERSIGN_DATA_DIR: dataDir, COUNTERSIGN_CONFIG: config });
      const health = await waitForHealth(`http://127.0.0.1:${port}/healthz`, started);
      expect(await health.json()).toMatchObject({ status: 'ok', slack: 'not configured (missing SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN)' });
      expect(started.output()).toContain('DATABASE_URL is not set: starting the embedded Postgres');
      expect(started.output()).toContain('"targets":["web-prod"]');
      if (round === 1)
        expect(started.output()).toContain(
          '"migrations":["001_initial","002_api","003_slack_surface","004_permalinks","005_list_indexes","006_recipes","007_schedules","008_content_versions","009_pending_review_index","010_runner_liveness","012_schedule_reviews","013_runbooks","014_runbook_schedules","016_schedule_surfaces","018_run_slack","019_workflow_executions","020_recipe_writers"]',
        );
      else expect(started.output()).not.toContain('database migrated');
      started.child.kill('SIGTERM');
      expect(await started.exited).toBe(0);
    }
  }, 120_000);
});
