import { afterAll, describe, expect, test } from "bun:test";
import { describeProbeFailure, probeService } from "../../src/orchestrator/addons";
import { nextEntry, UNHEALTHY_AFTER } from "../../src/services/sandboxes/addon-health";
import { addonsView } from "../../src/services/sandboxes/view";

// The probe against a real local HTTP server (the rule start-up and the health check share), and
// the health bookkeeping, which decides what is written and what users see.

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/ok") return new Response("ok");
    if (path === "/login") return new Response("who are you", { status: 401 });
    if (path === "/moved") return new Response(null, { status: 302, headers: { location: "/elsewhere" } });
    if (path === "/down") return new Response("no", { status: 503 });
    await Bun.sleep(5_000);
    return new Response("late");
  },
});
const base = `http://127.0.0.1:${server.port}`;
afterAll(() => server.stop(true));

describe("probeService", () => {
  test("any answer below 500 is up: a login page or a redirect is a service that runs", async () => {
    for (const path of ["/ok", "/login", "/moved"]) expect(await probeService(base, path)).toEqual({ up: true });
  });

  test("a 5xx, no answer in time and a refused connection are down, each said in words without the address", async () => {
    const down = await probeService(base, "/down");
    expect(down).toEqual({ up: false, failure: "status", status: 503 });
    const slow = await probeService(base, "/slow", 200);
    expect(slow).toEqual({ up: false, failure: "timeout", status: null });
    const closed = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
    const gone = `http://127.0.0.1:${closed.port}`;
    await closed.stop(true);
    const refused = await probeService(gone, "/ok");
    expect(refused).toEqual({ up: false, failure: "unreachable", status: null });

    if (down.up || slow.up || refused.up) throw new Error("unreachable");
    expect(describeProbeFailure(down, "/down")).toBe("GET /down answered HTTP 503");
    expect(describeProbeFailure(slow, "/slow", 200)).toBe("did not answer GET /slow within 0.2 s");
    expect(describeProbeFailure(slow, "/slow")).toBe("did not answer GET /slow within 2 s");
    expect(describeProbeFailure(refused, "/ok")).toBe("refused or dropped the connection on GET /ok");
    for (const text of [describeProbeFailure(down, "/down"), describeProbeFailure(refused, "/ok")]) expect(text).not.toContain("127.0.0.1");
  });
});

describe("nextEntry", () => {
  const t = (n: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString();

  test(`healthy stays the same object; ${UNHEALTHY_AFTER} failures in a row make it unhealthy; one answer makes it healthy again`, () => {
    const healthy = nextEntry(undefined, null, t(0));
    expect(healthy).toEqual({ status: "healthy", since: t(0), checkedAt: t(0), failures: 0, lastError: null });
    expect(nextEntry(healthy, null, t(1))).toBe(healthy);

    const once = nextEntry(healthy, "GET /h answered HTTP 503", t(2));
    expect(once).toEqual({ status: "healthy", since: t(0), checkedAt: t(2), failures: 1, lastError: "GET /h answered HTTP 503" });
    const twice = nextEntry(once, "GET /h answered HTTP 503", t(3));
    expect(twice).toEqual({ status: "unhealthy", since: t(3), checkedAt: t(3), failures: 2, lastError: "GET /h answered HTTP 503" });
    // The count stops at the threshold, so a steady failure is not rewritten every round.
    expect(nextEntry(twice, "GET /h answered HTTP 503", t(4))).toBe(twice);
    // A different failure is news; the status and its start stay.
    const other = nextEntry(twice, "did not answer GET /h within 2 s", t(5));
    expect(other).toEqual({ status: "unhealthy", since: t(3), checkedAt: t(5), failures: 2, lastError: "did not answer GET /h within 2 s" });

    expect(nextEntry(other, null, t(6))).toEqual({ status: "healthy", since: t(6), checkedAt: t(6), failures: 0, lastError: null });
    // A single failure that recovers: back to no failures, still healthy since the start.
    expect(nextEntry(once, null, t(7))).toEqual({ status: "healthy", since: t(0), checkedAt: t(7), failures: 0, lastError: null });
  });

  test("a service never seen answering stays starting until the threshold, then is unhealthy", () => {
    const first = nextEntry(undefined, "refused or dropped the connection on GET /h", t(0));
    expect(first.status).toBe("starting");
    expect(nextEntry(first, "refused or dropped the connection on GET /h", t(1)).status).toBe("unhealthy");
  });
});

describe("addonsView", () => {
  const entry = (status: "starting" | "healthy" | "unhealthy") => ({ status, since: "2030-01-01T00:00:00.000Z", checkedAt: "2030-01-01T00:00:05.000Z", failures: 0, lastError: "GET / answered HTTP 502" });
  const pairs = [
    ["svc", true],
    ["tools", false],
  ] as const;

  test("service status from recorded health while running; tools and stopped sandboxes as before", () => {
    const row = { id: "sbx_1", status: "running" as const };
    expect(addonsView({ ...row, addonHealth: {} }, pairs).map((a) => a.status)).toEqual(["starting", "running"]);
    expect(addonsView({ ...row, addonHealth: { svc: entry("starting") } }, pairs)[0]).toMatchObject({ status: "starting", message: null });
    expect(addonsView({ ...row, addonHealth: { svc: entry("healthy") } }, pairs)[0]).toMatchObject({ status: "running", message: null });
    expect(addonsView({ ...row, addonHealth: { svc: entry("unhealthy") } }, pairs)).toEqual([
      { id: "svc", kind: "service", endpoint: "/api/v1/sandboxes/sbx_1/addons/svc/", status: "unhealthy", healthCheckedAt: "2030-01-01T00:00:05.000Z", message: "GET / answered HTTP 502" },
      { id: "tools", kind: "tools", endpoint: null, status: "running", healthCheckedAt: null, message: null },
    ]);
    for (const status of ["stopped", "starting", "stopping", "error"] as const) {
      expect(addonsView({ id: "sbx_1", status, addonHealth: { svc: entry("unhealthy") } }, pairs)).toEqual([
        { id: "svc", kind: "service", endpoint: "/api/v1/sandboxes/sbx_1/addons/svc/", status: "stopped", healthCheckedAt: null, message: null },
        { id: "tools", kind: "tools", endpoint: null, status: "stopped", healthCheckedAt: null, message: null },
      ]);
    }
  });
});
