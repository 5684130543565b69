/** Small pure helpers shared by the renderers: statuses, dates, clipping, code blocks. */
import type { TaskStatus } from '../../domain/lifecycle.js';
import { escapeSlackText } from '../../domain/slackText.js';

export const STATUS_LABEL: Readonly<Record<TaskStatus, string>> = {
  created: ':new: created',
  'pending-review': ':hourglass_flowing_sand: waiting for review',
  approved: ':white_check_mark: approved',
  rejected: ':no_entry: rejected',
  ready: ':arrow_forward: queued',
  running: ':runner: running',
  success: ':large_green_circle: success',
  failure: ':red_circle: failure',
  killed: ':octagonal_sign: killed',
  cancelled: ':heavy_multiplication_x: cancelled',
};

/** Slack renders this in each reader's own time zone; the fallback is for old clients. */
export function slackDate(date: Date): string {
  const unix = Math.floor(date.getTime() / 1000);
  return `<!date^${unix}^{date_short_pretty} at {time}|${date.toISOString().replace(/\.\d+Z$/, 'Z')}>`;
}

/** A Slack user as a mention; a non-user author (`webhook:<id>`) as code, since `<@webhook:…>` would render broken. */
export const mention = (userId: string): string => (userId.includes(':') ? `\`${userId.replace(/[`<>&]/g, '')}\`` : `<@${userId}>`);

/** Cuts text to `max` characters, marking the cut, and never through an HTML entity like `&amp;`. */
export function clip(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = Math.max(0, max - 1);
  const amp = text.lastIndexOf('&', cut - 1);
  if (amp >= 0 && cut - amp < 6 && !text.slice(amp, cut).includes(';')) cut = amp;
  return `${text.slice(0, cut)}…`;
}

/** Breaks every run of three or more backticks with zero-width spaces, so it cannot close a code block. */
export function breakFences(text: string): string {
  return text.replace(/`{3,}/g, (run) => run.split('').join('\u200b'));
}

/** Plain user text made safe for mrkdwn, then clipped (clipping after escaping keeps the limit true). */
export function safeText(text: string, max: number): string {
  return clip(escapeSlackText(text), max);
}

/** Like safeText, but keeps user mentions (`<@U123>`) that our own messages put in. */
export function safeTextWithMentions(text: string, max: number): string {
  return clip(escapeSlackText(text).replace(/&lt;@([UW][A-Z0-9]+)&gt;/g, '<@$1>'), max);
}

const codeBody = (text: string): string => breakFences(escapeSlackText(text));

/** True when codeBlock(text, max) would show all of `text`. */
export function fitsInCodeBlock(text: string, max: number): boolean {
  return codeBody(text).length <= max - 8;
}

/**
 * A ``` code block of at most `max` characters in all. Long text keeps its first lines and
 * says how many lines were left out. Backtick runs inside are broken so they cannot close the
 * block early.
 */
export function codeBlock(text: string, max: number, what = 'lines'): string {
  const body = codeBody(text);
  const budget = max - 8;
  if (body.length <= budget) return `\`\`\`\n${body}\n\`\`\``;
  const totalLines = body.split('\n').length;
  const note = (shownLines: number) => `\n… ${totalLines - shownLines} more ${what}`;
  let cut = body.slice(0, budget - 40);
  const lastNewline = cut.lastIndexOf('\n');
  if (lastNewline > 0) cut = cut.slice(0, lastNewline);
  const shown = cut.split('\n').length;
  return `\`\`\`\n${cut}${totalLines > shown ? note(shown) : '\n…'}\n\`\`\``;
}
