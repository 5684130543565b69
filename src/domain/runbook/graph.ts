/**
 * Runbooks as a graph: `dependsOn` (runbooks whose steps run first, in the same run) and
 * `triggeredBy: { after }` (a finished run of one runbook starts a new run of another).
 *
 * - dependencyOrder: the dependencies' runbooks in dependency order, depth first in the order
 *   `dependsOn` lists them, each runbook once (a diamond runs its shared base once), the
 *   started runbook last. A cycle is refused and named (`a -> b -> a`).
 * - `after` triggers must name existing runbooks, and must not form a cycle (self included):
 *   `a` after `b` and `b` after `a` would start runs forever, each one looking legitimate, and
 *   the grace delay only slows that down. There is no bounded form of it worth the risk, so any
 *   trigger cycle is refused at load, whatever `on:` says.
 * - Arguments: a dependency gets the started run's values for the arguments it declares under
 *   the same name, and its own defaults for the rest; a runbook started by `after` gets the
 *   finished run's values the same way. So a dependency's (or triggered runbook's) argument
 *   that has no default must be declared by every runbook that depends on it (or triggers it),
 *   else it could never start: refused at load.
 * - checkRunbooks also checks what needs the config: script and http targets exist, secrets a
 *   header uses exist in its target, and (given http.allow) each http URL's host is allowed.
 *
 * Interface (pure):
 *   dependencyOrder(runbooks, reference) -> { ok, order } | { ok: false, error }
 *   checkRunbooks(runbooks, context, prefix = 'runbooks') -> string[] (problems naming fields)
 *   type RunbookCheckContext
 */
import { checkUrlHost, type NetAllow } from '../netAllow.js';
import type { RecipeArgument } from '../recipe.js';
import type { Runbook, RunbookStep } from './definition.js';
import { literalUrlHost } from './httpRequest.js';
import { parseTemplate } from './template.js';

export interface RunbookCheckContext {
  /** Config.targets fits: only names and secret names are read. */
  targets: ReadonlyMap<string, { secrets: ReadonlyMap<string, string> }>;
  /** http.allow; when given, every http step's host must be allowed by it. */
  allow?: NetAllow;
}

export function dependencyOrder(runbooks: ReadonlyMap<string, Runbook>, reference: string): { ok: true; order: string[] } | { ok: false; error: string } {
  if (!runbooks.has(reference)) return { ok: false, error: `there is no runbook ${reference}` };
  const order: string[] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (ref: string): string | null => {
    if (done.has(ref)) return null;
    const at = path.indexOf(ref);
    if (at >= 0) return `dependsOn makes a cycle: ${[...path.slice(at), ref].join(' -> ')}`;
    const runbook = runbooks.get(ref);
    if (!runbook) return `${path[path.length - 1] ?? reference} depends on ${ref}, which does not exist`;
    path.push(ref);
    for (const dependency of runbook.dependsOn) {
      const problem = visit(dependency);
      if (problem !== null) return problem;
    }
    path.pop();
    done.add(ref);
    order.push(ref);
    return null;
  };
  const problem = visit(reference);
  return problem === null ? { ok: true, order } : { ok: false, error: problem };
}

/** Every elementary cycle found by a depth-first walk, once each, as `a -> b -> a`. */
function cycles(nodes: readonly string[], edges: (node: string) => readonly string[]): string[] {
  const found = new Map<string, string>();
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    path.push(node);
    for (const next of edges(node)) {
      if (state.get(next) === 'open') {
        const loop = path.slice(path.indexOf(next));
        // One name per cycle whichever node the walk entered it by: rotate to its smallest node.
        const start = loop.indexOf([...loop].sort()[0]!);
        const rotated = [...loop.slice(start), ...loop.slice(0, start)];
        const key = rotated.join('\u0000');
        if (!found.has(key)) found.set(key, [...rotated, rotated[0]].join(' -> '));
      } else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(node, 'done');
  };
  for (const node of nodes) if (!state.has(node)) visit(node);
  return [...found.values()];
}

/** An argument that cannot be left out: no default, and (for input) required. */
function needsValue(arg: RecipeArgument): boolean {
  if (arg.kind === 'fixed') return false;
  if (arg.kind === 'options') return arg.default === undefined;
  return arg.required && (arg.default === undefined || arg.default === '');
}

function stepField(runbook: Runbook, step: RunbookStep): string {
  for (let g = 0; g < runbook.steps.length; g++) {
    const group = runbook.steps[g]!;
    const position = group.indexOf(step);
    if (position >= 0) return group.length > 1 ? `steps[${g}][${position}]` : `steps[${g}]`;
  }
  return `steps.${step.id}`;
}

