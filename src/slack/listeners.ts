/**
 * Bolt listeners: the Slack surface of the use cases. Each acknowledges within Slack's 3 s,
 * answers refusals ephemerally (changing nothing), and leaves redrawing cards to the bus.
 */
import type { BlockButtonAction, RespondArguments } from '@slack/bolt';
import { HELP_TEXT, parseTaskCommand, RUN_USAGE } from '../domain/command.js';
import { taskRef, type Task } from '../domain/task.js';
import type { Logger } from '../log.js';
import type { TaskService } from '../service/taskService.js';
import type { RecipeService } from '../service/recipes.js';
import { handleRecipeCommand } from './recipeForm.js';
import { handleRunbookCommand } from './runbookCommands.js';
import { answerWithin, OUR_FAULT, settle, withinBudget } from './answerWithin.js';
import { registerRunbookForm, type RunbookFormDeps } from './runbookForm.js';
import { getTask } from '../store/tasks.js';
import { killAnswer, listAnswer, mayReadTask, logsAnswer, showAnswer, targetsAnswer, type CommandDeps } from './commands.js';
import type { HomePublisher } from './home.js';
import { ACTION, REJECT_MODAL_CALLBACK, REJECT_REASON_BLOCK, REJECT_REASON_INPUT, TASK_MODAL_CALLBACK } from './render/blocks.js';
import { renderRejectModal } from './render/rejectModal.js';
import { createdModal, openTaskForm, submitTaskForm } from './taskForm.js';
import { OUR_FAILURE } from './messageSync.js';
import type { TaskMessages } from './taskMessages.js';
import type { ScheduleSlack } from './schedules.js';
import type { RunService } from '../service/runs.js';
import { registerRunListeners } from './runs/runListeners.js';
import { againSourceKey } from './againKey.js';
import type { ListenerTable } from './listenerTable.js';

export interface ListenerDeps {
  service: TaskService;
  messages: TaskMessages;
  log: Logger;
  commands: CommandDeps;
  home: HomePublisher | null;
  /** `/task recipe ...` (issue 4; an alias of `/task runbook ...` in the recipe format); absent: not offered. */
  recipes?: RecipeService | null;
  /** `/task start <reference>`, `/task runbook ...` and Home's Start buttons (issue 11); absent: not offered. */
  runbooks?: RunbookFormDeps | null;
  /** `/task schedule ...` (issue 4); absent: schedules are not offered. */
  schedules?: ScheduleSlack | null;
  /** Runs' buttons and forms (issue 11): review, Cancel / Kill / Run again, approval and input steps. */
  runs?: RunService | null;
}

