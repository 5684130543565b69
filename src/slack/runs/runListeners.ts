/**
 * The buttons and forms of runs in Slack: the review request's Approve (carrying the content
 * version it was drawn with) and Reject (a reason form); the card's Cancel, Kill and Run again;
 * an approval step's Approve and Reject; an input step's "Provide input" and its form. Each
 * acknowledges at once, asks RunService (which checks who may do what, and the state), answers
 * a refusal ephemerally (changing nothing), and leaves redrawing to the bus ('run-changed').
 * Buttons on App Home (RUN_ACTION ids too) answer at the top of Home instead.
 */
import type { BlockButtonAction, RespondArguments } from '@slack/bolt';
import type { ListenerTable } from '../listenerTable.js';
import { runAccessSubject, runRef } from '../../domain/run.js';
import type { Access } from '../../service/access.js';
import { RUN_CHANGED_SINCE_DRAWN, type RunService } from '../../service/runs.js';
import type { Logger } from '../../log.js';
import { argumentErrors, argBlock, readArgumentValues } from '../render/argumentFields.js';
import { REJECT_REASON_BLOCK, REJECT_REASON_INPUT, RUN_ACTION, RUN_INPUT_CALLBACK, RUN_REJECT_CALLBACK, RUN_STEP_REJECT_CALLBACK } from '../render/blocks.js';
import { rejectModal } from '../render/rejectModal.js';
import { readInputMetadata, renderInputModal } from '../render/runInputModal.js';
import { againSourceKey } from '../againKey.js';
import { OUR_FAULT } from '../answerWithin.js';

export interface RunListenerDeps {
  runs: RunService;
  /** Who may see a run: anyone else is answered as if it did not exist (a forged button value learns nothing). */
  access: Pick<Access, 'maySee'>;
  log: Logger;
  /** Answers to buttons clicked on App Home go to the top of Home. */
  home?: { publish(userId: string, notice: string): Promise<unknown> } | null;
}

type Reply = (message: RespondArguments) => Promise<unknown>;

const tell = (reply: Reply, text: string) => reply({ response_type: 'ephemeral', replace_original: false, text });

/** `<run id>` or `<run id>:<rest>` (Approve: the content version; a step's buttons: its qualified id). */
function parseValue(value: string): { runId: number; rest: string | null } | null {
  const colon = value.indexOf(':');
  const runId = Number(colon === -1 ? value : value.slice(0, colon));
  if (!Number.isSafeInteger(runId) || runId <= 0) return null;
  return { runId, rest: colon === -1 ? null : value.slice(colon + 1) };
}

