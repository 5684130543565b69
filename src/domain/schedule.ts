/**
 * Schedules, pure: the `/task schedule ...` grammar, cron validation in an IANA time zone, the
 * content version a review approves, and whether an approval still holds under a target's
 * current policy. No I/O; the clock is always passed in.
 *
 *   /task schedule add <target> "<cron>" [--tz Europe/Paris] [--channel #ops] [-m "why"]
 *        [--notify failure|always] [--overlap skip|queue|allow] [--catch-up run|skip] [-t type] <script>
 *   /task schedule edit <id> [--cron "<cron>"] [--tz ...] [--channel ...] [--notify ...] [--overlap ...]
 *        [--catch-up ...] [-m "why"] [-t type] [--target <target>] [<script>]
 *   /task schedule list | show <id> | pause <id> | resume <id> | remove <id> | help
 *
 * Cron has 5 fields (minute first) or 6 (seconds first); node-cron validates them and computes
 * the fire times (src/domain/cron.ts), daylight-saving changes included.
 */
import { cronProblems, nextFireTimes } from './cron.js';
import { contentHash } from './digest.js';
import { progress, type ReviewDecision, type ReviewPolicy } from './review.js';
import { decodeSlackText } from './slackText.js';
import { clip, Cursor as TextCursor, MAX_SCRIPT_BYTES, QUOTES, readScript, TARGET_NAME, unknownScriptType } from './commandText.js';
import { isScriptType, type ScriptType } from './scriptTypes.js';

export { dueFireTimes, firesAt, fireTimesBetween, nextFireTimes, type Due } from './cron.js';

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
  /** scheduleContentVersion of what it runs: reviews approve this, and only this. */
  contentVersion: string;
  /** Bumped by every change of what it runs: decisions of earlier rounds no longer count. */
  reviewRound: number;
  /** When its current review was asked for (review.expiresAfter counts from here). */
  reviewRequestedAt: Date | null;
  /** Why it is in its status, when the system put it there (an expired review, an approval that no longer holds). */
  statusReason: string | null;
  /**
   * A schedule that starts a runbook (`--runbook`): its reference and argument values. Its
   * `target` reads `runbook:<reference>` and its `script` lists the values, for the views; each
   * firing starts a run, reviewed where the runbook's targets need it.
   */
  runbook?: string | null;
  arguments?: Readonly<Record<string, string>> | null;
}

/** How a runbook schedule shows where it runs and what (the views read target and script). */
export const runbookScheduleTarget = (reference: string): string => `runbook:${reference}`;
export const runbookScheduleScript = (args: Readonly<Record<string, string>>): string =>
  Object.keys(args).length === 0
    ? '(no arguments)'
    : Object.entries(args)
        .map(([name, value]) => `${name}=${value}`)
        .join('\n');

/** What a review approves: everything that runs, and the reason shown to reviewers. */
export function scheduleContentVersion(content: Pick<Schedule, 'target' | 'type' | 'script' | 'message'>): string {
  return contentHash('countersign.schedule/v1', { target: content.target, type: content.type, script: content.script, message: content.message ?? null });
}

export interface ScheduleOptions {
  channel: string | null;
  message: string | null;
  type: ScriptType | null;
  notify: NotifyMode;
  overlap: OverlapMode;
  catchUp: CatchUpMode;
}

export interface ScheduleAdd extends ScheduleOptions {
  action: 'add';
  target: string;
  cron: string;
  tz: string;
  script: string;
  /** `--runbook <reference>` (then target and script are empty) and its `--arg name=value`s. */
  runbook?: string | null;
  arguments?: Record<string, string> | null;
}

/** Only what was given; null leaves a field as it is. */
export interface ScheduleEdit {
  action: 'edit';
  id: number;
  target: string | null;
  cron: string | null;
  tz: string | null;
  channel: string | null;
  message: string | null;
  type: ScriptType | null;
  notify: NotifyMode | null;
  overlap: OverlapMode | null;
  catchUp: CatchUpMode | null;
  script: string | null;
}

export type ScheduleCommand =
  | ScheduleAdd
  | ScheduleEdit
  | { action: 'list' }
  | { action: 'help' }
  | { action: 'show' | 'pause' | 'resume' | 'remove'; id: number };

export type ScheduleParse = { ok: true; command: ScheduleCommand } | { ok: false; error: string };

export const scheduleRef = (id: number): string => `S${id}`;

/** The audit trail's `subject` for a schedule's events (events.subject). */
export const scheduleSubject = (id: number): string => `schedule:${id}`;

