import { OpenAPIHono } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import { bodyLimit } from "hono/body-limit";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { CLIENT_IP_HEADER, createAuth, type Auth } from "./auth/auth";
import type { Config } from "./config";
import type { AppEnv } from "./context";
import type { Database } from "./database/client";
import { AppError } from "./errors";
import { newId } from "./lib/ids";
import type { Logger } from "./lib/logger";
import { validationHook } from "./lib/openapi";
import { clientIp } from "./middleware/client-ip";
import { errorHandler, notFoundHandler, sendError } from "./middleware/errors";
import { requestLog } from "./middleware/request-log";
import { requireUser } from "./middleware/require-user";
import { healthRoutes } from "./routes/health";
import { meRoutes } from "./routes/me";

export type AppDeps = {
  config: Config;
  database: Database;
  logger: Logger;
  /** Built from config and database when not given. */
  auth?: Auth;
  /** Injectable clock for services and jobs (tests pass a fake one). */
  now?: () => Date;
};

/** Headers browsers may send cross-origin, and response headers they may read. */
const CORS_ALLOW_HEADERS = ["Content-Type", "Authorization", "Idempotency-Key", "If-Match", "Last-Event-ID", "X-Request-Id"];
const CORS_EXPOSE_HEADERS = ["X-Request-Id", "ETag", "Retry-After", "Location", "set-auth-token"];

/**
 * Builds the whole HTTP application. No listening and no globals: production (src/index.ts) and
 * tests (app.request) build it the same way.
 */
export function createApp(deps: AppDeps) {
  const { config, database, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const auth = deps.auth ?? createAuth({ config, db: database.db, logger });

  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.use(
    requestId({
      headerName: "X-Request-Id",
      limitLength: 128,
      // An incoming id is honoured only if it is short and made of safe characters (Hono checks).
      generator: () => newId("request"),
    }),
  );
  app.use(requestLog(logger));
  app.use(
    secureHeaders({
      // The docs page loads its renderer from a CDN; everything else is JSON.
      crossOriginResourcePolicy: "cross-origin",
    }),
  );
  // CORS before the auth routes: preflights for /api/auth/* must be answered here. The origin
  // is echoed only when it is on the explicit allowlist, never reflected blindly.
  const allowed = new Set(config.trustedOrigins);
  app.use(
    "/api/*",
    cors({
      origin: (origin) => (allowed.has(origin) ? origin : null),
      credentials: true,
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      allowHeaders: CORS_ALLOW_HEADERS,
      exposeHeaders: CORS_EXPOSE_HEADERS,
      maxAge: 600,
    }),
  );
  app.use(
    bodyLimit({
      maxSize: config.maxBodyBytes,
      onError: (c) =>
        sendError(c, new AppError("PAYLOAD_TOO_LARGE", `Request body is larger than ${config.maxBodyBytes} bytes`, {
          maxBytes: config.maxBodyBytes,
        })),
    }),
  );
  app.use(clientIp(config.clientIpHeader));
  app.use(async (c, next) => {
    c.set("auth", auth);
    await next();
  });

  app.onError(errorHandler(logger));
  app.notFound(notFoundHandler(() => app.routes));

  app.on(["GET", "POST"], "/api/auth/*", (c) => {
    // Better Auth reads the client address from CLIENT_IP_HEADER only; whatever the client sent
    // under that name is replaced by the address resolved above.
    const headers = new Headers(c.req.raw.headers);
    headers.delete(CLIENT_IP_HEADER);
    const ip = c.get("clientIp");
    if (ip) headers.set(CLIENT_IP_HEADER, ip);
    return auth.handler(new Request(c.req.raw, { headers }));
  });

  app.use("/api/v1/*", requireUser(auth, database.db, now));

  const routes = app.route("/", healthRoutes(database)).route("/api/v1", meRoutes());

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "The signed session token from the `set-auth-token` header of a sign-in response.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "cookieAuth", {
    type: "apiKey",
    in: "cookie",
    name: "better-auth.session_token",
    description:
      "The session cookie set by /api/auth sign-in (browsers send it with credentials: include). " +
      "Named __Secure-better-auth.session_token when PUBLIC_URL is https.",
  });
  app.doc31("/api/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Warren API",
      version: "1",
      description:
        "Management API for AI coding-agent sandboxes. Sign in through Better Auth at /api/auth/* " +
        "(email and password, GitHub); call /api/v1/* with the session cookie or a bearer token. " +
        'Every error has the body {"error":{"code","message","details?","requestId"}}.',
    },
    servers: [{ url: config.publicUrl }],
  });
  app.get("/api/docs", Scalar({ url: "/api/openapi.json", pageTitle: "Warren API" }));

  return routes;
}

export type App = ReturnType<typeof createApp>;
/** For frontends: `hc<AppType>(baseUrl)` from hono/client gives a typed client. */
export type AppType = App;
