/**
 * The end of a run on several hosts, in its thread: how many hosts succeeded, failed or never
 * started, and for each failing host (the first ten) why, with its last lines. With 40 hosts
 * that is what a reader needs; the whole labelled log is attached beside it.
 */
import { formatDuration } from '../../domain/duration.js';
import { hostLabel } from '../../domain/plan.js';
import type { ExecutionStep } from '../../domain/task.js';
import { fitBlocks, section, type Block, type SlackMessage } from './blocks.js';
import { codeBlock, safeText } from './format.js';

const MAX_FAILING_SHOWN = 10;

export function renderHostSummary(taskId: number, steps: readonly ExecutionStep[], tails: ReadonlyMap<number, string>): SlackMessage {
  return fitBlocks((scale) => {
    const count = (phase: ExecutionStep['phase']) => steps.filter((s) => s.phase === phase).length;
    const failing = steps.filter((s) => s.phase === 'failed' || s.phase === 'killed');
    const parts = [`:white_check_mark: ${count('succeeded')} succeeded`];
    if (count('failed') > 0) parts.push(`:x: ${count('failed')} failed`);
    if (count('killed') > 0) parts.push(`:octagonal_sign: ${count('killed')} killed`);
    if (count('skipped') > 0) parts.push(`:fast_forward: ${count('skipped')} not started`);
    const blocks: Block[] = [section(`*#${taskId} on ${steps.length} hosts*: ${parts.join(' · ')}`)];
    for (const step of failing.slice(0, MAX_FAILING_SHOWN)) {
      const took = step.startedAt && step.finishedAt ? ` after ${formatDuration(step.finishedAt.getTime() - step.startedAt.getTime())}` : '';
      const why = step.failureMessage ? safeText(step.failureMessage, Math.round(300 * scale)) : step.phase;
      const tail = tails.get(step.id);
      const lines = [`*${safeText(hostLabel(step), 120)}*: ${why}${took}`];
      if (tail) lines.push(codeBlock(tail, Math.max(200, Math.round(900 * scale))));
      blocks.push(section(lines.join('\n')));
    }
    if (failing.length > MAX_FAILING_SHOWN) blocks.push(section(`… and ${failing.length - MAX_FAILING_SHOWN} more failing hosts: see the attached log.`));
    return { text: `#${taskId}: ${parts.join(', ').replace(/:[a-z_]+: /g, '')}`, blocks };
  });
}

/** The last `lines` lines of a host's output. */
export function lastLines(text: string, lines: number): string {
  const all = text.replace(/\n$/, '').split('\n');
  return all.slice(-lines).join('\n');
}
