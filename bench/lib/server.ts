/**
 * The servers under test: Warren itself (bun src/index.ts, NODE_ENV=production) and the baseline
 * server (bench/baseline-server.ts), plus signing in the way apps do.
 */
import { freePort, startProcess, type Started } from "./processes";

export type WarrenServer = Started & { url: string; env: Record<string, string> };

const secrets = {
  authSecret: Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex"),
  encryptionKeys: `k1:${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("base64")}`,
};

/**
 * Warren's environment for a benchmark: production mode, warn-level logs, a fresh AUTH_SECRET and
 * ENCRYPTION_KEYS (the same for every server of one run), auth rate limits out of the way, no
 * network fetch of the model catalog, the default pool.
 */
export function warrenEnv(databaseUrl: string, port: number): Record<string, string> {
  const url = `http://127.0.0.1:${port}`;
  return {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "/tmp",
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: String(port),
    PUBLIC_URL: url,
    AUTH_SECRET: secrets.authSecret,
    ENCRYPTION_KEYS: secrets.encryptionKeys,
    ENCRYPTION_ACTIVE_KEY: "k1",
    AUTH_RATE_LIMIT_MAX: "1000000",
    AUTH_SIGN_IN_RATE_LIMIT_MAX: "1000000",
    // Out of reach, yet counted: `API_RATE_LIMIT_MAX=0 bun run bench:…` measures without the limiter.
    API_RATE_LIMIT_MAX: process.env.API_RATE_LIMIT_MAX ?? "1000000",
    LOG_LEVEL: "warn",
    DATABASE_URL: databaseUrl,
    // No network fetch of the model catalog in the middle of a measurement.
    PROVIDER_CATALOG_REFRESH_MINUTES: "0",
    // `PAGE_CACHE_TTL_SECONDS=0 bun run bench:…` measures list pages without the page cache.
    ...(process.env.PAGE_CACHE_TTL_SECONDS !== undefined ? { PAGE_CACHE_TTL_SECONDS: process.env.PAGE_CACHE_TTL_SECONDS } : {}),
  };
}

/** Starts Warren (`extraArgs` go to bun before the script, e.g. --cpu-prof) and waits for /ready. */
export async function startWarren(name: string, databaseUrl: string, o: { port?: number; extraArgs?: string[] } = {}): Promise<WarrenServer> {
  const port = o.port ?? freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = warrenEnv(databaseUrl, port);
  const started = await startProcess(name, [process.execPath, ...(o.extraArgs ?? []), "src/index.ts"], env, async () => (await fetch(`${url}/ready`)).status === 200);
  return { ...started, url, env };
}

/** Starts bench/baseline-server.ts (postgres.js pool of 10 on the same database). */
export async function startBaseline(name: string, databaseUrl: string): Promise<Started & { url: string }> {
  const port = freePort();
  const url = `http://127.0.0.1:${port}`;
  const started = await startProcess(
    name,
    [process.execPath, "bench/baseline-server.ts"],
    { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", DATABASE_URL: databaseUrl, PORT: String(port) },
    async () => (await fetch(`${url}/hello`)).status === 200,
  );
  return { ...started, url };
}

export type SignedIn = { token: string; cookie: string };

/**
 * Signs in through POST /api/auth/sign-in/email: the bearer token from `set-auth-token` (desktop
 * and CLI apps) and the session cookie's "name=value" (browsers).
 */
export async function signIn(url: string, email: string, password: string): Promise<SignedIn> {
  const res = await fetch(`${url}/api/auth/sign-in/email`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: url },
    body: JSON.stringify({ email, password }),
  });
  const token = res.headers.get("set-auth-token");
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0]!)
    .find((c) => /session_token=/.test(c));
  if (res.status !== 200 || !token || !cookie) throw new Error(`sign-in failed: ${res.status} ${await res.text()}`);
  return { token, cookie };
}

/** GET with a bearer token (or none); throws unless 200 and `check` finds nothing wrong. */
export async function expectOk(url: string, token: string | null, check?: (body: unknown) => string | null): Promise<unknown> {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const body = (await res.json().catch(() => null)) as unknown;
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body)}`);
  const problem = check?.(body);
  if (problem) throw new Error(`GET ${url}: ${problem}`);
  return body;
}
