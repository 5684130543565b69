/**
 * Regular expressions written by users (recipe and runbook patterns, custom redaction rules,
 * success patterns) run here, in RE2's linear-time engine (re2js, a pure-JS port: nothing to
 * build or download). A backtracking engine lets one pattern such as `(a+)+b` stall the whole
 * process for seconds; RE2 answers in time proportional to the input, and refuses the features
 * that make that impossible (backreferences, lookaround) when the pattern is added.
 */
import { RE2JS } from 're2js';

/** Longest pattern accepted: longer ones are refused when added. */
export const MAX_PATTERN_LENGTH = 1000;

export interface LinearRegex {
  readonly source: string;
  /**
   * Instructions in the compiled program. A match costs up to about this many steps per character
   * of text (measured here: up to ~70 ns per instruction and character for patterns that defeat
   * the DFA cache), so callers bound programSize × text length, not the text alone.
   */
  readonly programSize: number;
  /** Does the pattern match the whole of `text`? */
  fullMatch(text: string): boolean;
  /** Does the pattern match somewhere in `text`? */
  test(text: string): boolean;
  /** Every non-empty match, left to right, as [start, end) UTF-16 offsets. */
  matches(text: string): Array<{ start: number; end: number }>;
}

export type CompileResult = { ok: true; regex: LinearRegex } | { ok: false; error: string };

export function compileLinear(pattern: string, options: { caseInsensitive?: boolean } = {}): CompileResult {
  if (pattern.length > MAX_PATTERN_LENGTH) return { ok: false, error: `the pattern is longer than ${MAX_PATTERN_LENGTH} characters` };
  let compiled: RE2JS;
  let anchored: RE2JS;
  try {
    const flags = options.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0;
    compiled = RE2JS.compile(pattern, flags);
    anchored = RE2JS.compile(`^(?:${pattern})$`, flags);
  } catch (error) {
    return { ok: false, error: `not a valid pattern for the linear-time engine (RE2 syntax: no backreferences or lookaround): ${error instanceof Error ? error.message.replace(/^error parsing regexp: /, '') : String(error)}` };
  }
  return {
    ok: true,
    regex: {
      source: pattern,
      programSize: compiled.programSize(),
      fullMatch: (text) => anchored.matcher(text).matches(),
      test: (text) => compiled.matcher(text).find(),
      matches(text) {
        const found: Array<{ start: number; end: number }> = [];
        const matcher = compiled.matcher(text);
        while (matcher.find()) {
          const start = matcher.start();
          const end = matcher.end();
          if (end > start) found.push({ start, end });
        }
        return found;
      },
    },
  };
}

/** Why `pattern` cannot be used, or null when it can. */
export function linearPatternProblem(pattern: string): string | null {
  const compiled = compileLinear(pattern);
  return compiled.ok ? null : compiled.error;
}
