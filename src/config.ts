import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { buildKeyring, DEV_KEY_ID, decodeKey, type Keyring, KeyringError, parseKeyList } from "./crypto/keyring";

/**
 * The environment, parsed once. Every variable Warren reads is declared here; nothing else reads
 * process.env. A bad value stops start-up with one line naming the variable.
 */

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const MEMORY_DATA_DIR = "memory://";

const emptyToUndefined = (v: unknown) => (typeof v === "string" && v.trim() === "" ? undefined : v);

/** One of `values`, any case ("OFF" is "off"), `fallback` when unset or empty. */
const choice = <const T extends readonly [string, ...string[]]>(values: T, fallback: T[number]) =>
  z.preprocess(
    (v) => (typeof v === "string" ? emptyToUndefined(v.toLowerCase()) : v),
    z.enum(values, { error: `must be ${values.map((x) => `"${x}"`).join(" or ")}` }).default(fallback as never),
  );

/** A comma-separated list, items trimmed, empty ones dropped; unset is []. */
const commaList = (v: unknown) =>
  typeof v === "string"
    ? v
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
    : [];
const optionalString = z.preprocess(emptyToUndefined, z.string().optional());
const intInRange = (min: number, max: number, fallback: number) =>
  z.preprocess(
    emptyToUndefined,
    z.coerce
      .number({ error: "must be a whole number" })
      .int({ error: "must be a whole number" })
      .min(min, { error: `must be at least ${min}` })
      .max(max, { error: `must be at most ${max}` })
      .default(fallback),
  );

const httpUrl = z.url({ protocol: /^https?$/, error: "must be an absolute http(s) URL" });

/** An origin is scheme://host[:port] with nothing after it; anything else would never match. */
const origin = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: `"${value}" is not an origin like https://app.example.com` });
    return z.NEVER;
  }
  if (!/^https?:$/.test(url.protocol) || url.origin !== value.replace(/\/$/, "")) {
    ctx.addIssue({ code: "custom", message: `"${value}" is not an origin like https://app.example.com` });
    return z.NEVER;
  }
  return url.origin;
});

/** A TCP/UDP port given in a list: "11434", not "0" or "ollama". */
const port = z.string().transform((value, ctx) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) {
    ctx.addIssue({ code: "custom", message: `"${value}" is not a port number (1-65535)` });
    return z.NEVER;
  }
  return n;
});

