import type { MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/bun";
import type { AppEnv } from "../context";

/**
 * Resolves the client address once per request. Behind a proxy, only the configured header is
 * believed, and of a list only its last entry: a proxy appends the address it saw to
 * X-Forwarded-For, so the entries before it are whatever the client sent. Without a configured
 * header, the socket's peer address. Headers a client can set freely are never trusted.
 */
export function clientIp(header: string | undefined): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let ip: string | undefined;
    if (header) {
      ip = c.req.header(header)?.split(",").at(-1)?.trim() || undefined;
    } else {
      try {
        ip = getConnInfo(c).remote.address;
      } catch {
        // app.request() in tests has no socket; there is no address to trust.
        ip = undefined;
      }
    }
    c.set("clientIp", ip);
    await next();
  };
}
