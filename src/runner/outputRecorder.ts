/**
 * Buffers a run's output and writes it to Postgres in batches: at most every `flushMs`, or
 * sooner when `maxBufferBytes` is waiting. Consecutive text from one step and stream becomes
 * one row. Postgres text cannot hold NUL, so NUL bytes are replaced.
 */
import type { OutputStream } from '../domain/task.js';
import type { Queryable } from '../store/db.js';
import { addOutputBytes } from '../store/executions.js';
import { insertChunks, type OutputChunk } from '../store/output.js';

export interface OutputRecorderOptions {
  flushMs: number;
  maxBufferBytes: number;
  onError(error: unknown): void;
}

export class OutputRecorder {
  private pending: OutputChunk[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private lastLineSeen: string | null = null;
  private partialLine = '';
  totalBytes = 0;

  constructor(
    private readonly db: Queryable,
    private readonly executionId: number,
    private readonly options: OutputRecorderOptions,
  ) {}

  write(stepId: number | null, stream: OutputStream, rawText: string): void {
    const text = rawText.includes('\u0000') ? rawText.replace(/\u0000/g, '\uFFFD') : rawText;
    if (text === '') return;
    const bytes = Buffer.byteLength(text, 'utf8');
    this.totalBytes += bytes;
    this.pendingBytes += bytes;
    if (stream !== 'system') this.trackLastLine(text);
    const last = this.pending[this.pending.length - 1];
    if (last && last.stepId === stepId && last.stream === stream) last.data += text;
    else this.pending.push({ executionId: this.executionId, stepId, stream, data: text });
    if (this.pendingBytes >= this.options.maxBufferBytes) void this.flush();
    else if (!this.timer) this.timer = setTimeout(() => void this.flush(), this.options.flushMs);
  }

  /** The last non-empty line of stdout/stderr, for the task's result summary. */
  get lastLine(): string | null {
    const partial = this.partialLine.trim();
    return partial !== '' ? partial : this.lastLineSeen;
  }

  /** Writes what is buffered; flushes are chained so rows keep their order. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    if (batch.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      try {
        await insertChunks(this.db, batch);
        await addOutputBytes(this.db, this.executionId, bytes);
      } catch (error) {
        this.options.onError(error);
      }
    });
    return this.flushing;
  }

  private trackLastLine(text: string): void {
    const lines = (this.partialLine + text).split('\n');
    this.partialLine = lines.pop() ?? '';
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = (lines[i] as string).trim();
      if (line !== '') {
        this.lastLineSeen = line.slice(0, 500);
        break;
      }
    }
    if (this.partialLine.length > 4096) this.partialLine = this.partialLine.slice(-4096);
  }
}
