/**
 * Reading Slack command text, shared by the `/task` and `/task schedule` grammars: a cursor over
 * words and flags, the quotes people type, and the script (the rest of the line, or one
 * ```fenced``` block whose language tag may set the type).
 */
import { escapeSlackText } from './slackText.js';
import { SCRIPT_TYPES, scriptTypeForFenceLanguage, type ScriptType } from './scriptTypes.js';

export const MAX_SCRIPT_BYTES = 64 * 1024;
export const TARGET_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** User text echoed back in an error: shortened, and escaped so it cannot become Slack markup. */
export function clip(text: string, max = 40): string {
  return escapeSlackText(text.length > max ? `${text.slice(0, max)}…` : text);
}

/** The answer to a `-t` value that is not a script type. */
export function unknownScriptType(value: string): string {
  return `Unknown script type \`${clip(value, 20)}\`: use one of ${SCRIPT_TYPES.map((t) => `\`${t}\``).join(', ')}.`;
}
export const FENCE = '```';

/** Opening quote -> closing quote; curly quotes come from phones and macOS autocorrect. */
export const QUOTES: Readonly<Record<string, string>> = { '"': '"', "'": "'", '“': '”', '‘': '’', '”': '”' };

export class Cursor {
  pos = 0;
  constructor(readonly text: string) {}
  done(): boolean {
    return this.pos >= this.text.length;
  }
  skipSpace(): void {
    while (!this.done() && /\s/.test(this.text[this.pos] as string)) this.pos++;
  }
  word(): string {
    const start = this.pos;
    while (!this.done() && !/\s/.test(this.text[this.pos] as string)) this.pos++;
    return this.text.slice(start, this.pos);
  }
  /** True when the text at the cursor is `flag` followed by whitespace or the end. */
  atFlag(flag: string): boolean {
    if (!this.text.startsWith(flag, this.pos)) return false;
    const after = this.text[this.pos + flag.length];
    return after === undefined || /\s/.test(after);
  }
  rest(): string {
    return this.text.slice(this.pos);
  }
}

export function readScript(rest: string): ScriptRead {
  const trimmed = rest.replace(/\s+$/, '');
  if (!trimmed.startsWith(FENCE)) {
    if (trimmed.includes(FENCE)) {
      return { ok: false, error: 'Put the whole script in one ```fenced``` block right after the options, or write it on one line without fences.' };
    }
    return { ok: true, value: trimmed, fenced: false, type: null };
  }
  const close = trimmed.indexOf(FENCE, FENCE.length);
  if (close < 0) {
    return { ok: false, error: 'The ``` fence is not closed: end the script with ``` on its own.' };
  }
  if (trimmed.slice(close + FENCE.length).trim() !== '') {
    return { ok: false, error: 'There is text after the closing ``` fence. Put everything in the block, and only one block.' };
  }
  let body = trimmed.slice(FENCE.length, close);
  let type: ScriptType | null = null;
  const firstLineEnd = body.indexOf('\n');
  if (firstLineEnd >= 0) {
    const tag = body.slice(0, firstLineEnd).trim();
    const tagType = /^[A-Za-z0-9]+$/.test(tag) ? scriptTypeForFenceLanguage(tag) : undefined;
    if (tag === '' || tagType !== undefined) {
      body = body.slice(firstLineEnd + 1);
      type = tagType ?? null;
    }
  }
  return { ok: true, value: body.replace(/\n$/, ''), fenced: true, type };
}

export type ScriptRead = { ok: true; value: string; fenced: boolean; type: ScriptType | null } | { ok: false; error: string };
