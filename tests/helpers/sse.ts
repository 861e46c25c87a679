import type { TestApp } from "./app";

export type SseMessage = { event?: string; id?: string; data?: string; comments: string[] };

/**
 * Reads a server-sent event stream from the in-process app, message by message (a message is a
 * block ended by a blank line). Each read has a timeout so a missing event fails the test rather
 * than hanging it.
 */
export async function openEventStream(t: Pick<TestApp, "request">, path: string, init: { token: string; headers?: Record<string, string> }) {
  const abort = new AbortController();
  const res = await t.request(path, { token: init.token, headers: init.headers ?? {}, signal: abort.signal });
  const reader = res.body ? res.body.getReader() : undefined;
  const decoder = new TextDecoder();
  let buffer = "";
  let pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]> | undefined;
  let ended = false;

  async function nextMessage(timeoutMs = 3000): Promise<SseMessage | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const end = buffer.indexOf("\n\n");
      if (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message: SseMessage = { comments: [] };
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) message.comments.push(line.slice(1).trim());
          else if (line.startsWith("event: ")) message.event = line.slice(7);
          else if (line.startsWith("id: ")) message.id = line.slice(4);
          else if (line.startsWith("data: ")) message.data = (message.data === undefined ? "" : `${message.data}\n`) + line.slice(6);
        }
        return message;
      }
      if (ended || !reader) return null;
      pending ??= reader.read();
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no server-sent message within ${timeoutMs} ms`);
      const result = await Promise.race([pending, Bun.sleep(left).then(() => "timeout" as const)]);
      if (result === "timeout") throw new Error(`no server-sent message within ${timeoutMs} ms`);
      pending = undefined;
      if (result.done) ended = true;
      else buffer += decoder.decode(result.value, { stream: true });
    }
  }

  /** The next message carrying data (skips heartbeats and the connect comment). */
  async function nextEvent(timeoutMs = 3000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const message = await nextMessage(Math.max(1, deadline - Date.now()));
      if (message === null) throw new Error("the event stream ended");
      if (message.data !== undefined) return message;
    }
  }

  return {
    res,
    nextMessage,
    nextEvent,
    /** Resolves true once the server has ended the stream. */
    async ended(timeoutMs = 3000): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if ((await nextMessage(Math.max(1, deadline - Date.now())).catch(() => undefined)) === null) return true;
      }
      return false;
    },
    close() {
      abort.abort();
      void reader?.cancel().catch(() => {});
    },
  };
}
