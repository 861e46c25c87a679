import type { Context } from "hono";

/**
 * Gives the response another body (`null` for none), keeping its status and `headers` (its own
 * unless given). c.res is unset first: Hono would otherwise merge the old response's headers into
 * the new one (src/middleware/head.ts, src/middleware/proxy-slots.ts).
 */
export function replaceBody(c: Context, body: ReadableStream<Uint8Array> | null, headers: Headers = c.res.headers): void {
  const { status, statusText } = c.res;
  c.res = undefined;
  c.res = new Response(body, { status, statusText, headers });
}