const envSchema = z
  .object({
    NODE_ENV: z.preprocess(emptyToUndefined, z.enum(["development", "production", "test"]).default("development")),
    HOST: optionalString,
    PORT: intInRange(0, 65535, 3000),
    PUBLIC_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
    DATABASE_URL: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .refine((u) => /^postgres(ql)?:\/\//.test(u), { error: "must be a postgres:// or postgresql:// URL" })
        .optional(),
    ),
    DATABASE_POOL_SIZE: intInRange(1, 200, 10),
    DATA_DIR: z.preprocess(emptyToUndefined, z.string().default(".data")),
    TRUSTED_ORIGINS: z.preprocess(commaList, z.array(origin)),
    AUTH_SECRET: z.preprocess(
      emptyToUndefined,
      z.string().min(32, { error: "must be at least 32 characters (try: openssl rand -base64 32)" }).optional(),
    ),
    GITHUB_CLIENT_ID: optionalString,
    GITHUB_CLIENT_SECRET: optionalString,
    // Tests only: Better Auth's GitHub provider hard-codes github.com and api.github.com, so an
    // offline test points Warren's outgoing requests for those hosts at a local stand-in.
    GITHUB_API_OVERRIDE_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
    // "none" lets a frontend on another site (app.example.com → api.other.net) keep its session;
    // the default "lax" is enough when the frontend and PUBLIC_URL share a registrable domain.
    AUTH_COOKIE_SAME_SITE: choice(["lax", "none"], "lax"),
    LOG_LEVEL: z.preprocess(emptyToUndefined, z.enum(LOG_LEVELS).default("info")),
    CLIENT_IP_HEADER: z.preprocess(
      emptyToUndefined,
      z
        .string()
        .regex(/^[A-Za-z0-9-]+$/, { error: "must be a header name such as x-forwarded-for" })
        .transform((s) => s.toLowerCase())
        .optional(),
    ),
    MAX_BODY_BYTES: intInRange(1024, 100 * 1024 * 1024, 1024 * 1024),
    SHUTDOWN_TIMEOUT_MS: intInRange(0, 120_000, 10_000),
    // ---- Orchestrator (src/orchestrator): which driver runs sandboxes, and its knobs. ----
    // local: bubblewrap process trees on this host (needs root, bubblewrap, util-linux);
    // docker: the Docker Engine API on DOCKER_SOCKET.
    ORCHESTRATOR_DRIVER: choice(["local", "docker"], "local"),
    DOCKER_SOCKET: z.preprocess(emptyToUndefined, z.string().default("/var/run/docker.sock")),
    // Overrides the opencode binary resolved from the opencode-ai npm package (local driver).
    OPENCODE_BIN: optionalString,
    // How long start() waits for the agent to answer before failing with its last output.
    SANDBOX_AGENT_START_TIMEOUT_MS: intInRange(1_000, 600_000, 60_000),
    // Both drivers: each sandbox runs under its own host uid, claimed upwards from this one.
    SANDBOX_UID_BASE: intInRange(1_000, 4_000_000_000, 200_000),
    // RLIMIT_NOFILE of every sandbox process (the tiers have no open-files column).
    SANDBOX_OPEN_FILES_LIMIT: intInRange(64, 1_048_576, 4_096),
    // The local driver keeps each workload's output under this size.
    SANDBOX_LOG_MAX_BYTES: intInRange(4_096, 1_073_741_824, 5 * 1024 * 1024),
    // Local driver: each sandbox's files on an ext4 image of its tier's storageGb, on a loop device
    // (src/orchestrator/local-disk.ts). auto: where the host allows it, else plain directories with
    // the reason in the sandbox's applied limits; off: plain directories for new sandboxes.
    SANDBOX_STORAGE_QUOTA: choice(["auto", "off"], "auto"),
    // Both drivers: nftables rules keep each sandbox's uid off other uids' loopback listeners
    // (src/orchestrator/loopback-guard.ts). "off" is an explicit, reported opt-out, never a fallback.
    SANDBOX_LOOPBACK_GUARD: choice(["on", "off"], "on"),
    // Loopback ports every sandbox may still reach, comma separated (a model server next to Warren).
    SANDBOX_LOOPBACK_ALLOW_PORTS: z.preprocess(commaList, z.array(port)),
    // ---- end orchestrator ----
    REQUEST_TIMEOUT_MS: intInRange(100, 600_000, 30_000),
    // Sandbox quotas and the lifecycle's background work.
    MAX_SANDBOXES_PER_USER: intInRange(1, 100_000, 20),
    MAX_RUNNING_SANDBOXES_PER_USER: intInRange(1, 10_000, 3),
    SANDBOX_TRANSITION_TIMEOUT_SECONDS: intInRange(10, 86_400, 300),
    // A worker's hold on the operation it runs; renewed while it runs, so after a crash another
    // instance (or the restarted one) takes the operation over once this much time has passed.
    SANDBOX_OPERATION_CLAIM_SECONDS: intInRange(2, 3_600, 60),
    SANDBOX_RECONCILE_INTERVAL_SECONDS: intInRange(1, 86_400, 30),
    // How often each running sandbox's add-on services are probed (src/services/sandboxes/addon-health.ts).
    SANDBOX_ADDON_HEALTH_INTERVAL_SECONDS: intInRange(1, 3_600, 15),
    // Chat sync (src/services/chat/sync-manager.ts): how often an instance looks for running
    // sandboxes to follow, how long its per-sandbox lease lasts, and the reconciliation cadence.
    CHAT_SYNC_TICK_MS: intInRange(100, 600_000, 2_000),
    CHAT_SYNC_LEASE_MS: intInRange(1_000, 3_600_000, 15_000),
    CHAT_RECONCILE_INTERVAL_SECONDS: intInRange(1, 86_400, 60),
    // An agent stream silent this long (OpenCode sends a heartbeat every 10 s) is dropped and reopened.
    CHAT_SYNC_STREAM_IDLE_SECONDS: intInRange(15, 3_600, 45),
    // Comment lines on idle event streams, so proxies and browsers keep them open.
    EVENTS_HEARTBEAT_MS: intInRange(50, 300_000, 15_000),
    // Event streams one user may hold open at once, per instance (src/services/events/sse.ts).
    EVENTS_MAX_STREAMS_PER_USER: intInRange(1, 10_000, 20),
    // Verified sessions are cached this long per instance (0: every request reads the database).
    // Sign-out and revocation still take effect at once: see src/auth/session-cache.ts.
    SESSION_CACHE_TTL_SECONDS: intInRange(0, 3_600, 30),
    SESSION_CACHE_MAX_ENTRIES: intInRange(1, 10_000_000, 50_000),
    // Rendered list pages are kept this long per instance (0: every page is read and rendered).
    // Every change reaches every instance at commit: see src/lib/page-cache.ts.
    PAGE_CACHE_TTL_SECONDS: intInRange(0, 3_600, 30),
    PAGE_CACHE_MAX_MB: intInRange(1, 65_536, 64),
    AUTH_RATE_LIMIT_MAX: intInRange(1, 1_000_000, 100),
    AUTH_RATE_LIMIT_WINDOW_SECONDS: intInRange(1, 86_400, 60),
    AUTH_SIGN_IN_RATE_LIMIT_MAX: intInRange(1, 1_000_000, 10),
    // Requests a signed-in user may make to /api/v1 per window, per instance (0: no limit).
    API_RATE_LIMIT_MAX: intInRange(0, 1_000_000, 1_200),
    API_RATE_LIMIT_WINDOW_SECONDS: intInRange(1, 86_400, 60),
    // Requests and WebSockets one user may have open through the sandbox proxies at once, per instance.
    PROXY_MAX_OPEN_PER_USER: intInRange(1, 100_000, 256),
    // Vault keyring: "k1:base64,k2:base64" (32 random bytes each) and the id new values use.
    ENCRYPTION_KEYS: z.preprocess(emptyToUndefined, z.string().optional()),
    ENCRYPTION_ACTIVE_KEY: optionalString,
    // The legacy system's ENCRYPTION_KEY setting, only for importing its encrypted columns.
    LEGACY_ENCRYPTION_KEY: optionalString,
    PROVIDER_CATALOG_URL: z.preprocess(emptyToUndefined, httpUrl.default("https://models.dev/api.json")),
    PROVIDER_CATALOG_TIMEOUT_MS: intInRange(100, 120_000, 10_000),
    // 0 turns the background refresh off (an air-gapped install keeps the seeded snapshot).
    PROVIDER_CATALOG_REFRESH_MINUTES: intInRange(0, 10_080, 360),
    // The OAuth app whose device flow signs users in to GitHub Copilot (OpenCode's public one).
    COPILOT_OAUTH_CLIENT_ID: z.preprocess(emptyToUndefined, z.string().default("Iv1.b507a08c87ecfe98")),
    // The URL an agent inside a sandbox reaches Warren at, for the knowledge MCP server
    // (default http://127.0.0.1:PORT: both drivers give sandboxes the host's network).
    SANDBOX_API_URL: z.preprocess(emptyToUndefined, httpUrl.optional()),
    // Lifetime of a sandbox's MCP token; a new one is issued on every start.
    MCP_TOKEN_TTL_MINUTES: intInRange(1, 10_080, 720),
    // Activity older than this moves to the anonymised archive (src/jobs/retention.ts).
    ACTIVITY_RETENTION_DAYS: intInRange(1, 36_500, 90),
    ACTIVITY_RETENTION_BATCH_SIZE: intInRange(1, 100_000, 1_000),
    ACTIVITY_RETENTION_INTERVAL_MINUTES: intInRange(1, 10_080, 1_440),
    // DELETE /me/account without a password needs a session signed in at most this long ago.
    ACCOUNT_DELETE_FRESH_SESSION_MINUTES: intInRange(1, 1_440, 15),
  })
  .superRefine((env, ctx) => {
    if (env.NODE_ENV === "production") {
      if (!env.AUTH_SECRET) ctx.addIssue({ code: "custom", path: ["AUTH_SECRET"], message: "is required in production" });
      if (!env.PUBLIC_URL) ctx.addIssue({ code: "custom", path: ["PUBLIC_URL"], message: "is required in production" });
      // A generated key would be lost with the container and every stored credential with it.
      if (!env.ENCRYPTION_KEYS) {
        ctx.addIssue({ code: "custom", path: ["ENCRYPTION_KEYS"], message: "is required in production (id:base64 of 32 random bytes)" });
      }
      // Whoever sets it in production reads every GitHub user's token exchange.
      if (env.GITHUB_API_OVERRIDE_URL) {
        ctx.addIssue({ code: "custom", path: ["GITHUB_API_OVERRIDE_URL"], message: "is for tests only and is refused in production" });
      }
    }
    if (Boolean(env.GITHUB_CLIENT_ID) !== Boolean(env.GITHUB_CLIENT_SECRET)) {
      const missing = env.GITHUB_CLIENT_ID ? "GITHUB_CLIENT_SECRET" : "GITHUB_CLIENT_ID";
      ctx.addIssue({ code: "custom", path: [missing], message: "is required when the other GitHub variable is set" });
    }
    // Browsers silently drop a SameSite=None cookie that is not Secure, and a Secure cookie sent
    // over plain http to anything but loopback: refuse the setting rather than ship dead sessions.
    const publicUrl = URL.parse(env.PUBLIC_URL ?? `http://localhost:${env.PORT}`);
    if (env.AUTH_COOKIE_SAME_SITE === "none" && publicUrl?.protocol === "http:" && !isLoopbackHost(publicUrl.hostname)) {
      ctx.addIssue({
        code: "custom",
        path: ["AUTH_COOKIE_SAME_SITE"],
        message: '"none" needs an https PUBLIC_URL (browsers drop SameSite=None cookies that are not Secure)',
      });
    }
  });

