/**
 * Filling a planned step's references with what the run knows so far. Pure: the engine hands in
 * the plan's arguments and the stored results of earlier steps; nothing here reads a database.
 *
 * Where values go, and how each place keeps them from changing the meaning of what they fill:
 *   script  the runbook's arguments (declared order) then the step's `with` values (written
 *           order) become ScriptArguments: "$1".. and ARG_<NAME> through the stdin path of
 *           src/exec/remoteCommand.ts (encodeStdin). Never spliced into the script's text.
 *   http    URL: each value percent-encoded (encodeURIComponent), so it stays inside its path
 *           segment or query parameter; the host is written out and re-checked after filling.
 *           Headers: values as text, refused when they hold CR, LF or NUL.
 *           Body: a string that is exactly one reference becomes that value as JSON (a number
 *           stays a number, a JSON field keeps its type); a string with text around references
 *           becomes a string. Then JSON.stringify: a value can never break out of its string.
 *   input   the submitted form's values checked against the fields (arguments.ts): the step's outputs.
 * A value used as text: strings as they are, numbers and booleans written out, null as '',
 * objects and arrays as JSON.
 *
 * A reference that cannot be answered (the step was skipped, wrote no such output, got no
 * JSON) makes the referencing step fail with the reason; it is never filled with ''.
 *
 * Interface (pure):
 *   type StepValues, RunValues
 *   referenceValue(reference, step, values, secrets?) -> { ok, value: JsonValue } | { ok: false, error }
 *   resolveScriptStep(step, values)            -> { ok, arguments: ScriptArgument[] } | { ok: false, error }
 *   resolveHttpStep(step, values, secrets)     -> { ok, request: HttpRequestSpec, maskValues } | { ok: false, error }
 *   resolveInputValues(step, given)            -> { ok, outputs } | { ok: false, errors }
 */
import type { ArgumentError, TaskArgument } from '../recipe.js';
import { resolveDeclaredValues } from './arguments.js';
import { hasDotSegment, headerValueProblem, literalUrlHost, type HttpRequestSpec, type JsonValue } from './httpRequest.js';
import type { PlannedStep } from './plan.js';
import { formatReference, parseTemplate, type Reference, type TemplatePart } from './template.js';

export type StepPhaseValue = 'succeeded' | 'failed' | 'skipped' | 'killed';

/** What a finished step left for later steps. */
export interface StepValues {
  phase: StepPhaseValue;
  /** Script steps: parsed $COUNTERSIGN_OUTPUT (outputs.ts); input steps: the submitted fields. */
  outputs?: Readonly<Record<string, string>>;
  /** Http steps: status (null when no answer came), the filtered body, and its JSON when it parsed. */
  http?: { status: number | null; body: string; json?: JsonValue };
}

export interface RunValues {
  /** RunPlan.arguments. */
  arguments: Readonly<Record<string, readonly TaskArgument[]>>;
  /** Keyed by qualified step id (`restart-web.why`). */
  steps: Readonly<Record<string, StepValues>>;
}

/**
 * An argument as src/exec/remoteCommand.ts's encodeStdin takes it (name uppercased). `fixed`: a
 * fixed argument of the runbook, or a `with` value whose template reads one (`${{ args.token }}`,
 * alone or inside a larger text): as secret as the value it holds, so stored and shown as fixed.
 */
export interface ScriptArgument {
  name: string;
  value: string;
  fixed: boolean;
}

/** A fixed value shorter than this is not masked (it would mask common text); as WP1a does for tasks. */
export const MIN_MASKED_LENGTH = 4;
/** A filled-in http body may not grow past this. */
export const MAX_RESOLVED_BODY_BYTES = 1024 * 1024;

type Answer = { ok: true; value: JsonValue } | { ok: false; error: string };

