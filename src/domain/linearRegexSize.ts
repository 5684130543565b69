/**
 * How big RE2's program for a pattern would be, read from the pattern's text without compiling
 * it. Compiling is what costs: RE2 expands counted repeats into copies, so `(a|b){1000}` written
 * 80 times in 1,000 characters compiles to ~250,000 instructions and holds the event loop for
 * about a second. This walk is linear in the pattern's length and answers an upper bound of the
 * instruction count (re2js 2.x: one instruction per literal character, class, `.` or assertion;
 * two per capture; one per alternative, `?` and `+`; two per `*`; a counted repeat is that many
 * copies, its optional part one more instruction per copy), multiplied through nesting, so a
 * caller can refuse a pattern before handing it to the compiler.
 *
 * It does not validate: whatever it cannot read as RE2 syntax it counts as literal characters,
 * which can only make the bound larger, and the real parser reports the error afterwards.
 */

/** An upper bound of the instructions RE2 compiles `pattern` into (capped at `limit` + 1 once exceeded). */
export function estimateProgramSize(pattern: string, limit = Number.MAX_SAFE_INTEGER): number {
  const walk = new Walk(pattern, limit);
  const size = walk.alternation(0);
  // The program's fail and match instructions, and the whole-pattern wrapper.
  return Math.min(limit + 1, size + 3);
}

/** Cost of a counted repeat of something costing `child`: `min` copies, then `max - min` optional ones. */
function repeatCost(child: number, min: number, max: number | null): number {
  if (max === null) return min === 0 ? child + 2 : min * child + 2;
  if (max === 0) return 1;
  return min * child + (max - min) * (child + 1);
}

interface Item {
  cost: number;
  /** Matches exactly one character (a literal, a class, `.`): RE2 merges neighbouring ones in an alternation. */
  character: boolean;
  /** What a repeat after it applies to, when not all of it: `\Qabc\E*` repeats the `c`. */
  tail?: number;
}
const CHARACTER: Item = { cost: 1, character: true };
const ASSERTION: Item = { cost: 1, character: false };

const REPEAT = /^\{(\d+)(?:(,)(\d*))?\}/;

class Walk {
  private at = 0;
  constructor(
    private readonly text: string,
    private readonly limit: number,
  ) {}

  /**
   * branch ('|' branch)*, up to a ')' at depth > 0 or the end. RE2 merges a run of neighbouring
   * single-character branches (`a|b|[0-9]`) into one class: one instruction for the run.
   */
  alternation(depth: number): number {
    let total = 0;
    let branches = 0;
    let inCharRun = false;
    for (;;) {
      const branch = this.concatenation(depth);
      const merged = branch.singleCharacter && inCharRun;
      if (!merged) {
        total += branch.cost + (branches > 0 ? 1 : 0);
        branches++;
      }
      inCharRun = branch.singleCharacter;
      if (total > this.limit) total = this.limit + 1;
      if (this.text[this.at] !== '|') return total;
      this.at++;
    }
  }

  /** Items up to '|' or a closing ')'; `singleCharacter`: exactly one character, class or `.`. */
  private concatenation(depth: number): { cost: number; singleCharacter: boolean } {
    let total = 0;
    let items = 0;
    let last = 0; // cost of the last item, which a repeat operator applies to
    let lastIsCharacter = false;
    while (this.at < this.text.length) {
      const c = this.text[this.at]!;
      if (c === '|' || (c === ')' && depth > 0)) break;
      if (c === '*' || c === '+' || c === '?') {
        this.at++;
        if (this.text[this.at] === '?') this.at++; // lazy
        const repeated = c === '*' ? last + 2 : last + 1;
        total += repeated - last;
        last = repeated;
        lastIsCharacter = false;
        continue;
      }
      const counted = c === '{' ? REPEAT.exec(this.text.slice(this.at, this.at + 24)) : null;
      if (counted) {
        this.at += counted[0].length;
        if (this.text[this.at] === '?') this.at++; // lazy
        const min = Number(counted[1]);
        const max = counted[2] === undefined ? min : counted[3] === '' ? null : Math.max(min, Number(counted[3]));
        const repeated = Math.min(this.limit + 1, repeatCost(Math.max(last, 1), min, max));
        total += repeated - last;
        last = repeated;
        lastIsCharacter = false;
      } else {
        const item = c === '(' ? this.group(depth) : c === '[' ? this.characterClass() : c === '\\' ? this.escape() : this.literal();
        // `(?i)` matches nothing: a repeat after it applies to the item before it.
        if (item.cost === 0) continue;
        total += item.cost;
        last = item.tail ?? item.cost;
        lastIsCharacter = item.character;
        items++;
      }
      if (total > this.limit) return { cost: this.limit + 1, singleCharacter: false };
    }
    return { cost: Math.max(1, total), singleCharacter: items === 1 && lastIsCharacter };
  }