export type Env = z.infer<typeof envSchema>;

/** Hosts browsers treat as secure contexts even over http, so Secure cookies still work there. */
function isLoopbackHost(hostname: string): boolean {
  return (
    hostname === "localhost" ||
    hostname.endsWith(".localhost") ||
    hostname === "[::1]" ||
    /^127(\.\d{1,3}){3}$/.test(hostname)
  );
}

export type Config = {
  env: Env["NODE_ENV"];
  host: string;
  port: number;
  /** The URL users and OAuth providers reach Warren at (behind a proxy: the proxy's URL). */
  publicUrl: string;
  databaseUrl: string | undefined;
  poolSize: number;
  /** Directory for the embedded database and generated secrets; null means in memory only. */
  dataDir: string | null;
  trustedOrigins: string[];
  authSecret: string;
  github: { clientId: string; clientSecret: string } | undefined;
  /** Tests only (refused in production): base URL standing in for github.com and api.github.com. */
  githubApiOverrideUrl: string | undefined;
  /** SameSite of Better Auth's cookies; "none" also makes them Secure. */
  cookieSameSite: Env["AUTH_COOKIE_SAME_SITE"];
  logLevel: Env["LOG_LEVEL"];
  clientIpHeader: string | undefined;
  maxBodyBytes: number;
  shutdownTimeoutMs: number;
  /** Which orchestrator driver runs sandboxes, and its settings (see src/orchestrator). */
  orchestrator: {
    driver: Env["ORCHESTRATOR_DRIVER"];
    dockerSocket: string;
    opencodeBin: string | undefined;
    agentStartTimeoutMs: number;
    uidBase: number;
    openFilesLimit: number;
    logMaxBytes: number;
    storageQuota: Env["SANDBOX_STORAGE_QUOTA"];
    /** The drivers' loopback guard; allowPorts are the operator's own (Warren's port is added by createDriver). */
    loopbackGuard: { enabled: boolean; allowPorts: number[] };
  };
  /** A request still unanswered after this gets 503, whatever it waits for. */
  requestTimeoutMs: number;
  sandboxes: { maxSandboxes: number; maxRunning: number; transitionTimeoutMs: number; reconcileIntervalMs: number; operationClaimMs: number; addonHealthIntervalMs: number };
  /** Chat sync from the sandboxes' agents (src/services/chat/sync-manager.ts). */
  chatSync: { tickMs: number; leaseMs: number; reconcileIntervalMs: number; streamIdleMs: number };
  /** Interval of the heartbeat comment on server-sent event streams. */
  eventsHeartbeatMs: number;
  eventsMaxStreamsPerUser: number;
  /** src/auth/session-cache.ts; ttlMs 0 turns the cache off. */
  sessionCache: { ttlMs: number; maxEntries: number };
  /** src/lib/page-cache.ts; ttlMs 0 turns the cache off. */
  pageCache: { ttlMs: number; maxBytes: number };
  /** Per client address and window; sign-in/up and password changes have their own, lower max. */
  authRateLimit: { max: number; signInMax: number; windowSeconds: number };
  /** /api/v1 requests per signed-in user and window, counted per instance (src/middleware/rate-limit.ts). */
  apiRateLimit: { max: number; windowSeconds: number };
  proxyMaxOpenPerUser: number;
  /** The vault keyring; in development a generated key kept in DATA_DIR (0600). */
  keyring: Keyring;
  legacyEncryptionKey: string | undefined;
  providerCatalog: { url: string; timeoutMs: number; refreshIntervalMs: number };
  copilotClientId: string;
  /** The knowledge MCP server as sandboxes see it: base URL and token lifetime. */
  mcp: { sandboxApiUrl: string; tokenTtlMs: number; tokenSecret: string };
  /** Activity retention (archive with personal data removed) and the job's cadence. */
  activity: { retentionDays: number; retentionBatchSize: number; retentionIntervalMs: number };
  /** How recent a session must be to delete the account without re-entering the password. */
  accountDeleteFreshSessionMs: number;
};

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Parses the environment; throws ConfigError whose message is one line naming the variable. */
export function parseEnv(source: Record<string, string | undefined>): Env {
  const result = envSchema.safeParse(source);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const name = String(issue.path[0] ?? "environment");
  throw new ConfigError(`Invalid environment variable ${name}: ${issue.message}`);
}

