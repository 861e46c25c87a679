import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { AppEnv } from "../../src/context";
import { createLogger } from "../../src/lib/logger";
import { lazyChild, requestLog } from "../../src/middleware/request-log";

// The request logger and the request line, written to memory by the real pino logger.
function memory(level: string) {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger(level, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

function app(level: string) {
  const { logger, lines } = memory(level);
  const a = new Hono<AppEnv>();
  a.use((c, next) => (c.set("requestId", "req_test"), next()));
  a.use(requestLog(logger));
  a.get("/ok", (c) => c.text("ok"));
  a.get("/logs", (c) => (c.get("logger").warn({ detail: 1, token: "t0ps3cret" }, "something to see"), c.text("ok")));
  a.get("/fails", (c) => c.text("no", 500));
  return { a, lines };
}

describe("request logging", () => {
  test("one line per request, with the request id, method, path (no query), status and duration", async () => {
    const { a, lines } = app("info");
    await a.request("/ok?token=abc");
    expect(lines).toEqual([expect.objectContaining({ level: "info", service: "warren", requestId: "req_test", method: "GET", path: "/ok", status: 200, msg: "request" })]);
    expect(typeof lines[0]!.durationMs).toBe("number");
    expect(JSON.stringify(lines)).not.toContain("abc");
  });

  test("a service's line carries the request id, and the redaction still applies", async () => {
    const { a, lines } = app("warn");
    await a.request("/logs");
    expect(lines).toEqual([expect.objectContaining({ level: "warn", requestId: "req_test", detail: 1, token: "[redacted]", msg: "something to see" })]);
  });

  test("below the level nothing is written; a 5xx is an error line", async () => {
    const { a, lines } = app("warn");
    await a.request("/ok");
    expect(lines).toEqual([]);
    await a.request("/fails");
    expect(lines).toEqual([expect.objectContaining({ level: "error", requestId: "req_test", status: 500, msg: "request" })]);
  });

  test("lazyChild: levels that are off do nothing; child loggers nest with their bindings", () => {
    const { logger, lines } = memory("info");
    const log = lazyChild(logger, { requestId: "req_lazy" });
    log.debug("not written");
    expect(lines).toEqual([]);
    log.child({ component: "x" }).info("nested");
    expect(lines).toEqual([expect.objectContaining({ requestId: "req_lazy", component: "x", msg: "nested" })]);
    expect(log.isLevelEnabled("debug")).toBe(false);
  });
});
