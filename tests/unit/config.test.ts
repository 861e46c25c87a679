import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, loadConfig } from "../../src/config";

const SECRET = "s".repeat(40);

function failure(env: Record<string, string>): string {
  try {
    loadConfig({ DATA_DIR: "memory://", ...env });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected loadConfig to fail");
}

describe("config", () => {
  test("development defaults need nothing set", () => {
    const c = loadConfig({ DATA_DIR: "memory://" });
    expect(c).toMatchObject({
      env: "development",
      host: "127.0.0.1",
      port: 3000,
      publicUrl: "http://localhost:3000",
      databaseUrl: undefined,
      poolSize: 10,
      dataDir: null,
      trustedOrigins: ["http://localhost:3000"],
      github: undefined,
      logLevel: "info",
    });
    expect(c.authSecret.length).toBeGreaterThanOrEqual(32);
  });

  test("the loopback guard is on by default; allow-listed ports are a comma-separated list", () => {
    expect(loadConfig({ DATA_DIR: "memory://" }).orchestrator.loopbackGuard).toEqual({ enabled: true, allowPorts: [] });
    const c = loadConfig({ DATA_DIR: "memory://", SANDBOX_LOOPBACK_GUARD: "OFF", SANDBOX_LOOPBACK_ALLOW_PORTS: " 11434, 8000 ," });
    expect(c.orchestrator.loopbackGuard).toEqual({ enabled: false, allowPorts: [11434, 8000] });
  });

  test("sandbox storage quotas are auto by default; off turns them off", () => {
    expect(loadConfig({ DATA_DIR: "memory://" }).orchestrator.storageQuota).toBe("auto");
    expect(loadConfig({ DATA_DIR: "memory://", SANDBOX_STORAGE_QUOTA: "OFF" }).orchestrator.storageQuota).toBe("off");
  });

  test("a silent chat stream is dropped after 45 s by default; below the agent's 10 s heartbeat (and some) is refused", () => {
    expect(loadConfig({ DATA_DIR: "memory://" }).chatSync.streamIdleMs).toBe(45_000);
    expect(loadConfig({ DATA_DIR: "memory://", CHAT_SYNC_STREAM_IDLE_SECONDS: "90" }).chatSync.streamIdleMs).toBe(90_000);
    expect(failure({ CHAT_SYNC_STREAM_IDLE_SECONDS: "10" })).toStartWith("Invalid environment variable CHAT_SYNC_STREAM_IDLE_SECONDS: ");
  });

  test("a bad value stops start-up with one line naming the variable", () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ PORT: "eighty" }, "PORT"],
      [{ PORT: "70000" }, "PORT"],
      [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
      [{ DATABASE_POOL_SIZE: "0" }, "DATABASE_POOL_SIZE"],
      [{ PUBLIC_URL: "not a url" }, "PUBLIC_URL"],
      [{ PUBLIC_URL: "ftp://files.example.com" }, "PUBLIC_URL"],
      [{ TRUSTED_ORIGINS: "https://ok.example.com, https://bad.example.com/path" }, "TRUSTED_ORIGINS"],
      [{ AUTH_SECRET: "short" }, "AUTH_SECRET"],
      [{ LOG_LEVEL: "loud" }, "LOG_LEVEL"],
      [{ GITHUB_CLIENT_ID: "abc" }, "GITHUB_CLIENT_SECRET"],
      [{ GITHUB_CLIENT_SECRET: "abc" }, "GITHUB_CLIENT_ID"],
      [{ CLIENT_IP_HEADER: "x forwarded" }, "CLIENT_IP_HEADER"],
      [{ NODE_ENV: "staging" }, "NODE_ENV"],
      [{ SANDBOX_LOOPBACK_GUARD: "maybe" }, "SANDBOX_LOOPBACK_GUARD"],
      [{ SANDBOX_STORAGE_QUOTA: "on" }, "SANDBOX_STORAGE_QUOTA"],
      [{ SANDBOX_LOOPBACK_ALLOW_PORTS: "11434, ollama" }, "SANDBOX_LOOPBACK_ALLOW_PORTS"],
      [{ SANDBOX_LOOPBACK_ALLOW_PORTS: "0" }, "SANDBOX_LOOPBACK_ALLOW_PORTS"],
      [{ SANDBOX_LOOPBACK_ALLOW_PORTS: "70000" }, "SANDBOX_LOOPBACK_ALLOW_PORTS"],
    ];
    for (const [env, name] of cases) {
      const message = failure(env);
      expect(message).toStartWith(`Invalid environment variable ${name}: `);
      expect(message).not.toContain("\n");
    }
  });

  test("production requires an explicit auth secret and public URL", () => {
    expect(failure({ NODE_ENV: "production", PUBLIC_URL: "https://api.example.com" })).toContain("AUTH_SECRET");
    expect(failure({ NODE_ENV: "production", AUTH_SECRET: SECRET })).toContain("PUBLIC_URL");
    const c = loadConfig({
      NODE_ENV: "production",
      AUTH_SECRET: SECRET,
      PUBLIC_URL: "https://api.example.com/",
      ENCRYPTION_KEYS: `k1:${Buffer.alloc(32, 1).toString("base64")}`,
    });
    expect(c.publicUrl).toBe("https://api.example.com");
    expect(c.host).toBe("0.0.0.0");
    expect(c.authSecret).toBe(SECRET);
  });

  test("trusted origins are a comma-separated list, normalised, with the public origin included", () => {
    const c = loadConfig({
      DATA_DIR: "memory://",
      PUBLIC_URL: "https://api.example.com",
      TRUSTED_ORIGINS: " https://app.example.com/, http://localhost:5173 ,,https://app.example.com",
    });
    expect(c.trustedOrigins).toEqual(["https://api.example.com", "https://app.example.com", "http://localhost:5173"]);
  });

  test("GitHub is enabled only with both id and secret", () => {
    const c = loadConfig({ DATA_DIR: "memory://", GITHUB_CLIENT_ID: "id", GITHUB_CLIENT_SECRET: "secret" });
    expect(c.github).toEqual({ clientId: "id", clientSecret: "secret" });
  });

  test("in development the secret is generated once into the data directory, mode 0600", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "warren-config-")), "data");
    const first = loadConfig({ DATA_DIR: dir }).authSecret;
    const second = loadConfig({ DATA_DIR: dir }).authSecret;
    expect(second).toBe(first);
    const file = join(dir, "auth-secret");
    expect(readFileSync(file, "utf8").trim()).toBe(first);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  test("a damaged secret file stops start-up naming the file, never an empty secret", () => {
    for (const content of ["", "\n", "short", `${"a".repeat(43)} trailing`]) {
      const dir = join(mkdtempSync(join(tmpdir(), "warren-config-")), "data");
      mkdirSync(dir);
      writeFileSync(join(dir, "auth-secret"), content);
      const message = failure({ DATA_DIR: dir });
      expect(message).toContain(join(dir, "auth-secret"));
      expect(message).not.toContain("\n");
    }
  });

  test("the secret file is only ever seen whole: no temporary file is left behind", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "warren-config-")), "data");
    const secrets = new Set(Array.from({ length: 5 }, () => loadConfig({ DATA_DIR: dir }).authSecret));
    expect(secrets.size).toBe(1);
    expect(readdirSync(dir).sort()).toEqual(["auth-secret", "encryption-key"]);
  });

  test("an explicit secret wins and nothing is written", () => {
    const dir = join(mkdtempSync(join(tmpdir(), "warren-config-")), "data");
    expect(loadConfig({ DATA_DIR: dir, AUTH_SECRET: SECRET }).authSecret).toBe(SECRET);
    expect(() => statSync(join(dir, "auth-secret"))).toThrow();
  });
});
