import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { sql } from "drizzle-orm";
import { queryRows } from "../../src/database/client";
import { createLogger } from "../../src/lib/logger";
import { agentTarget } from "../../src/services/chat/agent";
import { forceSyncSession, reconcileSandbox } from "../../src/services/chat/reconcile";
import type { SandboxRuntime } from "../../src/services/sandboxes/runtime";
import { systemContext } from "../../src/context";
import { startChatSync, type ChatSyncOptions } from "../../src/services/chat/sync-manager";
import { json, useTestApp } from "../helpers/app";
import { runningSandbox, startAgentStandin, until, type Standin } from "../helpers/opencode-standin";

// Reconciliation against the agent's own record, for what the event stream missed while no Warren
// instance listened. The sandbox's OpenCode server is the local stand-in of
// tests/helpers/opencode-standin.ts (its list, lookup and 404 shapes checked against the pinned
// OpenCode binary), because these tests must break its answers at will.
const t = useTestApp();
setDefaultTimeout(60_000);

const standins: Standin[] = [];
afterAll(() => {
  for (const s of standins) s.stop();
});
function standin() {
  const agent = startAgentStandin();
  standins.push(agent);
  return agent;
}

let clock = Date.now();
/** A session with one exchange, as OpenCode streams it (to whoever listens, maybe no one). */
function talk(agent: Standin, ses: string) {
  const created = (clock += 1000);
  agent.emit("session.updated", { info: { id: ses, title: `Talk ${ses}`, time: { created, updated: created + 100 } } });
  agent.emit("message.updated", { info: { id: `msg_u_${ses}`, sessionID: ses, role: "user", time: { created } } });
  agent.emit("message.part.updated", { part: { id: `prt_u_${ses}`, sessionID: ses, messageID: `msg_u_${ses}`, type: "text", text: `question in ${ses}` } });
  agent.emit("message.updated", {
    info: { id: `msg_a_${ses}`, sessionID: ses, role: "assistant", providerID: "standin", modelID: "m", cost: 0, tokens: { input: 100, output: 10 }, time: { created: created + 1, completed: created + 50 } },
  });
}

type Row = { ext: string; status: string; purged: boolean; title: string; message_count: number; total_input_tokens: string; messages: number };
async function rows(sandboxId: string): Promise<Map<string, Row>> {
  const list = await queryRows<Row>(
    t().database.db,
    sql`select s.external_session_id as ext, s.status, s.purged_at is not null as purged, s.title, s.message_count, s.total_input_tokens::text,
          (select count(*)::int from chat_messages m where m.session_id = s.id) as messages
        from chat_sessions s where s.sandbox_id = ${sandboxId}`,
  );
  return new Map(list.map((r) => [r.ext, r]));
}
const rowOf = async (sandboxId: string, ext: string) => (await rows(sandboxId)).get(ext);
/** What the live event and the reconciliation must agree on (not Warren's ids or times). */
const shape = (r: Row | undefined) => r && { status: r.status, purged: r.purged, title: r.title, message_count: r.message_count, total_input_tokens: r.total_input_tokens, messages: r.messages };

function rtOf(driver: ChatSyncOptions["rt"]["driver"]): ChatSyncOptions["rt"] {
  return { db: t().database.db, driver, keyring: t().config.keyring, now: () => new Date() };
}