/**
 * Builds the runtime config. In development a missing AUTH_SECRET is generated once and kept in
 * the data directory (mode 0600), so sessions survive restarts without any setup.
 */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const env = parseEnv(source);
  const dataDir = env.DATA_DIR === MEMORY_DATA_DIR ? null : env.DATA_DIR;
  const host = env.HOST ?? (env.NODE_ENV === "production" ? "0.0.0.0" : "127.0.0.1");
  const publicUrl = (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/$/, "");
  const publicOrigin = new URL(publicUrl).origin;
  const authSecret = env.AUTH_SECRET ?? persistentDevSecret(dataDir, "auth-secret");
  return {
    env: env.NODE_ENV,
    host,
    port: env.PORT,
    publicUrl,
    databaseUrl: env.DATABASE_URL,
    poolSize: env.DATABASE_POOL_SIZE,
    dataDir,
    trustedOrigins: [...new Set([publicOrigin, ...env.TRUSTED_ORIGINS])],
    authSecret,
    github:
      env.GITHUB_CLIENT_ID && env.GITHUB_CLIENT_SECRET
        ? { clientId: env.GITHUB_CLIENT_ID, clientSecret: env.GITHUB_CLIENT_SECRET }
        : undefined,
    githubApiOverrideUrl: env.GITHUB_API_OVERRIDE_URL?.replace(/\/$/, ""),
    cookieSameSite: env.AUTH_COOKIE_SAME_SITE,
    logLevel: env.LOG_LEVEL,
    clientIpHeader: env.CLIENT_IP_HEADER,
    maxBodyBytes: env.MAX_BODY_BYTES,
    shutdownTimeoutMs: env.SHUTDOWN_TIMEOUT_MS,
    orchestrator: {
      driver: env.ORCHESTRATOR_DRIVER,
      dockerSocket: env.DOCKER_SOCKET,
      opencodeBin: env.OPENCODE_BIN,
      agentStartTimeoutMs: env.SANDBOX_AGENT_START_TIMEOUT_MS,
      uidBase: env.SANDBOX_UID_BASE,
      openFilesLimit: env.SANDBOX_OPEN_FILES_LIMIT,
      logMaxBytes: env.SANDBOX_LOG_MAX_BYTES,
      storageQuota: env.SANDBOX_STORAGE_QUOTA,
      loopbackGuard: { enabled: env.SANDBOX_LOOPBACK_GUARD === "on", allowPorts: env.SANDBOX_LOOPBACK_ALLOW_PORTS },
    },
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    sandboxes: {
      maxSandboxes: env.MAX_SANDBOXES_PER_USER,
      maxRunning: env.MAX_RUNNING_SANDBOXES_PER_USER,
      transitionTimeoutMs: env.SANDBOX_TRANSITION_TIMEOUT_SECONDS * 1000,
      operationClaimMs: env.SANDBOX_OPERATION_CLAIM_SECONDS * 1000,
      reconcileIntervalMs: env.SANDBOX_RECONCILE_INTERVAL_SECONDS * 1000,
      addonHealthIntervalMs: env.SANDBOX_ADDON_HEALTH_INTERVAL_SECONDS * 1000,
    },
    chatSync: {
      tickMs: env.CHAT_SYNC_TICK_MS,
      leaseMs: env.CHAT_SYNC_LEASE_MS,
      reconcileIntervalMs: env.CHAT_RECONCILE_INTERVAL_SECONDS * 1000,
      streamIdleMs: env.CHAT_SYNC_STREAM_IDLE_SECONDS * 1000,
    },
    eventsHeartbeatMs: env.EVENTS_HEARTBEAT_MS,
    eventsMaxStreamsPerUser: env.EVENTS_MAX_STREAMS_PER_USER,
    sessionCache: { ttlMs: env.SESSION_CACHE_TTL_SECONDS * 1000, maxEntries: env.SESSION_CACHE_MAX_ENTRIES },
    pageCache: { ttlMs: env.PAGE_CACHE_TTL_SECONDS * 1000, maxBytes: env.PAGE_CACHE_MAX_MB * 1024 * 1024 },
    authRateLimit: {
      max: env.AUTH_RATE_LIMIT_MAX,
      signInMax: env.AUTH_SIGN_IN_RATE_LIMIT_MAX,
      windowSeconds: env.AUTH_RATE_LIMIT_WINDOW_SECONDS,
    },
    apiRateLimit: { max: env.API_RATE_LIMIT_MAX, windowSeconds: env.API_RATE_LIMIT_WINDOW_SECONDS },
    proxyMaxOpenPerUser: env.PROXY_MAX_OPEN_PER_USER,
    keyring: loadKeyring(env, dataDir),
    legacyEncryptionKey: env.LEGACY_ENCRYPTION_KEY,
    providerCatalog: {
      url: env.PROVIDER_CATALOG_URL,
      timeoutMs: env.PROVIDER_CATALOG_TIMEOUT_MS,
      refreshIntervalMs: env.PROVIDER_CATALOG_REFRESH_MINUTES * 60_000,
    },
    copilotClientId: env.COPILOT_OAUTH_CLIENT_ID,
    mcp: {
      sandboxApiUrl: (env.SANDBOX_API_URL ?? `http://127.0.0.1:${env.PORT}`).replace(/\/$/, ""),
      tokenTtlMs: env.MCP_TOKEN_TTL_MINUTES * 60_000,
      // MCP tokens are derived from it (HMAC), so the same token can be written again.
      tokenSecret: authSecret,
    },
    activity: {
      retentionDays: env.ACTIVITY_RETENTION_DAYS,
      retentionBatchSize: env.ACTIVITY_RETENTION_BATCH_SIZE,
      retentionIntervalMs: env.ACTIVITY_RETENTION_INTERVAL_MINUTES * 60_000,
    },
    accountDeleteFreshSessionMs: env.ACCOUNT_DELETE_FRESH_SESSION_MINUTES * 60_000,
  };
}

