import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { sql } from "drizzle-orm";
import { queryRows } from "../../src/database/client";
import { createLogger } from "../../src/lib/logger";
import { backoffMs, startChatSync, type ChatSyncOptions } from "../../src/services/chat/sync-manager";
import { json, memoryLogger, useTestApp } from "../helpers/app";
import { runningSandbox as runningSandboxOf, STANDIN_PASSWORD, startAgentStandin, until, type Standin } from "../helpers/opencode-standin";

// The chat sync manager with several Warren instances on one database: leases, hand-over when an
// instance dies, reconnect back-off, a stream gone silent, and a clean stop. The sandbox's
// OpenCode server is replaced by a local stand-in (tests/helpers/opencode-standin.ts) speaking
// the part of its HTTP protocol the sync reads, because these tests must refuse, drop, silence
// and time connections at will; tests/e2e/chat-sync.test.ts runs the same sync against a real
// OpenCode server.
const t = useTestApp();
setDefaultTimeout(60_000);

const standins: Standin[] = [];
afterAll(() => {
  for (const s of standins) s.stop();
});

const runningSandbox = (agent: Standin) => runningSandboxOf(t(), agent);

function instance(holder: string, driver: ChatSyncOptions["rt"]["driver"], extra: Partial<ChatSyncOptions> = {}) {
  return startChatSync({
    rt: { db: t().database.db, driver, keyring: t().config.keyring, now: () => new Date() },
    logger: createLogger("silent"),
    holder,
    tickMs: 100,
    leaseMs: 900,
    reconcileIntervalMs: 60_000,
    flushMs: 20,
    ...extra,
  });
}

// The agent's clock is the real one: reconciliation asks for sessions updated since its last run.
let clock = Date.now();
/** One exchange (a user message, an assistant answer with tokens) in session `ses`, as OpenCode streams it. */
function exchange(agent: Standin, ses: string, n: number) {
  const created = (clock += 1000);
  agent.emit("session.updated", { info: { id: ses, title: `Talk ${n}`, time: { created: created - 1000 * n, updated: created + 100 } } });
  const user = `msg_u${n}_${ses}`;
  agent.emit("message.updated", { info: { id: user, sessionID: ses, role: "user", time: { created } } });
  agent.emit("message.part.updated", { part: { id: `prt_u${n}`, sessionID: ses, messageID: user, type: "text", text: `question ${n}` } });
  const asst = `msg_a${n}_${ses}`;
  const info = (done: boolean) => ({
    id: asst,
    sessionID: ses,
    role: "assistant",
    providerID: "standin",
    modelID: "m",
    cost: 0,
    tokens: { input: done ? 100 : 0, output: done ? 10 : 0, reasoning: 0, cache: { read: 0, write: 0 } },
    time: done ? { created: created + 1, completed: created + 50 } : { created: created + 1 },
  });
  agent.emit("message.updated", { info: info(false) });
  agent.emit("message.part.updated", { part: { id: `prt_a${n}`, sessionID: ses, messageID: asst, type: "text", text: `answer ${n}`, time: { start: created, end: created + 40 } } });
  agent.emit("message.updated", { info: info(true) });
}

async function sessionRow(sandboxId: string) {
  const [row] = await queryRows<{ message_count: number; total_input_tokens: string; rows: number }>(
    t().database.db,
    sql`select s.message_count, s.total_input_tokens::text, (select count(*)::int from chat_messages m where m.session_id = s.id) as rows
        from chat_sessions s where s.sandbox_id = ${sandboxId}`,
  );
  return row;
}

const leaseHolder = async (sandboxId: string) =>
  (await queryRows<{ holder: string }>(t().database.db, sql`select holder from leases where name = ${`chat-sync:${sandboxId}`}`))[0]?.holder ?? null;

