/**
 * `countersign check`, the pure half: the rows of its report, what the config loader's problems
 * and a token's scopes mean as rows, and the table printed from them. The I/O (SSH, DNS, Slack)
 * is src/service/check.ts; the command is src/cli/check.ts.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

/** What a row is about; the first column of the table. */
export type CheckArea = 'env' | 'config' | 'secret' | 'hook' | 'reference' | 'ssh' | 'slack';

export interface CheckRow {
  area: CheckArea;
  /** The host (`web-prod deploy@10.0.0.5:22`), the field, or the Slack check. */
  subject: string;
  status: CheckStatus;
  /** The round trip, for rows that made one. */
  ms: number | null;
  /** What was found. Never a secret's value. */
  detail: string;
  /** What to do about it, for warnings and failures. */
  fix?: string;
}

/** `targets.web-prod.secrets.DB: environment variable X is not set` -> field and message. */
export function splitProblem(problem: string): { field: string; message: string } {
  const match = /^([^\s:]+): ([\s\S]*)$/.exec(problem);
  return match ? { field: match[1]!, message: match[2]! } : { field: '', message: problem };
}

function areaOf(field: string): CheckArea {
  if (/^targets\.[^\s]+\.secrets\./.test(field)) return 'secret';
  if (/^hooks\.[^.]+\.secret$/.test(field)) return 'hook';
  if (/^(recipes\.[^\s]+\.target|recipeFiles(\[\d+\])?|hooks\.[^.]+\.(recipe|arguments(\..+)?)|runbooks\..*)$/.test(field)) return 'reference';
  return 'config';
}

function fixFor(field: string, message: string, configPath: string): string {
  const unset = /environment variable (\S+) is not set/.exec(message);
  if (unset) return `set ${unset[1]} in countersign's environment (a Secret in Kubernetes); check never prints its value`;
  if (field === '' && message.startsWith('cannot read the file')) return 'point --config or COUNTERSIGN_CONFIG at the config file';
  const unreadable = /cannot read (.+?):/.exec(message);
  if (unreadable) return `make ${unreadable[1]} readable by the user countersign runs as, or fix the path in ${configPath}`;
  if (/shorter than 16 characters/.test(message)) return 'use at least 16 random characters (openssl rand -hex 32), on the sender too';
  return field === '' ? `edit ${configPath}` : `edit ${field} in ${configPath}`;
}

/** One failing row per problem the loader found, each naming its field. */
export function problemRows(problems: readonly string[], configPath: string): CheckRow[] {
  return problems.map((problem) => {
    const { field, message } = splitProblem(problem);
    return { area: areaOf(field), subject: field || configPath, status: 'fail', ms: null, detail: message, fix: fixFor(field, message, configPath) };
  });
}

/** One failing row per problem with the environment (`SLACK_BOT_TOKEN: a bot token starts with xoxb-`). */
export function envProblemRows(problems: readonly string[]): CheckRow[] {
  return problems.map((problem) => {
    const { field, message } = splitProblem(problem);
    return {
      area: 'env',
      subject: field || 'environment',
      status: 'fail',
      ms: null,
      detail: message,
      fix: `fix ${field || 'the environment'} where countersign runs`,
    };
  });
}

/** The bot scopes manifest.yml asks for (oauth_config.scopes.bot): what the code calls needs exactly these. */
export function manifestBotScopes(manifest: unknown): string[] {
  const scopes = (manifest as { oauth_config?: { scopes?: { bot?: unknown } } } | null)?.oauth_config?.scopes?.bot;
  if (!Array.isArray(scopes) || !scopes.every((scope) => typeof scope === 'string')) throw new Error('manifest.yml has no oauth_config.scopes.bot list');
  return [...scopes].sort();
}