export function referenceValue(
  reference: Reference,
  step: Pick<PlannedStep, 'runbook'>,
  values: RunValues,
  secrets: ReadonlyMap<string, string> = new Map(),
): Answer {
  const written = formatReference(reference);
  if (reference.kind === 'argument') {
    const arg = values.arguments[step.runbook]?.find((a) => a.name === reference.name);
    return arg ? { ok: true, value: arg.value } : { ok: false, error: `${written}: the run has no such argument` };
  }
  if (reference.kind === 'secret') {
    const secret = secrets.get(reference.name);
    return secret === undefined ? { ok: false, error: `${written}: the target has no such secret` } : { ok: true, value: secret };
  }
  const source = values.steps[`${step.runbook}.${reference.step}`];
  if (!source) return { ok: false, error: `${written}: ${reference.step} has not run` };
  if (reference.kind === 'step' && reference.field === 'phase') return { ok: true, value: source.phase };
  if (source.phase === 'skipped') return { ok: false, error: `${written}: ${reference.step} was skipped` };
  if (reference.kind === 'step-output') {
    const outputs = source.outputs ?? {};
    return Object.hasOwn(outputs, reference.name)
      ? { ok: true, value: outputs[reference.name]! }
      : { ok: false, error: `${written}: ${reference.step} left no value named ${reference.name}` };
  }
  const http = source.http;
  if (!http) return { ok: false, error: `${written}: ${reference.step} is not an http step` };
  if (reference.kind === 'step') {
    if (reference.field === 'body') return { ok: true, value: http.body };
    return http.status === null ? { ok: false, error: `${written}: ${reference.step} got no answer` } : { ok: true, value: http.status };
  }
  if (http.json === undefined) return { ok: false, error: `${written}: the body of ${reference.step} is not JSON` };
  let value: JsonValue = http.json;
  for (const segment of reference.path) {
    if (Array.isArray(value) && /^\d+$/.test(segment) && Number(segment) < value.length) value = value[Number(segment)]!;
    // Own fields only: `__proto__` or `constructor` must not reach into JavaScript's objects.
    else if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, segment)) value = value[segment]!;
    else return { ok: false, error: `${written}: the body of ${reference.step} has no field at ${reference.path.join('.')}` };
  }
  return { ok: true, value };
}

