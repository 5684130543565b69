/**
 * Redaction rules: personal data and credentials that show up in script output (emails, IP
 * addresses, card numbers, keys, tokens) replaced by `[redacted:<rule>]` before anyone sees or
 * stores it. Rules apply to whole lines, so output is held until its line is complete.
 *
 * The built-in patterns aim to be precise rather than greedy: redacting every long number or
 * every dotted quad would make the output useless for the person debugging a host. Each one
 * starts only at a word boundary so that a long run of text costs one scan, not one per
 * character.
 *
 * Custom rules (config `redact:` entries that are not built-in names) are written by people, so
 * they run in the linear-time engine (src/domain/linearRegex.ts, RE2 syntax): a backtracking
 * engine would let one rule such as `(a+)+b` and one unlucky output line hold the runner, its
 * leases and every Kill for seconds. The built-ins are ours, audited for linear behaviour
 * (test/unit/redaction.test.ts feeds them adversarial 16 KiB lines) and need lookbehind, which
 * RE2 lacks; they stay on V8, which scans this output several times faster (see the report in
 * the redaction benchmark test).
 */
import { compileLinear, type LinearRegex } from './linearRegex.js';

export type RedactRule = { name: BuiltInName; kind: 'built-in'; pattern: RegExp } | { name: 'custom'; kind: 'custom'; regex: LinearRegex };

/**
 * A custom rule's compiled program at most this big: scanning costs up to about programSize
 * steps per character of output, and output is the runner's hot path.
 */
export const MAX_REDACT_PROGRAM = 500;

type BuiltInName = 'email' | 'ipv4' | 'credit-card' | 'aws-key' | 'jwt';

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';

export const BUILT_IN_RULES: Record<BuiltInName, RegExp> = {
  // local@domain.tld; the domain's labels end in dots, so there is one way to split it.
  email: /(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?![\w-])/g,
  // Not the middle of 1.2.3.4.5 (a version), not 999.1.1.1; a full stop after the address is fine.
  ipv4: new RegExp(`(?<!\\w|\\w\\.)(?:${OCTET}\\.){3}${OCTET}(?!\\w|\\.\\d)`, 'g'),
  // 13 to 19 digits, maybe grouped by spaces or dashes; only Luhn-valid ones are redacted.
  'credit-card': /(?<!\w)\d(?:[ -]?\d){12,18}(?!\w)/g,
  'aws-key': /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/g,
  jwt: /(?<![\w-])eyJ[\w-]*\.[\w-]+\.[\w-]+/g,
};

const BUILT_IN_NAMES = Object.keys(BUILT_IN_RULES) as BuiltInName[];

// A rule that matches the empty string would "redact" the gaps between characters. Whether a
// pattern can do that somewhere depends on context (`\b`), so compileRedactRules tries these
// inputs; redactLine skips empty matches anyway.
const EMPTY_MATCH_PROBES = ['', ' ', 'a', 'Z', '0', '.', '-', '_', '@', 'ab 12', 'a.b c-d', '\t', '\r', 'é', 'foo bar baz'];

/** Config entries: a built-in name, or a custom pattern (RE2 syntax). Returns rules or an error message naming the bad entry. */
export function compileRedactRules(entries: readonly string[]): { ok: true; rules: RedactRule[] } | { ok: false; error: string } {
  const rules: RedactRule[] = [];
  for (const entry of entries) {
    if (isBuiltInName(entry)) {
      const builtIn = BUILT_IN_RULES[entry];
      // A copy per rule: global regexes carry lastIndex, and rules must not share it.
      rules.push({ name: entry, kind: 'built-in', pattern: new RegExp(builtIn.source, builtIn.flags) });
      continue;
    }
    const compiled = compileLinear(entry, { maxProgramSize: MAX_REDACT_PROGRAM });
    if (!compiled.ok && compiled.tooComplex) {
      return {
        ok: false,
        error: `"${entry}" is too complex to scan all output with (it compiles to ${compiled.tooComplex.steps} steps, at most ${MAX_REDACT_PROGRAM}): use smaller repeat counts`,
      };
    }
    if (!compiled.ok)
      return { ok: false, error: `"${entry}" is not a built-in rule (${BUILT_IN_NAMES.join(', ')}) nor a valid regular expression: ${compiled.error}` };
    const { regex } = compiled;
    // Found a match, yet no non-empty one: every match in the probe was empty.
    if (regex.fullMatch('') || EMPTY_MATCH_PROBES.some((probe) => regex.test(probe) && regex.matches(probe).length === 0)) {
      return { ok: false, error: `"${entry}" can match empty text, so it would redact nothing everywhere; make it match at least one character` };
    }
    rules.push({ name: 'custom', kind: 'custom', regex });
  }
  return { ok: true, rules };
}

function isBuiltInName(entry: string): entry is BuiltInName {
  return (BUILT_IN_NAMES as string[]).includes(entry);
}

