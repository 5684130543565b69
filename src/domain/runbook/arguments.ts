/**
 * Values given for declared arguments (a runbook's arguments at start, an input step's fields
 * when the form is submitted), checked the way recipes check theirs (src/domain/recipe.ts
 * resolveArguments: same kinds, defaults and messages), with one difference: input patterns
 * run in the linear-time engine (src/domain/linearRegex.ts), on values capped at
 * MAX_ARGUMENT_BYTES before anything is matched.
 *
 * Interface (pure):
 *   resolveDeclaredValues(owner, declared, given, { what })
 *     -> { ok, values: TaskArgument[] (declared order, fixed included) } | { ok: false, errors: ArgumentError[] }
 *   namedFromOrdered(owner, declared, ordered)
 *     -> { ok, given } | { ok: false, errors }   TheEye's `task_arguments`: values in declared
 *        order of the arguments a caller may set (fixed ones skipped), then resolveDeclaredValues
 */
import { compileLinear, type LinearRegex } from '../linearRegex.js';
import { MAX_ARGUMENT_BYTES, type ArgumentError, type RecipeArgument, type TaskArgument } from '../recipe.js';

const compiled = new Map<string, LinearRegex | null>();

/** Patterns are validated when a definition is loaded; a cache keeps a form submit from recompiling them. */
function patternFor(source: string): LinearRegex | null {
  let regex = compiled.get(source);
  if (regex === undefined) {
    const result = compileLinear(source);
    regex = result.ok ? result.regex : null;
    if (compiled.size > 1000) compiled.clear();
    compiled.set(source, regex);
  }
  return regex;
}

export function resolveDeclaredValues(
  owner: string,
  declared: readonly RecipeArgument[],
  given: Readonly<Record<string, unknown>>,
  options: { what: 'argument' | 'field' } = { what: 'argument' },
): { ok: true; values: TaskArgument[] } | { ok: false; errors: ArgumentError[] } {
  const errors: ArgumentError[] = [];
  const byName = new Map(declared.map((a) => [a.name, a]));
  for (const name of Object.keys(given)) {
    const arg = byName.get(name);
    const settable = declared.filter((a) => a.kind !== 'fixed').map((a) => a.name);
    if (!arg) errors.push({ name, message: `${owner} has no ${options.what} ${name} (it takes ${settable.join(', ') || 'none'})` });
    else if (arg.kind === 'fixed') errors.push({ name, message: `${name} is fixed by ${owner} and cannot be set` });
  }
  const values: TaskArgument[] = [];
  for (const arg of declared) {
    if (arg.kind === 'fixed') {
      values.push({ name: arg.name, kind: 'fixed', value: arg.value });
      continue;
    }
    const raw = given[arg.name];
    if (raw !== undefined && raw !== null && typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      errors.push({ name: arg.name, message: `${arg.name}: expected a string` });
      continue;
    }
    const value = raw === undefined || raw === null ? undefined : String(raw);
    if (value !== undefined && (value.includes('\u0000') || Buffer.byteLength(value, 'utf8') > MAX_ARGUMENT_BYTES)) {
      errors.push({ name: arg.name, message: `${arg.name}: at most ${MAX_ARGUMENT_BYTES} bytes, without NUL bytes` });
      continue;
    }
    if (arg.kind === 'options') {
      const chosen = value ?? arg.default;
      if (chosen === undefined) errors.push({ name: arg.name, message: `${arg.name}: choose one of ${arg.options.join(', ')}` });
      else if (!arg.options.includes(chosen)) errors.push({ name: arg.name, message: `${arg.name}: expected one of ${arg.options.join(', ')}` });
      else values.push({ name: arg.name, kind: 'options', value: chosen });
      continue;
    }
    const text = value === undefined || value === '' ? (arg.default ?? '') : value;
    if (text === '') {
      if (arg.required) errors.push({ name: arg.name, message: `${arg.name} is required` });
      else values.push({ name: arg.name, kind: 'input', value: '' });
      continue;
    }
    if (arg.pattern !== undefined) {
      const regex = patternFor(arg.pattern);
      // A pattern the engine cannot run was refused at load; should one get here, nothing matches it.
      if (regex === null || !regex.fullMatch(text)) {
        errors.push({ name: arg.name, message: `${arg.name}: expected a value matching /${arg.pattern}/${arg.hint ? ` (${arg.hint})` : ''}` });
        continue;
      }
    }
    values.push({ name: arg.name, kind: 'input', value: text });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, values };
}

/** TheEye-style `task_arguments`: values in the declared order of the settable (non-fixed) arguments. */
export function namedFromOrdered(owner: string, declared: readonly RecipeArgument[], ordered: readonly unknown[]): { ok: true; given: Record<string, unknown> } | { ok: false; errors: ArgumentError[] } {
  const settable = declared.filter((a) => a.kind !== 'fixed');
  if (ordered.length > settable.length) {
    return { ok: false, errors: [{ name: 'task_arguments', message: `${owner} takes ${settable.length} value${settable.length === 1 ? '' : 's'} (${settable.map((a) => a.name).join(', ') || 'none'}); ${ordered.length} were given` }] };
  }
  return { ok: true, given: Object.fromEntries(ordered.map((value, index) => [settable[index]!.name, value])) };
}
