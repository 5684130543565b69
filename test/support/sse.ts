/**
 * Server-sent events read from a fetch response body, as the API and the task page send them
 * (`event: <name>\ndata: <one line>\n\n`): one parser for every test that follows a stream.
 */
export interface RawSseEvent {
  event: string;
  data: string;
}

/** Yields each complete event until the stream ends; a hang-up ends it quietly. */
export async function* sseEvents(body: ReadableStream<Uint8Array> | null): AsyncGenerator<RawSseEvent> {
  if (!body) return;
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for await (const part of body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(part, { stream: true });
      for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data !== undefined) yield { event, data };
      }
    }
  } catch {
    // hung up (an abort, a reset): the events so far are what there was
  }
}
