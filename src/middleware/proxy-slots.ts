import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import { AppError } from "../errors";
import { UserSlots } from "../lib/user-slots";
import { replaceBody } from "./replace-body";

/** A proxied request's slot, for a WebSocket bridge to keep until the socket closes. */
export type ProxySlot = { keep(): () => void };

export const proxySlots = (max: number) =>
  new UserSlots(
    max,
    (n) =>
      new AppError(
        "RATE_LIMITED",
        `At most ${n} requests and WebSockets through the sandbox proxies may be open at once per user; wait for some to finish`,
        { maxOpenProxied: n },
      ),
  );

/**
 * The agent and add-on proxies are left out of the API's rate limit (an editor in the browser
 * loads hundreds of files through them), so nothing bounded what one user held open through
 * them: each request is two sockets on this instance (the client's and the sandbox's) for as
 * long as its body streams, a WebSocket for as long as it lives. This counts them per user, from
 * the request until the body has been read or cancelled (or the WebSocket closes), and refuses
 * one over the cap with 429 before anything is forwarded.
 */
export function limitProxied(slots: UserSlots, proxied: (path: string) => boolean): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!proxied(c.req.path)) return next();
    const release = slots.take(c.get("scope").userId);
    let kept = false;
    c.set("proxySlot", {
      keep: () => {
        kept = true;
        return release;
      },
    });
    try {
      await next();
    } catch (err) {
      release();
      throw err;
    }
    const body = c.res.body;
    if (kept) return;
    // No body, or Warren's own error envelope (Hono caught what the handler threw): nothing open.
    if (!body || c.error) return release();
    replaceBody(c, releasedAtEnd(body, release));
  };
}

/** `body`, calling `release` once it has been read to its end, failed, or been cancelled. */
function releasedAtEnd(body: ReadableStream<Uint8Array>, release: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            release();
            controller.close();
          } else controller.enqueue(value);
        } catch (err) {
          release();
          controller.error(err);
        }
      },
      cancel(reason) {
        release();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
