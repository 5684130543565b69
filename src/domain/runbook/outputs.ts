/**
 * A script step's outputs: the script appends lines to the file named by $COUNTERSIGN_OUTPUT,
 * as GitHub Actions' $GITHUB_OUTPUT works:
 *
 *   version=1.4.2                  name=value (the value is everything after the first =)
 *   notes<<EOF                     name<<DELIMITER, then lines, then the delimiter alone on a
 *   line one                       line: a multi-line value (its lines joined with \n, no
 *   line two                       final newline)
 *   EOF
 *
 * Blank lines are ignored; CRLF is read as LF; a name given twice keeps its last value.
 * Bounded: the file is at most 64 KiB (the engine reads at most MAX_OUTPUT_FILE_BYTES + 1
 * bytes and hands them here) and holds at most 100 names. Names are letters, digits and _
 * (not starting with a digit; at most 64), so a later step can pass them on as ARG_<NAME>; the
 * names phase, status, body and json are reserved. Values hold no NUL byte. Anything else is an
 * error naming the line: a step whose outputs cannot be read has no outputs (no half-read file).
 *
 * Interface (pure):
 *   MAX_OUTPUT_FILE_BYTES, MAX_OUTPUT_NAMES
 *   parseStepOutputs(content: string | Buffer) -> { ok, outputs } | { ok: false, error }
 *   mergeHostOutputs(perHost) -> { outputs, conflicts }  (a step ran on several hosts)
 */
import { RESERVED_STEP_FIELDS, VALUE_NAME } from './template.js';

export const MAX_OUTPUT_FILE_BYTES = 64 * 1024;
export const MAX_OUTPUT_NAMES = 100;

export function parseStepOutputs(content: string | Buffer): { ok: true; outputs: Record<string, string> } | { ok: false; error: string } {
  const bytes = typeof content === 'string' ? Buffer.byteLength(content, 'utf8') : content.length;
  if (bytes > MAX_OUTPUT_FILE_BYTES) return { ok: false, error: `the output file is larger than ${MAX_OUTPUT_FILE_BYTES / 1024} KiB, so none of it was read` };
  const text = typeof content === 'string' ? content : content.toString('utf8');
  if (text.includes('\u0000')) return { ok: false, error: 'the output file contains a NUL byte' };
  const lines = text.split('\n').map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line));
  // A final newline leaves an empty last element, not a line.
  if (lines[lines.length - 1] === '') lines.pop();
  const outputs = new Map<string, string>();
  const set = (name: string, value: string, lineNumber: number): string | null => {
    if (!VALUE_NAME.test(name))
      return `line ${lineNumber}: "${clip(name)}" is not an output name (letters, digits and _, not starting with a digit, at most 64)`;
    if (RESERVED_STEP_FIELDS.includes(name)) return `line ${lineNumber}: ${name} is a reserved name (${RESERVED_STEP_FIELDS.join(', ')})`;
    outputs.delete(name);
    outputs.set(name, value);
    if (outputs.size > MAX_OUTPUT_NAMES) return `line ${lineNumber}: more than ${MAX_OUTPUT_NAMES} output names`;
    return null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const heredoc = /^([^=<]*)<<(.+)$/.exec(line);
    const equals = line.indexOf('=');
    if (heredoc && (equals < 0 || equals > line.indexOf('<<'))) {
      const name = heredoc[1]!;
      const delimiter = heredoc[2]!;
      const start = i;
      const body: string[] = [];
      for (i++; i < lines.length && lines[i] !== delimiter; i++) body.push(lines[i]!);
      if (i >= lines.length) return { ok: false, error: `line ${start + 1}: the value of ${clip(name)} is not closed by a line "${clip(delimiter)}"` };
      const problem = set(name, body.join('\n'), start + 1);
      if (problem !== null) return { ok: false, error: problem };
      continue;
    }
    if (equals < 0) return { ok: false, error: `line ${i + 1}: expected name=value or name<<DELIMITER` };
    const problem = set(line.slice(0, equals), line.slice(equals + 1), i + 1);
    if (problem !== null) return { ok: false, error: problem };
  }
  return { ok: true, outputs: Object.fromEntries(outputs) };
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/**
 * A script step runs on every host of its target; each host writes its own outputs. A name
 * every host that wrote it agrees on is the step's output; a name hosts disagree on is left
 * out and reported, so a later step that uses it fails with the reason instead of getting one
 * host's value by chance.
 */
export function mergeHostOutputs(perHost: ReadonlyArray<{ host: string; outputs: Readonly<Record<string, string>> }>): {
  outputs: Record<string, string>;
  conflicts: string[];
} {
  const values = new Map<string, Map<string, string[]>>();
  for (const { host, outputs } of perHost) {
    for (const [name, value] of Object.entries(outputs)) {
      const byValue = values.get(name) ?? new Map<string, string[]>();
      byValue.set(value, [...(byValue.get(value) ?? []), host]);
      values.set(name, byValue);
    }
  }
  // Entries, not assignments: `__proto__` is a valid output name and must stay a plain field.
  const agreed: Array<[string, string]> = [];
  const conflicts: string[] = [];
  for (const [name, byValue] of values) {
    if (byValue.size === 1) agreed.push([name, [...byValue.keys()][0]!]);
    else conflicts.push(`${name}: the hosts wrote different values (${[...byValue.values()].map((hosts) => hosts.join(', ')).join(' / ')})`);
  }
  return { outputs: Object.fromEntries(agreed), conflicts };
}