export function registerListeners(table: ListenerTable, deps: ListenerDeps): void {
  const { app } = table;
  const { service, messages, log } = deps;

  const { commands, home } = deps;
  const formDeps = { config: commands.config, service, log, resolvedPolicy: commands.resolvedPolicy };
  const recipeDeps = deps.recipes ? { recipes: deps.recipes, log } : null;
  if (deps.runbooks) registerRunbookForm(table, deps.runbooks);
  if (deps.runs) registerRunListeners(table, { runs: deps.runs, access: commands.access, log, home });

  table.command('/task', async ({ command, ack, respond }) => {
    if (deps.runbooks && (await handleRunbookCommand(app, deps.runbooks, command, ack, respond))) return;
    if (recipeDeps && (await handleRecipeCommand(app, recipeDeps, command, ack, respond))) return;
    const parsed = parseTaskCommand(command.text);
    if (!parsed.ok) {
      await ack({ response_type: 'ephemeral', text: `:warning: ${parsed.error}\nUsage: ${RUN_USAGE} · \`/task help\`` });
      return;
    }
    const user = command.user_id;
    const parsedCommand = parsed.command;
    switch (parsedCommand.kind) {
      case 'help':
        await ack({ response_type: 'ephemeral', text: HELP_TEXT });
        return;
      case 'new':
        // The trigger is good for 3 s: ack at once and open the form's loading view right away.
        await ack();
        try {
          await openTaskForm(app, formDeps, command.trigger_id, user, { channel: command.channel_id, resubmitOf: null });
        } catch (error) {
          log.error({ err: error, user }, 'opening the task form failed');
          await tell(respond, `${OUR_FAULT} Meanwhile, \`/task run\` works without the form.`);
        }
        return;
      case 'list':
        return answerWithin(ack, respond, listAnswer(commands, parsedCommand.scope, user), log);
      case 'show':
        return answerWithin(ack, respond, showAnswer(commands, parsedCommand.taskId, user), log);
      case 'logs':
        return answerWithin(ack, respond, logsAnswer(commands, parsedCommand.taskId, user), log);
      case 'kill':
        return answerWithin(ack, respond, killAnswer(commands, parsedCommand.taskId, user), log);
      case 'targets':
        return answerWithin(ack, respond, targetsAnswer(commands), log);
      case 'schedule':
        if (!deps.schedules) return void (await ack({ response_type: 'ephemeral', text: ':warning: Schedules are not available here.' }));
        return deps.schedules.command(parsedCommand.schedule, command, ack, respond);
      case 'run':
        break;
    }
    const { target, message, type, script, delayMs } = parsedCommand;
    const creating = service.create({
      author: command.user_id,
      target,
      message,
      type,
      script,
      source: 'slack',
      sourceKey: `slack:${command.trigger_id}`,
      channelId: command.channel_id,
      delayMs,
    });
    const early = await withinBudget(creating);
    if (early === 'late') await ack({ response_type: 'ephemeral', text: ':hourglass: Creating your task…' });
    const settled = early === 'late' ? await settle(creating) : early;

    let text: string;
    let newTask: Task | null = null;
    if (!settled.ok) {
      log.error({ err: settled.error, user: command.user_id }, 'creating a task failed');
      text = `:x: ${OUR_FAULT}`;
    } else if (!settled.value.ok) {
      text = `:warning: ${settled.value.message}`;
    } else {
      text = createdText(settled.value.task, settled.value.created, service);
      if (settled.value.created) newTask = settled.value.task;
    }
    if (early === 'late') await respond({ response_type: 'ephemeral', text });
    else await ack({ response_type: 'ephemeral', text });

    // The card may wait minutes for its channel's turn: the author hears of a refusal when its post is tried.
    if (newTask) tellIfMessagesFailed(messages, service, respond, newTask, log);
  });

  const onButton = (
    actionId: string,
    handle: (taskId: number, userId: string, body: BlockButtonAction, respond: Reply, drawnWith: string | null) => Promise<void>,
  ) => {
    table.action<BlockButtonAction>(actionId, async ({ ack, body, action, respond }) => {
      await ack();
      // `<task id>` or `<task id>:<what the button was drawn with>` (Approve: the content version).
      const value = String(action.value ?? '');
      const colon = value.indexOf(':');
      const taskId = Number(colon === -1 ? value : value.slice(0, colon));
      const drawnWith = colon === -1 ? null : value.slice(colon + 1);
      if (!Number.isSafeInteger(taskId)) return;
      // Buttons on the Home tab have no response_url: answers go to the top of Home instead.
      const fromHome = body.view?.type === 'home';
      const answer: Reply = fromHome && home ? (message) => home.publish(body.user.id, message.text ?? '') : respond;
      try {
        // A button (or a forged value) naming a task the user may not see: the answer a task that
        // does not exist gets, naming nobody (no author, no review groups).
        if (!(await mayReadTask(commands, taskId, body.user.id))) return void (await tell(answer, `:warning: There is no task ${taskRef(taskId)}.`));
        await handle(taskId, body.user.id, body, answer, drawnWith);
      } catch (error) {
        log.error({ err: error, taskId, user: body.user.id, action: actionId }, 'a button failed');
        await tell(answer, OUR_FAULT);
      }
    });
  };

  onButton(ACTION.approve, async (taskId, userId, _body, respond, drawnWith) => {
    // The button names the full content version it was drawn with; one without (forged, or
    // drawn by an older countersign) matches no version and is refused like a stale one.
    const result = await service.approve(taskId, userId, drawnWith ?? '');
    if (!result.ok) await tell(respond, result.message);
  });

  onButton(ACTION.reject, async (taskId, userId, body, respond) => {
    const allowed = await service.checkMayReview(taskId, userId);
    if (!allowed.ok) return tell(respond, allowed.message);
    await app.client.views.open({ trigger_id: body.trigger_id, view: renderRejectModal(taskId) });
  });

  onButton(ACTION.run, async (taskId, userId, _body, respond) => {
    const result = await service.run(taskId, userId);
    if (!result.ok) await tell(respond, result.message);
  });

  onButton(ACTION.kill, async (taskId, userId, _body, respond) => {
    const result = await service.kill(taskId, userId);
    if (!result.ok) await tell(respond, result.message);
    else if (result.stopping) await tell(respond, `:octagonal_sign: Stopping ${taskRef(taskId)}…`);
  });

  onButton(ACTION.cancel, async (taskId, userId, _body, respond) => {
    const result = await service.cancel(taskId, userId);
    if (!result.ok) await tell(respond, result.message);
    else await tell(respond, `:heavy_multiplication_x: Cancelled ${taskRef(taskId)}; it will not run.`);
  });

  onButton(ACTION.again, async (taskId, userId, body, respond, drawnWith) => {
    const result = await service.again(taskId, userId, 'slack', againSourceKey('task', taskId, body, drawnWith));
    if (!result.ok) return tell(respond, result.message);
    const next = result.task;
    if (!result.created)
      return tell(
        respond,
        `:information_source: This click already started as ${taskRef(next.id)}; nothing new was asked for. To run it once more, use Run again on the card as it shows now.`,
      );
    await tell(
      respond,
      next.status === 'pending-review'
        ? `:arrows_counterclockwise: Asked for ${taskRef(next.id)} with the same script; it waits for review again.`
        : `:arrows_counterclockwise: Started ${taskRef(next.id)} with the same script.`,
    );
  });

  onButton(ACTION.resubmit, async (taskId, userId, body, respond) => {
    const task = await getTask(commands.db, taskId);
    if (!task) return tell(respond, `There is no task ${taskRef(taskId)}.`);
    if (task.author !== userId) return tell(respond, `Only the author of ${taskRef(taskId)} (<@${task.author}>) can resubmit it.`);
    if (task.status !== 'rejected') return tell(respond, `${taskRef(taskId)} was not rejected, so there is nothing to resubmit.`);
    await openTaskForm(
      app,
      formDeps,
      body.trigger_id,
      userId,
      { channel: task.channelId, resubmitOf: taskId },
      { target: task.target, script: task.script, message: task.message, type: task.type },
    );
  });

  table.action<BlockButtonAction>(ACTION.homeNew, async ({ ack, body }) => {
    await ack();
    try {
      await openTaskForm(app, formDeps, body.trigger_id, body.user.id, { channel: null, resubmitOf: null });
    } catch (error) {
      log.error({ err: error, user: body.user.id }, 'opening the task form from Home failed');
    }
  });

  table.view(TASK_MODAL_CALLBACK, async ({ ack, body, view }) => {
    try {
      const result = await submitTaskForm(formDeps, body.user.id, view);
      if (!result.ok) {
        await ack({ response_action: 'errors', errors: result.errors });
        return;
      }
      const metadata = JSON.parse(view.private_metadata || '{}') as { channel?: string | null; resubmitOf?: number | null };
      await ack({
        response_action: 'update',
        view: createdModal(result.task, result.task.channelId ?? metadata.channel ?? null, await commands.resolvedPolicy(result.task.target)),
      });
    } catch (error) {
      log.error({ err: error, user: body.user.id }, 'submitting the task form failed');
      await ack({ response_action: 'errors', errors: { script: OUR_FAULT } });
    }
  });

  table.event('app_home_opened', async ({ event }) => {
    if (!home || event.tab !== 'home') return;
    try {
      await home.opened(event.user);
    } catch (error) {
      log.error({ err: error, user: event.user }, 'drawing App Home failed');
    }
  });

  table.view(REJECT_MODAL_CALLBACK, async ({ ack, body, view }) => {
    const taskId = Number((JSON.parse(view.private_metadata || '{}') as { taskId?: unknown }).taskId);
    const reason = view.state.values[REJECT_REASON_BLOCK]?.[REJECT_REASON_INPUT]?.value?.trim() || null;
    try {
      const result = await service.reject(taskId, body.user.id, reason);
      if (!result.ok) {
        await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK]: result.message } });
        return;
      }
      await ack();
    } catch (error) {
      log.error({ err: error, taskId, user: body.user.id }, 'rejecting a task failed');
      await ack({ response_action: 'errors', errors: { [REJECT_REASON_BLOCK]: OUR_FAULT } });
    }
  });
}

