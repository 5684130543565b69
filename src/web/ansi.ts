/**
 * ANSI colour codes in task output, turned into HTML with ansi_up. One renderer per page or per
 * stream: ansi_up keeps the current colours and an escape sequence cut between two chunks
 * across calls, so feeding it the chunks in order gives the same HTML as feeding it all at once.
 *
 * Output is written by whoever wrote the script, and ansi_up turns OSC 8 hyperlinks
 * (`ESC ] 8 ; ; <url> ST text ESC ] 8 ; ; ST`) into `<a href>`: a script could print "open the
 * approval page" pointing anywhere, on our own origin's page. So before ansi_up sees it, output
 * goes through TerminalStrings, which drops every control string (OSC, DCS, SOS, PM, APC, in 7-
 * and 8-bit forms): a link keeps its text and loses its URL, a window title or clipboard write
 * (OSC 0, OSC 52) vanishes as it would in a terminal. Only CSI sequences (colours) reach ansi_up.
 */
import { AnsiUp } from 'ansi_up';

export interface AnsiRenderer {
  /** HTML for the next piece of output: text escaped, colours as spans, every span closed. */
  render(text: string): string;
}

export function createAnsiRenderer(): AnsiRenderer {
  const ansi = new AnsiUp();
  // Output is untrusted text: ansi_up must escape it (its default, set anyway so a change of
  // default cannot turn a printed `<script>` into markup).
  ansi.escape_html = true;
  // Classes for the 16 basic colours (styled by ANSI_CSS below) instead of inline styles; only
  // bold/italic and 256/true colours still need a style attribute (see the page's CSP).
  ansi.use_classes = true;
  // No scheme may become a link, should a hyperlink ever get past TerminalStrings.
  ansi.url_allowlist = {};
  const strings = new TerminalStrings();
  return { render: (text) => ansi.ansi_to_html(strings.push(text)) };
}

/** A control string longer than this with no terminator is not one: its introducer is dropped. */
const MAX_CONTROL_STRING = 4096;

/** What may start a control string: ESC and a letter (7-bit), or one C1 character (8-bit). */
const STRING_INTRODUCERS = new Set([']', 'P', 'X', '^', '_']);
const C1_STRING_INTRODUCERS = new Set([0x90, 0x98, 0x9d, 0x9e, 0x9f]);
const CSI_8BIT = 0x9b;
const SPECIAL = /[\x1b\x80-\x9f]/g;

/**
 * Removes terminal control strings from output, streaming: a string cut between two chunks is
 * held until its terminator (BEL, ESC \ or ST) arrives. A string broken by another control
 * character (a newline, say) or longer than MAX_CONTROL_STRING loses only its introducer, and
 * what followed shows as text: an unterminated sequence cannot hide the rest of the output.
 * 8-bit CSI becomes ESC [ (ansi_up reads only that form); other C1 controls are dropped.
 */
export class TerminalStrings {
  private held = '';

  push(chunk: string): string {
    const text = this.held + chunk;
    this.held = '';
    let out = '';
    let copied = 0;
    SPECIAL.lastIndex = 0;
    for (let match = SPECIAL.exec(text); match !== null; match = SPECIAL.exec(text)) {
      const at = match.index;
      if (at < copied) continue;
      const code = text.charCodeAt(at);
      let bodyStart = -1;
      if (code === 0x1b) {
        if (at + 1 === text.length) {
          // A lone ESC may start a control string: wait for the next character.
          out += text.slice(copied, at);
          this.held = text.slice(at);
          return out;
        }
        if (STRING_INTRODUCERS.has(text[at + 1] as string)) bodyStart = at + 2;
        else continue; // CSI and the rest: ansi_up's
      } else if (C1_STRING_INTRODUCERS.has(code)) bodyStart = at + 1;
      out += text.slice(copied, at);
      if (bodyStart < 0) {
        if (code === CSI_8BIT) out += '\x1b[';
        copied = at + 1;
        continue;
      }
      const end = controlStringEnd(text, bodyStart);
      if (end === null) {
        if (text.length - at <= MAX_CONTROL_STRING) {
          this.held = text.slice(at);
          return out;
        }
        copied = bodyStart; // too long to be one: drop the introducer, show the rest
      } else if (end < 0)
        copied = bodyStart; // broken by a control character: likewise
      else copied = end;
      SPECIAL.lastIndex = copied;
    }
    return out + text.slice(copied);
  }
}

/**
 * Where the control string whose body starts at `from` ends (just past its terminator); -1 when
 * a character that cannot be in one breaks it; null when `text` ends first.
 */
function controlStringEnd(text: string, from: number): number | null {
  for (let i = from; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0x07 || code === 0x9c) return i + 1;
    if (code === 0x1b) {
      if (i + 1 === text.length) return null;
      return text[i + 1] === '\\' ? i + 2 : -1;
    }
    // Other controls cannot be in a control string: a newline, say, means it was never one.
    if (code < 0x20 || (code >= 0x80 && code <= 0x9f)) return -1;
  }
  return null;
}

const PALETTE: ReadonlyArray<readonly [string, string]> = [
  ['black', '#3b3b3b'],
  ['red', '#f14c4c'],
  ['green', '#23d18b'],
  ['yellow', '#e5e510'],
  ['blue', '#3b8eea'],
  ['magenta', '#d670d6'],
  ['cyan', '#29b8db'],
  ['white', '#e5e5e5'],
  ['bright-black', '#8a8a8a'],
  ['bright-red', '#ff6b6b'],
  ['bright-green', '#5af78e'],
  ['bright-yellow', '#f4f99d'],
  ['bright-blue', '#6cb6ff'],
  ['bright-magenta', '#ff92df'],
  ['bright-cyan', '#9aedfe'],
  ['bright-white', '#ffffff'],
];

/** The classes ansi_up emits with use_classes, in colours readable on the dark output pane. */
export const ANSI_CSS = PALETTE.map(([name, colour]) => `.ansi-${name}-fg{color:${colour}}.ansi-${name}-bg{background-color:${colour}}`).join('\n');
