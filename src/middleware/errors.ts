import type { Context, ErrorHandler, NotFoundHandler } from "hono";
import { HTTPException } from "hono/http-exception";
import { TrieRouter } from "hono/router/trie-router";
import { AppError, errorBody, isDatabaseUnavailable, type ErrorCode } from "../errors";
import type { AppEnv } from "../context";
import type { Logger } from "../lib/logger";

const STATUS_CODES: Record<number, ErrorCode> = {
  400: "VALIDATION_FAILED",
  401: "UNAUTHENTICATED",
  404: "NOT_FOUND",
  405: "METHOD_NOT_ALLOWED",
  409: "CONFLICT",
  412: "PRECONDITION_FAILED",
  413: "PAYLOAD_TOO_LARGE",
  415: "UNSUPPORTED_MEDIA_TYPE",
  429: "RATE_LIMITED",
  503: "SERVICE_UNAVAILABLE",
};

export function sendError(c: Context<AppEnv>, error: AppError): Response {
  const body = errorBody(error.code, error.message, c.get("requestId") ?? "unknown", error.details);
  for (const [k, v] of Object.entries(error.headers ?? {})) c.header(k, v);
  return c.json(body, error.status);
}

/**
 * @hono/zod-openapi refuses a body whose Content-Type is not one its route declares (every
 * request body here is JSON) with a bare "Unsupported Media Type"; the answer names the header
 * and what was sent, like any other invalid field.
 */
function unsupportedMediaType(contentType: string | undefined): AppError {
  const sent = contentType ? `"${contentType.slice(0, 100)}"` : "missing";
  const message = `Content-Type is ${sent}; send the body as application/json`;
  return new AppError("UNSUPPORTED_MEDIA_TYPE", `Invalid header "Content-Type": ${message}`, {
    fields: [{ location: "header", field: "Content-Type", message, code: "unsupported_media_type" }],
  });
}

/** The single place where thrown errors become responses. */
export function errorHandler(fallbackLogger: Logger): ErrorHandler<AppEnv> {
  return (err, c) => {
    const log = c.get("logger") ?? fallbackLogger;
    if (err instanceof AppError) return sendError(c, err);
    if (err instanceof HTTPException) {
      if (err.status === 415) return sendError(c, unsupportedMediaType(c.req.header("content-type")));
      const code = STATUS_CODES[err.status] ?? (err.status >= 500 ? "INTERNAL" : "VALIDATION_FAILED");
      // Hono's JSON validator throws this for an unparseable body.
      const message = /malformed json/i.test(err.message)
        ? "Request body is not valid JSON"
        : err.status >= 500
          ? "Internal error"
          : err.message || "Bad request";
      if (code === "SERVICE_UNAVAILABLE") {
        // The request deadline (hono/timeout) lands here: a retryable condition, not a bug.
        log.warn({ path: c.req.path }, "request deadline exceeded");
        return sendError(c, new AppError(code, err.message, undefined, { "Retry-After": "2" }));
      }
      if (err.status >= 500) log.error({ err }, "http exception");
      return sendError(c, new AppError(code, message));
    }
    if (isDatabaseUnavailable(err)) {
      log.warn({ err: { message: (err as Error).message, code: (err as { code?: string }).code } }, "database unavailable");
      return sendError(
        c,
        new AppError("SERVICE_UNAVAILABLE", "The database is unavailable; try again shortly", undefined, {
          "Retry-After": "2",
        }),
      );
    }
    // The log gets the whole error; the body gets nothing but the request id to quote.
    log.error({ err }, "unhandled error");
    return sendError(c, new AppError("INTERNAL", "Internal error"));
  };
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] as const;

/**
 * 404 for unknown paths; 405 with Allow when the path exists under other methods. The route
 * table is read lazily, once, after every route has been registered.
 */
export function notFoundHandler(routes: () => ReadonlyArray<{ method: string; path: string }>): NotFoundHandler<AppEnv> {
  let router: TrieRouter<string> | undefined;
  return (c) => {
    if (!router) {
      router = new TrieRouter<string>();
      for (const r of routes()) {
        if (r.method === "ALL") continue;
        router.add(r.method, r.path, r.method);
      }
    }
    const allowed = METHODS.filter((m) => m !== c.req.method && router!.match(m, c.req.path)[0].length > 0);
    if (allowed.length > 0) {
      return sendError(
        c,
        new AppError("METHOD_NOT_ALLOWED", `${c.req.method} is not allowed on ${c.req.path}`, { allowed }, {
          Allow: allowed.join(", "),
        }),
      );
    }
    return sendError(c, new AppError("NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`));
  };
}

const AUTH_STATUS_CODES: Record<number, ErrorCode> = {
  ...STATUS_CODES,
  // Better Auth's 403s are refused origins and CSRF checks: the request's context is wrong, not
  // its credentials; its 422 is "user already exists".
  403: "PRECONDITION_FAILED",
  422: "CONFLICT",
};

/**
 * Better Auth's error answers (`{"message","code"}`) in Warren's envelope. Its own top-level
 * `code` and `message` stay beside `error`, because `better-auth/client` reads them; Warren's
 * clients read `error` like everywhere else. The status is Better Auth's. A 5xx carries no
 * internals: its text goes to the log.
 */
export async function authErrorResponse(c: Context<AppEnv>, res: Response, fallbackLogger: Logger): Promise<Response> {
  let authCode: string | undefined;
  let authMessage: string | undefined;
  const text = await res.text();
  try {
    const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
    if (typeof parsed.code === "string") authCode = parsed.code;
    if (typeof parsed.message === "string") authMessage = parsed.message;
  } catch {
    // Not JSON: only the status says what happened.
  }
  const status = res.status;
  const code: ErrorCode = AUTH_STATUS_CODES[status] ?? (status >= 500 ? "INTERNAL" : "VALIDATION_FAILED");
  let message = authMessage || res.statusText || "Request refused";
  if (status >= 500) {
    (c.get("logger") ?? fallbackLogger).error({ status, authCode, authMessage }, "auth endpoint failed");
    message = "Internal error";
    authCode = undefined;
  }
  const body = {
    ...errorBody(code, message, c.get("requestId") ?? "unknown", authCode ? { authCode } : undefined),
    ...(authCode ? { code: authCode } : {}),
    message,
  };
  const headers = new Headers(res.headers);
  headers.set("content-type", "application/json");
  headers.delete("content-length");
  return new Response(JSON.stringify(body), { status, headers });
}
