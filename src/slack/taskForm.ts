/**
 * The task form: opened within Slack's 3 s trigger window as a loading view, filled in once the
 * user's targets are known (views.update), and validated on submit like the command is, with
 * errors shown on the fields (`response_action: errors`).
 */
import type { App, ViewOutput } from '@slack/bolt';
import type { Config } from '../config/config.js';
import { MAX_SCRIPT_BYTES, parseDelay } from '../domain/command.js';
import { unreachableGroups, type ReviewPolicy } from '../domain/review.js';
import { isScriptType } from '../domain/scriptTypes.js';
import { taskRef, type Task } from '../domain/task.js';
import type { Logger } from '../log.js';
import type { TaskService } from '../service/taskService.js';
import { TASK_FIELD } from './render/blocks.js';
import { renderCreatedModal, renderLoadingModal, renderTaskModal, type TaskFormDefaults, type TaskFormMetadata } from './render/taskModal.js';

export interface TaskFormDeps {
  config: Config;
  service: TaskService;
  log: Logger;
  resolvedPolicy(targetName: string): Promise<ReviewPolicy | null>;
}

/** Targets whose review this user's task could get (a target nobody else reviews is left out). */
export async function usableTargets(deps: TaskFormDeps, userId: string): Promise<Array<{ name: string; description: string | null }>> {
  const usable = [];
  for (const target of deps.config.targets.values()) {
    const policy = await deps.resolvedPolicy(target.name);
    if (!policy || unreachableGroups(policy, userId).length === 0) usable.push({ name: target.name, description: target.description });
  }
  return usable;
}

/** Opens the form: the loading view now (the trigger expires in 3 s), the real one right after. */
export async function openTaskForm(
  app: App,
  deps: TaskFormDeps,
  triggerId: string,
  userId: string,
  metadata: TaskFormMetadata,
  defaults: TaskFormDefaults = {},
): Promise<void> {
  const opened = await app.client.views.open({ trigger_id: triggerId, view: renderLoadingModal() });
  const view = opened.view;
  if (!view?.id) return;
  const targets = await usableTargets(deps, userId);
  await app.client.views.update({ view_id: view.id, ...(view.hash ? { hash: view.hash } : {}), view: renderTaskModal(targets, metadata, defaults) });
}

type Submission = { ok: true; task: Task; created: boolean } | { ok: false; errors: Record<string, string> };

/** Validates the form and creates the task; field errors otherwise. */
export async function submitTaskForm(deps: TaskFormDeps, userId: string, view: ViewOutput): Promise<Submission> {
  const values = view.state.values;
  const text = (block: string) => values[block]?.value?.value?.trim() ?? '';
  const selected = (block: string) => values[block]?.value?.selected_option?.value ?? '';
  const metadata = JSON.parse(view.private_metadata || '{}') as Partial<TaskFormMetadata>;
  const errors: Record<string, string> = {};

  const targetName = selected(TASK_FIELD.target);
  const target = deps.config.targets.get(targetName);
  if (!target) errors[TASK_FIELD.target] = 'Choose a target.';
  const script = values[TASK_FIELD.script]?.value?.value ?? '';
  if (script.trim() === '') errors[TASK_FIELD.script] = 'Write the script to run.';
  else if (Buffer.byteLength(script, 'utf8') > MAX_SCRIPT_BYTES) errors[TASK_FIELD.script] = `Scripts are at most ${MAX_SCRIPT_BYTES / 1024} KiB.`;
  const type = selected(TASK_FIELD.type);
  if (type !== '' && !isScriptType(type)) errors[TASK_FIELD.type] = 'Choose a type from the list.';
  const delayText = text(TASK_FIELD.delay);
  let delayMs: number | null = null;
  if (delayText !== '' && delayText.toLowerCase() !== 'now') {
    const delay = parseDelay(delayText);
    if (!delay.ok) errors[TASK_FIELD.delay] = 'Write a delay such as 10m, 2h or 1d (at most 7 days), or leave it empty.';
    else delayMs = delay.value;
  }
  if (Object.keys(errors).length > 0 || !target) return { ok: false, errors };

  const message = text(TASK_FIELD.message) || null;
  // A resubmission on the same target and type is linked to the rejected task (and a double
  // submit makes one); choosing another target or type makes it a task of its own.
  const old = metadata.resubmitOf ? await deps.service.task(metadata.resubmitOf) : null;
  if (old && old.target === target.name && (type === '' || type === old.type)) {
    const resubmitted = await deps.service.resubmit(old.id, userId, { script: script.replace(/\s+$/, ''), message, delayMs });
    if (!resubmitted.ok) return { ok: false, errors: { [TASK_FIELD.script]: resubmitted.message.replace(/[*`]/g, '') } };
    // Resubmitted before: only the same text is the same submission.
    if (!resubmitted.created && (resubmitted.task.script !== script.replace(/\s+$/, '') || resubmitted.task.message !== message)) {
      return {
        ok: false,
        errors: { [TASK_FIELD.script]: `#${old.id} was already resubmitted as #${resubmitted.task.id}; edit that one, or create a new task.` },
      };
    }
    return { ok: true, task: resubmitted.task, created: resubmitted.created };
  }
  const created = await deps.service.create({
    author: userId,
    target: target.name,
    type: type !== '' && isScriptType(type) ? type : null,
    script: script.replace(/\s+$/, ''),
    message,
    source: 'slack',
    // A double submit of one form makes one task.
    sourceKey: `slack-view:${view.id}`,
    channelId: metadata.channel ?? target.channel,
    delayMs,
  });
  if (!created.ok) return { ok: false, errors: { [TASK_FIELD.target]: created.message.replace(/[*`]/g, '') } };
  return { ok: true, task: created.task, created: created.created };
}

export function createdModal(task: Task, channel: string | null, policy: ReviewPolicy | null): ReturnType<typeof renderCreatedModal> {
  const where = channel ? ` Its card is in <#${channel}>.` : ' Follow it in the Home tab.';
  const next = task.status === 'pending-review' && policy ? ` It waits for review in <#${policy.channel}>.` : task.runAfter ? '' : ' It runs now.';
  const delay = task.runAfter
    ? ` It runs no earlier than <!date^${Math.floor(task.runAfter.getTime() / 1000)}^{time}|${task.runAfter.toISOString()}>, and can be cancelled until then.`
    : '';
  return renderCreatedModal(`:white_check_mark: Created *${taskRef(task.id)}* on \`${task.target}\`.${next}${delay}${where}`);
}
