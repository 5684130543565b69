/** `/task logs <id>`: the last lines of the stored output, and where the whole log is. */
import { taskRef, type Task } from '../../domain/task.js';
import { context, section, type Block, type SlackMessage } from './blocks.js';
import { codeBlock, STATUS_LABEL } from './format.js';

const TAIL_LINES = 40;
const TAIL_CHARS = 2800;
/** What a caller reads of a log to show its tail: more than the tail, so a partial first line is dropped. */
export const LOG_TAIL_READ_CHARS = TAIL_CHARS * 2;

/** The last `TAIL_LINES` lines of `log`, at most TAIL_CHARS characters, whole lines where possible. */
export function logTail(log: string): { text: string; cut: boolean } {
  const lines = log.replace(/\n$/, '').split('\n');
  let tail = lines.slice(-TAIL_LINES).join('\n');
  let cut = lines.length > TAIL_LINES;
  if (tail.length > TAIL_CHARS) {
    tail = tail.slice(-TAIL_CHARS);
    const newline = tail.indexOf('\n');
    if (newline >= 0 && newline < tail.length - 1) tail = tail.slice(newline + 1);
    cut = true;
  }
  return { text: tail, cut };
}

/**
 * `log` is the whole log, or its end (`partial`: earlier output was not read); `totalBytes` is
 * the size of the whole log when known (else the size of `log`).
 */
export function renderLogsAnswer(task: Task, log: string, pageUrl: string | null, whole: { partial?: boolean; totalBytes?: number } = {}): SlackMessage {
  const ref = taskRef(task.id);
  const blocks: Block[] = [section(`*${ref}* on \`${task.target}\` · ${STATUS_LABEL[task.status]}`)];
  if (log === '') {
    blocks.push(section(task.startedAt ? '_No output stored._' : '_It has not run yet._'));
  } else {
    const tail = logTail(log);
    const text = whole.partial && !tail.cut ? dropFirstLine(tail.text) : tail.text;
    // codeBlock keeps the head of what it is given; the tail was cut here already.
    blocks.push(section(codeBlock(text, 2990)));
    const bytes = Math.max(whole.totalBytes ?? 0, Buffer.byteLength(log, 'utf8'));
    if (tail.cut || whole.partial) blocks.push(context(`The last lines of ${bytes.toLocaleString('en')} bytes of output.`));
  }
  if (pageUrl) blocks.push(context(`<${pageUrl}|The whole log, live while it runs>`));
  return { text: `Output of ${ref}`, blocks };
}

/** Without its first line, which may have begun before what was read (kept when it is all there is). */
function dropFirstLine(text: string): string {
  const newline = text.indexOf('\n');
  return newline >= 0 && newline < text.length - 1 ? text.slice(newline + 1) : text;
}
