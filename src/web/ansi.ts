/**
 * ANSI colour codes in task output, turned into HTML with ansi_up. One renderer per page or per
 * stream: ansi_up keeps the current colours and an escape sequence cut between two chunks
 * across calls, so feeding it the chunks in order gives the same HTML as feeding it all at once.
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
  return { render: (text) => ansi.ansi_to_html(text) };
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
