/** A run's whole stored output as one text, each line labelled by host when the run had several. */
import { hostLabel } from '../domain/plan.js';
import type { Queryable } from '../store/db.js';
import { chunksFor } from '../store/output.js';

export async function executionLogText(db: Queryable, executionId: number): Promise<string> {
  const [chunks, steps] = await Promise.all([
    chunksFor(db, executionId),
    db('execution_steps').where({ execution_id: executionId }).select('id', 'host', 'port', 'user'),
  ]);
  if (steps.length <= 1) return chunks.map((chunk) => chunk.data).join('');
  const labels = new Map<number, string>(steps.map((step: { id: number; host: string; port: number; user: string }) => [step.id, hostLabel(step)]));
  const atLineStart = new Map<number | null, boolean>();
  let text = '';
  let lastStep: number | null | undefined;
  for (const chunk of chunks) {
    // Another host's output starts on a new line, even if the previous host's line was unfinished.
    if (lastStep !== undefined && chunk.step_id !== lastStep && !text.endsWith('\n')) {
      text += '\n';
      atLineStart.set(lastStep, true);
    }
    lastStep = chunk.step_id;
    const label = chunk.step_id === null ? 'countersign' : (labels.get(chunk.step_id) ?? 'unknown host');
    const start = atLineStart.get(chunk.step_id) ?? true;
    text += (start ? `[${label}] ` : '') + chunk.data.replace(/\n(?=.)/g, `\n[${label}] `);
    atLineStart.set(chunk.step_id, chunk.data.endsWith('\n'));
  }
  return text;
}