/** Compares the token's scopes (Slack's x-oauth-scopes) with those the app needs. */
export function scopeRow(granted: readonly string[] | undefined, required: readonly string[]): CheckRow {
  const subject = 'bot token scopes';
  if (granted === undefined) {
    return {
      area: 'slack',
      subject,
      status: 'warn',
      ms: null,
      detail: 'Slack did not say which scopes the token has (no x-oauth-scopes header)',
      fix: `make sure the app has these bot scopes: ${required.join(', ')}`,
    };
  }
  const missing = required.filter((scope) => !granted.includes(scope));
  const extra = granted.filter((scope) => !required.includes(scope)).sort();
  if (missing.length > 0) {
    return {
      area: 'slack',
      subject,
      status: 'fail',
      ms: null,
      detail: `missing ${missing.join(', ')} (the token has ${granted.length === 0 ? 'no scopes' : [...granted].sort().join(', ')})`,
      fix: "add the missing scopes (manifest.yml's oauth_config.scopes.bot lists them), reinstall the app to the workspace, and update SLACK_BOT_TOKEN if Slack issued a new one",
    };
  }
  return {
    area: 'slack',
    subject,
    status: 'ok',
    ms: null,
    detail: `has all ${required.length} the app needs${extra.length > 0 ? `; also ${extra.join(', ')}, which it does not use` : ''}`,
  };
}

const AREA_ORDER: readonly CheckArea[] = ['env', 'config', 'secret', 'hook', 'reference', 'ssh', 'slack'];

/** Rows grouped by area in reading order (what the app reads first comes first), stable within an area. */
export function sortRows(rows: readonly CheckRow[]): CheckRow[] {
  return rows
    .map((row, index) => ({ row, index }))
    .sort((a, b) => AREA_ORDER.indexOf(a.row.area) - AREA_ORDER.indexOf(b.row.area) || a.index - b.index)
    .map(({ row }) => row);
}

export interface CheckSummary {
  ok: number;
  warnings: number;
  failures: number;
}

export function summarize(rows: readonly CheckRow[]): CheckSummary {
  return {
    ok: rows.filter((row) => row.status === 'ok').length,
    warnings: rows.filter((row) => row.status === 'warn').length,
    failures: rows.filter((row) => row.status === 'fail').length,
  };
}

const RESULT: Record<CheckStatus, string> = { ok: 'ok', warn: 'WARN', fail: 'FAIL' };

/** Control characters (from a host's stderr, say) must not drive the operator's terminal. */
function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]+/g, ' ').trim();
}

/**
 * The report as a plain-text table: check, subject, result, time, detail, and for warnings and
 * failures the fix on the line below. Ends with a count of each result.
 */
export function formatTable(rows: readonly CheckRow[]): string {
  const header = ['CHECK', 'SUBJECT', 'RESULT', 'TIME', 'DETAIL'];
  const cells = rows.map((row) => [
    row.area,
    printable(row.subject),
    RESULT[row.status],
    row.ms === null ? '' : `${Math.round(row.ms)} ms`,
    printable(row.detail),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((cell) => cell[column]!.length)));
  // Left-aligned except the time, which reads better right-aligned; the detail is never padded.
  const line = (cell: string[]) =>
    cell
      .map((text, column) => (column === cell.length - 1 ? text : column === 3 ? text.padStart(widths[column]!) : text.padEnd(widths[column]!)))
      .join('  ')
      .trimEnd();
  const indent = ' '.repeat(widths.slice(0, 4).reduce((sum, width) => sum + width + 2, 0));
  const out = [line(header)];
  rows.forEach((row, index) => {
    out.push(line(cells[index]!));
    if (row.fix && row.status !== 'ok') out.push(`${indent}fix: ${printable(row.fix)}`);
  });
  const { ok, warnings, failures } = summarize(rows);
  out.push('', `${ok} ok, ${warnings} ${warnings === 1 ? 'warning' : 'warnings'}, ${failures} ${failures === 1 ? 'failure' : 'failures'}`);
  return out.join('\n');
}
