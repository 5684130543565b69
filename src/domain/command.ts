/**
 * The `/task` command grammar, parsed without I/O:
 *
 *   /task run <target> [-m "why"] [-t bash|sh|python3|node] [--in 10m] [--] <script>
 *   /task [new] | list [mine|pending|running|all] | show <id> | logs <id> | kill <id> | targets | help
 *
 * The script is the rest of the line, or one ```fenced``` block for several lines (an optional
 * language tag on the fence line sets the type). Errors say what is wrong and how to write it.
 */
import { decodeSlackText } from './slackText.js';
import { clip, Cursor, FENCE, MAX_SCRIPT_BYTES, QUOTES, readScript, TARGET_NAME, unknownScriptType } from './commandText.js';

export { MAX_SCRIPT_BYTES };
import { findUnclosedShellQuote } from './shellQuotes.js';
import { parseDuration } from './duration.js';
import { isScriptType, isShellType, type ScriptType } from './scriptTypes.js';
import { parseScheduleCommand, type ScheduleCommand } from './schedule.js';

export const MAX_MESSAGE_CHARS = 1000;

export const LIST_SCOPES = ['mine', 'pending', 'running', 'all'] as const;
export type ListScope = (typeof LIST_SCOPES)[number];

export type TaskCommand =
  | { kind: 'help' }
  | { kind: 'new' }
  | { kind: 'list'; scope: ListScope }
  | { kind: 'show' | 'logs' | 'kill'; taskId: number }
  | { kind: 'targets' }
  | { kind: 'run'; target: string; message: string | null; type: ScriptType | null; script: string; delayMs: number | null }
  | { kind: 'schedule'; schedule: ScheduleCommand };

/** The longest grace delay `--in` accepts. */
export const MAX_DELAY_MS = 7 * 24 * 3600_000;

export type ParseResult = { ok: true; command: TaskCommand } | { ok: false; error: string };

// Slack text: `<` and `>` are written as entities, or Slack would read `<target>` as markup.
export const RUN_USAGE = '`/task run &lt;target&gt; [-m "why"] &lt;script&gt;`';

export const HELP_TEXT = [
  '*countersign* runs a script on a target after its reviewers approve it.',
  '',
  '`/task run &lt;target&gt; [-m "why"] [-t bash|sh|python3|node] &lt;script&gt;`',
  '      run a one-line script, e.g. `/task run web-prod -m "disk full?" df -h`',
  '`/task run &lt;target&gt; -m "why"` followed by a script in a fenced block (three backticks before and after)',
  '      run a multi-line script; a language tag right after the opening backticks (python, bash, sh, node) sets the type',
  '`/task run &lt;target&gt; --in 10m ...`',
  '      run after a grace delay; until then the card offers Cancel',
  '`/task` or `/task new`',
  '      open a form to write a task',
  '`/task list [mine|pending|running|all]`',
  '      your tasks (default), tasks waiting for your review, what runs now, or everything recent',
  '`/task show &lt;id&gt;` · `/task logs &lt;id&gt;` · `/task kill &lt;id&gt;`',
  "      a task's card, the last lines of its output, or stop it",
  '`/task schedule help`',
  '      run a reviewed script on a cron: add, list, show, pause, resume, remove',
  '`/task start &lt;reference&gt;`',
  '      start a runbook (or recipe): a form shows its steps and asks for its arguments',
  '`/task runbook list [--tag &lt;tag&gt;]` · `/task runbook show|export|remove &lt;reference&gt;` · `/task runbook import [--replace]`',
  '      the runbooks, one in full, share one as JSON; `/task recipe …` still works for recipes',
  '`/task targets`',
  '      the targets, their hosts and who reviews them',
  '`/task help`',
  '      this help',
  '',
  `Scripts are at most ${MAX_SCRIPT_BYTES / 1024} KiB. Put \`--\` before a script that starts with \`-\`.`,
].join('\n');

const fail = (error: string): ParseResult => ({ ok: false, error });

export function parseTaskCommand(rawText: string): ParseResult {
  const cursor = new Cursor(decodeSlackText(rawText));
  cursor.skipSpace();
  // `/task` alone opens the form: the friendliest start for someone who forgot the grammar.
  if (cursor.done()) return { ok: true, command: { kind: 'new' } };
  const subcommand = cursor.word();
  switch (subcommand.toLowerCase()) {
    case 'help':
      return { ok: true, command: { kind: 'help' } };
    case 'new':
      return noMore(cursor, { kind: 'new' }, '`/task new` takes nothing after it; the form asks for the rest.');
    case 'targets':
      return noMore(cursor, { kind: 'targets' }, '`/task targets` takes nothing after it.');
    case 'list': {
      cursor.skipSpace();
      const scope = (cursor.word() || 'mine').toLowerCase();
      if (!(LIST_SCOPES as readonly string[]).includes(scope)) {
        return fail(`\`/task list\` shows \`mine\` (default), \`pending\`, \`running\` or \`all\`, not \`${clip(scope, 20)}\`.`);
      }
      return noMore(cursor, { kind: 'list', scope: scope as ListScope }, 'Write `/task list [mine|pending|running|all]`.');
    }
    case 'show':
    case 'logs':
    case 'kill': {
      const kind = subcommand.toLowerCase() as 'show' | 'logs' | 'kill';
      cursor.skipSpace();
      const word = cursor.word();
      const id = /^#?(\d{1,12})$/.exec(word)?.[1];
      if (!id) return fail(`Which task? Write \`/task ${kind} &lt;id&gt;\`, e.g. \`/task ${kind} 42\`.`);
      return noMore(cursor, { kind, taskId: Number(id) }, `Write \`/task ${kind} &lt;id&gt;\` with one task id.`);
    }
    case 'run':
      return parseRun(cursor);
    case 'schedule': {
      // From the raw text: a `<#C123|ops>` channel keeps its id (decoding keeps only the name).
      const parsed = parseScheduleCommand(rawText.replace(/^\s*\S+/, ''));
      return parsed.ok ? { ok: true, command: { kind: 'schedule', schedule: parsed.command } } : parsed;
    }
    default:
      return fail(`Unknown subcommand \`${clip(subcommand, 40)}\`. Write ${RUN_USAGE}, or \`/task help\` for everything.`);
  }
}