function loadKeyring(env: Env, dataDir: string | null): Keyring {
  const named = <T>(name: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof KeyringError) throw new ConfigError(`Invalid environment variable ${name}: ${err.message}`);
      throw err;
    }
  };
  if (env.ENCRYPTION_KEYS) {
    const keys = named("ENCRYPTION_KEYS", () => parseKeyList(env.ENCRYPTION_KEYS!));
    return named("ENCRYPTION_ACTIVE_KEY", () => buildKeyring(keys, env.ENCRYPTION_ACTIVE_KEY));
  }
  if (env.ENCRYPTION_ACTIVE_KEY) {
    throw new ConfigError("Invalid environment variable ENCRYPTION_ACTIVE_KEY: set ENCRYPTION_KEYS too");
  }
  // persistentDevSecret makes 32 random bytes, base64url: exactly one AES-256 key.
  return buildKeyring(new Map([[DEV_KEY_ID, decodeKey(persistentDevSecret(dataDir, "encryption-key"))]]), DEV_KEY_ID);
}

/** What persistentDevSecret writes: 32 random bytes, base64url (43 characters). */
const DEV_SECRET_FORMAT = /^[A-Za-z0-9_-]{43}$/;

/**
 * A random secret generated on first use and kept in the data directory (0600). The file is
 * written whole under a temporary name and then linked into place, so a concurrent reader never
 * sees it half-written; a file that is not what this wrote (empty after a full disk, edited) stops
 * start-up naming it, instead of running with an empty secret (Better Auth would then sign
 * sessions with its public default).
 */
export function persistentDevSecret(dataDir: string | null, file: string): string {
  if (!dataDir) return randomBytes(32).toString("base64url");
  const path = join(dataDir, file);
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const temp = `${path}.${process.pid}.tmp`;
    writeFileSync(temp, `${randomBytes(32).toString("base64url")}\n`, { mode: 0o600 });
    chmodSync(temp, 0o600);
    try {
      // link() fails if another process put its secret there first; then theirs is the one.
      linkSync(temp, path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      rmSync(temp, { force: true });
    }
  }
  const secret = readFileSync(path, "utf8").trim();
  if (!DEV_SECRET_FORMAT.test(secret)) {
    throw new ConfigError(
      `${path} is not a secret Warren generated (expected 43 base64url characters); restore it, or remove it to generate a new one`,
    );
  }
  return secret;
}
