import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { timeout } from "hono/timeout";
import { CLIENT_IP_HEADER, createAuth, type Auth } from "./auth/auth";
import { createSessionResolver, type SessionResolver } from "./auth/session-cache";
import type { Config } from "./config";
import type { AppEnv } from "./context";
import type { Database } from "./database/client";
import { AppError } from "./errors";
import { newId } from "./lib/ids";
import type { Logger } from "./lib/logger";
import { documentBodyErrors, validationHook } from "./lib/openapi";
import { createPageCache, type PageCache } from "./lib/page-cache";
import { clientIp } from "./middleware/client-ip";
import { apiCors } from "./middleware/cors";
import { authErrorResponse, errorHandler, notFoundHandler, sendError } from "./middleware/errors";
import { headRequests } from "./middleware/head";
import { limitProxied, proxySlots } from "./middleware/proxy-slots";
import { apiRateLimit, RATE_LIMIT_HEADERS } from "./middleware/rate-limit";
import { requestLog } from "./middleware/request-log";
import { requireUser } from "./middleware/require-user";
import { REQUEST_ID_HEADER } from "./services/activity/auth-events";
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
import { docsRoutes } from "./routes/docs";
import { sandboxAddonRoutes } from "./routes/sandbox-addons";
import { chatRoutes } from "./routes/chat";
import { catalogRouter } from "./routes/catalog";
import { orchestratorRoutes } from "./routes/orchestrator";
import { knowledgeRoutes } from "./routes/knowledge";
import { mcpRoutes } from "./routes/mcp";
import { onboardingRoutes } from "./routes/onboarding";
import { sandboxRoutes } from "./routes/sandboxes";
import { accountRoutes } from "./routes/account";
import { activityRoutes } from "./routes/activity";
import { runWorkloadCleanups } from "./services/account/workload-cleanup";
import type { SandboxRuntime } from "./services/sandboxes/runtime";
import { buildSandboxRuntime } from "./services/sandboxes/setup";
import { sandboxHooks } from "./services/sandboxes/workload-files";