function asText(value: JsonValue): string {
  if (typeof value === 'string') return value;
  if (value === null) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function fill(
  parts: readonly TemplatePart[],
  encode: (text: string) => string,
  answer: (reference: Reference) => Answer,
): { ok: true; text: string } | { ok: false; error: string } {
  let text = '';
  for (const part of parts) {
    if ('text' in part) {
      text += part.text;
      continue;
    }
    const value = answer(part.reference);
    if (!value.ok) return value;
    text += encode(asText(value.value));
  }
  return { ok: true, text };
}

function fillTemplate(
  template: string,
  encode: (text: string) => string,
  answer: (reference: Reference) => Answer,
): { ok: true; text: string } | { ok: false; error: string } {
  const parsed = parseTemplate(template);
  if (!parsed.ok) return parsed;
  return fill(parsed.parts, encode, answer);
}

export function resolveScriptStep(step: PlannedStep, values: RunValues): { ok: true; arguments: ScriptArgument[] } | { ok: false; error: string } {
  if (step.kind !== 'script') return { ok: false, error: `${step.id} is not a script step` };
  const args = values.arguments[step.runbook] ?? [];
  const fixed = new Set(args.filter((a) => a.kind === 'fixed').map((a) => a.name));
  const out: ScriptArgument[] = args.map((a) => ({ name: a.name.toUpperCase(), value: a.value, fixed: a.kind === 'fixed' }));
  for (const entry of step.script.with) {
    let readsFixed = false;
    const filled = fillTemplate(
      entry.value,
      (t) => t,
      (ref) => {
        if (ref.kind === 'argument' && fixed.has(ref.name)) readsFixed = true;
        return referenceValue(ref, step, values);
      },
    );
    if (!filled.ok) return { ok: false, error: `with.${entry.name}: ${filled.error}` };
    if (filled.text.includes('\u0000')) return { ok: false, error: `with.${entry.name}: the value contains a NUL byte, which a script argument cannot hold` };
    out.push({ name: entry.name.toUpperCase(), value: filled.text, fixed: readsFixed });
  }
  return { ok: true, arguments: out };
}

/**
 * `secrets`: the http step's target's secrets (empty without a target). `maskValues`: what the
 * step's output must mask besides the target's secrets: fixed argument values the request used,
 * as written and as percent-encoded in the URL.
 */
export function resolveHttpStep(
  step: PlannedStep,
  values: RunValues,
  secrets: ReadonlyMap<string, string>,
): { ok: true; request: HttpRequestSpec; maskValues: string[] } | { ok: false; error: string } {
  if (step.kind !== 'http') return { ok: false, error: `${step.id} is not an http step` };
  const http = step.http;
  const mask = new Set<string>();
  const fixed = new Set((values.arguments[step.runbook] ?? []).filter((a) => a.kind === 'fixed' && a.value.length >= MIN_MASKED_LENGTH).map((a) => a.name));
  const answer = (ref: Reference): Answer => {
    const value = referenceValue(ref, step, values, http.target === null ? new Map() : secrets);
    if (value.ok && ref.kind === 'argument' && fixed.has(ref.name) && typeof value.value === 'string') {
      mask.add(value.value);
      mask.add(encodeURIComponent(value.value));
    }
    return value;
  };

  const url = fillTemplate(http.url, encodeURIComponent, answer);
  if (!url.ok) return { ok: false, error: `url: ${url.error}` };
  if (hasDotSegment(url.text)) return { ok: false, error: 'url: a value made a . or .. path segment, which would change the path instead of filling it' };
  let parsed: URL;
  try {
    parsed = new URL(url.text);
  } catch {
    return { ok: false, error: 'url: the filled-in URL is not valid' };
  }
  // Percent-encoding keeps values out of the authority; this is the belt to those braces.
  if (parsed.hostname !== literalUrlHost(http.url)) return { ok: false, error: 'url: the filled-in URL names another host than the one written' };

  const headers: Array<{ name: string; value: string }> = [];
  const secretHeaders: string[] = [];
  for (const header of http.headers) {
    const template = parseTemplate(header.value);
    if (!template.ok) return { ok: false, error: `headers.${header.name}: ${template.error}` };
    const filled = fill(template.parts, (t) => t, answer);
    if (!filled.ok) return { ok: false, error: `headers.${header.name}: ${filled.error}` };
    const problem = headerValueProblem(filled.text);
    if (problem !== null) return { ok: false, error: `headers.${header.name}: ${problem}` };
    if (template.parts.some((p) => 'reference' in p && p.reference.kind === 'secret')) secretHeaders.push(header.name);
    headers.push({ name: header.name, value: filled.text });
  }

  let body: string | null = null;
  let secretBody = false;
  if (http.body !== undefined) {
    const filled = fillJson(http.body, (ref) => {
      if (ref.kind === 'secret') secretBody = true;
      return answer(ref);
    });
    if (!filled.ok) return { ok: false, error: `body: ${filled.error}` };
    body = JSON.stringify(filled.value);
    if (Buffer.byteLength(body, 'utf8') > MAX_RESOLVED_BODY_BYTES)
      return { ok: false, error: `body: the filled-in body is larger than ${MAX_RESOLVED_BODY_BYTES} bytes` };
  }

  return {
    ok: true,
    request: {
      url: parsed.href,
      method: http.method,
      headers,
      body,
      compress: http.compress,
      timeoutMs: http.timeoutMs,
      successStatus: http.successStatus,
      successPattern: http.successPattern,
      secretHeaders,
      secretBody,
    },
    maskValues: [...mask],
  };
}

function fillJson(value: JsonValue, answer: (reference: Reference) => Answer): { ok: true; value: JsonValue } | { ok: false; error: string } {
  if (typeof value === 'string') {
    const parsed = parseTemplate(value);
    if (!parsed.ok) return parsed;
    const only = parsed.parts.length === 1 ? parsed.parts[0] : undefined;
    if (only && 'reference' in only) return answer(only.reference);
    const filled = fill(parsed.parts, (t) => t, answer);
    return filled.ok ? { ok: true, value: filled.text } : filled;
  }
  if (Array.isArray(value)) {
    const out: JsonValue[] = [];
    for (const item of value) {
      const filled = fillJson(item, answer);
      if (!filled.ok) return filled;
      out.push(filled.value);
    }
    return { ok: true, value: out };
  }
  if (value !== null && typeof value === 'object') {
    const out: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(value)) {
      const filled = fillJson(item, answer);
      if (!filled.ok) return filled;
      Object.defineProperty(out, key, { value: filled.value, enumerable: true, writable: true, configurable: true });
    }
    return { ok: true, value: out };
  }
  return { ok: true, value };
}

/** An input step's submitted values, checked against its fields: the step's outputs. */
export function resolveInputValues(
  step: PlannedStep,
  given: Readonly<Record<string, unknown>>,
): { ok: true; outputs: Record<string, string> } | { ok: false; errors: ArgumentError[] } {
  if (step.kind !== 'input') return { ok: false, errors: [{ name: 'step', message: `${step.id} is not an input step` }] };
  const resolved = resolveDeclaredValues(step.name ?? step.stepId, step.input.fields, given, { what: 'field' });
  if (!resolved.ok) return resolved;
  return { ok: true, outputs: Object.fromEntries(resolved.values.map((v) => [v.name, v.value])) };
}
