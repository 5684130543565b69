/**
 * Regular expressions written by users (recipe and runbook patterns, custom redaction rules,
 * success patterns) run here, in RE2's linear-time engine (re2js, a pure-JS port: nothing to
 * build or download). A backtracking engine lets one pattern such as `(a+)+b` stall the whole
 * process for seconds; RE2 answers in time proportional to the input, and refuses the features
 * that make that impossible (backreferences, lookaround) when the pattern is added.
 */
import { RE2JS } from 're2js';
import { estimateProgramSize } from './linearRegexSize.js';

/** Longest pattern accepted: longer ones are refused when added. */
export const MAX_PATTERN_LENGTH = 1000;

/**
 * Largest compiled program accepted unless the caller says otherwise. Compiling is the costly
 * part (RE2 expands `x{1000}` into copies: ~4 µs per instruction here, so a 1,000-character
 * pattern can hold the event loop for a second), so the size is estimated from the pattern's text
 * first (linearRegexSize.ts) and only a pattern whose estimate is at most ESTIMATE_SLACK times the
 * cap is compiled; its real size is then checked against the cap. The estimate is an upper bound
 * that is at most about twice the real size, so the slack only spares odd patterns a false refusal.
 */
export const DEFAULT_MAX_PROGRAM = 1000;
const ESTIMATE_SLACK = 2;

/**
 * Every pattern of one recipe or runbook together (its arguments, input fields and success
 * patterns): one document may carry many patterns, each compiled when it is added, so their total
 * text and estimated program are capped as well (a few tens of milliseconds of compiling at most).
 */
export const MAX_DOCUMENT_PATTERN_CHARACTERS = 4000;
export const MAX_DOCUMENT_PROGRAM = 10_000;

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

export type CompileResult =
  | { ok: true; regex: LinearRegex }
  /** `tooComplex`: refused for its program's size, not its syntax; `steps` says how big ("1202", "more than 2000"). */
  | { ok: false; error: string; tooComplex?: { steps: string; max: number } };

export interface CompileOptions {
  caseInsensitive?: boolean;
  /** Refuse a pattern whose program has more instructions than this (DEFAULT_MAX_PROGRAM). */
  maxProgramSize?: number;
}

export function compileLinear(pattern: string, options: CompileOptions = {}): CompileResult {
  if (pattern.length > MAX_PATTERN_LENGTH) return { ok: false, error: `the pattern is longer than ${MAX_PATTERN_LENGTH} characters` };
  const max = options.maxProgramSize ?? DEFAULT_MAX_PROGRAM;
  const estimate = estimateProgramSize(pattern, ESTIMATE_SLACK * max);
  if (estimate > ESTIMATE_SLACK * max) return tooComplex(estimate, max, true);
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(pattern, options.caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (error) {
    return {
      ok: false,
      error: `not a valid pattern for the linear-time engine (RE2 syntax: no backreferences or lookaround): ${error instanceof Error ? error.message.replace(/^error parsing regexp: /, '') : String(error)}`,
    };
  }
  const programSize = compiled.programSize();
  if (programSize > max) return tooComplex(programSize, max, false);
  return {
    ok: true,
    regex: {
      source: pattern,
      programSize,
      // Anchored at both ends by the matcher: no second, `^(?:…)$` program to compile.
      fullMatch: (text) => compiled.testExact(text),
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

function tooComplex(steps: number, max: number, estimated: boolean): CompileResult {
  const size = estimated ? `more than ${ESTIMATE_SLACK * max}` : String(steps);
  return {
    ok: false,
    error: `the pattern is too complex to match quickly (it compiles to ${size} steps, at most ${max}): use smaller repeat counts such as {1,64}`,
    tooComplex: { steps: size, max },
  };
}

/** Why `pattern` cannot be used, or null when it can. */
export function linearPatternProblem(pattern: string, options: CompileOptions = {}): string | null {
  const compiled = compileLinear(pattern, options);
  return compiled.ok ? null : compiled.error;
}

/**
 * Why the patterns of one recipe or runbook, together, are too much to compile, or null. Checked
 * on the raw document before any of them is compiled; strings only (anything else is the
 * schema's to refuse).
 */
export function documentPatternsProblem(patterns: readonly unknown[]): string | null {
  const texts = patterns.filter((p): p is string => typeof p === 'string');
  const characters = texts.reduce((sum, p) => sum + p.length, 0);
  if (characters > MAX_DOCUMENT_PATTERN_CHARACTERS) {
    return `the patterns add up to ${characters} characters, at most ${MAX_DOCUMENT_PATTERN_CHARACTERS} in one recipe or runbook`;
  }
  let steps = 0;
  for (const text of texts) {
    steps += estimateProgramSize(text, MAX_DOCUMENT_PROGRAM);
    if (steps > MAX_DOCUMENT_PROGRAM)
      return `the patterns together compile to more than ${MAX_DOCUMENT_PROGRAM} steps (at most ${MAX_DOCUMENT_PROGRAM} in one recipe or runbook): use smaller repeat counts such as {1,64}`;
  }
  return null;
}
