/**
 * Schedules, pure: the `/task schedule ...` grammar, cron validation in an IANA time zone, and
 * which fire times are due. No I/O; the clock is always passed in.
 *
 *   /task schedule add <target> "<cron>" [--tz Europe/Paris] [--channel #ops] [-m "why"]
 *        [--notify failure|always] [--overlap skip|queue|allow] [--catch-up run|skip] [-t type] <script>
 *   /task schedule list | show <id> | pause <id> | resume <id> | remove <id> | help
 *
 * Cron has 5 fields (minute first) or 6 (seconds first); croner computes the fire times,
 * daylight-saving changes included.
 */
import { Cron } from 'croner';
import { decodeSlackText } from './slackText.js';
import { clip, Cursor as TextCursor, MAX_SCRIPT_BYTES, QUOTES, readScript, TARGET_NAME, unknownScriptType } from './commandText.js';
import { isScriptType, type ScriptType } from './scriptTypes.js';

export const NOTIFY_MODES = ['always', 'failure'] as const;
export const OVERLAP_MODES = ['skip', 'queue', 'allow'] as const;
export const CATCH_UP_MODES = ['run', 'skip'] as const;
export type NotifyMode = (typeof NOTIFY_MODES)[number];
export type OverlapMode = (typeof OVERLAP_MODES)[number];
export type CatchUpMode = (typeof CATCH_UP_MODES)[number];
export type ScheduleStatus = 'pending-review' | 'active' | 'paused' | 'rejected' | 'removed';

export interface Schedule {
  id: number;
  createdAt: Date;
  status: ScheduleStatus;
  author: string;
  target: string;
  cron: string;
  tz: string;
  type: ScriptType;
  script: string;
  message: string | null;
  channelId: string | null;
  originChannel: string | null;
  notify: NotifyMode;
  overlap: OverlapMode;
  catchUp: CatchUpMode;
  reviewChannel: string | null;
  reviewTs: string | null;
  approvedAt: Date | null;
  firedThrough: Date | null;
}

export interface ScheduleAdd {
  action: 'add';
  target: string;
  cron: string;
  tz: string;
  channel: string | null;
  message: string | null;
  type: ScriptType | null;
  notify: NotifyMode;
  overlap: OverlapMode;
  catchUp: CatchUpMode;
  script: string;
}

export type ScheduleCommand =
  | ScheduleAdd
  | { action: 'list' }
  | { action: 'help' }
  | { action: 'show' | 'pause' | 'resume' | 'remove'; id: number };

export type ScheduleParse = { ok: true; command: ScheduleCommand } | { ok: false; error: string };

export const scheduleRef = (id: number): string => `S${id}`;

export const SCHEDULE_USAGE = '`/task schedule add &lt;target&gt; "&lt;cron&gt;" [--tz Europe/Paris] [--channel #ops] [-m "why"] &lt;script&gt;`';
export const CRON_EXAMPLE =
  'e.g. `"*/15 * * * *"` (every 15 minutes), `"0 9 * * 1-5"` (9:00 on weekdays) or, with seconds first, `"*/30 * * * * *"` (every 30 seconds)';

export const SCHEDULE_HELP = [
  '*Schedules* run a reviewed script on a cron. Each firing is a task that needs no new review.',
  SCHEDULE_USAGE,
  '      options: `--notify failure|always` (default always), `--overlap skip|queue|allow` (default skip: a firing while the last run still runs is skipped), `--catch-up run|skip` (default run: after downtime the most recent missed firing runs once), `-t bash|sh|python3|node`',
  `      cron has 5 fields, or 6 with seconds first; time zone UTC unless \`--tz\`; ${CRON_EXAMPLE}`,
  '`/task schedule list` · `/task schedule show &lt;id&gt;` · `/task schedule pause|resume|remove &lt;id&gt;`',
  'To change the script, target or cron of a schedule, remove it and add a new one: the new one is reviewed again.',
].join('\n');

const MAX_MESSAGE_CHARS = 1000;
/** A channel mention survives decoding as this marker: \u0001<id>|<name>\u0001. */
const MARK = '\u0001';


/** Validates a cron expression and a time zone; the error says why and shows examples. */
export function checkCron(expression: string, tz: string): { ok: true; cron: Cron } | { ok: false; error: string } {
  const tzError = checkTimeZone(tz);
  if (tzError) return { ok: false, error: tzError };
  const trimmed = expression.trim();
  const fields = trimmed.split(/\s+/).filter(Boolean);
  if (!trimmed.startsWith('@') && (fields.length < 5 || fields.length > 6)) {
    return { ok: false, error: `\`${clip(trimmed)}\` has ${fields.length} field${fields.length === 1 ? '' : 's'}; a cron needs 5 (minute hour day month weekday) or 6 (seconds first): ${CRON_EXAMPLE}.` };
  }
  try {
    const cron = new Cron(trimmed, { timezone: tz, paused: true });
    if (cron.nextRun(new Date()) === null) return { ok: false, error: `\`${clip(trimmed)}\` never fires. Try ${CRON_EXAMPLE}.` };
    return { ok: true, cron };
  } catch (error) {
    const reason = String((error as Error).message ?? error).replace(/^CronPattern:\s*/, '');
    return { ok: false, error: `\`${clip(trimmed)}\` is not a valid cron: ${clip(reason, 120)}. Try ${CRON_EXAMPLE}.` };
  }
}

