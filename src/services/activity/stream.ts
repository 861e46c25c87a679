/**
 * A byte stream fed by an async generator, one chunk per pull: the consumer's pace decides when
 * the next database batch is read, so an export of any size holds about one batch in memory.
 * A client that goes away cancels the stream, which ends the generator (its finally blocks run).
 */
export function streamOf(chunks: AsyncGenerator<string>, onError?: (err: unknown) => void): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(encoder.encode(next.value));
        } catch (err) {
          // Headers are gone already: the only honest signal left is a broken stream.
          onError?.(err);
          controller.error(err);
        }
      },
      async cancel() {
        await chunks.return(undefined);
      },
    },
    { highWaterMark: 1 },
  );
}