  /** One literal character (a `)` or `{` RE2 does not read as syntax included), `.`, `^` or `$`. */
  private literal(): Item {
    const c = this.text[this.at];
    this.at += this.text.codePointAt(this.at)! > 0xffff ? 2 : 1;
    return c === '^' || c === '$' ? ASSERTION : CHARACTER;
  }

  /** `(...)`, `(?:...)`, `(?P<name>...)`, `(?flags:...)`; `(?flags)` alone costs nothing. */
  private group(depth: number): Item {
    this.at++; // (
    let capturing = true;
    if (this.text[this.at] === '?') {
      const flagsOnly = /^\?[a-zA-Z-]*\)/.exec(this.text.slice(this.at, this.at + 16));
      if (flagsOnly) {
        this.at += flagsOnly[0].length;
        return { cost: 0, character: false };
      }
      const named = /^\?P?<[^>)]*>/.exec(this.text.slice(this.at, this.at + 80));
      if (named) this.at += named[0].length;
      else {
        capturing = false;
        this.at++; // ?
        while (this.at < this.text.length && /[a-zA-Z=!<:-]/.test(this.text[this.at]!)) {
          if (this.text[this.at++] === ':') break;
        }
      }
    }
    const inner = this.alternation(depth + 1);
    if (this.text[this.at] === ')') this.at++;
    return { cost: Math.min(this.limit + 1, inner + (capturing ? 2 : 0)), character: false };
  }

  /** `[...]`: one instruction whatever its ranges. `]` first is a literal; `[:alpha:]` nests. */
  private characterClass(): Item {
    this.at++; // [
    if (this.text[this.at] === '^') this.at++;
    if (this.text[this.at] === ']') this.at++;
    while (this.at < this.text.length && this.text[this.at] !== ']') {
      if (this.text[this.at] === '\\') this.escape();
      else if (this.text.startsWith('[:', this.at)) {
        const end = this.text.indexOf(':]', this.at + 2);
        this.at = end === -1 ? this.at + 1 : end + 2;
      } else this.at++;
    }
    this.at++; // ]
    return CHARACTER;
  }

  /** One escape: `\Q...\E` costs its characters, `\b \B \A \z` are assertions, the rest one character or class. */
  private escape(): Item {
    this.at++; // backslash
    const c = this.text[this.at];
    if (c === undefined) return CHARACTER;
    if (c === 'Q') {
      const end = this.text.indexOf('\\E', this.at + 1);
      const literal = end === -1 ? this.text.length - this.at - 1 : end - this.at - 1;
      this.at = end === -1 ? this.text.length : end + 2;
      return literal === 1 ? CHARACTER : { cost: Math.max(1, literal), character: false, tail: 1 };
    }
    this.at += this.text.codePointAt(this.at)! > 0xffff ? 2 : 1;
    if ((c === 'p' || c === 'P' || c === 'x') && this.text[this.at] === '{') {
      const end = this.text.indexOf('}', this.at);
      this.at = end === -1 ? this.text.length : end + 1;
    } else if (c === 'p' || c === 'P') this.at++;
    else if (c === 'x') this.at += 2;
    return 'bBAzC'.includes(c) ? ASSERTION : CHARACTER;
  }
}