function noMore(cursor: Cursor, command: TaskCommand, usage: string): ParseResult {
  cursor.skipSpace();
  return cursor.done() ? { ok: true, command } : fail(`Unexpected \`${clip(cursor.rest(), 40)}\`. ${usage}`);
}

function parseRun(cursor: Cursor): ParseResult {
  cursor.skipSpace();
  const target = cursor.word();
  if (target === '' || target.startsWith(FENCE)) {
    return fail(`Which target? Write ${RUN_USAGE}, e.g. \`/task run web-prod -m "disk full?" df -h\`.`);
  }
  if (!TARGET_NAME.test(target)) {
    return fail(`\`${clip(target, 40)}\` is not a target name (letters, digits, \`-\`, \`_\`, \`.\`). Write ${RUN_USAGE}.`);
  }

  let message: string | null = null;
  let type: ScriptType | null = null;
  let delayMs: number | null = null;
  for (;;) {
    cursor.skipSpace();
    if (cursor.atFlag('--in')) {
      cursor.word();
      cursor.skipSpace();
      const value = cursor.word();
      const parsed = parseDelay(value);
      if (!parsed.ok) return fail(parsed.error);
      delayMs = parsed.value;
      continue;
    }
    if (cursor.atFlag('-m') || cursor.atFlag('--message')) {
      if (message !== null) return fail('Give `-m` only once.');
      cursor.word();
      const parsed = readMessage(cursor);
      if (!parsed.ok) return fail(parsed.error);
      message = parsed.value;
    } else if (cursor.atFlag('-t') || cursor.atFlag('--type')) {
      cursor.word();
      cursor.skipSpace();
      const value = cursor.word();
      if (!isScriptType(value)) return fail(unknownScriptType(value));
      type = value;
    } else if (cursor.atFlag('--')) {
      cursor.word();
      cursor.skipSpace();
      break;
    } else {
      break;
    }
  }

  const script = readScript(cursor.rest());
  if (!script.ok) return fail(script.error);
  const finalType = type ?? script.type;
  if (script.value.trim() === '') {
    return fail(`The script is empty. Write ${RUN_USAGE}, e.g. \`/task run ${target} -m "why" uptime\`.`);
  }
  const bytes = Buffer.byteLength(script.value, 'utf8');
  if (bytes > MAX_SCRIPT_BYTES) {
    return fail(
      `The script is ${(bytes / 1024).toFixed(1)} KiB; the limit is ${MAX_SCRIPT_BYTES / 1024} KiB. Put large scripts on the host and run them from a short one.`,
    );
  }
  if (!script.fenced && (finalType === null || isShellType(finalType))) {
    const open = findUnclosedShellQuote(script.value);
    if (open !== null) {
      return fail(`The script has an unclosed ${open} quote. Close it, or put the script in a \`\`\`fenced\`\`\` block.`);
    }
  }
  return { ok: true, command: { kind: 'run', target, message, type: finalType, script: script.value, delayMs } };
}

type Read<T> = { ok: true; value: T } | { ok: false; error: string };

/** `--in` takes `90s`, `10m`, `2h` or `1d`, at most a week. */
export function parseDelay(value: string): Read<number> {
  const duration = value === '' ? null : parseDuration(value);
  if (duration === null || duration <= 0)
    return { ok: false, error: `\`--in\` takes a delay such as \`10m\`, \`2h\` or \`1d\`${value === '' ? '' : `, not \`${clip(value, 20)}\``}.` };
  if (duration > MAX_DELAY_MS) return { ok: false, error: '`--in` is at most 7 days; schedule anything later.' };
  return { ok: true, value: duration };
}

function readMessage(cursor: Cursor): Read<string> {
  cursor.skipSpace();
  const open = cursor.text[cursor.pos];
  if (open === undefined) return { ok: false, error: '`-m` needs a message, e.g. `-m "disk is full on web-3"`.' };
  const close = QUOTES[open];
  let value: string;
  if (close === undefined) {
    value = cursor.word();
  } else {
    const parsed = readQuoted(cursor.text, cursor.pos + 1, close, open === '"');
    if (parsed === null) {
      return { ok: false, error: `The message after \`-m\` has no closing ${close} quote. Write \`-m "why"\`.` };
    }
    value = parsed.value;
    cursor.pos = parsed.end;
  }
  value = value.trim();
  if (value === '') return { ok: false, error: '`-m` needs a message, e.g. `-m "disk is full on web-3"`.' };
  if (value.length > MAX_MESSAGE_CHARS) {
    return { ok: false, error: `The message is ${value.length} characters; keep it under ${MAX_MESSAGE_CHARS}.` };
  }
  return { ok: true, value };
}

/** Reads up to the closing quote; `\"` and `\\` are escapes inside double quotes. */
function readQuoted(text: string, start: number, close: string, backslashEscapes: boolean): { value: string; end: number } | null {
  let value = '';
  for (let i = start; i < text.length; i++) {
    const ch = text[i] as string;
    if (backslashEscapes && ch === '\\' && (text[i + 1] === close || text[i + 1] === '\\')) {
      value += text[i + 1];
      i++;
    } else if (ch === close) {
      return { value, end: i + 1 };
    } else {
      value += ch;
    }
  }
  return null;
}
