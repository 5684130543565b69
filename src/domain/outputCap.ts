/**
 * Bounded stored output. A runaway task can print gigabytes; we store at most a limit, but
 * the end of the output (the error, the summary) matters more than the middle, so once the
 * head budget is spent the most recent bytes are kept in a ring and stored at the end,
 * after a marker saying how much was dropped. Pure bookkeeping: the caller stores what
 * accept() and finish() return.
 *
 * Sizes are UTF-8 bytes, as stored; cuts never split a character.
 */
import { Buffer } from 'node:buffer';
import { formatBytes } from './size.js';

interface Piece {
  text: string;
  bytes: number;
}

export class OutputCap {
  private readonly headBudget: number;
  private headUsed = 0;
  private headFull = false;
  private headEndsLine = true;
  private total = 0;
  private dropped = 0;
  /** The most recent output once the head is full: at most `tailBytes` plus one piece. */
  private ring: Piece[] = [];
  private ringBytes = 0;
  /** Whether the text just before the ring's first piece ended a line. */
  private ringStartsLine = true;
  /** A high surrogate that ended the last text: its other half is in the next one. */
  private pendingHalf = '';
  private finished = false;

  constructor(
    private readonly limitBytes: number,
    private readonly tailBytes: number /* e.g. min(256 KiB, limit/4) */,
  ) {
    if (!Number.isSafeInteger(limitBytes) || limitBytes <= 0) throw new RangeError(`output limit must be a positive whole number of bytes, got ${limitBytes}`);
    if (!Number.isSafeInteger(tailBytes) || tailBytes < 0 || tailBytes > limitBytes) {
      throw new RangeError(`output tail must be a whole number of bytes between 0 and the limit (${limitBytes}), got ${tailBytes}`);
    }
    this.headBudget = limitBytes - tailBytes;
  }

  /** Returns the part of `text` to store now (UTF-8 byte accounting; never split a character). Once the head budget (limit - tailBytes) is used, returns '' and keeps the most recent tailBytes in a ring instead. */
  accept(text: string): string {
    if (this.finished) throw new Error('OutputCap.accept() after finish()');
    let whole = this.pendingHalf + text;
    this.pendingHalf = '';
    // A chunk boundary inside a surrogate pair would count and cut the emoji as two broken halves.
    if (whole !== '' && isHighSurrogate(whole.charCodeAt(whole.length - 1))) {
      this.pendingHalf = whole.slice(-1);
      whole = whole.slice(0, -1);
    }
    return this.take(whole);
  }

  /** At the end: what is still held back. Without a drop that is just the rest of the output (often ''); after one, a marker line followed by the kept tail (starting at a line boundary when one is within the tail). */
  finish(): string {
    if (this.finished) return '';
    // A lone high surrogate at the very end has no other half coming: keep it as it was.
    const direct = this.pendingHalf === '' ? '' : this.take(this.pendingHalf);
    this.pendingHalf = '';
    this.finished = true;
    this.trimRing();
    let tail = this.ring.map((piece) => piece.text).join('');
    this.ring = [];
    this.ringBytes = 0;
    if (this.dropped === 0) return direct + tail;
    if (!this.ringStartsLine) {
      const newline = tail.indexOf('\n');
      // Only when a line follows it: a tail that is one unfinished line is better than none.
      if (newline !== -1 && newline < tail.length - 1) {
        this.dropped += Buffer.byteLength(tail.slice(0, newline + 1));
        tail = tail.slice(newline + 1);
      }
    }
    const marker = `\n[… countersign dropped ${this.dropped} bytes of output here: the task printed more than ${formatBytes(this.limitBytes)}; the last lines follow …]\n`;
    return direct + marker + tail;
  }

  get droppedBytes(): number {
    this.trimRing();
    return this.dropped;
  }

  get totalBytes(): number {
    return this.total;
  }

  private take(text: string): string {
    if (text === '') return '';
    const bytes = Buffer.byteLength(text);
    this.total += bytes;
    if (this.headFull) {
      this.keep(text, bytes);
      return '';
    }
    if (this.headUsed + bytes <= this.headBudget) {
      this.headUsed += bytes;
      this.headEndsLine = text.endsWith('\n');
      return text;
    }
    const cut = utf8Prefix(text, this.headBudget - this.headUsed);
    const head = text.slice(0, cut.chars);
    this.headUsed += cut.bytes;
    this.headFull = true;
    if (head !== '') this.headEndsLine = head.endsWith('\n');
    this.ringStartsLine = this.headEndsLine;
    this.keep(text.slice(cut.chars), bytes - cut.bytes);
    return head;
  }

