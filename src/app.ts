import { OpenAPIHono } from "@hono/zod-openapi";
import { Scalar } from "@scalar/hono-api-reference";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { cors } from "hono/cors";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { timeout } from "hono/timeout";
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
import { bindVault } from "./middleware/vault";
import { credentialRoutes } from "./routes/credentials";
import { providerRoutes } from "./routes/providers";
import { githubDeviceFlowClients } from "./services/credentials/github-device";
import type { SandboxCredentialsHook } from "./services/credentials/types";
import { healthRoutes } from "./routes/health";
import { meRoutes } from "./routes/me";
import { agentConfigRoutes } from "./routes/agent-config";
import { preferencesRoutes } from "./routes/preferences";
import type { SandboxConfigApplier } from "./services/agent-config/apply";
import { createChangeNotifier, type ChangeNotifier } from "./services/events/notifier";
import { createDriver } from "./orchestrator";
import { agentProxyRoutes } from "./routes/agent-proxy";
import { catalogRouter } from "./routes/catalog";
import { orchestratorRoutes } from "./routes/orchestrator";
import { sandboxRoutes } from "./routes/sandboxes";
import type { SandboxRuntime } from "./services/sandboxes/runtime";
import { buildSandboxRuntime } from "./services/sandboxes/setup";
import { sandboxHooks } from "./services/sandboxes/workload-files";

export type AppDeps = {
  config: Config;
  database: Database;
  logger: Logger;
  /** Built from config and database when not given. */
  auth?: Auth;
  /** Injectable clock for services and jobs (tests pass a fake one). */
  now?: () => Date;
  /** Change notifications across instances; built from the database when not given (the caller closes it). */
  events?: ChangeNotifier;
  /** Pushes agent-configuration changes into running sandboxes; does nothing when not given. */
  sandboxConfig?: SandboxConfigApplier;
  /** Told after a credential is replaced or deleted, to update running sandboxes; no-op when not given. */
  sandboxCredentials?: SandboxCredentialsHook;
  /** The sandbox runtime (driver, worker wake-up); built with the configured driver when not given. */
  sandboxes?: SandboxRuntime;
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
  const events = deps.events ?? createChangeNotifier(database, logger);
  const sandboxes =
    deps.sandboxes ?? buildSandboxRuntime({ config, db: database.db, logger, now, driver: createDriver(config, logger) });
  // Changed configuration and credentials reach the owner's running sandboxes.
  const hooks = sandboxHooks({ db: database.db, keyring: config.keyring, logger, now, driver: sandboxes.driver });
  const sandboxConfig = deps.sandboxConfig ?? hooks.config;

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
  // A deadline for every API request: whatever it waits on (a database that went away, a stuck
  // driver call), the client gets a 503 it can retry instead of a connection that never answers.
  const deadline = timeout(
    config.requestTimeoutMs,
    () => new HTTPException(503, { message: "The request took too long; try again shortly" }),
  );
  // Long-lived by design: event streams, /wait long-polls, and the agent proxy (its SSE stream).
  const LONG_LIVED = /\/(events|wait)$|\/sandboxes\/[^/]+\/agent(\/|$)/;
  app.use("/api/*", (c, next) => (LONG_LIVED.test(c.req.path) ? next() : deadline(c, next)));
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
  app.use(
    "/api/v1/*",
    bindVault({
      keyring: config.keyring,
      sandboxes: deps.sandboxCredentials ?? hooks.credentials,
      deviceFlows: githubDeviceFlowClients({
        copilotClientId: config.copilotClientId,
        githubApiOverrideUrl: config.githubApiOverrideUrl,
      }),
    }),
  );

  const routes = app
    .route("/", healthRoutes(database, sandboxes.driver))
    .route("/api/v1", meRoutes())
    .route("/api/v1", preferencesRoutes({ events, heartbeatMs: config.eventsHeartbeatMs }))
    .route("/api/v1", agentConfigRoutes({ sandboxConfig }))
    .route("/api/v1", providerRoutes())
    .route("/api/v1", credentialRoutes())
    .route("/api/v1", catalogRouter())
    .route("/api/v1", sandboxRoutes(sandboxes))
    .route("/api/v1", agentProxyRoutes(sandboxes))
    .route("/api/v1", orchestratorRoutes(sandboxes.driver));

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
