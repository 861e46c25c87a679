import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import { databaseUrl } from "../helpers/db";
import { postgresServer } from "../helpers/postgres-server";
import { startServer, type RunningServer } from "../helpers/server";
import { TcpProxy } from "../helpers/tcp-proxy";

// The database goes away while requests flow, then comes back. This needs a PostgreSQL server
// (an embedded PGlite cannot disappear): the run's TEST_DATABASE_URL, or a throwaway cluster.
// Between Warren and the server sits a TCP proxy that drops and refuses connections on demand.
setDefaultTimeout(90_000);

let pg: Awaited<ReturnType<typeof postgresServer>>;
let proxy: TcpProxy;
let server: RunningServer;
const dbName = `warren_outage_${process.pid}_${Date.now().toString(36)}`;

beforeAll(async () => {
  pg = await postgresServer();
  if ("unavailable" in pg) {
    console.error(`database-outage: skipped, ${pg.unavailable}`);
    return;
  }
  const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${dbName}"`);
  await admin.end();
  const target = new URL(pg.url);
  proxy = await new TcpProxy(target.hostname, Number(target.port)).start();
  const viaProxy = new URL(databaseUrl(pg.url, dbName));
  viaProxy.port = String(proxy.port);
  server = await startServer({ storage: { env: { DATABASE_URL: viaProxy.toString() }, destroy: async () => {} } });
}, 120_000);

afterAll(async () => {
  if ("unavailable" in pg) return;
  await server?.stop();
  proxy?.stop();
  const admin = postgres(pg.url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists "${dbName}" with (force)`);
  await admin.end();
  await pg.stop();
}, 60_000);

describe("database outage", () => {
  test("503 in the envelope while it is gone, no crash, normal service when it returns, no acknowledged write lost", async () => {
    if ("unavailable" in pg) return;
    const url = server.url;
    const signUp = await fetch(`${url}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: url },
      body: JSON.stringify({ email: `outage.${Date.now()}@example.com`, password: "outage password", name: "n0" }),
    });
    expect(signUp.status).toBe(200);
    const auth = { authorization: `Bearer ${signUp.headers.get("set-auth-token")}` };

    // Writes flow continuously; every acknowledged one is remembered.
    let lastAcknowledged = "n0";
    let counter = 0;
    const statuses = new Map<number, number>();
    let flowing = true;
    const writer = (async () => {
      while (flowing) {
        const name = `n${++counter}`;
        try {
          const res = await fetch(`${url}/api/v1/me`, {
            method: "PATCH",
            headers: { ...auth, "content-type": "application/json" },
            body: JSON.stringify({ name }),
          });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 200) lastAcknowledged = name;
          else {
            const body = (await res.json()) as { error: { code: string; requestId: string } };
            expect(res.status).toBe(503);
            expect(body.error.code).toBe("SERVICE_UNAVAILABLE");
          }
        } catch (err) {
          throw new Error(
            `the server stopped answering: ${(err as Error).message}\n${server.output.slice(-30).join("\n")}`,
          );
        }
        await Bun.sleep(20);
      }
    })();

    await Bun.sleep(500);
    proxy.cut();
    await Bun.sleep(3000);
    const during = await fetch(`${url}/ready`);
    expect(during.status).toBe(503);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    await proxy.restore();

    // Back to normal within seconds.
    const backBy = Date.now() + 15_000;
    let recovered = false;
    while (Date.now() < backBy && !recovered) {
      recovered = (await fetch(`${url}/api/v1/me`, { headers: auth })).status === 200;
      if (!recovered) await Bun.sleep(200);
    }
    expect(recovered).toBe(true);
    await Bun.sleep(500);
    flowing = false;
    await writer;

    expect(server.proc.exitCode).toBeNull();
    expect(statuses.get(503) ?? 0).toBeGreaterThan(0);
    expect(statuses.get(200) ?? 0).toBeGreaterThan(2);
    expect([...statuses.keys()].sort()).toEqual([200, 503]);
    const me = (await (await fetch(`${url}/api/v1/me`, { headers: auth })).json()) as { name: string };
    expect(me.name).toBe(lastAcknowledged);
  });
});