export function checkTimeZone(tz: string): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz }).format(0);
    return null;
  } catch {
    return `\`${clip(tz)}\` is not a time zone. Use an IANA name such as \`UTC\`, \`Europe/Paris\` or \`America/New_York\`.`;
  }
}

/** The next `count` fire times strictly after `after`. */
export function nextFireTimes(cronExpr: string, tz: string, after: Date, count = 1): Date[] {
  const cron = new Cron(cronExpr, { timezone: tz, paused: true });
  const times: Date[] = [];
  let cursor = after;
  while (times.length < count) {
    const next = cron.nextRun(cursor);
    if (!next) break;
    times.push(next);
    cursor = next;
  }
  return times;
}

export interface Due {
  /** The most recent fire time in (after, now], or null when none is due. */
  latest: Date | null;
  /** How many earlier fire times in (after, latest) were passed over (at least 1 when `moreEarlier`). */
  earlier: number;
  /** More earlier times than counted (the count stopped at `limit`). */
  moreEarlier: boolean;
}

/**
 * Fire times due in (after, now]. Only the latest matters (older ones were missed: nobody runs
 * a backlog), so the search starts in a window just before `now` and widens until a fire time is
 * found, which keeps it short even for a second-level cron after a week of downtime.
 */
export function dueFireTimes(cronExpr: string, tz: string, after: Date, now: Date, limit = 1000): Due {
  if (now.getTime() <= after.getTime()) return { latest: null, earlier: 0, moreEarlier: false };
  const cron = new Cron(cronExpr, { timezone: tz, paused: true });
  const windows = [60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 367 * 86_400_000, 8 * 367 * 86_400_000];
  for (const window of windows) {
    const from = new Date(Math.max(after.getTime(), now.getTime() - window));
    const times: Date[] = [];
    let cursor = from;
    for (;;) {
      const next = cron.nextRun(cursor);
      if (!next || next.getTime() > now.getTime()) break;
      times.push(next);
      cursor = next;
      if (times.length > limit) times.shift();
    }
    const latest = times[times.length - 1];
    if (latest) {
      const truncated = from.getTime() > after.getTime();
      return { latest, earlier: times.length - 1, moreEarlier: truncated };
    }
    if (from.getTime() === after.getTime()) break;
  }
  return { latest: null, earlier: 0, moreEarlier: false };
}

/** The shared cursor, plus quoted values such as a time zone or a cron expression. */
class Cursor extends TextCursor {
  /** A quoted string (any of the quotes people type) or a bare word. */
  value(): string | null {
    this.skipSpace();
    const open = this.text[this.pos];
    if (open === undefined) return null;
    const close = QUOTES[open];
    if (close === undefined) return this.word();
    const end = this.text.indexOf(close, this.pos + 1);
    if (end < 0) return null;
    const value = this.text.slice(this.pos + 1, end);
    this.pos = end + 1;
    return value;
  }
}

const fail = (error: string): ScheduleParse => ({ ok: false, error });

/**
 * Parses the text after `/task schedule`, as Slack sent it (entities and `<#C123|ops>` channel
 * markup not yet decoded: the channel's id is kept from the markup).
 */