export function registerRunListeners(table: ListenerTable, deps: RunListenerDeps): void {
  const { app } = table;
  const { runs, access, log, home } = deps;

  /**
   * May `userId` see this run (its creator, reviewers and viewers of its targets, admins, its
   * card channel's members, or someone one of its steps asks)? Asked before anything else, so a
   * button or form naming a run one may not see answers exactly as for a run that does not exist:
   * not who started it, not its review groups, not its state.
   */
  const visible = async (runId: number, userId: string): Promise<boolean> => {
    const run = await runs.get(runId);
    return run !== null && ((await access.maySee(userId, runAccessSubject(run))) || (await runs.isAskedOf(run, userId)));
  };
  const noSuchRun = (runId: number) => `There is no ${runRef(runId)}.`;

  const onButton = (
    actionId: string,
    handle: (runId: number, rest: string | null, userId: string, body: BlockButtonAction, reply: Reply) => Promise<unknown>,
  ) => {
    table.action<BlockButtonAction>(actionId, async ({ ack, body, action, respond }) => {
      await ack();
      const parsed = parseValue(String(action.value ?? ''));
      if (!parsed) return;
      const reply: Reply = body.view?.type === 'home' && home ? (message) => home.publish(body.user.id, message.text ?? '') : respond;
      try {
        if (!(await visible(parsed.runId, body.user.id))) return void (await tell(reply, noSuchRun(parsed.runId)));
        await handle(parsed.runId, parsed.rest, body.user.id, body, reply);
      } catch (error) {
        log.error({ err: error, runId: parsed.runId, user: body.user.id, action: actionId }, 'a run button failed');
        await tell(reply, OUR_FAULT);
      }
    });
  };

  onButton(RUN_ACTION.approve, async (runId, version, userId, _body, reply) => {
    // A button without a version (forged, or drawn by an older countersign) matches none and is refused like a stale one.
    const result = await runs.approve(runId, userId, version ?? '');
    if (result.ok) return;
    if (result.code === RUN_CHANGED_SINCE_DRAWN) return tell(reply, `:warning: ${result.message} Nothing was approved.`);
    return tell(reply, result.message);
  });

  onButton(RUN_ACTION.reject, async (runId, _rest, userId, body, reply) => {
    const allowed = await runs.checkMayReview(runId, userId);
    if (!allowed.ok) return tell(reply, allowed.message);
    await app.client.views.open({
      trigger_id: body.trigger_id,
      view: rejectModal({
        callbackId: RUN_REJECT_CALLBACK,
        metadata: { runId },
        title: `Reject ${runRef(runId)}`,
        explanation: `Rejecting ${runRef(runId)} means none of its steps will run. Whoever started it sees your reason.`,
      }),
    });
  });

  onButton(RUN_ACTION.cancel, async (runId, _rest, userId, _body, reply) => {
    const result = await runs.cancel(runId, userId);
    return tell(reply, result.ok ? `:heavy_multiplication_x: Cancelled ${runRef(runId)}; none of its steps will run.` : result.message);
  });

  onButton(RUN_ACTION.kill, async (runId, _rest, userId, _body, reply) => {
    const result = await runs.stop(runId, userId);
    if (!result.ok) return tell(reply, result.message);
    return tell(
      reply,
      result.stopping
        ? `:octagonal_sign: Stopping ${runRef(runId)}: running steps are killed, the rest will not start.`
        : `:heavy_multiplication_x: Cancelled ${runRef(runId)} before it started.`,
    );
  });

  onButton(RUN_ACTION.again, async (runId, drawnWith, userId, body, reply) => {
    const result = await runs.again(runId, userId, 'manual', againSourceKey('run', runId, body, drawnWith));
    if (!result.ok) return tell(reply, result.message);
    const next = result.run;
    const where = next.channelId && /^[CGD][A-Z0-9]+$/.test(next.channelId) ? ` Its card is in <#${next.channelId}>.` : '';
    if (!result.created)
      return tell(
        reply,
        `:information_source: This click already started as ${runRef(next.id)}; nothing new was started.${where} To run it once more, use Run again on the card as it shows now.`,
      );
    return tell(
      reply,
      next.status === 'pending-review'
        ? `:arrows_counterclockwise: Started ${runRef(next.id)} with the same content; it waits for review again.${where}`
        : `:arrows_counterclockwise: Started ${runRef(next.id)} with the same content.${where}`,
    );
  });

  onButton(RUN_ACTION.stepApprove, async (runId, stepId, userId, _body, reply) => {
    if (!stepId) return;
    const result = await runs.decideStep(runId, stepId, userId, 'approve');
    if (!result.ok) return tell(reply, result.message);
  });

  onButton(RUN_ACTION.stepReject, async (runId, stepId, userId, body, reply) => {
    if (!stepId) return;
    const run = await runs.get(runId);
    const planned = run ? runs.plannedStep(run, stepId) : null;
    if (!run || !planned) return tell(reply, `There is no step ${stepId} in ${runRef(runId)}.`);
    if (!(await runs.mayDecideStep(run, planned, userId))) {
      return tell(
        reply,
        userId === run.creator
          ? `You started ${runRef(runId)}, so you cannot decide its step ${stepId}: ask one of its approvers.`
          : `Only the approvers of ${stepId} may decide it.`,
      );
    }
    await app.client.views.open({
      trigger_id: body.trigger_id,
      view: rejectModal({
        callbackId: RUN_STEP_REJECT_CALLBACK,
        metadata: { runId, stepId },
        title: `Reject step`,
        explanation: `Rejecting step \`${stepId}\` fails it, and with it ${runRef(runId)} (unless the step continues on failure).`,
      }),
    });
  });

  onButton(RUN_ACTION.input, async (runId, stepId, userId, body, reply) => {
    if (!stepId) return;
    const run = await runs.get(runId);
    const planned = run ? runs.plannedStep(run, stepId) : null;
    if (!run || !planned || planned.kind !== 'input') return tell(reply, `There is no input step ${stepId} in ${runRef(runId)}.`);
    if (!(await runs.mayGiveInput(run, planned, userId))) {
      return tell(
        reply,
        planned.input.from
          ? `Only the people named by ${stepId} may fill it in.`
          : `Only <@${run.creator}>, who started ${runRef(runId)}, may fill in ${stepId}.`,
      );
    }
    const view = await runs.view(runId);
    const step = view?.steps.find((s) => s.stepId === stepId);
    if (step?.phase !== 'paused')
      return tell(reply, `${stepId} of ${runRef(runId)} is not waiting for input${step?.phase === 'succeeded' ? ' any more: it was filled in already' : ''}.`);
    await app.client.views.open({ trigger_id: body.trigger_id, view: renderInputModal(runId, run.reference, planned) });
  });

  /** A reject form's submission: the reason, then the decision; a refusal shows on the form. */
  const onRejectForm = (
    callbackId: string,
    decide: (metadata: Record<string, unknown>, userId: string, reason: string | null) => Promise<{ ok: true } | { ok: false; message: string }>,
  ) => {
    table.view(callbackId, async ({ ack, body, view }) => {
      const metadata = JSON.parse(view.private_metadata || '{}') as Record<string, unknown>;
      const reason = view.state.values[REJECT_REASON_BLOCK]?.[REJECT_REASON_INPUT]?.value?.trim() || null;
      try {
        const runId = Number(metadata.runId);
        if (!Number.isSafeInteger(runId) || !(await visible(runId, body.user.id)))
          return void (await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK]: noSuchRun(runId) } }));
        const result = await decide(metadata, body.user.id, reason);
        if (!result.ok) return void (await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK]: result.message } }));
        await ack();
      } catch (error) {
        log.error({ err: error, metadata, user: body.user.id, form: callbackId }, 'a run reject form failed');
        await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK]: OUR_FAULT } });
      }
    });
  };
  onRejectForm(RUN_REJECT_CALLBACK, (metadata, userId, reason) => runs.reject(Number(metadata.runId), userId, reason));
  onRejectForm(RUN_STEP_REJECT_CALLBACK, (metadata, userId, reason) =>
    runs.decideStep(Number(metadata.runId), String(metadata.stepId ?? ''), userId, 'reject', reason),
  );

  table.view(RUN_INPUT_CALLBACK, async ({ ack, body, view }) => {
    const metadata = readInputMetadata(view.private_metadata);
    if (!metadata) return void (await ack());
    // Errors that are about no field go on the form's first field (every input form has one).
    const firstBlock = view.blocks.find((block) => block.type === 'input')?.block_id ?? 'none';
    try {
      if (!(await visible(metadata.runId, body.user.id)))
        return void (await ack({ response_action: 'errors', errors: { [firstBlock]: noSuchRun(metadata.runId) } }));
      const run = await runs.get(metadata.runId);
      const planned = run ? runs.plannedStep(run, metadata.stepId) : null;
      if (!run || !planned || planned.kind !== 'input')
        return void (await ack({ response_action: 'errors', errors: { [firstBlock]: `${runRef(metadata.runId)} has no input step ${metadata.stepId}.` } }));
      const fields = planned.input.fields;
      const fallback = fields[0] ? argBlock(fields[0].name) : firstBlock;
      const values = readArgumentValues(fields, view.state.values as Parameters<typeof readArgumentValues>[1]);
      const result = await runs.submitInput(metadata.runId, metadata.stepId, body.user.id, values);
      if (result.ok) return void (await ack());
      if (result.code === 'invalid_arguments' && 'errors' in result && result.errors)
        return void (await ack({ response_action: 'errors', errors: argumentErrors(fields, result.errors, fallback) }));
      await ack({ response_action: 'errors', errors: { [fallback]: result.message } });
    } catch (error) {
      log.error({ err: error, ...metadata, user: body.user.id }, 'submitting a run step input failed');
      await ack({ response_action: 'errors', errors: { [firstBlock]: OUR_FAULT } });
    }
  });
}
