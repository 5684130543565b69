/**
 * A run's stored output as one text, each line labelled by host when the run had several. The
 * assembler is incremental, so a follower (the API's `follow`, the log page) can feed it the
 * chunks that arrived since it last looked and get exactly the text that was added.
 */
import { hostLabel } from '../domain/plan.js';
import type { Queryable } from '../store/db.js';
import { chunksFor, type StoredChunk } from '../store/output.js';

export class LogAssembler {
  private readonly atLineStart = new Map<number | null, boolean>();
  private lastStep: number | null | undefined;
  private endsWithNewline = true;
  /** Id of the last chunk taken in; follow from here. */
  lastChunkId = 0;

  /** `labels` maps step ids to host labels; with one host (or none) lines are not labelled. */
  constructor(private readonly labels: ReadonlyMap<number, string>) {}

  /** The text these chunks add, in order. */
  add(chunks: readonly StoredChunk[]): string {
    let text = '';
    for (const chunk of chunks) {
      this.lastChunkId = Math.max(this.lastChunkId, chunk.id);
      text += this.labels.size <= 1 ? chunk.data : this.labelled(chunk);
      if (chunk.data !== '') this.endsWithNewline = chunk.data.endsWith('\n');
    }
    return text;
  }

  private labelled(chunk: StoredChunk): string {
    let text = '';
    // Another host's output starts on a new line, even if the previous host's line was unfinished.
    if (this.lastStep !== undefined && chunk.step_id !== this.lastStep && !this.endsWithNewline) {
      text += '\n';
      this.atLineStart.set(this.lastStep, true);
    }
    this.lastStep = chunk.step_id;
    const label = chunk.step_id === null ? 'countersign' : (this.labels.get(chunk.step_id) ?? 'unknown host');
    const start = this.atLineStart.get(chunk.step_id) ?? true;
    text += (start ? `[${label}] ` : '') + chunk.data.replace(/\n(?=.)/g, `\n[${label}] `);
    this.atLineStart.set(chunk.step_id, chunk.data.endsWith('\n'));
    return text;
  }
}

export async function hostLabelsOf(db: Queryable, executionId: number): Promise<Map<number, string>> {
  const steps = await db('execution_steps').where({ execution_id: executionId }).select('id', 'host', 'port', 'user');
  return new Map(steps.map((step: { id: number; host: string; port: number; user: string }) => [step.id, hostLabel(step)]));
}

export async function executionLogText(db: Queryable, executionId: number): Promise<string> {
  const [chunks, labels] = await Promise.all([chunksFor(db, executionId), hostLabelsOf(db, executionId)]);
  return new LogAssembler(labels).add(chunks);
}

/** Chunks of a run stored after `afterId`, oldest first, at most `limit`. */
export async function chunksAfter(db: Queryable, executionId: number, afterId: number, limit = 500): Promise<StoredChunk[]> {
  return db('output_chunks')
    .where({ execution_id: executionId })
    .where('id', '>', afterId)
    .orderBy('id')
    .limit(limit)
    .select<StoredChunk[]>('id', 'step_id', 'stream', 'data');
}