/** Slack accepts a response_url's answers for 30 minutes: a card whose turn comes later is not reported on. */
const RESPONSE_URL_LIFETIME_MS = 30 * 60_000;

/**
 * Tells the author when the new task's card or review request could not be posted (e.g. not
 * invited), and what to do: from the report of the redraw that first tried each post (creating
 * the task already asked for it; in a burst it comes at the channel's turn). A redraw that throws
 * reports nothing: its retry does.
 */
function tellIfMessagesFailed(messages: TaskMessages, service: TaskService, respond: Reply, task: Task, log: Logger): void {
  // The listener holds these, not the task: it may wait for the channel's turn a long while.
  const taskId = task.id;
  const reviewChannel = service.policyOf(task)?.channel;
  let cardTried = false;
  let reviewTried = false;
  messages.follow(
    taskId,
    (report) => {
      if (!cardTried && !report.cardWaiting) {
        cardTried = true;
        if (refusal(report.cardError)) {
          void tell(
            respond,
            `:warning: ${taskRef(taskId)} was created, but I could not post its card here (\`${report.cardError}\`). Invite me to this channel with \`/invite @countersign\`; the card will follow.`,
          ).catch((error: unknown) => log.warn({ err: error, taskId }, 'could not tell the author that the card failed'));
        }
      }
      if (!reviewTried && !report.reviewWaiting) {
        reviewTried = true;
        if (refusal(report.reviewError) && reviewChannel) {
          void tell(
            respond,
            `:warning: ${taskRef(taskId)} waits for review, but I could not post the review request in <#${reviewChannel}> (\`${report.reviewError}\`). Ask a reviewer to invite me there; the request will follow.`,
          ).catch((error: unknown) => log.warn({ err: error, taskId }, 'could not tell the author that the review request failed'));
        }
      }
      return cardTried && reviewTried;
    },
    RESPONSE_URL_LIFETIME_MS,
  );
}

