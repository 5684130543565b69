/**
 * `npm run check` (in an image: `node dist/src/cli/check.js`): reads the config and the
 * environment the app would start with and checks what a deploy depends on. For every target
 * and host: DNS, the SSH login with the pinned host key, and `true` under the target's runAs,
 * with the round trip; secrets and hook secrets present (never printed); recipe and hook
 * references; with a bot token, Slack's auth.test and that the token has the scopes
 * manifest.yml asks for. Prints a table (or JSON) and exits 1 on any failure, so it can gate a
 * deploy; 2 on a usage error.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { readEnv } from '../config/env.js';
import { ConfigError } from '../config/errors.js';
import { inspectConfigFile, type ConfigInspection } from '../config/load.js';
import { formatTable, manifestBotScopes, summarize, type CheckRow } from '../domain/check.js';
import { parseDuration } from '../domain/duration.js';
import { DEFAULT_HOST_CHECK, runCheck, type SlackSettings } from '../service/check.js';

const USAGE = `usage: npm run check -- [--config countersign.yml] [--manifest manifest.yml] [--timeout 10s] [--json]
  Checks every target's hosts over SSH, the secrets, the hooks and recipes, and Slack's token.
  Exits 0 when nothing failed (warnings allowed), 1 when something did, 2 on a usage error.`;

class UsageError extends Error {}

/** The directory holding package.json above this file: the repository, or /app in the image. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

function requiredScopes(path: string): readonly string[] | { error: string } {
  try {
    return manifestBotScopes(parseYaml(readFileSync(path, 'utf8')));
  } catch (error) {
    return { error: `${path}: ${(error as Error).message}` };
  }
}

export interface CheckCommandResult {
  rows: CheckRow[];
  exitCode: 0 | 1;
}

export async function runCheckCommand(args: string[], source: NodeJS.ProcessEnv = process.env): Promise<CheckCommandResult> {
  const { values } = parseArgs({
    args,
    options: { config: { type: 'string' }, manifest: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
  });
  if (values.help) throw new UsageError('');
  const execTimeoutMs = values.timeout === undefined ? DEFAULT_HOST_CHECK.execTimeoutMs : parseDuration(values.timeout);
  if (execTimeoutMs === null || execTimeoutMs <= 0) throw new UsageError('--timeout takes a duration such as 10s');

  const envProblems: string[] = [];
  let slack: SlackSettings | null = null;
  try {
    const env = readEnv(source);
    slack = {
      botToken: source.SLACK_BOT_TOKEN?.trim() || undefined,
      missing: env.slackMissing.filter((name) => name !== 'SLACK_BOT_TOKEN'),
      apiUrl: env.slackApiUrl,
    };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    envProblems.push(...error.problems);
  }

  const problems: string[] = [];

  const configPath = values.config ?? (source.COUNTERSIGN_CONFIG?.trim() || 'countersign.yml');
  let inspection: ConfigInspection | null = null;
  try {
    inspection = inspectConfigFile(configPath, source);
    problems.push(...inspection.problems);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    problems.push(...error.problems.map((problem) => (/^[^\s:]+: /.test(problem) ? problem : `${configPath}: ${problem}`)));
  }

  const rows = await runCheck({
    config: inspection?.config ?? null,
    configPath,
    problems,
    envProblems,
    slack,
    requiredScopes: requiredScopes(values.manifest ?? join(packageRoot(), 'manifest.yml')),
    hosts: { ...DEFAULT_HOST_CHECK, execTimeoutMs },
  });
  return { rows, exitCode: summarize(rows).failures > 0 ? 1 : 0 };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const { rows, exitCode } = await runCheckCommand(args);
  process.stdout.write(json ? `${JSON.stringify({ ok: exitCode === 0, summary: summarize(rows), rows }, null, 2)}\n` : `${formatTable(rows)}\n`);
  process.exitCode = exitCode;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((error: unknown) => {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`${error instanceof UsageError && error.message === '' ? '' : `${(error as Error).message}\n`}${USAGE}\n`);
      process.exit(2);
    }
    process.stderr.write(`check: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
