/**
 * Output shown in a task's thread: text messages holding a code block each. chat.update
 * refuses text past 4000 characters, so a message holds at most LOG_MESSAGE_CHARS of escaped
 * output; the streamer fills one message, then starts the next.
 */
import { escapeSlackText } from '../../domain/slackText.js';
import { formatBytes } from '../../domain/size.js';
import { breakFences } from './format.js';

export const LOG_MESSAGE_CHARS = 3800;

/** Output as it will appear inside the block: escaped for Slack, ``` runs broken. */
export function escapeLogText(raw: string): string {
  return breakFences(escapeSlackText(raw));
}

/** Prefixes each line with the host, for runs on several hosts. */
export function labelLines(text: string, host: string, atLineStart: boolean): string {
  const prefixed = text.replace(/\n(?=.)/g, `\n[${host}] `);
  return atLineStart ? `[${host}] ${prefixed}` : prefixed;
}

export function logMessageText(escapedBody: string): string {
  return `\`\`\`\n${escapedBody === '' ? ' ' : escapedBody}\n\`\`\``;
}

/**
 * Splits `escaped` so the head fits in `room` characters: at the last newline when there is
 * one, and never inside an HTML entity such as `&amp;`.
 */
export function splitToFit(escaped: string, room: number): { head: string; rest: string } {
  if (escaped.length <= room) return { head: escaped, rest: '' };
  if (room <= 0) return { head: '', rest: escaped };
  let cut = escaped.lastIndexOf('\n', room - 1) + 1;
  if (cut <= 0) {
    cut = room;
    const amp = escaped.lastIndexOf('&', cut - 1);
    if (amp >= 0 && amp > cut - 5 && escaped.indexOf(';', amp) >= cut) cut = amp;
  }
  return { head: escaped.slice(0, cut), rest: escaped.slice(cut) };
}

export function fullLogComment(taskId: number, bytes: number, lines: number, pageUrl: string | null = null): string {
  return `:page_facing_up: Full output of #${taskId}: ${lines} lines, ${formatBytes(bytes)}.${pageUrl ? ` Also on <${pageUrl}|the task page>.` : ''}`;
}

export const LOG_LIMIT_NOTICE = ':scissors: More output than this thread shows: the full log will be attached here when the task ends.';
export const NO_OUTPUT_NOTICE = '_The script printed nothing._';
