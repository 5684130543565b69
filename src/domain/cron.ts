/**
 * Cron expressions on node-cron 4.6 (the stack's scheduler): validation with its per-field
 * errors, and fire times computed by the same code that times node-cron's own firings, so a
 * catch-up and an on-time firing always name the same instant (daylight-saving changes
 * included). The clock is always passed in.
 *
 * What node-cron offers, and what it does not: `validateDetailed(expr)` (pure) gives errors per
 * field; a task (`createTask`) has `match(date)`, and `getNextRuns(n)` / `getNextRun()` counted
 * from the real clock only. There is no "next after a given time" and no "previous fire time" in
 * its public API. So fire times come from the task's TimeMatcher, `getNextMatch(after)`, the
 * function node-cron's runner calls to plan each beat (`getNextRuns` is a loop over it). The
 * version is pinned exactly and test/unit/scheduleCron.test.ts fails if that function moves.
 * The most recent fire time before `now` is found by stepping forward with it from a window
 * just before `now` (widened until one is found), each result confirmed with `match()`.
 *
 * Day of month and weekday: classic cron (and croner, which schedules ran on before) fires when
 * EITHER matches once both are restricted (`0 9 1 * mon`: the 1st, and every Monday); node-cron
 * requires both. Such an expression is kept as written but run as two variants, one per day
 * field, whose fire times are merged (a day matching both fires once: the firing key is the
 * schedule and the instant). `cronVariants` says which node-cron expressions to run.
 */
import { createTask, validateDetailed, type ScheduledTask } from 'node-cron';

/** The part of node-cron's TimeMatcher we use: strictly after `date` (whole seconds). */
interface TimeMatcher {
  getNextMatch(date: Date): Date;
}

interface Matcher {
  task: ScheduledTask;
  next: TimeMatcher;
}

/** The node-cron expressions that together fire when classic cron fires `expression`. */
export function cronVariants(expression: string): string[] {
  const raw = expression.trim().split(/\s+/);
  if (raw.length !== 5 && raw.length !== 6) return [expression];
  const dom = raw.length - 3;
  const dow = raw.length - 1;
  const unrestricted = (field: string) => field === '*' || field === '?';
  if (unrestricted(raw[dom]!) || unrestricted(raw[dow]!)) return [expression];
  const withField = (index: number, value: string) => raw.map((field, i) => (i === index ? value : field)).join(' ');
  return [withField(dow, '*'), withField(dom, '*')];
}

/** The variants' matchers: fire times are the union of theirs. */
function matchersFor(expression: string, tz: string): Matcher[] {
  return cronVariants(expression).map((variant) => matcherFor(variant, tz));
}

/** Matchers by time zone and expression; a few hundred schedules at most in practice. */
const matchers = new Map<string, Matcher>();
const MAX_MATCHERS = 500;

/**
 * A detached node-cron task for this expression: never started, and destroyed at once so it
 * leaves node-cron's task registry (its matcher keeps working). Throws on an invalid expression.
 */
function matcherFor(expression: string, tz: string): Matcher {
  const key = `${tz}\u0000${expression}`;
  const known = matchers.get(key);
  if (known) {
    matchers.delete(key);
    matchers.set(key, known); // most recently used last
    return known;
  }
  const task = createTask(expression, () => undefined, { timezone: tz, name: 'countersign-fire-times' });
  void task.destroy();
  const next = (task as unknown as { timeMatcher?: Partial<TimeMatcher> }).timeMatcher;
  if (!next || typeof next.getNextMatch !== 'function')
    throw new Error('node-cron no longer exposes its TimeMatcher: check the node-cron version (4.6.x expected)');
  const matcher = { task, next: next as TimeMatcher };
  matchers.set(key, matcher);
  if (matchers.size > MAX_MATCHERS) matchers.delete(matchers.keys().next().value as string);
  return matcher;
}

/** The earliest next fire time of any variant strictly after `after`, or null when none finds one (within a century). */
function nextAfter(matchers: readonly Matcher[], after: Date): Date | null {
  let earliest: Date | null = null;
  for (const matcher of matchers) {
    let next: Date | null;
    try {
      next = matcher.next.getNextMatch(after);
    } catch {
      next = null;
    }
    if (next && (!earliest || next.getTime() < earliest.getTime())) earliest = next;
  }
  return earliest;
}

const matchesAny = (matchers: readonly Matcher[], at: Date): boolean => matchers.some((matcher) => matcher.task.match(at));

/** Does the expression fire at exactly this instant (node-cron's `match`, whole seconds)? */
export function firesAt(expression: string, tz: string, at: Date): boolean {
  return at.getMilliseconds() === 0 && matchesAny(matchersFor(expression, tz), at);
}