export function checkRunbooks(runbooks: ReadonlyMap<string, Runbook>, context: RunbookCheckContext, prefix = 'runbooks'): string[] {
  const problems: string[] = [];
  const field = (ref: string, rest: string) => `${prefix}.${ref}.${rest}`;
  const refs = [...runbooks.keys()];

  for (const runbook of runbooks.values()) {
    runbook.dependsOn.forEach((dependency, index) => {
      if (!runbooks.has(dependency)) problems.push(field(runbook.reference, `dependsOn[${index}]: there is no runbook ${dependency}`));
    });
    runbook.triggeredBy.forEach((trigger, index) => {
      if (trigger.kind === 'after' && !runbooks.has(trigger.runbook))
        problems.push(field(runbook.reference, `triggeredBy[${index}].after: there is no runbook ${trigger.runbook}`));
    });
  }

  for (const cycle of cycles(refs, (ref) => runbooks.get(ref)?.dependsOn.filter((d) => runbooks.has(d)) ?? [])) {
    problems.push(`${prefix}.${cycle.split(' -> ')[0]}.dependsOn: the dependencies make a cycle: ${cycle}`);
  }
  // Edge b -> a when a is triggered after b: the direction runs start in.
  const triggered = new Map<string, string[]>();
  for (const runbook of runbooks.values()) {
    for (const trigger of runbook.triggeredBy) {
      if (trigger.kind === 'after' && runbooks.has(trigger.runbook))
        triggered.set(trigger.runbook, [...(triggered.get(trigger.runbook) ?? []), runbook.reference]);
    }
  }
  for (const cycle of cycles(refs, (ref) => triggered.get(ref) ?? [])) {
    problems.push(
      `${prefix}.${cycle.split(' -> ')[1] ?? cycle}.triggeredBy: the after triggers make a cycle, so runs would start each other forever: ${cycle}`,
    );
  }

  // Arguments a dependency or a triggered runbook cannot do without.
  for (const runbook of runbooks.values()) {
    const order = dependencyOrder(runbooks, runbook.reference);
    if (!order.ok) continue;
    const declared = new Set(runbook.arguments.map((a) => a.name));
    for (const dependency of order.order.slice(0, -1)) {
      for (const arg of runbooks.get(dependency)?.arguments ?? []) {
        if (needsValue(arg) && !declared.has(arg.name)) {
          problems.push(
            field(
              runbook.reference,
              `dependsOn: ${dependency} needs a value for its argument ${arg.name}, which ${runbook.reference} does not declare (declare ${arg.name}, or give it a default in ${dependency})`,
            ),
          );
        }
      }
    }
    runbook.triggeredBy.forEach((trigger, index) => {
      if (trigger.kind !== 'after') return;
      const source = runbooks.get(trigger.runbook);
      if (!source) return;
      for (const arg of runbook.arguments) {
        if (needsValue(arg) && !source.arguments.some((a) => a.name === arg.name)) {
          problems.push(
            field(
              runbook.reference,
              `triggeredBy[${index}]: a run started after ${trigger.runbook} has no value for ${arg.name} (${trigger.runbook} does not declare it): give ${arg.name} a default`,
            ),
          );
        }
      }
    });
  }

  // What needs the config.
  for (const runbook of runbooks.values()) {
    for (const group of runbook.steps) {
      for (const step of group) {
        const where = stepField(runbook, step);
        if (step.kind === 'script' && !context.targets.has(step.script.target))
          problems.push(field(runbook.reference, `${where}.script.target: there is no target ${step.script.target}`));
        if (step.kind !== 'http') continue;
        const http = step.http;
        const target = http.target === null ? undefined : context.targets.get(http.target);
        if (http.target !== null && !target) problems.push(field(runbook.reference, `${where}.http.target: there is no target ${http.target}`));
        for (const header of http.headers) {
          const parsed = parseTemplate(header.value);
          if (!parsed.ok || !target) continue;
          for (const part of parsed.parts) {
            if ('reference' in part && part.reference.kind === 'secret' && !target.secrets.has(part.reference.name)) {
              problems.push(field(runbook.reference, `${where}.http.headers.${header.name}: the target ${http.target} has no secret ${part.reference.name}`));
            }
          }
        }
        if (context.allow) {
          const host = literalUrlHost(http.url);
          const check = host === null ? { ok: false as const, reason: 'the URL has no host' } : checkUrlHost(context.allow, host);
          if (!check.ok) problems.push(field(runbook.reference, `${where}.http.url: ${check.reason} (add it to http.allow to let runbooks call it)`));
        }
      }
    }
  }
  return problems;
}
