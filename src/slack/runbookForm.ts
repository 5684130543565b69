/**
 * `/task start <reference>`: one form for every runbook, recipes included (a recipe is a
 * one-step runbook). Opened as a loading view within the trigger's 3 s and filled in with
 * views.update; on submit the values go to RunbookService.start exactly as the API's do
 * (validated there: options, patterns, required), with a manual trigger, the channel the form
 * was asked for in, and the plan hash the form showed (the runbook and the runbooks it depends
 * on): a submit after any of them changed is refused, and so are bad values, each on its field (`response_action: errors`). A recipe starts
 * a task (its card is its run's card); any other runbook starts a run.
 */
import type { App, BlockButtonAction, ViewOutput } from '@slack/bolt';
import type { ListenerTable } from './listenerTable.js';
import type * as types from '@slack/types';
import { describeArguments } from '../domain/recipe.js';
import type { ReviewPolicy } from '../domain/review.js';
import { runRef, type Run } from '../domain/run.js';
import { dependencyOrder, type Runbook } from '../domain/runbook/index.js';
import { escapeSlackText } from '../domain/slackText.js';
import type { Logger } from '../log.js';
import { runbooksOf, type RunbookService, type RunbookStartOutcome } from '../service/runbooks.js';
import { context, RUN_ACTION, RUNBOOK_MODAL_CALLBACK, section } from './render/blocks.js';
import { argumentErrors, readArgumentValues } from './render/argumentFields.js';
import { HOME_LINK_ACTION } from './render/homeRunbooks.js';
import {
  renderRunbookLoadingModal,
  renderRunbookMissingModal,
  renderRunbookModal,
  RUNBOOK_MESSAGE_BLOCK,
  RUNBOOK_VALUE,
  type RunbookFormMetadata,
} from './render/runbookModal.js';
import { createdModal } from './taskForm.js';

export interface RunbookFormDeps {
  runbooks: RunbookService;
  log: Logger;
  /** A target's review policy, user groups resolved (a recipe's task). */
  resolvedPolicy(targetName: string): Promise<ReviewPolicy | null>;
  /** A run's combined review policy (where its review request goes). */
  runPolicy(run: Run): ReviewPolicy | null;
}

const OUR_FAULT = 'Something went wrong on our side and nothing was started. Try again in a minute; if it keeps failing, tell the countersign admins.';

/** The loading view now (the trigger expires in 3 s), the form once the runbook is read. */
export async function openRunbookForm(app: App, deps: RunbookFormDeps, triggerId: string, reference: string, metadata: RunbookFormMetadata): Promise<void> {
  const opened = await app.client.views.open({ trigger_id: triggerId, view: renderRunbookLoadingModal(reference) });
  const view = opened.view;
  if (!view?.id) return;
  let next: types.ModalView;
  try {
    next = await formFor(deps, reference, metadata);
  } catch (error) {
    deps.log.error({ err: error, reference }, 'reading a runbook for its start form failed');
    next = renderRunbookMissingModal(`:x: ${OUR_FAULT}`);
  }
  await app.client.views.update({ view_id: view.id, ...(view.hash ? { hash: view.hash } : {}), view: next });
}

async function formFor(deps: RunbookFormDeps, reference: string, metadata: RunbookFormMetadata): Promise<types.ModalView> {
  const catalog = await deps.runbooks.catalog();
  const entry = catalog.get(reference);
  if (!entry) return renderRunbookMissingModal(`There is no runbook \`${escapeSlackText(reference)}\`. \`/task runbook list\` shows the ones you can start.`);
  const runbooks = runbooksOf(catalog);
  const order = dependencyOrder(runbooks, reference);
  const dependencies = order.ok
    ? order.order
        .filter((ref) => ref !== reference)
        .map((ref) => runbooks.get(ref))
        .filter((r): r is Runbook => r !== undefined)
    : [];
  // The plan hash: a dependency replaced while the form is open is refused at submit, like the runbook itself.
  const hash = (await deps.runbooks.planHash(reference, catalog, runbooks)) ?? entry.hash;
  return renderRunbookModal(entry.runbook, { ...metadata, reference, hash }, dependencies);
}

type Submission = { ok: true; started: Extract<RunbookStartOutcome, { ok: true }> } | { ok: false; errors: Record<string, string> };