describe("chat sync across instances", () => {
  test("a dead instance's lease lapses and exactly one other instance takes the stream over; a stopped one hands over; nothing is lost or duplicated", async () => {
    const agent = startAgentStandin();
    standins.push(agent);
    const { id, driver } = await runningSandbox(agent);
    // An instance that died holding the sandbox's stream: its lease runs for another second.
    await t().database.db.execute(
      sql`insert into leases (name, holder, expires_at, acquired_at) values (${`chat-sync:${id}`}, 'dead-instance', now() + interval '1 second', now())`,
    );
    const a = instance("instance-a", driver);
    const b = instance("instance-b", driver);
    try {
      await Bun.sleep(400);
      expect([...a.following(), ...b.following()]).not.toContain(id);
      expect(agent.st.connections).toBe(0);

      // The dead lease lapses: one of the two takes the stream, never both.
      await until("an instance to follow the sandbox", () => a.following().includes(id) || b.following().includes(id));
      await Bun.sleep(500);
      expect(Number(a.following().includes(id)) + Number(b.following().includes(id))).toBe(1);
      await until("the stream to open", () => agent.open() === 1);
      expect(agent.st.badAuth).toBe(0);
      const [owner, other] = a.following().includes(id) ? [a, b] : [b, a];
      expect(await leaseHolder(id)).toBe(owner === a ? "instance-a" : "instance-b");

      exchange(agent, "ses_lease", 1);
      await until("the first exchange", async () => (await sessionRow(id))?.message_count === 2);

      // The owner goes away; the exchange it misses is fetched by the successor's reconciliation.
      await owner.stop();
      exchange(agent, "ses_lease", 2);
      await until("the other instance to take over", () => other.following().includes(id));
      await until("the stream to reopen", () => agent.open() === 1);
      exchange(agent, "ses_lease", 3);
      const row = await until("all three exchanges", async () => {
        const r = await sessionRow(id);
        return r?.message_count === 6 ? r : undefined;
      });
      expect(row).toEqual({ message_count: 6, total_input_tokens: "300", rows: 6 });
      expect(await leaseHolder(id)).toBe(other === a ? "instance-a" : "instance-b");
    } finally {
      await a.stop();
      await b.stop();
      await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
    }
  });

  test("reconnects back off and never give up while the sandbox runs; stopping the sandbox ends the stream and frees the lease", async () => {
    const agent = startAgentStandin();
    standins.push(agent);
    agent.st.refuse = 4;
    const { u, id, driver } = await runningSandbox(agent);
    const sync = instance("instance-c", driver);
    try {
      await until("the stream to open after the refusals", () => agent.open() === 1, 20_000);
      expect(agent.st.refused).toBe(4);
      const state = await until("sync state to say connected", async () => {
        const s = await json(await t().request(`/api/v1/sandboxes/${id}/chat/sync`, { token: u.token }));
        return s.connected ? s : undefined;
      });
      expect(state).toMatchObject({ connected: true, consecutiveErrors: 0 });
      expect(state.lastError).toContain("503");

      // The agent drops the stream: Warren reconnects (not just reconciles: the periodic
      // reconciliation is a minute away here), and what was said meanwhile arrives.
      agent.dropAll();
      exchange(agent, "ses_backoff", 1);
      await until("the exchange after the drop", async () => (await sessionRow(id))?.message_count === 2);
      await until("the stream to reopen", () => agent.open() === 1);
      expect(agent.st.connections).toBe(2);
      // And the reopened stream is live: an exchange now arrives as events.
      exchange(agent, "ses_backoff", 2);
      await until("the exchange on the reopened stream", async () => (await sessionRow(id))?.message_count === 4);

      // The sandbox stops: the stream ends, the lease is released, the state says disconnected.
      await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
      await until("the stream to end", () => !sync.following().includes(id) && agent.open() === 0);
      expect(await leaseHolder(id)).toBeNull();
      const [row] = await queryRows<{ connected: boolean }>(t().database.db, sql`select connected from chat_sync_state where sandbox_id = ${id}`);
      expect(row!.connected).toBe(false);
      const connections = agent.st.connections;
      await Bun.sleep(500);
      expect(agent.st.connections).toBe(connections);
    } finally {
      const started = Date.now();
      await sync.stop();
      expect(Date.now() - started).toBeLessThan(2_000);
    }
  });

  test("a stream that goes silent (half-open, hung agent) is dropped after the idle timeout and reopened; heartbeats keep a quiet one open", async () => {
    // OpenCode sends server.heartbeat every 10 s; here every 100 ms, against an idle timeout of 1.5 s.
    const agent = startAgentStandin({ heartbeatMs: 100 });
    standins.push(agent);
    // The first stream: server.connected, then nothing, never closed by the agent.
    agent.st.silent = 1;
    const { u, id, driver } = await runningSandbox(agent);
    const log = memoryLogger("warn");
    const sync = instance("instance-d", driver, { streamIdleMs: 1_500, logger: log.logger });
    try {
      await until("a second connection after the silent one", () => agent.st.connections >= 2 && agent.open() === 1);
      // Warren hung up on the silent stream; the agent never ended it.
      expect(agent.st.cancelled).toBe(1);
      // The sync state recorded the stall, and is connected again.
      const state = await until("sync state to say connected again", async () => {
        const s = await json(await t().request(`/api/v1/sandboxes/${id}/chat/sync`, { token: u.token }));
        return s.connected && s.lastError ? s : undefined;
      });
      expect(state).toMatchObject({ connected: true, consecutiveErrors: 0 });
      expect(state.lastError).toContain("sent nothing");
      expect(state.lastErrorAt).not.toBeNull();
      // A warning names the stall, and no secret.
      const warning = log.lines.map((l) => JSON.parse(l)).find((l) => l.msg.includes("silent"));
      expect(warning).toMatchObject({ level: "warn", sandboxId: id });
      expect(log.lines.join("\n")).not.toContain(STANDIN_PASSWORD);
      expect(log.lines.join("\n")).not.toContain("Basic ");

      // The reopened stream carries heartbeats only: it stays open well past the idle timeout.
      await Bun.sleep(3_000);
      expect(agent.st.connections).toBe(2);
      expect(agent.st.cancelled).toBe(1);
      // And it is live: an exchange now arrives as events.
      exchange(agent, "ses_idle", 1);
      await until("the exchange on the reopened stream", async () => (await sessionRow(id))?.message_count === 2);
    } finally {
      await sync.stop();
      await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
    }
  });

  test("the back-off grows to a cap, with jitter, and has no last attempt", () => {
    for (let attempt = 0; attempt < 200; attempt++) {
      const base = Math.min(30_000, 250 * 2 ** Math.min(attempt, 20));
      const wait = backoffMs(attempt);
      expect(wait).toBeGreaterThanOrEqual(base / 2);
      expect(wait).toBeLessThanOrEqual(base);
    }
    expect(backoffMs(1_000_000)).toBeLessThanOrEqual(30_000);
  });
});
