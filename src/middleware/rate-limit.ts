import type { MiddlewareHandler } from "hono";
import { rateLimiter, type RateLimitInfo } from "hono-rate-limiter";
import type { AppEnv } from "../context";
import { AppError } from "../errors";

export type ApiRateLimit = {
  /** Requests a user may make per window on this instance; 0 turns the limit off. */
  max: number;
  windowSeconds: number;
};

/** Response headers a browser app may read to pace itself (added to CORS's exposed headers). */
export const RATE_LIMIT_HEADERS = ["RateLimit", "RateLimit-Policy"];

/**
 * The API's request budget, per signed-in user, for /api/v1 (behind requireUser: the key is the
 * user, never an address many users may share). hono-rate-limiter counts in a fixed window and
 * answers every request with the IETF draft-7 headers (`RateLimit-Policy: 1200;w=60`,
 * `RateLimit: limit=1200, remaining=1187, reset=42`); over the budget it is 429 RATE_LIMITED in
 * the envelope, with Retry-After.
 *
 * Counted per instance, in memory: a request costs no database round trip, and N instances
 * behind a balancer allow up to N times the budget. `skip` leaves out what is not the API's own
 * work: the agent and add-on proxies carry a sandbox's own traffic (an editor in the browser
 * loads hundreds of files through them).
 */
export function apiRateLimit(limit: ApiRateLimit, skip: (path: string) => boolean): MiddlewareHandler<AppEnv> {
  if (limit.max === 0) return (_c, next) => next();
  // The limiter's count for the request, which it sets under its default name.
  type Counted = AppEnv & { Variables: { rateLimit?: RateLimitInfo } };
  return rateLimiter<Counted>({
    windowMs: limit.windowSeconds * 1000,
    limit: limit.max,
    standardHeaders: "draft-7",
    keyGenerator: (c) => c.get("scope").userId,
    skip: (c) => skip(c.req.path),
    handler: (c) => {
      const resetTime = c.get("rateLimit")?.resetTime;
      const retryAfterSeconds = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now()) - Date.now()) / 1000));
      throw new AppError(
        "RATE_LIMITED",
        `Too many requests: at most ${limit.max} every ${limit.windowSeconds} seconds; try again in ${retryAfterSeconds} seconds`,
        { limit: limit.max, windowSeconds: limit.windowSeconds, retryAfterSeconds },
        { "Retry-After": String(retryAfterSeconds) },
      );
    },
  });
}