/** Reads the form, starts the runbook through the service; field errors otherwise. */
export async function submitRunbookForm(deps: RunbookFormDeps, userId: string, view: ViewOutput): Promise<Submission> {
  const metadata = JSON.parse(view.private_metadata || '{}') as Partial<RunbookFormMetadata>;
  const entry = metadata.reference ? await deps.runbooks.find(metadata.reference) : null;
  if (!entry || !metadata.reference) return { ok: false, errors: { [RUNBOOK_MESSAGE_BLOCK]: `The runbook ${metadata.reference ?? ''} no longer exists.` } };
  const args = entry.runbook.arguments;
  const state = view.state.values;
  const started = await deps.runbooks.start(metadata.reference, {
    starter: userId,
    values: readArgumentValues(args, state),
    message: state[RUNBOOK_MESSAGE_BLOCK]?.[RUNBOOK_VALUE]?.value?.trim() || null,
    trigger: { kind: 'manual' },
    source: 'slack',
    // A double submit of one form starts one run.
    sourceKey: `slack-view:${view.id}`,
    channelId: metadata.channel ?? null,
    // The plan version the form showed: a runbook or dependency changed since is not started under the starter's name.
    expectedHash: metadata.hash ?? '',
  });
  if (started.ok) return { ok: true, started };
  if (started.code === 'invalid_arguments' && started.errors) return { ok: false, errors: argumentErrors(args, started.errors, RUNBOOK_MESSAGE_BLOCK) };
  // Slack shows field errors as plain text.
  return {
    ok: false,
    errors: { [RUNBOOK_MESSAGE_BLOCK]: started.message.replace(/[*`]/g, '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&') },
  };
}

/** What the form turns into once started: the task's (a recipe) or the run's "started" view. */
async function startedModal(deps: RunbookFormDeps, started: Extract<RunbookStartOutcome, { ok: true }>, channel: string | null): Promise<types.ModalView> {
  if (started.kind === 'task') {
    const modal = createdModal(started.task, started.task.channelId, await deps.resolvedPolicy(started.task.target));
    // Fixed values stay hidden (•••).
    if (started.task.arguments && started.task.arguments.length > 0)
      modal.blocks.push(context(`Arguments: ${describeArguments(started.task.arguments)}`.slice(0, 2000)));
    return modal;
  }
  const run = started.run;
  const policy = deps.runPolicy(run);
  const where = (run.channelId ?? channel) ? ` Its card is in <#${run.channelId ?? channel}>.` : ' Follow it in the Home tab (Your recent runs).';
  const next = !started.created
    ? ' This form already started it.'
    : run.status === 'pending-review' && policy
      ? ` It waits for review in <#${policy.channel}>.`
      : run.runAfter
        ? ' It waits out its grace period first.'
        : ' It runs now.';
  return {
    type: 'modal',
    callback_id: `${RUNBOOK_MODAL_CALLBACK}_done`,
    title: { type: 'plain_text', text: 'Run started', emoji: true },
    close: { type: 'plain_text', text: 'Close', emoji: true },
    blocks: [section(`:white_check_mark: Started *${runRef(run.id)}* of \`${escapeSlackText(run.reference)}\`.${next}${where}`)],
  };
}

/** The form's submit (field errors, or the "started" view) and the Start buttons of App Home. */
export function registerRunbookForm(table: ListenerTable, deps: RunbookFormDeps): void {
  // Home's link buttons (a run's card, its review request) open in the browser; Slack still sends the click.
  table.action(new RegExp(`^${HOME_LINK_ACTION}`), async ({ ack }) => {
    await ack();
  });
  table.action<BlockButtonAction>(RUN_ACTION.start, async ({ ack, body, action }) => {
    await ack();
    const reference = String(action.value ?? '');
    try {
      await openRunbookForm(table.app, deps, body.trigger_id, reference, { reference, channel: null });
    } catch (error) {
      deps.log.error({ err: error, user: body.user.id, reference }, 'opening a runbook form from Home failed');
    }
  });
  table.view(RUNBOOK_MODAL_CALLBACK, async ({ ack, body, view }) => {
    try {
      const result = await submitRunbookForm(deps, body.user.id, view);
      if (!result.ok) {
        await ack({ response_action: 'errors', errors: result.errors });
        return;
      }
      const metadata = JSON.parse(view.private_metadata || '{}') as Partial<RunbookFormMetadata>;
      await ack({ response_action: 'update', view: await startedModal(deps, result.started, metadata.channel ?? null) });
    } catch (error) {
      deps.log.error({ err: error, user: body.user.id }, 'submitting a runbook form failed');
      await ack({ response_action: 'errors', errors: { [RUNBOOK_MESSAGE_BLOCK]: OUR_FAULT } });
    }
  });
}
