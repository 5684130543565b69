/**
 * Values given for declared arguments (a runbook's arguments at start, an input step's fields
 * when the form is submitted), checked by the one implementation recipes use too
 * (src/domain/recipe.ts resolveDeclaredValues: same kinds, defaults and messages; patterns in
 * the linear-time engine on bounded values).
 *
 * Interface (pure):
 *   resolveDeclaredValues(owner, declared, given, { what })
 *     -> { ok, values: TaskArgument[] (declared order, fixed included) } | { ok: false, errors: ArgumentError[] }
 *   namedFromOrdered(owner, declared, ordered)
 *     -> { ok, given } | { ok: false, errors }   TheEye's `task_arguments`: values in declared
 *        order of the arguments a caller may set (fixed ones skipped), then resolveDeclaredValues
 */
import { resolveDeclaredValues, type ArgumentError, type RecipeArgument } from '../recipe.js';

/** One implementation for recipes, runbooks and input fields (src/domain/recipe.ts). */
export { resolveDeclaredValues };

/** TheEye-style `task_arguments`: values in the declared order of the settable (non-fixed) arguments. */
export function namedFromOrdered(
  owner: string,
  declared: readonly RecipeArgument[],
  ordered: readonly unknown[],
): { ok: true; given: Record<string, unknown> } | { ok: false; errors: ArgumentError[] } {
  const settable = declared.filter((a) => a.kind !== 'fixed');
  if (ordered.length > settable.length) {
    return {
      ok: false,
      errors: [
        {
          name: 'task_arguments',
          message: `${owner} takes ${settable.length} value${settable.length === 1 ? '' : 's'} (${settable.map((a) => a.name).join(', ') || 'none'}); ${ordered.length} were given`,
        },
      ],
    };
  }
  return { ok: true, given: Object.fromEntries(ordered.map((value, index) => [settable[index]!.name, value])) };
}
