/**
 * `/task list`: one line per task (id, status, target, author, when, the script's first line),
 * inside Slack's limits however many tasks there are: lines are packed into sections of at most
 * 3000 characters, at most MAX_SECTIONS of them, and what does not fit is counted.
 */
import type { ListScope } from '../../domain/command.js';
import { taskRef, type Task } from '../../domain/task.js';
import { context, section, type Block, type SlackMessage } from './blocks.js';
import { mention, safeText, STATUS_LABEL } from './format.js';
import { slackAgo } from './relative.js';

const SECTION_CHARS = 2900;
const MAX_SECTIONS = 8;
/** Block JSON stays well under Slack's per-message budget (see fitBlocks). */
const MAX_TOTAL_CHARS = 9000;

const TITLES: Readonly<Record<ListScope, string>> = {
  mine: 'Your recent tasks',
  pending: 'Tasks waiting for your review',
  running: 'Tasks queued or running now',
  all: 'Recent tasks',
};

const EMPTY: Readonly<Record<ListScope, string>> = {
  mine: 'You have no tasks yet. Start one with `/task` or `/task run &lt;target&gt; &lt;script&gt;`.',
  pending: 'Nothing waits for your review.',
  running: 'Nothing is queued or running.',
  all: 'No tasks yet.',
};

/** What a list line shows of a task (a summary with the script's head is enough). */
export type TaskLineFields = Pick<Task, 'id' | 'status' | 'target' | 'author' | 'createdAt' | 'startedAt' | 'finishedAt' | 'script'>;

const NONE_RECENT = 'None you may see among the most recent tasks. `/task show &lt;id&gt;` opens an older one; the API lists further back.';

export function taskLine(task: TaskLineFields): string {
  const firstLine = task.script.split('\n').find((line) => line.trim() !== '') ?? '';
  const when = slackAgo(task.finishedAt ?? task.startedAt ?? task.createdAt);
  return `*${taskRef(task.id)}* ${STATUS_LABEL[task.status]} · \`${safeText(task.target, 40)}\` · ${mention(task.author)} · ${when}\n        \`${safeText(firstLine, 80).replace(/`/g, "'")}\``;
}

export function renderTaskList(scope: ListScope, tasks: readonly TaskLineFields[], more: boolean): SlackMessage {
  const title = `*${TITLES[scope]}*`;
  // Nothing shown but more exist: the lookup stopped at its bound among tasks the user may not see.
  if (tasks.length === 0) return { text: TITLES[scope], blocks: [section(`${title}\n${more ? NONE_RECENT : EMPTY[scope]}`)] };
  const sections: string[] = [];
  let current = title;
  let total = 0;
  let shown = 0;
  for (const task of tasks) {
    const line = taskLine(task);
    if (total + line.length > MAX_TOTAL_CHARS) break;
    if (current.length + 1 + line.length > SECTION_CHARS) {
      if (sections.length + 1 >= MAX_SECTIONS) break;
      sections.push(current);
      current = line;
    } else {
      current += `\n${line}`;
    }
    total += line.length;
    shown++;
  }
  sections.push(current);
  const blocks: Block[] = sections.map(section);
  const hidden = tasks.length - shown;
  if (hidden > 0 || more)
    blocks.push(
      context(`${hidden > 0 ? `${hidden}${more ? '+' : ''} more not shown` : 'More exist'}: \`/task show &lt;id&gt;\` opens one; the API lists them all.`),
    );
  else blocks.push(context('`/task show &lt;id&gt;` opens one.'));
  return { text: `${TITLES[scope]}: ${shown} shown`, blocks };
}