export const SCHEDULE_USAGE = '`/task schedule add &lt;target&gt; "&lt;cron&gt;" [--tz Europe/Paris] [--channel #ops] [-m "why"] &lt;script&gt;`';
export const RUNBOOK_SCHEDULE_USAGE = '`/task schedule add --runbook &lt;reference&gt; "&lt;cron&gt;" [--arg name=value]… [--tz …] [--channel #ops]`';
export const SCHEDULE_EDIT_USAGE =
  '`/task schedule edit &lt;id&gt; [--cron "&lt;cron&gt;"] [--tz …] [--channel …] [--notify …] [--overlap …] [--catch-up …] [-m "why"] [-t type] [--target &lt;target&gt;] [&lt;script&gt;]`';
export const CRON_EXAMPLE =
  'e.g. `"*/15 * * * *"` (every 15 minutes), `"0 9 * * 1-5"` (9:00 on weekdays) or, with seconds first, `"*/30 * * * * *"` (every 30 seconds)';

export const SCHEDULE_HELP = [
  "*Schedules* run a reviewed script on a cron. Each firing is a task that needs no new review; at each firing the approval is checked against the target's current review groups.",
  SCHEDULE_USAGE,
  `${RUNBOOK_SCHEDULE_USAGE}: each firing starts a run of the runbook, reviewed where its targets need it`,
  '      options: `--notify failure|always` (default always), `--overlap skip|queue|allow` (default skip: a firing while the last run still runs is skipped), `--catch-up run|skip` (default run: after downtime the most recent missed firing runs once), `-t bash|sh|python3|node`',
  `      cron has 5 fields, or 6 with seconds first; time zone UTC unless \`--tz\`; ${CRON_EXAMPLE}`,
  SCHEDULE_EDIT_USAGE,
  '      the cron, time zone, channel, notify, overlap and catch-up change at once; a new script, message, type or target is reviewed again, and the schedule fires nothing until it is approved',
  '`/task schedule list` · `/task schedule show &lt;id&gt;` · `/task schedule pause|resume|remove &lt;id&gt;`',
].join('\n');

const MAX_MESSAGE_CHARS = 1000;
/** A channel mention survives decoding as this marker: \u0001<id>|<name>\u0001. */
const MARK = '\u0001';

/** Validates a cron expression and a time zone; the error names the field and shows examples. */
export function checkCron(expression: string, tz: string, now = new Date()): { ok: true } | { ok: false; error: string } {
  const tzError = checkTimeZone(tz);
  if (tzError) return { ok: false, error: tzError };
  const trimmed = normalizeCron(expression);
  const fields = trimmed.split(' ').filter(Boolean);
  if (!trimmed.startsWith('@') && (fields.length < 5 || fields.length > 6)) {
    return {
      ok: false,
      error: `\`${clip(trimmed)}\` has ${fields.length} field${fields.length === 1 ? '' : 's'}; a cron needs 5 (minute hour day month weekday) or 6 (seconds first): ${CRON_EXAMPLE}.`,
    };
  }
  const problems = cronProblems(trimmed);
  if (problems.length > 0) return { ok: false, error: `\`${clip(trimmed)}\` is not a valid cron: ${clip(problems.join('; '), 300)}. Try ${CRON_EXAMPLE}.` };
  if (nextFireTimes(trimmed, tz, now, 1).length === 0) return { ok: false, error: `\`${clip(trimmed)}\` never fires. Try ${CRON_EXAMPLE}.` };
  return { ok: true };
}

/** One space between fields (node-cron splits on single spaces). */
export function normalizeCron(expression: string): string {
  return expression.trim().split(/\s+/).join(' ');
}

export function checkTimeZone(tz: string): string | null {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz }).format(0);
    return null;
  } catch {
    return `\`${clip(tz)}\` is not a time zone. Use an IANA name such as \`UTC\`, \`Europe/Paris\` or \`America/New_York\`.`;
  }
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
const ID = /^(?:#|S|s)?(\d{1,12})$/;

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
      const id = ID.exec(cursor.word())?.[1];
      cursor.skipSpace();
      if (!id || !cursor.done())
        return fail(`Which schedule? Write \`/task schedule ${action} &lt;id&gt;\`, e.g. \`/task schedule ${action} 3\` (\`/task schedule list\` shows them).`);
      return { ok: true, command: { action, id: Number(id) } };
    }
    case 'edit':
      return parseEdit(cursor);
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

/** The flags `add` and `edit` share, as given (null: not given). */
interface Flags {
  cron: string | null;
  target: string | null;
  tz: string | null;
  channel: string | null;
  message: string | null;
  type: ScriptType | null;
  notify: NotifyMode | null;
  overlap: OverlapMode | null;
  catchUp: CatchUpMode | null;
}

