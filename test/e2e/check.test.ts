/**
 * `countersign check` against a real OpenSSH sshd and the fake Slack: a reachable host (with
 * runAs through sudo -n), a changed host key, a refused login, a closed port, a name that does
 * not resolve, sudo asking for a password, a missing secret, a short hook secret, a recipe on a
 * missing target, and a token without every scope the app needs. Run as the real command (a
 * process, its table and exit code) and in-process for the Slack variants.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheckCommand } from '../../src/cli/check.js';
import type { CheckRow } from '../../src/domain/check.js';
import { startFakeSlack, type FakeSlack } from '../support/fakeSlack.js';
import { BOT_TOKEN, LOGIN_USER, strangerHostKey } from '../support/harness.js';
import { ensureUser, freePort, startSshd, type SshServer } from '../support/sshd.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const APP_USER = 'countersign-app';
const SECRET_VALUE = `check-secret-${Math.random().toString(36).slice(2)}-Qv7`;
const HOOK_SECRET_SHORT = 'short-hook-1';
const MANIFEST_SCOPES = (parseYaml(readFileSync(join(ROOT, 'manifest.yml'), 'utf8')) as { oauth_config: { scopes: { bot: string[] } } }).oauth_config.scopes
  .bot;

const run = promisify(execFile);

/** The check command as a process, exactly as `npm run check` runs it minus the build: its stdout and exit code. */
async function checkProcess(configPath: string, env: Record<string, string>, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/check.ts', '--config', configPath, ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof failed.code !== 'number') throw error;
    return { code: failed.code, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

function row(rows: readonly CheckRow[], area: CheckRow['area'], subject: string | RegExp): CheckRow {
  const found = rows.find((r) => r.area === area && (typeof subject === 'string' ? r.subject === subject : subject.test(r.subject)));
  if (!found) throw new Error(`no ${area} row for ${String(subject)} in:\n${rows.map((r) => `${r.area} ${r.subject} ${r.status} ${r.detail}`).join('\n')}`);
  return found;
}

describe('countersign check', () => {
  let ssh: SshServer;
  let fake: FakeSlack;
  let dir: string;
  let strangerKeyPath: string;
  let closedPort: number;

  beforeAll(async () => {
    ensureUser(APP_USER);
    ensureUser(LOGIN_USER);
    // As in production: the login user may run commands as the app user without a password, and nothing else.
    // secrets-and-output.test.ts writes the same rule and runs sudo meanwhile: never rewrite it in place.
    const sudoers = `/etc/sudoers.d/${LOGIN_USER}`;
    const rule = `${LOGIN_USER} ALL=(${APP_USER}) NOPASSWD: ALL\n`;
    if (!existsSync(sudoers) || readFileSync(sudoers, 'utf8') !== rule) {
      writeFileSync(`${sudoers}.tmp`, rule, { mode: 0o440 });
      renameSync(`${sudoers}.tmp`, sudoers);
    }
    [ssh, fake, closedPort] = await Promise.all([startSshd({ loginUser: LOGIN_USER }), startFakeSlack({ token: BOT_TOKEN }), freePort()]);
    dir = mkdtempSync(join(tmpdir(), 'countersign-check-'));
    // A key the sshd has never seen: its login is refused.
    strangerKeyPath = join(dir, 'stranger_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', strangerKeyPath]);
    writeFileSync(join(dir, 'hook-secret'), `${HOOK_SECRET_SHORT}\n`);
  });
  afterAll(async () => {
    await Promise.all([ssh?.stop(), fake?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const target = (name: string, opts: { host?: string; port?: number; key?: string; knownHosts?: string; runAs?: string; secrets?: string[] }) =>
    [
      `  ${name}:`,
      '    hosts:',
      `      - { host: ${opts.host ?? ssh.host}, port: ${opts.port ?? ssh.port}, user: ${ssh.user} }`,
      '    ssh:',
      `      privateKeyFile: ${opts.key ?? ssh.privateKeyPath}`,
      `      knownHosts: "${opts.knownHosts ?? ssh.knownHosts}"`,
      ...(opts.runAs ? [`    runAs: "${opts.runAs}"`] : []),
      ...(opts.secrets ? ['    secrets:', ...opts.secrets.map((line) => `      ${line}`)] : []),
    ].join('\n');

  function writeConfig(name: string, body: string): string {
    const path = join(dir, name);
    writeFileSync(path, body);
    return path;
  }

  it('reports every problem in one table, says what to fix, never prints a secret, and exits 1', async () => {
    fake.setTokenScopes(MANIFEST_SCOPES.filter((scope) => scope !== 'files:write'));
    const configPath = writeConfig(
      'bad.yml',
      [
        'targets:',
        target('good', { runAs: `sudo -n -u ${APP_USER}`, secrets: ['DB_PASSWORD: { env: COUNTERSIGN_CHECK_SECRET }'] }),
        target('moved', { knownHosts: `${ssh.host} ${strangerHostKey()}` }),
        target('stranger', { key: strangerKeyPath }),
        target('closed', { port: closedPort, knownHosts: `${ssh.host} ${ssh.hostPublicKey}` }),
        target('nowhere', { host: 'countersign-check.invalid', knownHosts: `countersign-check.invalid ${ssh.hostPublicKey}` }),
        target('as-root', { runAs: 'sudo -n -u root' }),
        target('unset', { secrets: ['API_TOKEN: { env: COUNTERSIGN_CHECK_UNSET }'] }),
        target('keyless', { key: join(dir, 'no-such-key') }),
        'recipes:',
        '  restart: { target: gone, script: "systemctl restart app" }',
        '  uptime: { target: good, script: uptime }',
        'hooks:',
        `  deploy: { recipe: uptime, secret: { file: ${join(dir, 'hook-secret')} } }`,
        '',
      ].join('\n'),
    );
    const { code, stdout, stderr } = await checkProcess(configPath, {
      COUNTERSIGN_CHECK_SECRET: SECRET_VALUE,
      SLACK_BOT_TOKEN: BOT_TOKEN,
      SLACK_SIGNING_SECRET: 'signing-secret',
      SLACK_API_URL: fake.url,
    });
    expect(stderr).toBe('');
    expect(code, stdout).toBe(1);
    const lines = stdout.split('\n');
    const lineOf = (...words: string[]) => {
      const found = lines.findIndex((line) => words.every((word) => line.includes(word)));
      expect(found, `no line with ${words.join(', ')} in:\n${stdout}`).toBeGreaterThanOrEqual(0);
      return { line: lines[found]!, next: lines[found + 1] ?? '' };
    };
    expect(lines[0]).toMatch(/^CHECK\s+SUBJECT\s+RESULT\s+TIME\s+DETAIL$/);

    // Reachable: logged in with the pinned key, `true` ran as the app user through sudo -n, timed.
    const good = lineOf(`good ${ssh.user}@${ssh.host}:${ssh.port}`);
    expect(good.line).toMatch(/ ok +\d+ ms +host key matches, logged in in \d+ ms, `true` as `sudo -n -u countersign-app` took \d+ ms$/);
    // A changed host key: refused, with the fingerprint it saw and how to decide.
    const moved = lineOf(`moved ${ssh.user}@`);
    expect(moved.line).toContain('FAIL');
    expect(moved.line).toContain(`(${ssh.hostKeyFingerprint}) does not match the key pinned`);
    expect(moved.next).toMatch(/fix: do not trust it blindly: .*ssh-keygen -lf .*targets\.moved\.ssh\.knownHosts/);
    // A login the host refuses.
    const stranger = lineOf(`stranger ${ssh.user}@`);
    expect(stranger.line).toMatch(/FAIL .*did not accept the target's SSH key for user countersign-test/);
    expect(stranger.next).toContain(`authorized_keys on ${ssh.host}`);
    // Nobody listening.
    const closed = lineOf(`closed ${ssh.user}@${ssh.host}:${closedPort}`);
    expect(closed.line).toMatch(/FAIL .*cannot connect to .*ECONNREFUSED/);
    expect(closed.next).toContain(`is sshd listening on ${ssh.host}:${closedPort}`);
    // A name that does not resolve.
    const nowhere = lineOf('nowhere ');
    expect(nowhere.line).toMatch(/FAIL .*cannot resolve countersign-check\.invalid: (ENOTFOUND|EAI_AGAIN)/);
    expect(nowhere.next).toContain('targets.nowhere.hosts[0].host');
    // runAs that sudo refuses without a password.
    const asRoot = lineOf('as-root ');
    expect(asRoot.line).toMatch(/FAIL .*logged in, but `true` as `sudo -n -u root` exited 1: .*password is required/);
    expect(asRoot.next).toContain('NOPASSWD');
    // Secrets: the present one by name only; the missing one names its variable.
    expect(lineOf('targets.good.secrets.DB_PASSWORD').line).toMatch(/secret +targets\.good\.secrets\.DB_PASSWORD +ok +present/);
    const unset = lineOf('targets.unset.secrets.API_TOKEN');
    expect(unset.line).toMatch(/FAIL +environment variable COUNTERSIGN_CHECK_UNSET is not set/);
    expect(unset.next).toContain('set COUNTERSIGN_CHECK_UNSET');
    // A target with a missing secret is still checked over SSH.
    expect(lineOf(`unset ${ssh.user}@`).line).toContain(' ok ');
    // The hook's secret is too short; the recipe names a target that does not exist.
    expect(lineOf('hooks.deploy.secret').line).toMatch(/hook .*FAIL .*shorter than 16 characters/);
    expect(lineOf('recipes.restart.target').line).toMatch(/reference .*FAIL .*there is no target gone/);
    // Slack: the token is fine, a scope is missing.
    expect(lineOf('auth.test').line).toMatch(/ ok .*the token is the bot countersign \(UBOT\) in Countersign Test \(T0TEST\)/);
    // Through the app's own HTTP client (src/slack/slackFetch.ts), which never asks for compression: Node's fetch does.
    expect(fake.callsTo('auth.test').at(-1)?.headers['accept-encoding']).toBeUndefined();
    const scopes = lineOf('bot token scopes');
    expect(scopes.line).toMatch(/FAIL .*missing files:write/);
    expect(scopes.next).toContain('reinstall the app');

    // A target whose key cannot be read: the problem, and its hosts said to be unchecked.
    expect(lineOf('targets.keyless.ssh.privateKeyFile').line).toMatch(/config .*FAIL .*cannot read .*no-such-key: ENOENT/);
    expect(lineOf('keyless ').line).toMatch(/ssh +keyless +WARN +hosts not checked/);

    expect(stdout).toMatch(/\n4 ok, 1 warning, 10 failures\n$/);
    expect(stdout).not.toContain(SECRET_VALUE);
    expect(stdout).not.toContain(HOOK_SECRET_SHORT);
    expect(stdout).not.toContain(BOT_TOKEN);
  });

  it('exits 0 when every host, secret and scope is in order, and prints JSON with --json', async () => {
    fake.setTokenScopes([...MANIFEST_SCOPES, 'reactions:read']);
    const configPath = writeConfig(
      'good.yml',
      `targets:\n${target('good', { runAs: `sudo -n -u ${APP_USER}`, secrets: ['DB_PASSWORD: { env: COUNTERSIGN_CHECK_SECRET }'] })}\n`,
    );
    const env = { COUNTERSIGN_CHECK_SECRET: SECRET_VALUE, SLACK_BOT_TOKEN: BOT_TOKEN, SLACK_SIGNING_SECRET: 'signing-secret', SLACK_API_URL: fake.url };
    const table = await checkProcess(configPath, env);
    expect(table.code, table.stdout).toBe(0);
    expect(table.stdout).toMatch(/\n4 ok, 0 warnings, 0 failures\n$/);

    const json = await checkProcess(configPath, env, ['--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { ok: boolean; summary: { failures: number }; rows: CheckRow[] };
    expect(report.ok).toBe(true);
    const host = row(report.rows, 'ssh', /^good /);
    expect(host.status).toBe('ok');
    expect(host.ms).toBeGreaterThan(0);
    expect(row(report.rows, 'slack', 'bot token scopes')).toMatchObject({
      status: 'ok',
      detail: expect.stringContaining('also reactions:read, which it does not use'),
    });
    expect(json.stdout).not.toContain(SECRET_VALUE);
  });

  it('refuses a token Slack does not know, warns when Slack names no scopes or no token is set', async () => {
    const configPath = writeConfig('empty.yml', 'targets: {}\n');
    const slackEnv = { SLACK_SIGNING_SECRET: 'signing-secret', SLACK_API_URL: fake.url };

    const revoked = await runCheckCommand(['--config', configPath], { ...slackEnv, SLACK_BOT_TOKEN: 'xoxb-revoked' });
    expect(revoked.exitCode).toBe(1);
    expect(row(revoked.rows, 'slack', 'auth.test')).toMatchObject({
      status: 'fail',
      detail: 'Slack refused the token: invalid_auth',
      fix: expect.stringContaining('Bot User OAuth Token'),
    });

    fake.setTokenScopes(null);
    const unknown = await runCheckCommand(['--config', configPath], { ...slackEnv, SLACK_BOT_TOKEN: BOT_TOKEN });
    expect(unknown.exitCode).toBe(0);
    expect(row(unknown.rows, 'slack', 'bot token scopes').status).toBe('warn');

    const noSlack = await runCheckCommand(['--config', configPath], {});
    expect(noSlack.exitCode).toBe(0);
    expect(row(noSlack.rows, 'slack', 'SLACK_BOT_TOKEN')).toMatchObject({ status: 'warn' });

    // A bot token in HTTP mode without the signing secret cannot verify Slack's requests.
    const unsigned = await runCheckCommand(['--config', configPath], { SLACK_API_URL: fake.url, SLACK_BOT_TOKEN: BOT_TOKEN });
    expect(unsigned.exitCode).toBe(1);
    expect(row(unsigned.rows, 'slack', 'SLACK_SIGNING_SECRET').status).toBe('fail');
  });

  it('reports a config that does not parse, and a bad environment, as failures naming the field', async () => {
    const configPath = writeConfig('typo.yml', `targets:\n  web:\n    hosts: []\n    aprovals: 1\n`);
    const result = await runCheckCommand(['--config', configPath], { SLACK_BOT_TOKEN: 'not-a-bot-token' });
    expect(result.exitCode).toBe(1);
    expect(row(result.rows, 'config', 'targets.web.hosts')).toMatchObject({ status: 'fail', detail: expect.stringContaining('>=1 items') });
    expect(row(result.rows, 'config', 'targets.web')).toMatchObject({ status: 'fail', detail: expect.stringContaining('aprovals') });
    expect(row(result.rows, 'env', 'SLACK_BOT_TOKEN')).toMatchObject({ status: 'fail', detail: 'a bot token starts with xoxb-' });
    const missing = await runCheckCommand(['--config', join(dir, 'nope.yml')], {});
    expect(missing.exitCode).toBe(1);
    expect(missing.rows[0]).toMatchObject({ area: 'config', status: 'fail', detail: expect.stringContaining('cannot read the file') });
  });
});
