/**
 * A Server-Sent Events response: headers that keep proxies from buffering, and writes that wait
 * for the socket to drain, so a slow reader only slows its own stream (never the process's
 * memory), and a reader that went away never leaves a write waiting.
 */
import type { Response } from 'express';

export interface EventStream {
  /** Aborted when the client goes away. */
  gone: AbortSignal;
  /** Writes raw SSE text, waiting for the socket to drain when its buffer is full. */
  write(text: string): Promise<void>;
  /** One event: `event`, an optional `id`, and `data` (already serialised, one line). */
  send(event: string, data: string, id?: number): Promise<void>;
}

export function openEventStream(res: Response): EventStream {
  res.status(200).set({
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache',
    // nginx and friends would otherwise hold the events back to fill their buffers.
    'X-Accel-Buffering': 'no',
    Connection: 'keep-alive',
  });
  res.flushHeaders();
  const controller = new AbortController();
  res.on('close', () => controller.abort());
  const gone = controller.signal;
  const write = async (text: string): Promise<void> => {
    if (gone.aborted || res.write(text)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        gone.removeEventListener('abort', done);
        resolve();
      };
      res.once('drain', done);
      gone.addEventListener('abort', done, { once: true });
    });
  };
  return { gone, write, send: (event, data, id) => write(`event: ${event}\n${id !== undefined ? `id: ${id}\n` : ''}data: ${data}\n\n`) };
}