/** Reads flags until the script starts; `edit` also takes `--cron` and `--target`. */
function readFlags(cursor: Cursor, forEdit: boolean): { ok: true; flags: Flags } | { ok: false; error: string } {
  const flags: Flags = { cron: null, target: null, tz: null, channel: null, message: null, type: null, notify: null, overlap: null, catchUp: null };
  const once = (name: string, value: unknown) => (value !== null ? `Give \`${name}\` only once.` : null);
  for (;;) {
    cursor.skipSpace();
    let error: string | null = null;
    if (forEdit && cursor.atFlag('--cron')) {
      error = once('--cron', flags.cron);
      cursor.word();
      cursor.skipSpace();
      const quote = cursor.text[cursor.pos];
      if (!error && (quote === undefined || QUOTES[quote] === undefined)) error = `\`--cron\` takes the cron in quotes, ${CRON_EXAMPLE}.`;
      const cron = error ? null : cursor.value();
      if (!error && cron === null) error = 'The cron has no closing quote.';
      if (!error) flags.cron = normalizeCron(cron ?? '');
    } else if (forEdit && cursor.atFlag('--target')) {
      error = once('--target', flags.target);
      cursor.word();
      const target = cursor.value() ?? '';
      if (!error && !TARGET_NAME.test(target)) error = `\`--target\` takes a target name${target ? `, not \`${clip(target, 30)}\`` : ''}.`;
      if (!error) flags.target = target;
    } else if (cursor.atFlag('--tz')) {
      error = once('--tz', flags.tz);
      cursor.word();
      const tz = cursor.value();
      if (!error && !tz) error = '`--tz` needs a time zone, e.g. `--tz Europe/Paris`.';
      if (!error) flags.tz = tz;
    } else if (cursor.atFlag('--channel')) {
      error = once('--channel', flags.channel);
      cursor.word();
      const value = cursor.value() ?? '';
      const mention = new RegExp(`^${MARK}([A-Z0-9]+)\\|[^${MARK}]*${MARK}$`).exec(value);
      // `<#C123|ops>` when the command escapes channels, an id, or a plain `#ops` (the manifest's
      // should_escape: false sends that; chat.postMessage takes a channel name too).
      const id = mention?.[1] ?? /^#?([CG][A-Z0-9]{6,})$/.exec(value)?.[1] ?? (/^#[a-z0-9][a-z0-9._-]{0,79}$/.test(value) ? value : null);
      if (!error && !id)
        error = `\`--channel\` takes a channel picked from Slack's list (\`#ops\`) or its id (\`C0123ABC\`)${value ? `, not \`${clip(value.replaceAll(MARK, ''), 30)}\`` : ''}.`;
      if (!error) flags.channel = id;
    } else if (cursor.atFlag('-m') || cursor.atFlag('--message')) {
      error = flags.message !== null ? 'Give `-m` only once.' : null;
      cursor.word();
      const message = cursor.value()?.trim();
      if (!error && !message) error = '`-m` needs a message, e.g. `-m "nightly cleanup"`.';
      if (!error && message && message.length > MAX_MESSAGE_CHARS) error = `The message is ${message.length} characters; keep it under ${MAX_MESSAGE_CHARS}.`;
      if (!error) flags.message = message ?? null;
    } else if (cursor.atFlag('--notify')) {
      cursor.word();
      const picked = pick('--notify', cursor.value(), NOTIFY_MODES);
      if (picked.ok) flags.notify = picked.value;
      else error = picked.error;
    } else if (cursor.atFlag('--overlap')) {
      cursor.word();
      const picked = pick('--overlap', cursor.value(), OVERLAP_MODES);
      if (picked.ok) flags.overlap = picked.value;
      else error = picked.error;
    } else if (cursor.atFlag('--catch-up')) {
      cursor.word();
      const picked = pick('--catch-up', cursor.value(), CATCH_UP_MODES);
      if (picked.ok) flags.catchUp = picked.value;
      else error = picked.error;
    } else if (cursor.atFlag('-t') || cursor.atFlag('--type')) {
      cursor.word();
      const value = cursor.value() ?? '';
      if (isScriptType(value)) flags.type = value;
      else error = unknownScriptType(value);
    } else if (cursor.atFlag('--')) {
      cursor.word();
      cursor.skipSpace();
      break;
    } else {
      break;
    }
    if (error) return { ok: false, error };
  }
  return { ok: true, flags };
}

/** The script after the flags (channel mentions kept as their names); '' when none was given. */
function readScheduleScript(cursor: Cursor): { ok: true; script: string; type: ScriptType | null } | { ok: false; error: string } {
  const script = readScript(cursor.rest().replace(new RegExp(`${MARK}[A-Z0-9]+\\|([^${MARK}]*)${MARK}`, 'g'), '$1'));
  if (!script.ok) return script;
  if (Buffer.byteLength(script.value, 'utf8') > MAX_SCRIPT_BYTES)
    return { ok: false, error: `The script is over ${MAX_SCRIPT_BYTES / 1024} KiB; put large scripts on the host and run them from a short one.` };
  return { ok: true, script: script.value, type: script.type };
}

const RUNBOOK_REF = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ARG_PAIR = /^([A-Za-z_][A-Za-z0-9_]{0,63})=([\s\S]*)$/;

/** `add --runbook <reference> "<cron>" [--arg name=value]… [flags]`: nothing after the flags. */
function parseRunbookAdd(cursor: Cursor): ScheduleParse {
  cursor.word();
  cursor.skipSpace();
  const runbook = cursor.value() ?? '';
  if (!RUNBOOK_REF.test(runbook)) return fail(`Which runbook? Write ${RUNBOOK_SCHEDULE_USAGE}.`);
  cursor.skipSpace();
  const quote = cursor.text[cursor.pos];
  if (quote === undefined || QUOTES[quote] === undefined) return fail(`Put the cron in quotes after the runbook: ${RUNBOOK_SCHEDULE_USAGE}, ${CRON_EXAMPLE}.`);
  const cron = cursor.value();
  if (cron === null) return fail('The cron has no closing quote.');
  const args: Record<string, string> = {};
  let flags: Flags | null = null;
  for (;;) {
    cursor.skipSpace();
    if (cursor.atFlag('--arg')) {
      cursor.word();
      const pair = ARG_PAIR.exec(cursor.value() ?? '');
      if (!pair) return fail('`--arg` takes `name=value`, e.g. `--arg mode=graceful` (quote a value with spaces: `--arg "note=two words"`).');
      if (Object.hasOwn(args, pair[1]!)) return fail(`Give \`--arg ${pair[1]}\` only once.`);
      Object.defineProperty(args, pair[1]!, { value: pair[2]!, enumerable: true, writable: true, configurable: true });
      continue;
    }
    const read = readFlags(cursor, false);
    if (!read.ok) return fail(read.error);
    flags = mergeFlags(flags, read.flags);
    cursor.skipSpace();
    if (!cursor.atFlag('--arg')) break;
  }
  if (!cursor.done()) return fail(`A runbook schedule takes no script: ${RUNBOOK_SCHEDULE_USAGE}.`);
  if (flags?.type) return fail('A runbook schedule takes no `-t`: its runbook says how each step runs.');
  const add: ScheduleAdd = {
    action: 'add',
    target: runbookScheduleTarget(runbook),
    cron: normalizeCron(cron),
    tz: flags?.tz ?? 'UTC',
    channel: flags?.channel ?? null,
    message: flags?.message ?? null,
    type: null,
    notify: flags?.notify ?? 'always',
    overlap: flags?.overlap ?? 'skip',
    catchUp: flags?.catchUp ?? 'run',
    script: runbookScheduleScript(args),
    runbook,
    arguments: args,
  };
  const checked = checkCron(add.cron, add.tz);
  return checked.ok ? { ok: true, command: add } : fail(checked.error);
}