/**
 * Slack's refusals (not_in_channel, channel_not_found, ...) are the author's to act on; our own
 * failures (a dropped connection, a bug) are logged and retried, and "invite me" would mislead.
 */
const refusal = (code: string | null) => code !== null && code !== 'ratelimited' && code !== OUR_FAILURE;

function createdText(task: Task, created: boolean, service: TaskService): string {
  const ref = taskRef(task.id);
  if (!created) return `:information_source: This command already created *${ref}* (now ${task.status}); nothing new was made.`;
  const policy = service.policyOf(task);
  if (task.status === 'pending-review' && policy) {
    const groups = policy.groups.map((group) => `*${group.name}*`).join(', ');
    return `:white_check_mark: Created *${ref}* on \`${task.target}\`. It waits for review by ${groups} in <#${policy.channel}>; you can run it once approved.`;
  }
  return `:white_check_mark: Created *${ref}* on \`${task.target}\`. This target has no review, so it runs now; output goes to the card's thread.`;
}

/** An ephemeral answer to the user who clicked: only they see it. */
/** Where a listener's answer goes: the response_url, or for Home, the top of the Home tab. */
type Reply = (message: RespondArguments) => Promise<unknown>;

async function tell(respond: Reply, text: string): Promise<void> {
  await respond({ response_type: 'ephemeral', replace_original: false, text });
}
