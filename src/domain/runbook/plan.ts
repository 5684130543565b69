/**
 * The pinned plan of a run: everything that will run, fixed when the run is asked for, so an
 * edit of a runbook after the start changes nothing for that run, and an approval names it.
 *
 * planRun(runbooks, reference, args, { fixedValueKey, targets }):
 *   1. the runbooks in dependency order (graph.ts), the started one last;
 *   2. the started runbook's arguments resolved (arguments.ts; fixed values included), and
 *      each dependency's from the run's values of the same name, else its defaults (a fixed
 *      value passed on stays marked fixed, so it is never shown);
 *   3. every runbook's groups of steps in order, each step with a qualified id
 *      (`<runbook>.<step>`: `drain-lb.stop`, `restart-web.a`), its kind and its full content
 *      (a script step's type pinned: the target's default when the step names none);
 *   4. `targets`: every target the run touches (script steps, and http steps that use a
 *      target's secrets): review must satisfy each one's policy (all groups);
 *   5. the content version: contentHash('countersign.run/v1', { plan: { reference, groups },
 *      arguments }) where a fixed value enters as HMAC-SHA256 under a server key (the same
 *      scheme as task content versions), so a published version reveals nothing about it.
 *
 * Interface (pure):
 *   planRun(...)            -> { ok, plan: RunPlan } | { ok: false, errors: ArgumentError[] }
 *                              (`name` is the started runbook's argument, `<runbook>.<arg>` for a
 *                              dependency's, or `runbook` for a problem with the runbooks)
 *   runContentVersion(plan, fixedValueKey) -> hex SHA-256 (to verify a stored plan)
 *   types: RunPlan, PlannedStep, PlannedGroup
 */
import { sealFixedValue } from '../contentVersion.js';
import { contentHash } from '../digest.js';
import type { ArgumentError, TaskArgument } from '../recipe.js';
import type { ScriptType } from '../scriptTypes.js';
import { resolveDeclaredValues } from './arguments.js';
import type { ApprovalStep, HttpStep, InputStep, Runbook, ScriptStep } from './definition.js';
import { dependencyOrder } from './graph.js';

export const RUN_CONTENT_DOMAIN = 'countersign.run/v1';

export type PlannedStep = {
  /** `<runbook>.<step id>`: unique in the run. */
  id: string;
  runbook: string;
  stepId: string;
  name: string | null;
  continueOnFailure: boolean;
} & (
  | { kind: 'script'; script: Omit<ScriptStep, 'type'> & { type: ScriptType } }
  | { kind: 'http'; http: HttpStep }
  | { kind: 'approval'; approval: ApprovalStep }
  | { kind: 'input'; input: InputStep }
);

export type PlannedGroup = PlannedStep[];

export interface RunPlan {
  /** The runbook started. */
  reference: string;
  /** Runbooks in the order their steps run: dependencies first, `reference` last. */
  runbooks: string[];
  /** Per runbook, its arguments in declared order, fixed values in clear: store them like tasks.arguments and never show them. */
  arguments: Record<string, TaskArgument[]>;
  groups: PlannedGroup[];
  /** Targets whose review policy applies, sorted. */
  targets: string[];
  contentVersion: string;
  /**
   * Who wrote the imported runbooks it runs (Runbook.writtenBy), sorted: like the run's creator,
   * none of them may review it. Not part of the content version; absent when none.
   */
  writers?: string[];
}

export interface PlanOptions {
  /** The server's key for fixed values in content versions (kept in `settings`). */
  fixedValueKey: string;
  /** Config.targets fits: a script step's default type comes from its target. */
  targets: ReadonlyMap<string, { type: ScriptType }>;
}