function mergeFlags(before: Flags | null, next: Flags): Flags {
  if (!before) return next;
  return Object.fromEntries(Object.entries(next).map(([key, value]) => [key, value ?? before[key as keyof Flags]])) as unknown as Flags;
}

function parseAdd(cursor: Cursor): ScheduleParse {
  cursor.skipSpace();
  if (cursor.atFlag('--runbook')) return parseRunbookAdd(cursor);
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
  const read = readFlags(cursor, false);
  if (!read.ok) return fail(read.error);
  const { flags } = read;
  const add: ScheduleAdd = {
    action: 'add',
    target,
    cron: normalizeCron(cron),
    tz: flags.tz ?? 'UTC',
    channel: flags.channel,
    message: flags.message,
    type: flags.type,
    notify: flags.notify ?? 'always',
    overlap: flags.overlap ?? 'skip',
    catchUp: flags.catchUp ?? 'run',
    script: '',
  };
  const checked = checkCron(add.cron, add.tz);
  if (!checked.ok) return fail(checked.error);
  const script = readScheduleScript(cursor);
  if (!script.ok) return fail(script.error);
  if (script.script.trim() === '') return fail(`The script is empty. Write ${SCHEDULE_USAGE}.`);
  add.script = script.script;
  add.type = add.type ?? script.type;
  return { ok: true, command: add };
}

