/**
 * `/task` subcommands other than `run` and `new`: list, show, logs, kill, targets. Each answers
 * ephemerally, inside Slack's limits, with what the user can do next. A task the user may not
 * see (src/domain/access.ts) gets the same answer as a task that does not exist, from any
 * channel, so ids cannot be probed.
 */
import type { Config } from '../config/config.js';
import { taskSubject } from '../domain/access.js';
import type { ListScope } from '../domain/command.js';
import type { ReviewPolicy } from '../domain/review.js';
import { taskRef } from '../domain/task.js';
import type { Db } from '../store/db.js';
import { hostLabel } from '../domain/plan.js';
import { tailChunks } from '../store/output.js';
import { getTask } from '../store/tasks.js';
import { loadTaskView } from '../store/taskView.js';
import type { Access } from '../service/access.js';
import { LogAssembler } from '../service/logs.js';
import type { TaskQueries } from '../service/taskQueries.js';
import type { TaskService } from '../service/taskService.js';
import type { SlackMessage } from './render/blocks.js';
import { LOG_TAIL_READ_CHARS, renderLogsAnswer } from './render/logsAnswer.js';
import { renderTargetsList, type TargetSummary } from './render/targetsList.js';
import { renderTaskCard } from './render/taskCard.js';
import { renderTaskList } from './render/taskList.js';

export interface CommandDeps {
  db: Db;
  config: Config;
  service: TaskService;
  queries: TaskQueries;
  /** Who may see which task. */
  access: Access;
  /** The task page's signed URL. */
  logUrl(taskId: number): string;
  /** The target's review policy with Slack user groups resolved into user lists. */
  resolvedPolicy(targetName: string): Promise<ReviewPolicy | null>;
}

export type Answer = SlackMessage | { text: string };

const LIST_LIMIT = 50;

export async function listAnswer(deps: CommandDeps, scope: ListScope, userId: string): Promise<Answer> {
  const { tasks, more } = await deps.queries.list(scope, userId, LIST_LIMIT);
  return renderTaskList(scope, tasks, more);
}

/** The task's view when it exists and `userId` may see it; null otherwise (the two look alike). */
async function visibleView(deps: CommandDeps, taskId: number, userId: string) {
  const view = await loadTaskView(deps.db, taskId);
  return view && (await deps.access.maySee(userId, taskSubject(view.task))) ? view : null;
}

export async function showAnswer(deps: CommandDeps, taskId: number, userId: string): Promise<Answer> {
  const view = await visibleView(deps, taskId, userId);
  if (!view) return { text: `:warning: There is no task ${taskRef(taskId)}. \`/task list all\` shows recent ones.` };
  const target = deps.config.targets.get(view.task.target);
  return renderTaskCard(view, {
    targetDescription: target?.description ?? null,
    policy: await deps.resolvedPolicy(view.task.target),
    logUrl: deps.logUrl(taskId),
  });
}

/** The end of the latest run's output: only the tail it shows is read, however long the log. */
export async function logsAnswer(deps: CommandDeps, taskId: number, userId: string): Promise<Answer> {
  const view = await visibleView(deps, taskId, userId);
  if (!view) return { text: `:warning: There is no task ${taskRef(taskId)}.` };
  const { execution } = view;
  if (!execution) return renderLogsAnswer(view.task, '', null);
  const { chunks, more } = await tailChunks(deps.db, execution.id, LOG_TAIL_READ_CHARS);
  const log = new LogAssembler(new Map(execution.steps.map((step) => [step.id, hostLabel(step)]))).add(chunks);
  return renderLogsAnswer(view.task, log, deps.logUrl(taskId), { partial: more, totalBytes: execution.outputBytes });
}

/** May `userId` see the task? False for a task that does not exist, too: the two look alike. */
export async function mayReadTask(deps: Pick<CommandDeps, 'db' | 'access'>, taskId: number, userId: string): Promise<boolean> {
  const task = await getTask(deps.db, taskId);
  return task !== null && task !== undefined && (await deps.access.maySee(userId, taskSubject(task)));
}

export async function killAnswer(deps: CommandDeps, taskId: number, userId: string): Promise<Answer> {
  // Who may kill may see; anybody else learns nothing, not even that the task exists.
  if (!(await mayReadTask(deps, taskId, userId))) return { text: `:warning: There is no task ${taskRef(taskId)}.` };
  const result = await deps.service.kill(taskId, userId);
  if (!result.ok) return { text: `:warning: ${result.message}` };
  return { text: result.stopping ? `:octagonal_sign: Stopping ${taskRef(taskId)}…` : `:octagonal_sign: Killed ${taskRef(taskId)} before it started.` };
}

export async function targetsAnswer(deps: CommandDeps): Promise<Answer> {
  const summaries: TargetSummary[] = [];
  for (const target of deps.config.targets.values()) {
    summaries.push({
      name: target.name,
      description: target.description,
      type: target.type,
      hosts: target.hosts,
      rollout: target.rollout
        ? `${typeof target.rollout.batch === 'number' ? target.rollout.batch : `${target.rollout.batch.percent}%`} at a time${target.rollout.stopOnFailure ? ', stops on failure' : ''}`
        : null,
      review: await deps.resolvedPolicy(target.name),
      usergroups: new Map(
        (target.review?.groups ?? []).flatMap((group) => {
          const usergroup = (group as { usergroup?: string | null }).usergroup;
          return usergroup ? [[group.name, usergroup] as [string, string]] : [];
        }),
      ),
    });
  }
  return renderTargetsList(summaries);
}