export function runContentVersion(plan: Pick<RunPlan, 'reference' | 'groups' | 'arguments' | 'runbooks'>, fixedValueKey: string): string {
  const args = plan.runbooks.map((runbook) => ({
    runbook,
    values: (plan.arguments[runbook] ?? []).map((a) => ({
      name: a.name,
      kind: a.kind,
      value: a.kind === 'fixed' ? sealFixedValue(fixedValueKey, runbook, a.value) : a.value,
    })),
  }));
  return contentHash(RUN_CONTENT_DOMAIN, { plan: { reference: plan.reference, groups: plan.groups }, arguments: args });
}

export function planRun(
  runbooks: ReadonlyMap<string, Runbook>,
  reference: string,
  given: Readonly<Record<string, unknown>>,
  options: PlanOptions,
): { ok: true; plan: RunPlan } | { ok: false; errors: ArgumentError[] } {
  const order = dependencyOrder(runbooks, reference);
  if (!order.ok) return { ok: false, errors: [{ name: 'runbook', message: order.error }] };
  const root = runbooks.get(reference)!;
  const rootValues = resolveDeclaredValues(reference, root.arguments, given);
  if (!rootValues.ok) return { ok: false, errors: rootValues.errors };

  const errors: ArgumentError[] = [];
  const byName = new Map(rootValues.values.map((v) => [v.name, v]));
  const args: Record<string, TaskArgument[]> = { [reference]: rootValues.values };
  for (const ref of order.order.slice(0, -1)) {
    const runbook = runbooks.get(ref)!;
    const passed: Record<string, string> = {};
    for (const arg of runbook.arguments) {
      const value = byName.get(arg.name);
      if (arg.kind !== 'fixed' && value !== undefined) passed[arg.name] = value.value;
    }
    const resolved = resolveDeclaredValues(ref, runbook.arguments, passed);
    if (!resolved.ok) {
      errors.push(...resolved.errors.map((e) => ({ name: `${ref}.${e.name}`, message: `${ref} (a dependency): ${e.message}` })));
      continue;
    }
    args[ref] = resolved.values.map((v) => (byName.get(v.name)?.kind === 'fixed' && v.kind !== 'fixed' ? { ...v, kind: 'fixed' as const } : v));
  }

  const groups: PlannedGroup[] = [];
  const targets = new Set<string>();
  for (const ref of order.order) {
    for (const group of runbooks.get(ref)!.steps) {
      const planned: PlannedGroup = [];
      for (const step of group) {
        const base = { id: `${ref}.${step.id}`, runbook: ref, stepId: step.id, name: step.name, continueOnFailure: step.continueOnFailure };
        if (step.kind === 'script') {
          const target = options.targets.get(step.script.target);
          if (!target) {
            errors.push({ name: 'runbook', message: `${base.id}: there is no target ${step.script.target}` });
            continue;
          }
          targets.add(step.script.target);
          planned.push({
            ...base,
            kind: 'script',
            script: {
              target: step.script.target,
              script: step.script.script,
              type: step.script.type ?? target.type,
              with: step.script.with.map((w) => ({ ...w })),
            },
          });
        } else if (step.kind === 'http') {
          if (step.http.target !== null) targets.add(step.http.target);
          planned.push({ ...base, kind: 'http', http: structuredClone(step.http) });
        } else if (step.kind === 'approval') {
          planned.push({ ...base, kind: 'approval', approval: structuredClone(step.approval) });
        } else {
          planned.push({ ...base, kind: 'input', input: structuredClone(step.input) });
        }
      }
      groups.push(planned);
    }
  }
  if (errors.length > 0) return { ok: false, errors };

  const plan: Omit<RunPlan, 'contentVersion'> = { reference, runbooks: order.order, arguments: args, groups, targets: [...targets].sort() };
  const writers = [...new Set(order.order.flatMap((ref) => runbooks.get(ref)?.writtenBy ?? []))].sort();
  return { ok: true, plan: { ...plan, contentVersion: runContentVersion(plan, options.fixedValueKey), ...(writers.length > 0 ? { writers } : {}) } };
}