function parseEdit(cursor: Cursor): ScheduleParse {
  cursor.skipSpace();
  const id = ID.exec(cursor.word())?.[1];
  if (!id) return fail(`Which schedule? Write ${SCHEDULE_EDIT_USAGE}, e.g. \`/task schedule edit 3 --cron "0 4 * * *"\`.`);
  const read = readFlags(cursor, true);
  if (!read.ok) return fail(read.error);
  const { flags } = read;
  if (flags.cron !== null) {
    // The time zone may be the schedule's own: the service checks the pair again.
    const checked = checkCron(flags.cron, flags.tz ?? 'UTC');
    if (!checked.ok) return fail(checked.error);
  } else if (flags.tz !== null) {
    const tzError = checkTimeZone(flags.tz);
    if (tzError) return fail(tzError);
  }
  const script = readScheduleScript(cursor);
  if (!script.ok) return fail(script.error);
  const newScript = script.script.trim() === '' ? null : script.script;
  const edit: ScheduleEdit = { action: 'edit', id: Number(id), ...flags, type: flags.type ?? (newScript !== null ? script.type : null), script: newScript };
  const changes = Object.entries(edit).filter(([key, value]) => key !== 'action' && key !== 'id' && value !== null);
  if (changes.length === 0) return fail(`Nothing to change. Write ${SCHEDULE_EDIT_USAGE}.`);
  return { ok: true, command: edit };
}

/** "every 15 min" style summaries are not attempted: the cron is shown as written, with the zone. */
export function describeSchedule(schedule: Pick<Schedule, 'cron' | 'tz'>): string {
  return `\`${schedule.cron}\` (${schedule.tz})`;
}

// ---------------------------------------------------------------- approvals at each firing

export interface GroupStanding {
  name: string;
  required: number;
  /** Approvers (of the current round) who still count for the group. */
  approvedBy: string[];
}

export type ApprovalStanding =
  | { holds: true }
  /** `verifiable: false`: Slack could not name a user group's members, so the shortfall may not be real. */
  | { holds: false; verifiable: boolean; reason: string; groups: GroupStanding[]; formerReviewers: string[] };

/**
 * Does the approval a schedule fires under still hold, under the target's policy as it is now
 * (user group members resolved)? `decisions` are those of its current review round. A target
 * that needs no review holds; otherwise every group needs its approvals from current members.
 * The reason reads as Slack mrkdwn (`<@U…>` mentions, *group*), unescaped: renderers escape it.
 */
export function approvalStanding(
  policy: ReviewPolicy | null,
  author: string,
  decisions: readonly ReviewDecision[],
  unknownUsergroups: readonly string[] = [],
): ApprovalStanding {
  if (!policy) return { holds: true };
  const approvers = decisions.filter((d) => d.verdict === 'approve' && d.userId !== author).map((d) => d.userId);
  const short = progress(policy, author, decisions)
    .map((group, index) => ({ group, config: policy.groups[index]! }))
    .filter(({ group }) => !group.satisfied);
  if (short.length === 0) return { holds: true };
  const groups: GroupStanding[] = short.map(({ group }) => ({ name: group.name, required: group.required, approvedBy: group.approvedBy }));
  // Approvers who are in none of the target's groups any more (removed from a list or a user group).
  const formerReviewers = approvers.filter((userId) => !policy.groups.some((group) => group.users.includes(userId)));
  const verifiable = !short.some(({ config }) => config.usergroup && unknownUsergroups.includes(config.usergroup));
  const mentions = (users: readonly string[]) => users.map((u) => `<@${u}>`).join(', ');
  const parts =
    approvers.length === 0
      ? [`it was never approved by ${short.map(({ group }) => `*${group.name}*`).join(', ')}, whose review its target now requires`]
      : groups.map(
          (g) =>
            `*${g.name}* needs ${g.required} approval${g.required === 1 ? '' : 's'} from its current members and has ${g.approvedBy.length}${g.approvedBy.length ? ` (${mentions(g.approvedBy)})` : ''}`,
        );
  if (formerReviewers.length > 0) parts.push(`${mentions(formerReviewers)} ${formerReviewers.length === 1 ? 'is' : 'are'} no longer in its review groups`);
  if (!verifiable) parts.push("Slack could not name a user group's members just now");
  return { holds: false, verifiable, reason: parts.join('; '), groups, formerReviewers };
}