export function parseScheduleCommand(rawText: string): ScheduleParse {
  const marked = rawText.replace(/<#([A-Z0-9]+)(?:\|([^<>]*))?>/g, (_whole, id: string, name: string | undefined) => `${MARK}${id}|${name ?? ''}${MARK}`);
  const cursor = new Cursor(decodeSlackText(marked));
  cursor.skipSpace();
  const action = cursor.word().toLowerCase();
  switch (action) {
    case '':
    case 'help':
      return { ok: true, command: { action: 'help' } };
    case 'list':
      cursor.skipSpace();
      return cursor.done() ? { ok: true, command: { action: 'list' } } : fail('`/task schedule list` takes nothing after it.');
    case 'show':
    case 'pause':
    case 'resume':
    case 'remove': {
      cursor.skipSpace();
      const id = /^(?:#|S|s)?(\d{1,12})$/.exec(cursor.word())?.[1];
      cursor.skipSpace();
      if (!id || !cursor.done()) return fail(`Which schedule? Write \`/task schedule ${action} &lt;id&gt;\`, e.g. \`/task schedule ${action} 3\` (\`/task schedule list\` shows them).`);
      return { ok: true, command: { action, id: Number(id) } };
    }
    case 'edit':
      return fail('Schedules are not edited in place: `/task schedule remove &lt;id&gt;`, then add the new version, which is reviewed again.');
    case 'add':
      return parseAdd(cursor);
    default:
      return fail(`Unknown \`/task schedule ${clip(action, 20)}\`. Write ${SCHEDULE_USAGE}, or \`/task schedule help\`.`);
  }
}

function pick<T extends string>(flag: string, value: string | null, allowed: readonly T[]): { ok: true; value: T } | { ok: false; error: string } {
  if (value !== null && (allowed as readonly string[]).includes(value.toLowerCase())) return { ok: true, value: value.toLowerCase() as T };
  return { ok: false, error: `\`${flag}\` takes ${allowed.map((a) => `\`${a}\``).join(' or ')}${value ? `, not \`${clip(value, 20)}\`` : ''}.` };
}

function parseAdd(cursor: Cursor): ScheduleParse {
  cursor.skipSpace();
  const target = cursor.word();
  if (target === '' || !TARGET_NAME.test(target)) {
    return fail(`Which target? Write ${SCHEDULE_USAGE}, e.g. \`/task schedule add web-prod "0 3 * * *" -m "nightly cleanup" ./cleanup.sh\`.`);
  }
  cursor.skipSpace();
  const quote = cursor.text[cursor.pos];
  if (quote === undefined || QUOTES[quote] === undefined) {
    return fail(`Put the cron in quotes after the target: ${SCHEDULE_USAGE}, ${CRON_EXAMPLE}.`);
  }
  const cron = cursor.value();
  if (cron === null) return fail('The cron has no closing quote.');
  const add: ScheduleAdd = { action: 'add', target, cron: cron.trim(), tz: 'UTC', channel: null, message: null, type: null, notify: 'always', overlap: 'skip', catchUp: 'run', script: '' };
  for (;;) {
    cursor.skipSpace();
    if (cursor.atFlag('--tz')) {
      cursor.word();
      const tz = cursor.value();
      if (!tz) return fail('`--tz` needs a time zone, e.g. `--tz Europe/Paris`.');
      add.tz = tz;
    } else if (cursor.atFlag('--channel')) {
      cursor.word();
      const value = cursor.value() ?? '';
      const mention = new RegExp(`^${MARK}([A-Z0-9]+)\\|[^${MARK}]*${MARK}$`).exec(value);
      // `<#C123|ops>` when the command escapes channels, an id, or a plain `#ops` (the manifest's
      // should_escape: false sends that; chat.postMessage takes a channel name too).
      const id = mention?.[1] ?? /^#?([CG][A-Z0-9]{6,})$/.exec(value)?.[1] ?? (/^#[a-z0-9][a-z0-9._-]{0,79}$/.test(value) ? value : null);
      if (!id) return fail(`\`--channel\` takes a channel picked from Slack's list (\`#ops\`) or its id (\`C0123ABC\`)${value ? `, not \`${clip(value.replaceAll(MARK, ''), 30)}\`` : ''}.`);
      add.channel = id;
    } else if (cursor.atFlag('-m') || cursor.atFlag('--message')) {
      if (add.message !== null) return fail('Give `-m` only once.');
      cursor.word();
      const message = cursor.value()?.trim();
      if (!message) return fail('`-m` needs a message, e.g. `-m "nightly cleanup"`.');
      if (message.length > MAX_MESSAGE_CHARS) return fail(`The message is ${message.length} characters; keep it under ${MAX_MESSAGE_CHARS}.`);
      add.message = message;
    } else if (cursor.atFlag('--notify')) {
      cursor.word();
      const picked = pick('--notify', cursor.value(), NOTIFY_MODES);
      if (!picked.ok) return fail(picked.error);
      add.notify = picked.value;
    } else if (cursor.atFlag('--overlap')) {
      cursor.word();
      const picked = pick('--overlap', cursor.value(), OVERLAP_MODES);
      if (!picked.ok) return fail(picked.error);
      add.overlap = picked.value;
    } else if (cursor.atFlag('--catch-up')) {
      cursor.word();
      const picked = pick('--catch-up', cursor.value(), CATCH_UP_MODES);
      if (!picked.ok) return fail(picked.error);
      add.catchUp = picked.value;
    } else if (cursor.atFlag('-t') || cursor.atFlag('--type')) {
      cursor.word();
      const value = cursor.value() ?? '';
      if (!isScriptType(value)) return fail(unknownScriptType(value));
      add.type = value;
    } else if (cursor.atFlag('--')) {
      cursor.word();
      cursor.skipSpace();
      break;
    } else {
      break;
    }
  }
  const checked = checkCron(add.cron, add.tz);
  if (!checked.ok) return fail(checked.error);
  const script = readScript(cursor.rest().replace(new RegExp(`${MARK}[A-Z0-9]+\\|([^${MARK}]*)${MARK}`, 'g'), '$1'));
  if (!script.ok) return fail(script.error);
  if (script.value.trim() === '') return fail(`The script is empty. Write ${SCHEDULE_USAGE}.`);
  if (Buffer.byteLength(script.value, 'utf8') > MAX_SCRIPT_BYTES) return fail(`The script is over ${MAX_SCRIPT_BYTES / 1024} KiB; put large scripts on the host and run them from a short one.`);
  add.script = script.value;
  add.type = add.type ?? script.type;
  return { ok: true, command: add };
}

/** "every 15 min" style summaries are not attempted: the cron is shown as written, with the zone. */
export function describeSchedule(schedule: Pick<Schedule, 'cron' | 'tz'>): string {
  return `\`${schedule.cron}\` (${schedule.tz})`;
}
