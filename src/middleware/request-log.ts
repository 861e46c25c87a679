import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import type { Logger } from "../lib/logger";

/**
 * One structured line per request, with the request id. Only method, path (no query string: it
 * may carry tokens), status and duration are logged; never headers or bodies.
 */
export function requestLog(logger: Logger): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const start = performance.now();
    const log = logger.child({ requestId: c.get("requestId") });
    c.set("logger", log);
    await next();
    const status = c.res.status;
    const line = {
      method: c.req.method,
      path: c.req.path,
      status,
      durationMs: Math.round((performance.now() - start) * 10) / 10,
    };
    if (status >= 500) log.error(line, "request");
    else log.info(line, "request");
  };
}