  private keep(text: string, bytes: number): void {
    if (bytes > this.tailBytes) {
      // One text larger than the whole tail: everything before its last tailBytes goes.
      const start = utf8SuffixStart(text, this.tailBytes);
      this.dropRing();
      this.dropped += bytes - Buffer.byteLength(text.slice(start));
      if (start > 0) this.ringStartsLine = text.charCodeAt(start - 1) === NEWLINE;
      // A copy: a slice would keep the whole (possibly huge) text alive.
      const kept = copyString(text.slice(start));
      if (kept !== '') this.ring.push({ text: kept, bytes: Buffer.byteLength(kept) });
      this.ringBytes = this.ring[0]?.bytes ?? 0;
      return;
    }
    this.ring.push({ text, bytes });
    this.ringBytes += bytes;
    // Drop whole pieces while the rest still covers the tail; the excess within the first
    // piece is trimmed only when someone looks (trimRing), which keeps accept() cheap.
    for (let first = this.ring[0]; first !== undefined && this.ring.length > 1 && this.ringBytes - first.bytes >= this.tailBytes; first = this.ring[0]) {
      this.ring.shift();
      this.ringBytes -= first.bytes;
      this.dropped += first.bytes;
      this.ringStartsLine = first.text.endsWith('\n');
    }
  }

  private dropRing(): void {
    const last = this.ring[this.ring.length - 1];
    if (last !== undefined) this.ringStartsLine = last.text.endsWith('\n');
    this.dropped += this.ringBytes;
    this.ring = [];
    this.ringBytes = 0;
  }

  /** Cuts the front of the first piece so the ring holds at most tailBytes. */
  private trimRing(): void {
    const first = this.ring[0];
    const excess = this.ringBytes - this.tailBytes;
    if (first === undefined || excess <= 0) return;
    const cut = utf8PrefixCovering(first.text, excess);
    this.ringStartsLine = first.text.charCodeAt(cut.chars - 1) === NEWLINE;
    first.text = first.text.slice(cut.chars);
    first.bytes -= cut.bytes;
    this.ringBytes -= cut.bytes;
    this.dropped += cut.bytes;
    if (first.text === '') this.ring.shift();
  }
}

const NEWLINE = 10;

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/** UTF-8 size of the character starting at `index`, and how many UTF-16 units it takes. */
function charAt(text: string, index: number): { units: number; bytes: number } {
  const code = text.charCodeAt(index);
  if (code < 0x80) return { units: 1, bytes: 1 };
  if (code < 0x800) return { units: 1, bytes: 2 };
  if (isHighSurrogate(code) && isLowSurrogate(text.charCodeAt(index + 1))) return { units: 2, bytes: 4 };
  // Other BMP characters, and lone surrogates (Buffer stores those as U+FFFD: 3 bytes).
  return { units: 1, bytes: 3 };
}

/** The longest prefix of whole characters that fits in `maxBytes`. */
function utf8Prefix(text: string, maxBytes: number): { chars: number; bytes: number } {
  let chars = 0;
  let bytes = 0;
  while (chars < text.length) {
    const next = charAt(text, chars);
    if (bytes + next.bytes > maxBytes) break;
    chars += next.units;
    bytes += next.bytes;
  }
  return { chars, bytes };
}

/** The shortest prefix of whole characters that is at least `minBytes` long. */
function utf8PrefixCovering(text: string, minBytes: number): { chars: number; bytes: number } {
  let chars = 0;
  let bytes = 0;
  while (chars < text.length && bytes < minBytes) {
    const next = charAt(text, chars);
    chars += next.units;
    bytes += next.bytes;
  }
  return { chars, bytes };
}

/** Where the longest suffix of whole characters that fits in `maxBytes` starts. */
function utf8SuffixStart(text: string, maxBytes: number): number {
  let start = text.length;
  let bytes = 0;
  while (start > 0) {
    const code = text.charCodeAt(start - 1);
    const pair = isLowSurrogate(code) && start > 1 && isHighSurrogate(text.charCodeAt(start - 2));
    const size = pair ? 4 : code < 0x80 ? 1 : code < 0x800 ? 2 : 3;
    if (bytes + size > maxBytes) break;
    bytes += size;
    start -= pair ? 2 : 1;
  }
  return start;
}

/** A flat copy that shares no memory with `text` (UTF-16 round trip keeps every code unit). */
function copyString(text: string): string {
  return Buffer.from(text, 'utf16le').toString('utf16le');
}
