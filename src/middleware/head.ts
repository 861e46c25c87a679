import type { MiddlewareHandler } from "hono";
import { replaceBody } from "./replace-body";

/**
 * HEAD requests. Hono answers one by running the GET route and dropping the body it built
 * (`new Response(null, getResponse)` in hono-base). Dropped that way, a streamed body is never
 * read and never cancelled: an event stream's handler waits forever on its first write, keeping
 * its change subscription and heartbeat timer, one more for every HEAD request. And Bun then
 * sends `Content-Length: 0`, which RFC 9110 (8.6) allows only when the GET body is empty.
 *
 * Mounted outermost, this settles the body first: an event stream's is cancelled, so its handler
 * ends as when a client goes away, and the answer keeps the stream's `Transfer-Encoding:
 * chunked`; any other body is read to count its bytes, and the answer says that length, as the
 * GET would have.
 */
export const headRequests: MiddlewareHandler = async (c, next) => {
  await next();
  const body = c.res.body;
  if (c.req.raw.method !== "HEAD" || !body) return;
  const headers = new Headers(c.res.headers);
  // Unknown for an event stream, and for a GET stream that broke mid-way (an export whose
  // database went away): the answer then says chunked, as the GET's would have.
  let length: number | null = null;
  if (headers.get("content-type")?.startsWith("text/event-stream")) await body.cancel().catch(() => {});
  else length = await new Response(body).arrayBuffer().then((bytes) => bytes.byteLength, () => null);
  if (length === null) {
    headers.delete("content-length");
    headers.set("transfer-encoding", "chunked");
  } else headers.set("content-length", String(length));
  replaceBody(c, null, headers);
};
