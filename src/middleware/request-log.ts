import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import { lazyObject } from "../lib/lazy";
import type { Logger } from "../lib/logger";

const LEVELS = new Set<string | symbol>(["trace", "debug", "info", "warn", "error", "fatal"]);
const noop = () => undefined;

/**
 * The request's logger (c.var.logger, scope.logger): the app logger with the request id bound,
 * created on first use. A pino child costs a few microseconds (its bindings go through the
 * redaction), and most requests never log anything but their one request line; a call at a level
 * that is off creates nothing.
 */
export function lazyChild(parent: Logger, bindings: Record<string, unknown>): Logger {
  return lazyObject(
    () => parent.child(bindings),
    (prop) => (LEVELS.has(prop) && !parent.isLevelEnabled(prop as string) ? noop : undefined),
  );
}

/**
 * One structured line per request, with the request id. Only method, path (no query string: it
 * may carry tokens), status and duration are logged; never headers or bodies.
 */
export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const start = performance.now();
    const requestId = c.get("requestId");
    c.set("logger", lazyChild(logger, { requestId }));
    await next();
    const status = c.res.status;
    const level = status >= 500 ? "error" : "info";
    if (!logger.isLevelEnabled(level)) return;
    // The same line a child logger would write: the request id first, then the request.
    logger[level]({ requestId, method: c.req.method, path: c.req.path, status, durationMs: Math.round((performance.now() - start) * 10) / 10 }, "request");
  };
}
