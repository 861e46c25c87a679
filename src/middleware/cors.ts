import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { AppEnv } from "../context";

export type CorsOptions = {
  /** Origins whose pages may call the API with credentials; any other origin is never echoed. */
  origins: Iterable<string>;
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds: number;
};

/**
 * CORS for the API: an origin is echoed only when it is on the explicit allowlist, never
 * reflected blindly, with credentials allowed.
 *
 * Preflights (OPTIONS) are answered by Hono's cors middleware. Every other request gets the same
 * headers Hono's middleware would give it, set once on the final response: Hono's middleware sets
 * them on `c.res` before the route runs, which makes Hono copy the route's response (a new
 * Response over its body, every header copied) when the route returns it, and again for the
 * `Vary` header after; for a cached 50 KB page that was a quarter of the request's CPU
 * (bench/README.md).
 */
export function apiCors(options: CorsOptions): MiddlewareHandler<AppEnv> {
  const allowed = new Set(options.origins);
  const origin = (o: string) => (allowed.has(o) ? o : null);
  const preflight = cors({
    origin,
    credentials: true,
    allowMethods: options.allowMethods,
    allowHeaders: options.allowHeaders,
    exposeHeaders: options.exposeHeaders,
    maxAge: options.maxAgeSeconds,
  });
  const expose = options.exposeHeaders.join(",");
  return async (c, next) => {
    if (c.req.method === "OPTIONS") return preflight(c, next);
    await next();
    const headers = c.res.headers;
    const allowOrigin = origin(c.req.header("origin") ?? "");
    if (allowOrigin) headers.set("Access-Control-Allow-Origin", allowOrigin);
    headers.set("Access-Control-Allow-Credentials", "true");
    headers.set("Access-Control-Expose-Headers", expose);
    headers.append("Vary", "Origin");
  };
}
