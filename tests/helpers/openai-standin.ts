/**
 * A local stand-in for an OpenAI-compatible model server (the chat-completions protocol), so that
 * a real OpenCode server can run a conversation with no internet: OpenCode's provider
 * `@ai-sdk/openai-compatible` POSTs to `<baseURL>/chat/completions` with `stream: true` and reads
 * server-sent chunks (`data: {chat.completion.chunk}`) ending with `data: [DONE]`. The last chunk
 * before [DONE] carries `usage`, which is where OpenCode takes its token counts from.
 *
 * Only what cannot run here (a hosted model) is replaced; everything else in the e2e is real.
 */
export type StandinRequest = {
  path: string;
  body: any;
  at: number;
  /** The Authorization header the client sent (the provider key it was given), or null. */
  authorization: string | null;
};

export type OpenAIStandin = {
  /** Base URL to register as the provider's baseURL (ends with /v1). */
  baseUrl: string;
  requests: StandinRequest[];
  /** The reply the next completions stream; words are sent one chunk each. */
  reply: string;
  /** Delay between chunks, in ms (0: as fast as possible). */
  chunkDelayMs: number;
  /** While set, streams pause after their first chunk until `release()` is called. */
  hold: boolean;
  /** Resolves when a stream has sent its first chunk while `hold` is set. */
  streaming(): Promise<void>;
  release(): void;
  /** Usage reported in the final chunk. */
  usage: { prompt_tokens: number; completion_tokens: number };
  stop(): Promise<void>;
};

export function startOpenAIStandin(options: { reply?: string; usage?: { prompt_tokens: number; completion_tokens: number } } = {}): OpenAIStandin {
  let releaseHold: (() => void) | undefined;
  let holdGate = new Promise<void>((r) => (releaseHold = r));
  let signalStreaming: (() => void) | undefined;
  let streamingSignal = new Promise<void>((r) => (signalStreaming = r));
  const state: Omit<OpenAIStandin, "baseUrl" | "stop" | "streaming" | "release"> = {
    requests: [],
    reply: options.reply ?? "Hello from the stand-in model.",
    chunkDelayMs: 0,
    hold: false,
    usage: options.usage ?? { prompt_tokens: 120, completion_tokens: 7 },
  };

  const encoder = new TextEncoder();
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    async fetch(req) {
      const url = new URL(req.url);
      if (req.method === "GET" && url.pathname.endsWith("/models")) {
        return Response.json({ object: "list", data: [{ id: "standin-model", object: "model", owned_by: "warren-tests" }] });
      }
      if (req.method !== "POST" || !url.pathname.endsWith("/chat/completions")) {
        return Response.json({ error: { message: `no route ${req.method} ${url.pathname}`, type: "invalid_request_error" } }, { status: 404 });
      }
      const body = (await req.json()) as { model?: string; stream?: boolean };
      state.requests.push({ path: url.pathname, body, at: Date.now(), authorization: req.headers.get("authorization") });
      const id = `chatcmpl-${state.requests.length}`;
      const created = Math.floor(Date.now() / 1000);
      const model = body.model ?? "standin-model";
      const reply = state.reply;
      const usage = { ...state.usage, total_tokens: state.usage.prompt_tokens + state.usage.completion_tokens };
      if (!body.stream) {
        return Response.json({
          id,
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: reply }, finish_reason: "stop" }],
          usage,
        });
      }
      const chunk = (delta: Record<string, unknown>, finish: string | null, extra: Record<string, unknown> = {}) =>
        encoder.encode(
          `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`,
        );
      const words = reply.split(/(?<= )/);
      const delay = state.chunkDelayMs;
      const hold = state.hold;
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          try {
            controller.enqueue(chunk({ role: "assistant", content: "" }, null));
            for (let i = 0; i < words.length; i++) {
              controller.enqueue(chunk({ content: words[i] }, null));
              if (i === 0 && hold) {
                signalStreaming?.();
                await holdGate;
              }
              if (delay > 0) await Bun.sleep(delay);
            }
            controller.enqueue(chunk({}, "stop"));
            // Usage arrives in a last chunk with no choices (stream_options.include_usage).
            controller.enqueue(
              encoder.encode(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage })}\n\n`),
            );
            controller.enqueue(encoder.encode("data: [DONE]\n\n"));
            controller.close();
          } catch {
            // The client went away mid-stream.
          }
        },
      });
      return new Response(stream, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
    },
  });

  return Object.assign(state, {
    baseUrl: `http://127.0.0.1:${server.port}/v1`,
    streaming: () => streamingSignal,
    release() {
      state.hold = false;
      releaseHold?.();
      holdGate = new Promise<void>((r) => (releaseHold = r));
      streamingSignal = new Promise<void>((r) => (signalStreaming = r));
    },
    async stop() {
      releaseHold?.();
      await server.stop(true);
    },
  }) as OpenAIStandin;
}