export type AppDeps = {
  config: Config;
  database: Database;
  logger: Logger;
  /** Built from config and database when not given. */
  auth?: Auth;
  /** Session resolution with its cache (src/auth/session-cache.ts); built from auth and database when not given. */
  sessions?: SessionResolver;
  /** Rendered list pages (src/lib/page-cache.ts); built from config and database when not given. */
  pages?: PageCache;
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
const CORS_ALLOW_HEADERS = ["Content-Type", "Authorization", "Idempotency-Key", "If-Match", "If-None-Match", "Last-Event-ID", "X-Request-Id"];
const CORS_EXPOSE_HEADERS = ["X-Request-Id", "ETag", "Retry-After", "Location", "set-auth-token", ...RATE_LIMIT_HEADERS];

/**
 * Builds the whole HTTP application. No listening and no globals: production (src/index.ts) and
 * tests (app.request) build it the same way.
 */
export function createApp(deps: AppDeps) {
  const { config, database, logger } = deps;
  const now = deps.now ?? (() => new Date());
  const auth = deps.auth ?? createAuth({ config, db: database.db, logger });
  const events = deps.events ?? createChangeNotifier(database, logger);
  const sessions =
    deps.sessions ??
    createSessionResolver({ auth, database, secret: config.authSecret, logger, options: config.sessionCache });
  const pages = deps.pages ?? createPageCache({ database, logger, options: config.pageCache });
  const sandboxes =
    deps.sandboxes ?? buildSandboxRuntime({ config, db: database.db, logger, now, driver: createDriver(config, logger) });
  // Changed configuration and credentials reach the owner's running sandboxes.
  const hooks = sandboxHooks({ db: database.db, keyring: config.keyring, logger, now, driver: sandboxes.driver, mcp: config.mcp });
  const sandboxConfig = deps.sandboxConfig ?? hooks.config;
  // After an account deletion commits, its sandboxes' workloads are removed at once; the
  // workload-cleanups job (src/jobs/background.ts) retries whatever fails until it is gone.
  const removeWorkloads = (sandboxIds: string[]) => {
    void runWorkloadCleanups({ db: database.db, driver: sandboxes.driver, logger, now }, { only: sandboxIds }).catch((err) =>
      logger.warn({ err: { message: (err as Error).message } }, "workload cleanup after account deletion failed; the job retries"),
    );
  };

  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  // Outermost: sees every response last (src/middleware/head.ts).
  app.use(headRequests);

  const assignRequestId = requestId({
    headerName: "X-Request-Id",
    limitLength: 128,
    // An incoming id is honoured only if it is short and made of safe characters (Hono checks).
    generator: () => newId("request"),
  });
  app.use((c, next) =>
    assignRequestId(c, async () => {
      await next();
      // A response the route built itself (Better Auth's, a proxied one, the account export's
      // stream) does not carry the header Hono prepared; it is added to it here.
      if (!c.res.headers.has("X-Request-Id")) c.res.headers.set("X-Request-Id", c.get("requestId"));
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
  app.use(
    "/api/*",
    apiCors({
      origins: config.trustedOrigins,
      allowMethods: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
      allowHeaders: CORS_ALLOW_HEADERS,
      exposeHeaders: CORS_EXPOSE_HEADERS,
      maxAgeSeconds: 600,
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
  // Long-lived by design: event streams, /wait long-polls, the agent proxy (its SSE stream) and
  // the add-on proxy (WebSockets, long downloads).
  const LONG_LIVED = /\/(events|wait)$|\/sandboxes\/[^/]+\/(agent|addons\/[^/]+)(\/|$)/;
  app.use("/api/*", (c, next) => (LONG_LIVED.test(c.req.path) ? next() : deadline(c, next)));
  app.use(async (c, next) => {
    c.set("auth", auth);
    c.set("pages", pages);
    await next();
  });

  app.onError(errorHandler(logger));
  app.notFound(notFoundHandler(() => app.routes));

  // Requests that may change sessions or users (sign-out, revocation, profile and account
  // changes) answer only once this instance's session cache has dropped what they changed; other
  // instances drop it when their own LISTEN connections get the same notification, at the same
  // commit (nothing orders those deliveries: a few milliseconds apart under load).
  // (/me itself, /me/account…, /me/sessions…; not the other /me/… documents.)
  const SESSION_CHANGES = /^\/api\/(auth\/|v1\/me($|\/account(\/|$)|\/sessions(\/|$)))/;
  app.use("/api/*", async (c, next) => {
    await next();
    // Better Auth changes rows on some GETs too (get-session's sliding refresh, verify-email).
    const path = c.req.path;
    if ((c.req.method !== "GET" || path.startsWith("/api/auth/")) && SESSION_CHANGES.test(path)) await sessions.settle();
  });

  app.on(["GET", "POST"], "/api/auth/*", async (c) => {
    // Better Auth reads the client address from CLIENT_IP_HEADER only; whatever the client sent
    // under that name is replaced by the address resolved above.
    const headers = new Headers(c.req.raw.headers);
    headers.delete(CLIENT_IP_HEADER);
    const ip = c.get("clientIp");
    if (ip) headers.set(CLIENT_IP_HEADER, ip);
    // The request id for the auth activity entries (src/services/activity/auth-events.ts).
    headers.set(REQUEST_ID_HEADER, c.get("requestId"));
    const res = await auth.handler(new Request(c.req.raw, { headers }));
    // A path Better Auth does not know gets an empty 404 from it; unknown routes answer in the
    // envelope like everywhere else.
    if (res.status === 404 && !res.headers.get("content-type")) {
      throw new AppError("NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`);
    }
    // Its own errors, in the envelope (with its code and message kept for better-auth/client).
    return res.status >= 400 ? authErrorResponse(c, res, logger) : res;
  });

  // The knowledge MCP server authenticates sandbox agents by their MCP token, not a session:
  // mounted ahead of requireUser, which its handlers never reach.
  app.route("/api/v1", mcpRoutes({ db: database.db, now }));
  app.use("/api/v1/*", requireUser(sessions, database.db, now));
  // The agent and add-on proxies: a sandbox's own traffic, not the API's.
  const PROXIED = /^\/api\/v1\/sandboxes\/[^/]+\/(agent|addons)(\/|$)/;
  const proxied = (path: string) => PROXIED.test(path);
  app.use("/api/v1/*", apiRateLimit(config.apiRateLimit, proxied));
  app.use("/api/v1/*", limitProxied(proxySlots(config.proxyMaxOpenPerUser), proxied));
  // A request that may write answers only once its changes have reached this instance's page
  // cache (the triggers' notifications, one round trip), so the client's next read sees the write
  // and pages of other kinds stay cached. The proxies write nothing a page shows at once.
  app.use("/api/v1/*", async (c, next) => {
    await next();
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !proxied(c.req.path)) await pages.settle();
  });
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
    .route("/api/v1", activityRoutes())
    .route("/api/v1", accountRoutes({ freshSessionMs: config.accountDeleteFreshSessionMs, removeWorkloads }))
    .route("/api/v1", preferencesRoutes({ events, heartbeatMs: config.eventsHeartbeatMs, maxStreamsPerUser: config.eventsMaxStreamsPerUser }))
    .route("/api/v1", agentConfigRoutes({ sandboxConfig }))
    .route("/api/v1", providerRoutes())
    .route("/api/v1", credentialRoutes())
    .route("/api/v1", catalogRouter())
    .route("/api/v1", sandboxRoutes(sandboxes))
    .route("/api/v1", agentProxyRoutes(sandboxes))
    .route("/api/v1", sandboxAddonRoutes(sandboxes, config.trustedOrigins))
    .route("/api/v1", chatRoutes(sandboxes))
    .route("/api/v1", orchestratorRoutes(sandboxes.driver))
    .route("/api/v1", knowledgeRoutes())
    .route("/api/v1", onboardingRoutes(sandboxes, config.mcp));

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "The signed session token from the `set-auth-token` header of a sign-in response.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "mcpToken", {
    type: "http",
    scheme: "bearer",
    description: "A sandbox's MCP token (wmcp_…), handed to its agent's opencode.json on every start; only for /api/v1/mcp.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "cookieAuth", {
    type: "apiKey",
    in: "cookie",
    name: "better-auth.session_token",
    description:
      "The session cookie set by /api/auth sign-in (browsers send it with credentials: include). " +
      "Named __Secure-better-auth.session_token when PUBLIC_URL is https.",
  });
  documentBodyErrors(app.openAPIRegistry);
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
  app.route("/", docsRoutes({ title: "Warren API", specUrl: "/api/openapi.json" }));

  return routes;
}

export type App = ReturnType<typeof createApp>;
/** For frontends: `hc<AppType>(baseUrl)` from hono/client gives a typed client. */
export type AppType = App;
