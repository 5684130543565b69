/**
 * Buffers a run's output and writes it to Postgres in batches: at most every `flushMs`, or
 * sooner when `maxBufferBytes` is waiting. Consecutive text from one step and stream becomes
 * one row. A batch that fails to write goes back in front of the buffer and is tried again, so
 * a database outage delays output instead of losing it. Postgres text cannot hold NUL, so NUL
 * bytes are replaced. Each stored batch notifies the task's followers (one NOTIFY per batch,
 * never per line: NOTIFY takes a global lock at commit).
 */
import type { OutputStream } from '../domain/task.js';
import type { Queryable } from '../store/db.js';
import { storeBatch, type OutputChunk } from '../store/output.js';

export interface OutputRecorderOptions {
  /** Whose followers hear of each stored batch; unset: nobody is told. */
  taskId?: number;
  flushMs: number;
  /** Flush at once when this much waits. */
  maxBufferBytes: number;
  /** Above this much waiting, write() says "stop sending" until drained() (backpressure). */
  highWaterBytes: number;
  onError(error: unknown): void;
}

/**
 * Consecutive text joins one row up to about this many characters. Bigger strings would live in
 * V8's large-object space until a full collection: a flood of output would grow the heap by tens
 * of megabytes before one runs. Rows this size stay young and die young.
 */
const ROW_CHARS = 64 * 1024;

export class OutputRecorder {
  /** Rows waiting to be stored, each with its UTF-8 size. */
  private pending: Array<OutputChunk & { bytes: number }> = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private drainWaiters: Array<() => void> = [];
  private lastLineSeen: string | null = null;
  /** Each stream's unfinished line: stdout and stderr interleave, their lines must not merge. */
  private readonly partialLines = new Map<OutputStream, string>();
  private lastStream: OutputStream | null = null;
  totalBytes = 0;

  constructor(
    private readonly db: Queryable,
    private readonly executionId: number,
    private readonly options: OutputRecorderOptions,
  ) {}

  /** Buffers output; false means "stop sending until drained()", so memory stays bounded. */
  write(stepId: number | null, stream: OutputStream, rawText: string): boolean {
    const text = rawText.includes('\u0000') ? rawText.replace(/\u0000/g, '\uFFFD') : rawText;
    if (text === '') return this.hasRoom();
    const bytes = Buffer.byteLength(text, 'utf8');
    this.totalBytes += bytes;
    this.pendingBytes += bytes;
    if (stream !== 'system') this.trackLastLine(stream, text);
    const last = this.pending[this.pending.length - 1];
    if (last && last.stepId === stepId && last.stream === stream && last.data.length < ROW_CHARS) {
      last.data += text;
      last.bytes += bytes;
    } else this.pending.push({ executionId: this.executionId, stepId, stream, data: text, bytes });
    if (this.pendingBytes >= this.options.maxBufferBytes) void this.flush();
    else this.schedule(this.options.flushMs);
    return this.hasRoom();
  }

  hasRoom(): boolean {
    return this.pendingBytes < this.options.highWaterBytes;
  }

  /** Resolves once the buffer is back under the high-water mark. */
  drained(): Promise<void> {
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** The last non-empty line of stdout/stderr, for the task's result summary. */
  get lastLine(): string | null {
    const partial = this.lastStream ? (this.partialLines.get(this.lastStream) ?? '').trim() : '';
    return partial !== '' ? partial : this.lastLineSeen;
  }

  /** Writes what is buffered; flushes are chained so rows keep their order. Never rejects. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.flushing = this.flushing.then(() => this.writeBatch());
    return this.flushing;
  }

  /**
   * Flushes until everything is stored, backing off between tries, however long the database is
   * away; only `abandon` (shutdown giving up) ends it. False when some output was not stored.
   */
  async close(abandon?: AbortSignal): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      await this.flush();
      if (this.pending.length === 0) return true;
      if (abandon?.aborted) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(5000, 250 * 2 ** Math.min(attempt, 5)));
        function done() {
          clearTimeout(timer);
          abandon?.removeEventListener('abort', done);
          resolve();
        }
        abandon?.addEventListener('abort', done, { once: true });
      });
    }
  }

  private schedule(delayMs: number): void {
    if (!this.timer) this.timer = setTimeout(() => void this.flush(), delayMs);
  }

  /** Stores the oldest rows, about maxBufferBytes at most: one statement's size stays bounded whatever waits. */
  private async writeBatch(): Promise<void> {
    if (this.pending.length === 0) return;
    let take = 0;
    let bytes = 0;
    while (take < this.pending.length && (take === 0 || bytes + this.pending[take]!.bytes <= this.options.maxBufferBytes)) bytes += this.pending[take++]!.bytes;
    const batch = this.pending.slice(0, take);
    this.pending = this.pending.slice(take);
    this.pendingBytes -= bytes;
    try {
      // One statement (so one round trip, and atomic): a retried batch must not be stored twice.
      await storeBatch(this.db, this.executionId, batch, bytes, this.options.taskId);
      if (this.hasRoom()) for (const wake of this.drainWaiters.splice(0)) wake();
      if (this.pendingBytes >= this.options.maxBufferBytes) void this.flush();
      else if (this.pending.length > 0) this.schedule(this.options.flushMs);
    } catch (error) {
      this.options.onError(error);
      // Back in front of whatever arrived meanwhile, and try again shortly.
      this.pending = [...batch, ...this.pending];
      this.pendingBytes += bytes;
      this.schedule(Math.max(this.options.flushMs, 500));
    }
  }

  /**
   * Keeps the last non-empty line, looking backwards from the end of the text: a flood of output
   * must not be split into millions of line strings only to keep one.
   */
  private trackLastLine(stream: OutputStream, text: string): void {
    this.lastStream = stream;
    const held = this.partialLines.get(stream) ?? '';
    const clip = (partial: string) => (partial.length > 4096 ? partial.slice(-4096) : partial);
    const lastBreak = text.lastIndexOf('\n');
    if (lastBreak === -1) {
      this.partialLines.set(stream, clip(held + text));
      return;
    }
    this.partialLines.set(stream, clip(text.slice(lastBreak + 1)));
    // The lines that ended in this text, newest first; the oldest began in the held partial.
    for (let end = lastBreak; ; ) {
      const start = end > 0 ? text.lastIndexOf('\n', end - 1) : -1;
      const line = (start === -1 ? held + text.slice(0, end) : text.slice(start + 1, end)).trim();
      if (line !== '') {
        this.lastLineSeen = line.slice(0, 500);
        return;
      }
      if (start === -1) return;
      end = start;
    }
  }
}
