/**
 * Finds an unclosed quote in a one-line shell script, the way a POSIX shell lexer would see
 * it: single quotes take everything literally, double quotes and backticks honour backslash,
 * `$'...'` honours backslash, and `#` at the start of a word begins a comment. Catching this
 * before review saves a reviewer approving a script that cannot even parse.
 * Returns the quote character left open, or null.
 */
export function findUnclosedShellQuote(script: string): string | null {
  let open: string | null = null;
  let escapesInside = false;
  let atWordStart = true;
  for (let i = 0; i < script.length; i++) {
    const ch = script[i] as string;
    if (open !== null) {
      if (escapesInside && ch === '\\') {
        i++;
        continue;
      }
      if (ch === open) {
        open = null;
        atWordStart = false;
      }
      continue;
    }
    if (ch === '\\') {
      i++;
      atWordStart = false;
      continue;
    }
    if (ch === '#' && atWordStart) {
      const newline = script.indexOf('\n', i);
      if (newline < 0) return null;
      i = newline;
      atWordStart = true;
      continue;
    }
    if (ch === '$' && script[i + 1] === "'") {
      open = "'";
      escapesInside = true;
      i++;
      continue;
    }
    if (ch === "'" || ch === '"' || ch === '`') {
      open = ch;
      escapesInside = ch !== "'";
      continue;
    }
    atWordStart = /\s|[;&|()<>]/.test(ch);
  }
  return open;
}
