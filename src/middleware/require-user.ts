import type { MiddlewareHandler } from "hono";
import type { SessionResolver } from "../auth/session-cache";
import type { AppEnv } from "../context";
import type { Db } from "../database/client";
import { unauthenticated } from "../errors";

/**
 * Resolves the session from the cookie or the bearer token (src/auth/session-cache.ts) and binds
 * the caller's scope. Every /api/v1 route sits behind it; services receive c.var.scope and filter
 * by its userId.
 */
export function requireUser(sessions: SessionResolver, db: Db, now: () => Date): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const result = await sessions.resolve(c.req.raw.headers);
    if (!result) throw unauthenticated();
    c.set("user", result.user);
    c.set("session", result.session);
    c.set("scope", {
      db,
      actor: "user",
      userId: result.user.id,
      requestId: c.get("requestId"),
      ipAddress: c.get("clientIp") ?? null,
      userAgent: c.req.header("user-agent") ?? null,
      logger: c.get("logger"),
      now,
    });
    await next();
  };
}
