import type { MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/bun";
import type { AppEnv } from "../context";

/**
 * Resolves the client address once per request. Behind a proxy, only the configured header is
 * believed (its first hop); otherwise the socket's peer address. Headers a client can set freely
 * (X-Forwarded-For when no proxy is configured) are never trusted.
 */
export function clientIp(header: string | undefined): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    let ip: string | undefined;
    if (header) {
      ip = c.req.header(header)?.split(",")[0]?.trim() || undefined;
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