/** The next `count` fire times strictly after `after`. */
export function nextFireTimes(expression: string, tz: string, after: Date, count = 1): Date[] {
  const matcher = matchersFor(expression, tz);
  const times: Date[] = [];
  let cursor = after;
  while (times.length < count) {
    const next = nextAfter(matcher, cursor);
    if (!next) break;
    times.push(next);
    cursor = next;
  }
  return times;
}

export interface Due {
  /** The most recent fire time in (after, now], or null when none is due. */
  latest: Date | null;
  /** How many earlier fire times in (after, latest) were passed over. */
  earlier: number;
  /** More earlier times than counted: the search looked back only as far as it needed. */
  moreEarlier: boolean;
}

const WINDOWS_MS = [5_000, 60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 367 * 86_400_000, 8 * 367 * 86_400_000];

/**
 * Fire times due in (after, now]. Only the latest matters (older ones were missed: nobody runs
 * a backlog), so the search starts in a window just before `now` and widens until a fire time is
 * found, which keeps it short even for a second-level cron after a week of downtime.
 */
export function dueFireTimes(expression: string, tz: string, after: Date, now: Date): Due {
  if (now.getTime() <= after.getTime()) return { latest: null, earlier: 0, moreEarlier: false };
  const matcher = matchersFor(expression, tz);
  for (const window of WINDOWS_MS) {
    const from = new Date(Math.max(after.getTime(), now.getTime() - window));
    let latest: Date | null = null;
    let count = 0;
    let cursor = from;
    for (;;) {
      const next = nextAfter(matcher, cursor);
      if (!next || next.getTime() > now.getTime()) break;
      latest = next;
      count++;
      cursor = next;
    }
    if (latest && matchesAny(matcher, latest)) return { latest, earlier: count - 1, moreEarlier: from.getTime() > after.getTime() };
    if (from.getTime() === after.getTime()) break;
  }
  return { latest: null, earlier: 0, moreEarlier: false };
}

/** How many fire times fall in (after, before), counting at most `limit`. */
export function fireTimesBetween(expression: string, tz: string, after: Date, before: Date, limit = 1000): { count: number; more: boolean } {
  const matcher = matchersFor(expression, tz);
  let count = 0;
  let cursor = after;
  for (;;) {
    const next = nextAfter(matcher, cursor);
    if (!next || next.getTime() >= before.getTime()) return { count, more: false };
    if (++count >= limit) return { count, more: true };
    cursor = next;
  }
}

const FIELD_RANGES: Readonly<Record<string, { label: string; max: number; range: string }>> = {
  second: { label: 'seconds', max: 59, range: '0-59' },
  minute: { label: 'minute', max: 59, range: '0-59' },
  hour: { label: 'hour', max: 23, range: '0-23' },
  dayOfMonth: { label: 'day of month', max: 31, range: '1-31, L, LW, 15W or L-2' },
  month: { label: 'month', max: 12, range: '1-12 or jan-dec' },
  dayOfWeek: { label: 'weekday', max: 7, range: '0-7 or sun-sat (also 5L, 1#2)' },
};
const FIELD_ORDER = ['second', 'minute', 'hour', 'dayOfMonth', 'month', 'dayOfWeek'] as const;

/**
 * Problems with a cron expression (already known to have 5 or 6 fields), each naming the field:
 * node-cron's `validateDetailed` errors, plus steps larger than their field (node-cron reads
 * `*\/70` in the minute field as "minute 0", which is never what its writer meant).
 */
export function cronProblems(expression: string): string[] {
  const detailed = validateDetailed(expression);
  const problems = detailed.errors.map((error) => {
    const field = FIELD_RANGES[error.field];
    if (!field) return error.message;
    if (/impossible/.test(error.message)) return `the day of month \`${error.value ?? '?'}\` never comes in the months given`;
    return `the ${field.label} field has \`${error.value ?? '?'}\` (${field.range})`;
  });
  if (problems.length > 0) return problems;
  const raw = expression.trim().split(/\s+/);
  if (raw.length !== 5 && raw.length !== 6) return problems; // a nickname such as @daily
  const fields = raw.length === 5 ? ['0', ...raw] : raw;
  fields.forEach((value, index) => {
    const name = FIELD_ORDER[index] as string;
    const field = FIELD_RANGES[name]!;
    for (const token of value.split(',')) {
      const step = /\/(\d+)$/.exec(token)?.[1];
      if (step !== undefined && Number(step) > field.max) {
        problems.push(`the ${field.label} field steps by ${step}, more than its range (${field.range}): cron cannot say "every ${step}"`);
      }
    }
  });
  return problems;
}
