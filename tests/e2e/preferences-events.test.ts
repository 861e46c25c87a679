import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { requester, type TestApp } from "../helpers/app";
import { createServerStorage, startServer } from "../helpers/server";
import { openEventStream } from "../helpers/sse";

// A real server process: the stream goes through Bun.serve, and shutdown through its signal handler.
setDefaultTimeout(60_000);

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
}, 60_000);

function overHttp(baseUrl: string): Pick<TestApp, "request"> {
  return {
    request: requester((path, init) => fetch(`${baseUrl}${path}`, init)),
  };
}

describe("preferences event stream over HTTP", () => {
  test("delivers a change live, and SIGTERM ends open streams so the server stops at once", async () => {
    const storage = await createServerStorage();
    cleanups.push(storage.destroy);
    // A long grace period: if streams kept the server open, the stop would take all of it.
    const server = await startServer({ storage, env: { SHUTDOWN_TIMEOUT_MS: "30000", EVENTS_HEARTBEAT_MS: "200" } });
    const http = overHttp(server.url);
    const signUp = await http.request("/api/auth/sign-up/email", {
      method: "POST",
      json: { email: `events.${Date.now()}@example.com`, password: "events password 1", name: "Events" },
      headers: { origin: server.url },
    });
    expect(signUp.status).toBe(200);
    const token = signUp.headers.get("set-auth-token")!;

    const stream = await openEventStream(http, "/api/v1/me/preferences/events", { token });
    try {
      expect(stream.res.headers.get("content-type")).toContain("text/event-stream");
      expect((await stream.nextEvent()).id).toBe("0");
      const patched = await http.request("/api/v1/me/preferences", { method: "PATCH", token, json: { themeMode: "dark" } });
      expect(patched.status).toBe(200);
      const pushed = await stream.nextEvent(1500);
      expect(JSON.parse(pushed.data!)).toMatchObject({ themeMode: "dark", version: 1 });
      const heartbeat = await stream.nextMessage(1500);
      expect(heartbeat?.comments).toEqual(["heartbeat"]);

      const exited = server.stop("SIGTERM");
      expect(await stream.ended(5000)).toBe(true);
      expect(await exited).toBe(0);
      expect(server.output.some((l) => l.includes("did not finish in time"))).toBe(false);
      expect(server.output.some((l) => l.includes('"msg":"stopped"'))).toBe(true);
    } finally {
      stream.close();
      await server.stop("SIGKILL");
    }
  });
});