describe("sessions deleted in OpenCode while nobody listened", () => {
  test("are marked deleted at the next connect, as the live session.deleted marks them; archived, purged and existing-but-unlisted ones are left alone", async () => {
    const missed = standin();
    const live = standin();
    const a = await runningSandbox(t(), missed);
    const b = await runningSandbox(t(), live);
    // One instance follows both sandboxes: b hears its deletion live, a misses it.
    const driver = {
      inspect: async (id: string) => (id === a.id ? a.driver.inspect(id) : b.driver.inspect(id)),
    } as unknown as ChatSyncOptions["rt"]["driver"];
    const instance = () =>
      startChatSync({ rt: rtOf(driver), logger: createLogger("silent"), holder: `instance-${Math.random()}`, tickMs: 100, leaseMs: 900, reconcileIntervalMs: 60_000, flushMs: 20 });

    const sessions = ["ses_kept", "ses_gone", "ses_archived", "ses_purged", "ses_elsewhere"];
    let sync = instance();
    try {
      for (const ses of sessions) talk(missed, ses);
      talk(live, "ses_gone");
      await until("every session in Warren", async () => {
        const [ra, rb] = [await rows(a.id), await rows(b.id)];
        return sessions.every((s) => ra.get(s)?.message_count === 2) && rb.get("ses_gone")?.message_count === 2;
      });
      const list = (await json(await t().request(`/api/v1/sandboxes/${a.id}/chat/sessions`, { token: a.u.token }))).data as Array<{ id: string; externalSessionId: string }>;
      const idOf = (ext: string) => list.find((s) => s.externalSessionId === ext)!.id;
      expect((await t().request(`/api/v1/sandboxes/${a.id}/chat/sessions/${idOf("ses_archived")}`, { method: "DELETE", token: a.u.token })).status).toBe(200);
      expect((await t().request(`/api/v1/sandboxes/${a.id}/chat/sessions/${idOf("ses_purged")}?purge=true`, { method: "DELETE", token: a.u.token })).status).toBe(204);
      // The live deletion, for comparison.
      live.deleteSession("ses_gone");
      await until("the live deletion", async () => (await rowOf(b.id, "ses_gone"))?.status === "deleted");
    } finally {
      await sync.stop();
    }

    // Nobody listens: OpenCode deletes three sessions, and one more session leaves its list
    // (another project's now) while it still exists.
    const before = await rows(a.id);
    for (const ses of ["ses_gone", "ses_archived", "ses_purged"]) missed.deleteSession(ses);
    missed.st.unlisted.add("ses_elsewhere");

    sync = instance();
    try {
      await until("the missed deletion", async () => (await rowOf(a.id, "ses_gone"))?.status === "deleted");
      const after = await rows(a.id);
      // Marked exactly as the live event marked its twin: messages, counts and title kept.
      expect(shape(after.get("ses_gone"))).toEqual(shape(await rowOf(b.id, "ses_gone")));
      expect(shape(after.get("ses_gone"))).toMatchObject({ messages: 2, message_count: 2, title: "Talk ses_gone" });
      // The rest as they were.
      for (const ses of ["ses_kept", "ses_archived", "ses_purged", "ses_elsewhere"]) expect(shape(after.get(ses))).toEqual(shape(before.get(ses)));
      expect(after.get("ses_archived")!.status).toBe("archived");
      expect(after.get("ses_purged")).toMatchObject({ purged: true, messages: 0 });
      expect(after.get("ses_elsewhere")!.status).toBe("active");
      // Readable, and listed as deleted, through the API.
      const deleted = await json(await t().request(`/api/v1/sandboxes/${a.id}/chat/sessions?status=deleted`, { token: a.u.token }));
      expect(deleted.data.map((s: { externalSessionId: string }) => s.externalSessionId)).toEqual(["ses_gone"]);
      const messages = await json(await t().request(`/api/v1/chat/sessions/${deleted.data[0].id}/messages`, { token: a.u.token }));
      expect(messages.data).toHaveLength(2);
      // Like the live event, the marking is sync, not a user action: no activity entry for it.
      const activity = await queryRows(t().database.db, sql`select 1 from activity_log where entity_id = ${deleted.data[0].id}`);
      expect(activity).toEqual([]);
    } finally {
      await sync.stop();
      await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id in (${a.id}, ${b.id})`);
    }
  });

  test("a failed, cut-short, empty or partial list marks nothing; only a session the agent reported and now answers 404 for is marked", async () => {
    const agent = standin();
    const { u, id, driver } = await runningSandbox(t(), agent);
    const target = await agentTarget(rtOf(driver), id);
    const deps = { db: t().database.db, now: () => new Date() };
    for (const ses of ["ses_one", "ses_two", "ses_three"]) talk(agent, ses);
    // The first reconciliation fetches everything (no stream here: reconciliation alone).
    expect(await reconcileSandbox(deps, target, { since: null })).toMatchObject({ fetched: 3, deleted: 0 });
    const statuses = async () => Object.fromEntries([...(await rows(id))].map(([ext, r]) => [ext, r.status]));
    const allActive = { ses_one: "active", ses_two: "active", ses_three: "active" };
    expect(await statuses()).toEqual(allActive);

    agent.deleteSession("ses_one");
    const since = new Date(Date.now() - 1000);
    // GET /session fails, or its body is cut short: the reconciliation fails, nothing is marked.
    agent.st.failList = 1;
    await expect(reconcileSandbox(deps, target, { since })).rejects.toThrow("500");
    agent.st.brokenList = 1;
    await expect(reconcileSandbox(deps, target, { since: null })).rejects.toThrow();
    expect(await statuses()).toEqual(allActive);
    // An agent that lists nothing (a fresh or wiped store, not the user deleting everything).
    agent.deleteSession("ses_two");
    agent.deleteSession("ses_three");
    expect(await reconcileSandbox(deps, target, { since })).toMatchObject({ deleted: 0 });
    expect(await statuses()).toEqual(allActive);
    talk(agent, "ses_two");
    talk(agent, "ses_three");
    // A session imported from the legacy system: this agent never reported it (no external_updated_at).
    await t().database.db.execute(
      sql`insert into chat_sessions (id, user_id, sandbox_id, source, external_session_id, title) values ('chs_imported', ${u.id}, ${id}, 'opencode', 'ses_imported', 'Imported')`,
    );
    // A list cut to one session (a cap, another project): the others are looked up one by one,
    // and only the one the agent answers NotFoundError for is marked.
    agent.st.listCap = 1;
    expect(await reconcileSandbox(deps, target, { since })).toMatchObject({ deleted: 1 });
    expect(await statuses()).toEqual({ ...allActive, ses_one: "deleted", ses_imported: "active" });
    agent.st.listCap = Number.POSITIVE_INFINITY;
    // Already deleted: not looked at again.
    expect(await reconcileSandbox(deps, target, { since })).toMatchObject({ deleted: 0 });
    await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
  });
});

describe("force sync of one session (POST …/chat/sessions/:sessionId/sync)", () => {
  test("fetches what the stream missed for that session now: new and edited messages, counters, an activity entry; other sessions wait", async () => {
    const agent = standin();
    const { u, id, driver } = await runningSandbox(t(), agent);
    const rt = rtOf(driver);
    const deps = { db: t().database.db, now: () => new Date() };
    talk(agent, "ses_forced");
    talk(agent, "ses_other");
    expect(await reconcileSandbox(deps, await agentTarget(rt, id), { since: null })).toMatchObject({ fetched: 2 });

    // While nobody listens: a second exchange in both sessions, and the session renamed.
    const created = (clock += 1000);
    for (const ses of ["ses_forced", "ses_other"]) {
      agent.emit("session.updated", { info: { id: ses, title: `Renamed ${ses}`, time: { created: created - 5000, updated: created + 100 } } });
      agent.emit("message.updated", { info: { id: `msg_u2_${ses}`, sessionID: ses, role: "user", time: { created } } });
      agent.emit("message.part.updated", { part: { id: `prt_u2_${ses}`, sessionID: ses, messageID: `msg_u2_${ses}`, type: "text", text: `follow-up in ${ses}` } });
    }
    const sessions = (await json(await t().request(`/api/v1/sandboxes/${id}/chat/sessions`, { token: u.token }))).data as Array<{ id: string; externalSessionId: string }>;
    const forced = sessions.find((s) => s.externalSessionId === "ses_forced")!;

    const ctx = { ...systemContext({ db: deps.db, logger: createLogger("silent"), now: deps.now }, u.id), actor: "user" as const };
    const view = await forceSyncSession(ctx, rt as SandboxRuntime, id, forced.id);
    expect(view.title).toBe("Renamed ses_forced");
    expect(view.messageCount).toBe(3);
    expect(view.latestMessages.map((m: { text: string }) => m.text)).toContain("follow-up in ses_forced");
    // The API shows the same, and only the forced session moved.
    expect(shape(await rowOf(id, "ses_forced"))).toMatchObject({ title: "Renamed ses_forced", message_count: 3, messages: 3 });
    expect(shape(await rowOf(id, "ses_other"))).toMatchObject({ title: "Talk ses_other", message_count: 2, messages: 2 });
    const activity = (await json(await t().request(`/api/v1/me/activity?action=chat_session.sync`, { token: u.token }))).data as Array<{ entityId: string }>;
    expect(activity.map((a) => a.entityId)).toEqual([forced.id]);

    // Again, with nothing new: the same session, nothing duplicated.
    expect((await forceSyncSession(ctx, rt as SandboxRuntime, id, forced.id)).messageCount).toBe(3);
    expect(shape(await rowOf(id, "ses_forced"))).toMatchObject({ message_count: 3, messages: 3 });
    await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
  });
});

describe("periodic reconciliation", () => {
  test("a failed reconciliation is tried again at the next interval, while the stream stays up", async () => {
    const agent = standin();
    const { id, driver } = await runningSandbox(t(), agent);
    // Written before anyone listens: only a reconciliation can bring it in. The first two lists
    // fail (the one at connect and the first periodic one), the third answers.
    talk(agent, "ses_before");
    agent.st.failList = 2;
    const sync = startChatSync({ rt: rtOf(driver), logger: createLogger("silent"), holder: `instance-${Math.random()}`, tickMs: 100, leaseMs: 900, reconcileIntervalMs: 200, flushMs: 20 });
    try {
      await until("the session, from a later reconciliation", async () => (await rowOf(id, "ses_before"))?.message_count === 2);
      expect(agent.st.failList).toBe(0);
      // The same connection all along: no reconnect was needed to try again.
      expect(agent.st.connections).toBe(1);
    } finally {
      await sync.stop();
      await t().database.db.execute(sql`update sandboxes set status = 'stopped' where id = ${id}`);
    }
  });
});
