import { afterAll, beforeAll, expect } from "bun:test";
import { createPageCache, type PageCache } from "../../src/lib/page-cache";
import { Writable } from "node:stream";
import { createApp, type App, type AppDeps } from "../../src/app";
import { createAuth, type Auth } from "../../src/auth/auth";
import { loadConfig, type Config } from "../../src/config";
import { createLogger, type Logger } from "../../src/lib/logger";
import { createTestDatabase, type TestDatabase } from "./db";
import { testUidBase } from "./uids";

export const TEST_SECRET = "test-secret-that-is-at-least-32-characters-long";
export const TEST_PUBLIC_URL = "http://localhost:3000";

export function testConfig(env: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    NODE_ENV: "test",
    DATA_DIR: "memory://",
    AUTH_SECRET: TEST_SECRET,
    PUBLIC_URL: TEST_PUBLIC_URL,
    LOG_LEVEL: "info",
    // Tests sign in far more often than a person does; rate limiting has its own test.
    AUTH_RATE_LIMIT_MAX: "100000",
    AUTH_SIGN_IN_RATE_LIMIT_MAX: "100000",
    API_RATE_LIMIT_MAX: "100000",
    SANDBOX_UID_BASE: String(testUidBase()),
    ...env,
  });
}

/** A logger whose every line is kept in memory, so tests can assert what was (not) logged. */
export function memoryLogger(level = "info"): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      cb();
    },
  });
  return { logger: createLogger(level, stream), lines };
}

export type TestApp = {
  app: App;
  auth: Auth;
  config: Config;
  database: TestDatabase;
  /** The app's page cache: settle() after writing behind the API, before reading a list page. */
  pages: PageCache;
  logLines: string[];
  request(path: string, init?: RequestInit & { json?: unknown; token?: string }): Promise<Response>;
  close(): Promise<void>;
};

export async function createTestApp(
  options: {
    env?: Record<string, string | undefined>;
    /** Extra AppDeps (a fake clock, hooks); config, database, logger and auth are the helper's. */
    deps?: Omit<Partial<AppDeps>, "config" | "database" | "logger" | "auth">;
    /** Builds the sandbox runtime from the helper's config, database and logger. */
    sandboxes?: (base: { config: Config; db: TestDatabase["db"]; logger: Logger }) => AppDeps["sandboxes"];
  } = {},
): Promise<TestApp> {
  const database = await createTestDatabase();
  const config = testConfig(options.env);
  const { logger, lines } = memoryLogger();
  const auth = createAuth({ config, db: database.db, logger });
  const sandboxes = options.sandboxes?.({ config, db: database.db, logger });
  const pages = options.deps?.pages ?? createPageCache({ database, logger, options: config.pageCache });
  const app = createApp({ ...options.deps, ...(sandboxes ? { sandboxes } : {}), config, database, logger, auth, pages });
  return {
    app,
    auth,
    config,
    database,
    pages,
    logLines: lines,
    request: requester((path, init) => app.request(path, init)),
    close: () => database.destroy(),
  };
}

export type RequestInitPlus = RequestInit & { json?: unknown; token?: string };

/** A request function with the tests' shorthands: `json` for a JSON body, `token` for a bearer. */
export function requester(send: (path: string, init: RequestInit) => Response | Promise<Response>) {
  return (path: string, init: RequestInitPlus = {}): Promise<Response> => {
    const { json, token, ...rest } = init;
    const headers = new Headers(rest.headers);
    if (json !== undefined) {
      headers.set("content-type", "application/json");
      rest.body = JSON.stringify(json);
    }
    if (token) headers.set("authorization", `Bearer ${token}`);
    return Promise.resolve(send(path, { ...rest, headers }));
  };
}

/** Another device of the same user: a second session through the real sign-in; its bearer token. */
export async function signInAgain(
  t: Pick<TestApp, "request" | "config">,
  u: Pick<TestUser, "email" | "password">,
  headers: Record<string, string> = {},
): Promise<string> {
  const res = await t.request("/api/auth/sign-in/email", {
    method: "POST",
    json: { email: u.email, password: u.password },
    headers: { origin: t.config.publicUrl, ...headers },
  });
  if (res.status !== 200) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  return res.headers.get("set-auth-token")!;
}

export type TestUser = { id: string; email: string; name: string; password: string; token: string; cookie: string };

let userCounter = 0;

/** Signs a new user up through Better Auth's real endpoint and returns both credentials. */
export async function signUp(t: Pick<TestApp, "request">, overrides: Partial<Pick<TestUser, "email" | "name" | "password">> = {}): Promise<TestUser> {
  const n = ++userCounter;
  const email = overrides.email ?? `user${n}.${Date.now()}@example.com`;
  const name = overrides.name ?? `User ${n}`;
  const password = overrides.password ?? "correct horse battery staple";
  const res = await t.request("/api/auth/sign-up/email", {
    method: "POST",
    json: { email, name, password },
    headers: { origin: TEST_PUBLIC_URL },
  });
  if (res.status !== 200) throw new Error(`sign-up failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { user: { id: string } };
  return {
    id: body.user.id,
    email,
    name,
    password,
    token: res.headers.get("set-auth-token")!,
    cookie: sessionCookie(res),
  };
}

/** The `name=value` pair of the session cookie set by a response. */
export function sessionCookie(res: Response): string {
  const cookies = res.headers.getSetCookie();
  const session = cookies.find((c) => c.startsWith("better-auth.session_token="));
  if (!session) throw new Error(`no session cookie in ${JSON.stringify(cookies)}`);
  return session.split(";")[0]!;
}

export async function json<T = any>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

/**
 * Registers a fresh app and database for the calling test file (built in beforeAll, destroyed in
 * afterAll) and returns an accessor. The first file of a run also builds the migrated template,
 * which takes a few seconds, hence the generous hook timeout.
 */
export function useTestApp(options: Parameters<typeof createTestApp>[0] = {}): () => TestApp {
  let current: TestApp | undefined;
  beforeAll(async () => {
    current = await createTestApp(options);
  }, 120_000);
  afterAll(async () => {
    await current?.close();
  }, 60_000);
  return () => {
    if (!current) throw new Error("useTestApp: the app is built in beforeAll; call the accessor inside tests");
    return current;
  };
}

/**
 * Reads `path` until `i`'s page cache serves it (its LISTEN becomes live on first use); returns
 * the body of the last read.
 */
export async function readUntilCached(i: Pick<TestApp, "request" | "pages">, token: string, path: string): Promise<any> {
  const before = i.pages.stats().hits;
  let body: any;
  for (let n = 0; n < 50 && i.pages.stats().hits < before + 1; n++) {
    const res = await i.request(path, { token });
    expect(res.status).toBe(200);
    body = await json(res);
    if (n > 0) await Bun.sleep(5);
  }
  expect(i.pages.stats().hits).toBeGreaterThanOrEqual(before + 1);
  return body;
}
