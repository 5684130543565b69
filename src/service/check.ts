/**
 * `countersign check`, the I/O half: for every target and host, resolve the name, connect over
 * SSH with the pinned host key (the app's own SshPool), log in and run `true` under the target's
 * runAs, timing each step; and with a bot token, ask Slack's auth.test who the token is and
 * which scopes it has. Every failure is a row that says what to fix; nothing here throws.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Client, ClientChannel } from 'ssh2';
import { WebClient } from '@slack/web-api';
import type { Config, Target } from '../config/config.js';
import { envProblemRows, problemRows, scopeRow, sortRows, type CheckRow } from '../domain/check.js';
import type { HostAddress } from '../domain/plan.js';
import { probeCommand } from '../exec/remoteCommand.js';
import { SshConnectError, SshPool, targetEndpoint, type SshConnectReason } from '../exec/sshPool.js';
import { createSlackFetch } from '../slack/slackFetch.js';

export interface HostCheckOptions {
  /** How long `true` may take once logged in (sudo may be slow to answer, but it must answer). */
  execTimeoutMs: number;
  /** Hosts checked at once. */
  concurrency: number;
}

export const DEFAULT_HOST_CHECK: HostCheckOptions = { execTimeoutMs: 10_000, concurrency: 8 };

const now = () => performance.now();

/** One row per host of every target that resolved (targets whose SSH config is broken are reported by the loader). */
export async function checkHosts(config: Config, options: HostCheckOptions = DEFAULT_HOST_CHECK): Promise<CheckRow[]> {
  const jobs = [...config.targets.values()].flatMap((target) => target.hosts.map((address, index) => ({ target, address, index })));
  const pool = new SshPool({ idleMs: 60_000, keepaliveMs: 5_000, keepaliveCountMax: 3 });
  const rows: CheckRow[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      const job = jobs[i]!;
      rows[i] = await checkHost(pool, job.target, job.address, job.index, options);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(options.concurrency, jobs.length) }, worker));
  } finally {
    pool.closeAll();
  }
  return rows;
}

function hostSubject(target: Target, address: HostAddress): string {
  return `${target.name} ${address.user}@${address.host}:${address.port}`;
}

