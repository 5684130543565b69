/**
 * `after` triggers: when a run ends, in the same transaction, one run of every runbook whose
 * triggeredBy names it (`{ after: <reference>, on: success | failure | always }`) is created, at
 * most once per ending run and runbook (source_key `after:<run>:<runbook>`), with the runbook's
 * grace (it waits in `ready` until then, cancellable) and reviewed where its targets need it.
 * A killed run counts as a failure: a cleanup `on: failure` runs after a Kill too.
 *
 * The new run gets the ended run's values for the arguments it declares under the same names
 * (its own defaults for the rest); a value that was fixed stays fixed (never shown, masked).
 * A runbook that cannot be planned (an argument no longer fits) is recorded on the ended run
 * (`run.trigger-failed`) and skipped: the ending itself is never undone by it.
 */
import type { Knex } from 'knex';
import type { Run } from '../domain/run.js';
import { runSubject } from '../domain/run.js';
import { planRun, runContentVersion, type Runbook } from '../domain/runbook/index.js';
import type { Config } from '../config/config.js';
import { appendEvent } from '../store/events.js';
import type { RunService } from '../service/runs.js';
import { runbooksOf } from '../service/runbooks.js';

export interface TriggerContext {
  config: Config;
  runs: RunService;
  fixedValueKey: string;
}

export async function startTriggeredRuns(
  trx: Knex.Transaction,
  ctx: TriggerContext,
  ended: Run,
  catalog: ReadonlyMap<string, { runbook: Runbook; hash: string }>,
): Promise<Run[]> {
  const outcome = ended.status === 'success' ? 'success' : 'failure';
  const started: Run[] = [];
  const runbooks = runbooksOf(catalog);
  const endedValues = new Map((ended.arguments[ended.reference] ?? []).map((a) => [a.name, a]));
  for (const { runbook, hash } of catalog.values()) {
    const trigger = runbook.triggeredBy.find((t) => t.kind === 'after' && t.runbook === ended.reference && (t.on === 'always' || t.on === outcome));
    if (trigger?.kind !== 'after') continue;
    const given: Record<string, string> = {};
    for (const arg of runbook.arguments) {
      const value = endedValues.get(arg.name);
      if (arg.kind !== 'fixed' && value !== undefined) given[arg.name] = value.value;
    }
    const planned = planRun(runbooks, runbook.reference, given, { fixedValueKey: ctx.fixedValueKey, targets: ctx.config.targets });
    if (!planned.ok) {
      await appendEvent(trx, {
        taskId: null,
        subject: runSubject(ended.id),
        type: 'run.trigger-failed',
        actor: null,
        data: { runbook: runbook.reference, errors: planned.errors },
      });
      continue;
    }
    const plan = planned.plan;
    const own = plan.arguments[runbook.reference];
    if (own) {
      plan.arguments[runbook.reference] = own.map((a) =>
        endedValues.get(a.name)?.kind === 'fixed' && a.kind !== 'fixed' ? { ...a, kind: 'fixed' as const } : a,
      );
      plan.contentVersion = runContentVersion(plan, ctx.fixedValueKey);
    }
    const created = await ctx.runs.create(
      trx,
      plan,
      {
        creator: ended.creator,
        trigger: { kind: 'after', run: ended.id, on: trigger.on },
        message: null,
        channelId: ended.channelId,
        sourceKey: `after:${ended.id}:${runbook.reference}`,
        runbookHash: hash,
      },
      { runId: ended.id, delayMs: runbook.graceMs },
    );
    if (created.created) started.push(created.run);
  }
  return started;
}
