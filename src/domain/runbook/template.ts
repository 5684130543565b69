/**
 * How a runbook step names values it gets from the run: `${{ <reference> }}` inside a text
 * (GitHub Actions' notation, which on-call engineers already read). A template is only ever
 * filled into the places that say so — a script step's `with` values, an http step's URL,
 * header values and JSON body strings — and each place encodes what it gets (values.ts);
 * a script's own text is never a template.
 *
 * References:
 *   args.<name>               an argument of the runbook the step belongs to
 *   steps.<id>.<name>         an input step's field, or a script step's output ($COUNTERSIGN_OUTPUT)
 *   steps.<id>.phase          succeeded | failed | skipped | killed (any step kind; useful after continueOnFailure)
 *   steps.<id>.status         an http step's HTTP status code
 *   steps.<id>.body           an http step's body (capped, secrets masked, redacted)
 *   steps.<id>.json           the body parsed as JSON; steps.<id>.json.<a>.<b>.<0> a field by path
 *                              (numeric segments index arrays)
 *   secrets.<NAME>            a secret of the http step's `target`, only in header values
 * `<id>` is a step of the same runbook (ids have no dots); references never reach into another
 * runbook. `$${{` writes a literal `${{`.
 *
 * Interface (pure):
 *   parseTemplate(text)   -> { ok, parts: TemplatePart[] } | { ok: false, error }
 *   parseReference(text)  -> { ok, reference } | { ok: false, error }
 *   referencesIn(parts)   -> Reference[]
 *   formatReference(ref)  -> the reference as written (`steps.why.ticket`)
 *   RESERVED_STEP_FIELDS  -> names an output or input field cannot take
 */

export type Reference =
  | { kind: 'argument'; name: string }
  | { kind: 'secret'; name: string }
  | { kind: 'step'; step: string; field: 'phase' | 'status' | 'body' }
  | { kind: 'step-json'; step: string; path: string[] }
  | { kind: 'step-output'; step: string; name: string };

export type TemplatePart = { text: string } | { reference: Reference; source: string };

/** Fields every or some step kinds answer; an output or input field with such a name could never be read. */
export const RESERVED_STEP_FIELDS: readonly string[] = ['phase', 'status', 'body', 'json'];

/** Output and input field names: usable as ARG_<NAME> when passed on to a script. */
export const VALUE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Step ids: no dots, since a qualified id is `<runbook>.<step>`. */
export const STEP_ID = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
const JSON_SEGMENT = /^[A-Za-z0-9_$-]{1,128}$/;
const SECRET_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const MAX_TEMPLATE_REFERENCES = 50;

export function parseReference(text: string): { ok: true; reference: Reference } | { ok: false; error: string } {
  const segments = text.split('.');
  const [root, second, third, ...rest] = segments;
  if (root === 'args') {
    if (second === undefined || third !== undefined || !VALUE_NAME.test(second)) return { ok: false, error: `"${text}": expected args.<name>` };
    return { ok: true, reference: { kind: 'argument', name: second } };
  }
  if (root === 'secrets') {
    if (second === undefined || third !== undefined || !SECRET_NAME.test(second)) return { ok: false, error: `"${text}": expected secrets.<NAME>` };
    return { ok: true, reference: { kind: 'secret', name: second } };
  }
  if (root === 'steps') {
    if (second === undefined || !STEP_ID.test(second) || third === undefined)
      return { ok: false, error: `"${text}": expected steps.<id>.<field>, e.g. steps.why.ticket or steps.health.status` };
    if (third === 'json') {
      if (rest.some((segment) => !JSON_SEGMENT.test(segment)))
        return { ok: false, error: `"${text}": a JSON path is dotted names or array indexes, e.g. steps.${second}.json.items.0.id` };
      return { ok: true, reference: { kind: 'step-json', step: second, path: rest } };
    }
    if (rest.length > 0) return { ok: false, error: `"${text}": only steps.<id>.json.<path> has more than three parts` };
    if (third === 'phase' || third === 'status' || third === 'body') return { ok: true, reference: { kind: 'step', step: second, field: third } };
    if (!VALUE_NAME.test(third)) return { ok: false, error: `"${text}": ${third} is not an output or field name (letters, digits and _)` };
    return { ok: true, reference: { kind: 'step-output', step: second, name: third } };
  }
  return { ok: false, error: `"${text}": a reference starts with args., steps. or secrets.` };
}

export function formatReference(reference: Reference): string {
  switch (reference.kind) {
    case 'argument':
      return `args.${reference.name}`;
    case 'secret':
      return `secrets.${reference.name}`;
    case 'step':
      return `steps.${reference.step}.${reference.field}`;
    case 'step-json':
      return ['steps', reference.step, 'json', ...reference.path].join('.');
    case 'step-output':
      return `steps.${reference.step}.${reference.name}`;
  }
}

const OPEN = '${{';
const CLOSE = '}}';

export function parseTemplate(text: string): { ok: true; parts: TemplatePart[] } | { ok: false; error: string } {
  const parts: TemplatePart[] = [];
  let literal = '';
  let pos = 0;
  let count = 0;
  while (pos < text.length) {
    if (text.startsWith(`$${OPEN}`, pos)) {
      literal += OPEN;
      pos += OPEN.length + 1;
      continue;
    }
    if (!text.startsWith(OPEN, pos)) {
      literal += text[pos];
      pos++;
      continue;
    }
    const close = text.indexOf(CLOSE, pos + OPEN.length);
    if (close < 0) return { ok: false, error: `"${OPEN}" at character ${pos + 1} is not closed with "${CLOSE}" (write $${OPEN} for a literal ${OPEN})` };
    const inner = text.slice(pos + OPEN.length, close).trim();
    const parsed = parseReference(inner);
    if (!parsed.ok) return parsed;
    if (++count > MAX_TEMPLATE_REFERENCES) return { ok: false, error: `more than ${MAX_TEMPLATE_REFERENCES} references in one value` };
    if (literal !== '') parts.push({ text: literal });
    literal = '';
    parts.push({ reference: parsed.reference, source: inner });
    pos = close + CLOSE.length;
  }
  if (literal !== '') parts.push({ text: literal });
  return { ok: true, parts };
}

export function referencesIn(parts: readonly TemplatePart[]): Reference[] {
  return parts.flatMap((part) => ('reference' in part ? [part.reference] : []));
}

/** The step a reference reads from, or null for arguments and secrets. */
export function referencedStep(reference: Reference): string | null {
  return reference.kind === 'step' || reference.kind === 'step-json' || reference.kind === 'step-output' ? reference.step : null;
}