async function checkHost(pool: SshPool, target: Target, address: HostAddress, index: number, options: HostCheckOptions): Promise<CheckRow> {
  const subject = hostSubject(target, address);
  const field = `targets.${target.name}.hosts[${index}]`;
  const started = now();
  const fail = (detail: string, fix: string): CheckRow => ({ area: 'ssh', subject, status: 'fail', ms: now() - started, detail, fix });

  let resolved = '';
  if (isIP(address.host) === 0) {
    try {
      const addresses = await lookup(address.host, { all: true });
      resolved = `resolved to ${addresses.map((a) => a.address).join(', ')} in ${Math.round(now() - started)} ms; `;
    } catch (error) {
      return fail(
        `cannot resolve ${address.host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
        `check ${field}.host, and DNS where countersign runs`,
      );
    }
  }

  const endpoint = targetEndpoint(target, address);
  const connecting = now();
  let connectMs = 0;
  try {
    const probe = await pool.withSession(endpoint, (client) => {
      connectMs = now() - connecting;
      return execProbe(client, probeCommand(target.runAs), options.execTimeoutMs);
    });
    const runAs = target.runAs ? ` as \`${target.runAs.join(' ')}\`` : '';
    if (probe.kind === 'exited' && probe.code === 0) {
      return {
        area: 'ssh',
        subject,
        status: 'ok',
        ms: now() - started,
        detail: `${resolved}host key matches, logged in in ${Math.round(connectMs)} ms, \`true\`${runAs} took ${Math.round(probe.ms)} ms`,
      };
    }
    const what = `\`true\`${runAs}`;
    const stderr = probe.kind === 'exited' && probe.stderr.trim() !== '' ? `: ${probe.stderr.trim().split('\n').slice(-2).join(' / ')}` : '';
    const detail =
      probe.kind === 'exited'
        ? `logged in, but ${what} exited ${probe.code ?? `on signal ${probe.signal ?? '?'}`}${stderr}`
        : probe.kind === 'timeout'
          ? `logged in, but ${what} did not finish within ${options.execTimeoutMs / 1000} s`
          : `logged in, but could not start a command: ${probe.message}`;
    const fix = target.runAs
      ? `let ${address.user} run \`${target.runAs.join(' ')} sh -c …\` without a password on ${address.host} (a NOPASSWD sudoers rule), or fix targets.${target.name}.runAs`
      : `${address.user}'s login shell on ${address.host} must run commands (no ForceCommand, a working shell)`;
    return fail(detail, fix);
  } catch (error) {
    if (error instanceof SshConnectError) return fail(error.message, connectFix(error.reason, target, address, field));
    return fail(`unexpected error: ${(error as Error).message}`, 'run again with LOG_LEVEL=debug and report it');
  }
}

function connectFix(reason: SshConnectReason, target: Target, address: HostAddress, field: string): string {
  const keyscan = `ssh-keyscan${address.port === 22 ? '' : ` -p ${address.port}`} ${address.host}`;
  switch (reason) {
    case 'unpinned':
      return `pin the host's key in targets.${target.name}.ssh.knownHosts (\`${keyscan}\` prints it; compare its fingerprint with the host's own before trusting it)`;
    case 'host-key':
      return `do not trust it blindly: if the host was rebuilt, compare the fingerprint with \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` run on the host, then replace its line in targets.${target.name}.ssh.knownHosts`;
    case 'auth':
      return `add the target's public key (\`ssh-keygen -y -f <its private key>\` prints it) to ~${address.user}/.ssh/authorized_keys on ${address.host}, or fix ${field}.user`;
    case 'network':
      return `is sshd listening on ${address.host}:${address.port}, and reachable from where countersign runs (firewall, security group)? Or fix ${field}`;
  }
}

type Probe =
  | { kind: 'exited'; code: number | null; signal: string | null; stderr: string; ms: number }
  | { kind: 'timeout' }
  | { kind: 'error'; message: string };

/** Runs `command` with nothing on stdin, keeping a bounded tail of stderr. */
function execProbe(client: Client, command: string, timeoutMs: number): Promise<Probe> {
  return new Promise((resolve) => {
    const started = now();
    let stream: ClientChannel | null = null;
    const timer = setTimeout(() => {
      stream?.close();
      resolve({ kind: 'timeout' });
    }, timeoutMs);
    const done = (probe: Probe) => {
      clearTimeout(timer);
      resolve(probe);
    };
    try {
      client.exec(command, (error, channel) => {
        if (error) return done({ kind: 'error', message: error.message });
        stream = channel;
        let stderr = '';
        let code: number | null = null;
        let signal: string | null = null;
        channel.on('data', () => undefined);
        channel.stderr.on('data', (data: Buffer) => (stderr = (stderr + data.toString('utf8')).slice(-2000)));
        channel.on('exit', (exitCode: number | null, exitSignal?: string) => {
          code = exitCode;
          signal = exitSignal ?? null;
        });
        channel.on('close', () => done({ kind: 'exited', code, signal, stderr, ms: now() - started }));
        channel.end();
      });
    } catch (error) {
      done({ kind: 'error', message: (error as Error).message });
    }
  });
}

/** The secrets that resolved (by name only) and the hooks whose secret is long enough. */
export function presentRows(config: Config, referenceProblems: boolean): CheckRow[] {
  const rows: CheckRow[] = [];
  for (const target of config.targets.values()) {
    for (const name of target.secrets.keys()) {
      rows.push({ area: 'secret', subject: `targets.${target.name}.secrets.${name}`, status: 'ok', ms: null, detail: 'present (its value is never printed)' });
    }
  }
  for (const hook of config.hooks?.values() ?? []) {
    rows.push({ area: 'hook', subject: `hooks.${hook.id}.secret`, status: 'ok', ms: null, detail: 'present, long enough' });
  }
  const recipes = config.recipes?.size ?? 0;
  const hooks = config.hooks?.size ?? 0;
  // When a reference is wrong its own row says so; this one vouches for all of them or is left out.
  if (recipes + hooks > 0 && !referenceProblems) {
    rows.push({
      area: 'reference',
      subject: 'recipes and hooks',
      status: 'ok',
      ms: null,
      detail: `${recipes} ${recipes === 1 ? 'recipe names a target' : 'recipes name targets'} and ${hooks} ${hooks === 1 ? 'hook names a recipe' : 'hooks name recipes'} that exist`,
    });
  }
  return rows;
}

/** What check knows of Slack from the environment. */
export interface SlackSettings {
  botToken: string | undefined;
  /** Variables the app needs besides the bot token that are not set. */
  missing: readonly string[];
  apiUrl: string | undefined;
}

/** The Slack rows: what is missing from the environment, auth.test, and the token's scopes. */
export async function checkSlack(env: SlackSettings, requiredScopes: readonly string[]): Promise<CheckRow[]> {
  const botToken = env.botToken;
  if (!botToken) {
    return [
      {
        area: 'slack',
        subject: 'SLACK_BOT_TOKEN',
        status: 'warn',
        ms: null,
        detail: 'not set: the app will serve its HTTP side only, without Slack',
        fix: 'set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN for Socket Mode) to check Slack too',
      },
    ];
  }
  const rows: CheckRow[] = [];
  for (const name of env.missing) {
    rows.push({
      area: 'slack',
      subject: name,
      status: 'fail',
      ms: null,
      detail: 'not set, so Slack requests cannot be verified',
      fix: `set ${name} (HTTP mode), or SLACK_APP_TOKEN for Socket Mode`,
    });
  }
  // The app's own HTTP client (src/slack/slackFetch.ts): the check reaches Slack the way the app does.
  const http = createSlackFetch();
  const client = new WebClient(botToken, {
    ...(env.apiUrl ? { slackApiUrl: env.apiUrl } : {}),
    retryConfig: { retries: 0 },
    timeout: 10_000,
    rejectRateLimitedCalls: true,
    fetch: http.fetch,
  });
  const started = now();
  try {
    const answer = await client.auth.test();
    rows.push({
      area: 'slack',
      subject: 'auth.test',
      status: 'ok',
      ms: now() - started,
      detail: `the token is the bot ${answer.user ?? '?'} (${answer.user_id ?? '?'}) in ${answer.team ?? '?'} (${answer.team_id ?? '?'})`,
    });
    rows.push(scopeRow(answer.response_metadata?.scopes, requiredScopes));
  } catch (error) {
    const code = (error as { data?: { error?: string } }).data?.error;
    rows.push({
      area: 'slack',
      subject: 'auth.test',
      status: 'fail',
      ms: now() - started,
      detail: code ? `Slack refused the token: ${code}` : `cannot reach Slack: ${(error as Error).message}`,
      fix: code
        ? "copy the Bot User OAuth Token (xoxb-…) from the app's OAuth & Permissions page into SLACK_BOT_TOKEN; reinstall the app if it was revoked"
        : 'countersign must reach slack.com over HTTPS (proxy, firewall), or SLACK_API_URL is wrong',
    });
  } finally {
    await http.close(0);
  }
  return rows;
}

export interface CheckInput {
  config: Config | null;
  configPath: string;
  problems: readonly string[];
  /** What is wrong with the environment (readEnv's problems). */
  envProblems?: readonly string[];
  /** null: the environment itself is wrong (reported among the problems). */
  slack: SlackSettings | null;
  /** The bot scopes the app needs (manifest.yml), or why they are unknown. */
  requiredScopes: readonly string[] | { error: string };
  hosts?: HostCheckOptions;
}

/** Every row of the report, in the order printed: config problems, secrets and hooks, hosts, Slack. */
export async function runCheck(input: CheckInput): Promise<CheckRow[]> {
  const rows = [...envProblemRows(input.envProblems ?? []), ...problemRows(input.problems, input.configPath)];
  const slack = async (): Promise<CheckRow[]> => {
    if (input.slack === null) return [];
    if (!Array.isArray(input.requiredScopes)) {
      const reason = (input.requiredScopes as { error: string }).error;
      return [
        {
          area: 'slack',
          subject: 'manifest.yml',
          status: 'fail',
          ms: null,
          detail: `cannot tell which scopes the app needs: ${reason}`,
          fix: 'run check from the countersign directory (manifest.yml ships with it), or pass --manifest <path>',
        },
      ];
    }
    return checkSlack(input.slack, input.requiredScopes);
  };
  // A target whose key or host keys could not be read is left out of the config: say its hosts were not checked.
  const unchecked = [...new Set(rows.flatMap((row) => /^targets\.(.+?)\.ssh(\.|$)/.exec(row.subject)?.[1] ?? []))].filter(
    (name) => !input.config?.targets.has(name),
  );
  rows.push(
    ...unchecked.map(
      (name): CheckRow => ({
        area: 'ssh',
        subject: name,
        status: 'warn',
        ms: null,
        detail: 'hosts not checked: its SSH settings have the problems listed above',
        fix: `fix targets.${name}.ssh, then check again`,
      }),
    ),
  );
  const [hostRows, slackRows] = await Promise.all([input.config ? checkHosts(input.config, input.hosts) : Promise.resolve([]), slack()]);
  return sortRows([
    ...rows,
    ...(input.config
      ? presentRows(
          input.config,
          rows.some((row) => row.area === 'reference'),
        )
      : []),
    ...hostRows,
    ...slackRows,
  ]);
}