/** Each match of each rule, in order, becomes `[redacted:<name>]`. */
export function redactLine(line: string, rules: readonly RedactRule[]): string {
  let text = line;
  for (const rule of rules) {
    const marker = `[redacted:${rule.name}]`;
    if (rule.kind === 'custom') {
      text = replaceMatches(text, rule.regex, marker);
      continue;
    }
    if (rule.name === 'credit-card') {
      text = text.replace(rule.pattern, redactCardNumbers);
      continue;
    }
    text = text.replace(rule.pattern, (match) => (match === '' ? '' : marker));
  }
  return text;
}

/** `text` with every non-empty match of `regex` replaced by `marker`. */
function replaceMatches(text: string, regex: LinearRegex, marker: string): string {
  const found = regex.matches(text);
  if (found.length === 0) return text;
  let out = '';
  let at = 0;
  for (const { start, end } of found) {
    out += text.slice(at, start) + marker;
    at = end;
  }
  return out + text.slice(at);
}

const CARD_MARKER = '[redacted:credit-card]';

/**
 * The regex finds the longest run of digits and separators; the card is not always all of it
 * ("4111 1111 1111 1111 42" is a card and a quantity). So: the whole run if it passes Luhn,
 * else the longest Luhn-valid stretch of whole digit groups inside it.
 */
function redactCardNumbers(run: string): string {
  const digits = run.replace(/[ -]/g, '');
  if (luhnValid(digits)) return CARD_MARKER;
  const groups = [...run.matchAll(/\d+/g)].map((match) => ({ start: match.index, end: match.index + match[0].length, digits: match[0] }));
  if (groups.length < 2) return run;
  let best: { start: number; end: number; length: number } | null = null;
  for (let first = 0; first < groups.length; first++) {
    let joined = '';
    for (let last = first; last < groups.length; last++) {
      joined += groups[last]?.digits ?? '';
      if (joined.length > 19) break;
      if (joined.length < 13 || (best !== null && joined.length <= best.length) || !luhnValid(joined)) continue;
      best = { start: groups[first]?.start ?? 0, end: groups[last]?.end ?? 0, length: joined.length };
    }
  }
  return best === null ? run : run.slice(0, best.start) + CARD_MARKER + run.slice(best.end);
}

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum % 10 === 0;
}

const DEFAULT_MAX_LINE_CHARS = 16_384;

/** How much of an overlong line is held back at a cut, so a match near the cut is still seen whole. */
const LONG_LINE_HOLDBACK = 4096;

/**
 * Streaming, line based: holds a partial line until its newline arrives (or `end()`); a line
 * longer than maxLineChars is released in pieces cut where no match can straddle the cut.
 */
export class LineRedactor {
  private partial = '';

  constructor(
    private readonly rules: readonly RedactRule[],
    private readonly maxLineChars = DEFAULT_MAX_LINE_CHARS,
  ) {}

  push(chunk: string): string {
    if (this.rules.length === 0) return chunk;
    const text = this.partial + chunk;
    const lastNewline = text.lastIndexOf('\n');
    this.partial = text.slice(lastNewline + 1);
    let out = lastNewline === -1 ? '' : this.redactLines(text.slice(0, lastNewline + 1));
    // A line that never ends (a progress bar, a binary dump) must not grow without bound or
    // stay invisible: release its start, cut where no built-in match can straddle the cut.
    if (this.partial.length > this.maxLineChars) out += this.releaseLongLine();
    return out;
  }

  /**
   * Releases all but the last stretch of an overlong line. The cut is at whitespace not next to
   * a digit (emails, addresses, keys and tokens hold no whitespace; card numbers hold spaces
   * between digits), within the last HOLDBACK characters; what follows the cut waits for more.
   * Without such whitespace the cut falls HOLDBACK characters from the end, and a match that
   * straddles it there is missed: the price of a line that never ends.
   */
  private releaseLongLine(): string {
    const text = this.partial;
    const floor = Math.max(0, text.length - LONG_LINE_HOLDBACK);
    let cut = -1;
    for (let i = text.length - 1; i >= floor; i--) {
      if (/\s/.test(text[i] as string) && !/\d/.test(text[i - 1] ?? '') && !/\d/.test(text[i + 1] ?? '')) {
        cut = i + 1;
        break;
      }
    }
    if (cut <= 0) cut = floor;
    if (cut === 0) return '';
    this.partial = text.slice(cut);
    return redactLine(text.slice(0, cut), this.rules);
  }

  flushPartial(): string {
    if (this.partial === '') return '';
    const line = this.partial;
    this.partial = '';
    // A lone CR at the end may be the first half of CRLF: keep it out of the rules' view.
    return line.endsWith('\r') ? `${redactLine(line.slice(0, -1), this.rules)}\r` : redactLine(line, this.rules);
  }

  end(): string {
    return this.flushPartial();
  }

  /** `block` is whole lines, each ending in "\n" (or "\r\n", whose CR the rules do not see). */
  private redactLines(block: string): string {
    const out: string[] = [];
    let start = 0;
    while (start < block.length) {
      const newline = block.indexOf('\n', start);
      const contentEnd = newline > start && block.charCodeAt(newline - 1) === 13 ? newline - 1 : newline;
      out.push(redactLine(block.slice(start, contentEnd), this.rules), block.slice(contentEnd, newline + 1));
      start = newline + 1;
    }
    return out.join('');
  }
}
