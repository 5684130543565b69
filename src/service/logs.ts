/**
 * A run's stored output as one text, each line labelled by host when the run had several. The
 * assembler is incremental, so a follower (the API's `follow`, the log page) can feed it the
 * chunks that arrived since it last looked and get exactly the text that was added.
 *
 * Reads are bounded: the log's layout (its size, and where each chunk's text starts in it) is
 * computed by Postgres without sending the output (logLayout in src/store/output.ts), so a byte
 * range or a tail reads only the chunks that hold it, in batches of at most READ_BUDGET_BYTES;
 * the whole log is streamed batch by batch, never held in memory.
 */
import { hostLabel } from '../domain/plan.js';
import type { Queryable } from '../store/db.js';
import { chunksFor, chunksFrom, logLayout, type ChunkPosition, type LogLayout, type StoredChunk } from '../store/output.js';

/** Text read from the database per batch when a log is read or streamed. */
export const READ_BUDGET_BYTES = 256 * 1024;

export class LogAssembler {
  private readonly atLineStart = new Map<number | null, boolean>();
  private lastStep: number | null | undefined;
  private endsWithNewline = true;
  /** Id of the last chunk taken in; follow from here. */
  lastChunkId = 0;

  /**
   * `labels` maps step ids to host labels; with one host (or none) lines are not labelled.
   * `resume`: carry on from the middle of the log, just before chunk `at` (see logLayout).
   */
  constructor(
    private readonly labels: ReadonlyMap<number, string>,
    resume?: ChunkPosition,
  ) {
    if (resume) {
      this.lastChunkId = resume.id - 1;
      if (resume.previous !== 'first') {
        // Only the previous chunk's step can be mid-line: every other step's line was ended when
        // the next step's text began.
        this.lastStep = resume.previous.stepId;
        this.endsWithNewline = resume.previous.endsLine;
        this.atLineStart.set(resume.previous.stepId, resume.previous.endsLine);
      }
    }
  }

  /** The text these chunks add, in order. Empty chunks add nothing (not even a label). */
  add(chunks: readonly StoredChunk[]): string {
    let text = '';
    for (const chunk of chunks) {
      this.lastChunkId = Math.max(this.lastChunkId, chunk.id);
      if (chunk.data === '') continue;
      text += this.labels.size <= 1 ? chunk.data : this.labelled(chunk);
      this.endsWithNewline = chunk.data.endsWith('\n');
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

/** Each step's `[label] ` prefix length in bytes, as logLayout wants it; null when lines are not labelled. */
export function labelBytes(labels: ReadonlyMap<number, string>): Record<string, number> | null {
  if (labels.size <= 1) return null;
  const bytes = (label: string) => Buffer.byteLength(`[${label}] `, 'utf8');
  const out: Record<string, number> = { system: bytes('countersign'), unknown: bytes('unknown host') };
  for (const [stepId, label] of labels) out[String(stepId)] = bytes(label);
  return out;
}

/** A run's log, read in bounded pieces. */
export class RunLog {
  private constructor(
    private readonly db: Queryable,
    readonly executionId: number,
    private readonly labels: ReadonlyMap<number, string>,
  ) {}

  static async open(db: Queryable, executionId: number): Promise<RunLog> {
    return new RunLog(db, executionId, await hostLabelsOf(db, executionId));
  }

  /** The log's size, and the chunk holding byte `from` (or the first of the last `suffix` bytes), up to chunk `untilId`. */
  layout(where: { from?: number; suffix?: number; untilId?: number }): Promise<LogLayout> {
    return logLayout(this.db, this.executionId, { labelBytes: labelBytes(this.labels), ...where });
  }

  /** An assembler that carries on at `at`, as one that had read everything before it would. */
  assemblerAt(at: ChunkPosition | null): LogAssembler {
    return new LogAssembler(this.labels, at ?? undefined);
  }

  /**
   * Bytes [from, to) of the log, starting at `at` (the chunk holding `from`, from layout()), in
   * batches of about READ_BUDGET_BYTES. `untilId`: stop after this chunk. Ends early when the
   * log has fewer bytes.
   */
  async *bytes(at: ChunkPosition, from: number, to: number, untilId?: number): AsyncGenerator<Buffer> {
    const assembler = this.assemblerAt(at);
    let position = at.start;
    let nextId = at.id;
    for (let more = true; more && position < to; ) {
      const read = await chunksFrom(this.db, this.executionId, nextId, { budgetBytes: READ_BUDGET_BYTES, ...(untilId !== undefined ? { untilId } : {}) });
      if (read.chunks.length === 0) return;
      more = read.more;
      nextId = (read.chunks[read.chunks.length - 1] as StoredChunk).id + 1;
      const text = Buffer.from(assembler.add(read.chunks), 'utf8');
      const low = Math.max(0, from - position);
      const high = Math.min(text.length, to - position);
      if (high > low) yield text.subarray(low, high);
      position += text.length;
    }
  }

  /**
   * The last `bytes` of the log (up to chunk `untilId`, else all of it), starting after the first
   * line break in them so that no line or character is shown cut; what it leaves out; and where
   * the log goes on after it. Reads the chunks holding those bytes only.
   */
  async tail(bytes: number, untilId?: number): Promise<{ text: string; omittedBytes: number; lastId: number; next: ChunkPosition }> {
    const where = untilId !== undefined ? { suffix: bytes, untilId } : { suffix: bytes };
    const layout = await this.layout(where);
    if (!layout.at) return { text: '', omittedBytes: 0, lastId: layout.lastId, next: layout.end };
    const from = Math.max(0, layout.size - bytes);
    const parts: Buffer[] = [];
    for await (const part of this.bytes(layout.at, from, layout.size, layout.lastId)) parts.push(part);
    let shown = Buffer.concat(parts);
    if (from > 0) {
      const newline = shown.indexOf(10);
      if (newline !== -1 && newline < shown.length - 1) shown = shown.subarray(newline + 1);
    }
    return { text: shown.toString('utf8'), omittedBytes: layout.size - shown.length, lastId: layout.lastId, next: layout.end };
  }
}

/**
 * The whole log as one string. Only for callers that need it whole and bounded it themselves
 * (the stored log is capped by runner.maxOutput); readers of a range or a tail use RunLog.
 */
export async function executionLogText(db: Queryable, executionId: number): Promise<string> {
  const [chunks, labels] = await Promise.all([chunksFor(db, executionId), hostLabelsOf(db, executionId)]);
  return new LogAssembler(labels).add(chunks);
}

/** Chunks of a run stored after `afterId`, oldest first: at most `limit`, and about READ_BUDGET_BYTES of text; `more` when there are others. */
export function chunksAfter(db: Queryable, executionId: number, afterId: number, limit = 500): Promise<{ chunks: StoredChunk[]; more: boolean }> {
  return chunksFrom(db, executionId, afterId + 1, { budgetBytes: READ_BUDGET_BYTES, limit });
}
