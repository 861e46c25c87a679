import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { queryRows } from "../../src/database/client";
import { applyChanges } from "../../src/services/chat/ingest";
import { addEvent, emptyChangeSet } from "../../src/services/chat/opencode-events";
import { json, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

// Chat history on a real database: events shaped exactly like OpenCode 1.18's stream (see
// src/services/chat/opencode-events.ts) are written through the same ingest the sync uses, and
// read back through the HTTP API.
const t = useTestApp();

async function createSandbox(u: TestUser, name = "chat box"): Promise<string> {
  const res = await t().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name } });
  expect(res.status).toBe(201);
  return (await json(res)).id;
}

let seq = 0;
const uid = (prefix: string) => `${prefix}_${(++seq).toString().padStart(6, "0")}${Math.random().toString(36).slice(2, 8)}`;

/** A conversation as OpenCode streams it: session events, messages growing, parts streaming. */
function conversation(opts: { turns: number; words?: string[]; base?: number }) {
  const ses = uid("ses");
  const base = opts.base ?? 1_790_000_000_000;
  const events: unknown[] = [];
  const ev = (type: string, properties: unknown) => events.push({ id: uid("evt"), type, properties });
  const sessionInfo = (title: string, updated: number) => ({
    id: ses,
    slug: "s",
    projectID: "global",
    directory: "/home/workspace",
    title,
    version: "1.18.33",
    time: { created: base, updated },
  });
  ev("session.created", { sessionID: ses, info: sessionInfo("New session", base) });
  let clock = base;
  for (let i = 0; i < opts.turns; i++) {
    const word = opts.words?.[i % opts.words.length] ?? `word${i}`;
    const user = uid("msg");
    clock += 1000;
    const userInfo = { id: user, sessionID: ses, role: "user", time: { created: clock }, agent: "build", model: { providerID: "anthropic", modelID: "claude-sonnet-4-20250514" } };
    ev("message.updated", { sessionID: ses, info: userInfo });
    ev("message.part.updated", { sessionID: ses, part: { id: uid("prt"), sessionID: ses, messageID: user, type: "text", text: `question about ${word} number ${i}` }, time: clock });
    const asst = uid("msg");
    clock += 10;
    const asstInfo = (done: boolean, input: number, output: number) => ({
      id: asst,
      sessionID: ses,
      parentID: user,
      role: "assistant",
      mode: "build",
      agent: "build",
      path: { cwd: "/home/workspace", root: "/" },
      cost: 0,
      tokens: { input, output, reasoning: 0, cache: { read: 0, write: 0 } },
      modelID: "claude-sonnet-4-20250514",
      providerID: "anthropic",
      time: done ? { created: clock, completed: clock + 500 } : { created: clock },
      ...(done ? { finish: "stop" } : {}),
    });
    ev("message.updated", { sessionID: ses, info: asstInfo(false, 0, 0) });
    const prt = uid("prt");
    ev("message.part.updated", { sessionID: ses, part: { id: prt, sessionID: ses, messageID: asst, type: "text", text: "", time: { start: clock } }, time: clock });
    ev("message.part.delta", { sessionID: ses, messageID: asst, partID: prt, field: "text", delta: "The " });
    ev("message.part.updated", { sessionID: ses, part: { id: prt, sessionID: ses, messageID: asst, type: "text", text: `The answer about`, time: { start: clock } }, time: clock });
    ev("message.part.updated", {
      sessionID: ses,
      part: { id: prt, sessionID: ses, messageID: asst, type: "text", text: `The answer about ${word} is here.`, time: { start: clock, end: clock + 400 } },
      time: clock,
    });
    ev("message.updated", { sessionID: ses, info: asstInfo(true, 1000 + i, 50 + i) });
    ev("session.updated", { sessionID: ses, info: sessionInfo(`Talk about ${opts.words?.[0] ?? "things"}`, clock + 600) });
  }
  return { ses, events };
}

async function ingest(sandboxId: string, events: unknown[], batch = 50) {
  for (let i = 0; i < events.length; i += batch) {
    const set = emptyChangeSet();
    for (const e of events.slice(i, i + batch)) addEvent(set, e);
    await applyChanges(t().database.db, sandboxId, set, { now: new Date() });
  }
  // Written behind the API (as the sync does): the cached pages learn it from the triggers.
  await t().pages.settle();
}

function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** Everything stored for a sandbox's chats, without Warren's own ids and sync times. */
async function snapshot(sandboxId: string) {
  const db = t().database.db;
  const sessions = await queryRows(
    db,
    sql`select external_session_id, title, status, message_count, user_message_count, assistant_message_count,
          total_input_tokens::text, total_output_tokens::text, total_cost::text, last_message_at, created_at
        from chat_sessions where sandbox_id = ${sandboxId} order by external_session_id`,
  );
  const messages = await queryRows(
    db,
    sql`select s.external_session_id, m.external_message_id, m.role, m.status, m.text, m.content, m.input_tokens, m.output_tokens,
          m.cost::text, m.created_at, m.completed_at, m.is_stub, m.model_provider, m.model_id, m.removed_at is not null as removed
        from chat_messages m join chat_sessions s on s.id = m.session_id
        where s.sandbox_id = ${sandboxId} order by m.external_message_id`,
  );
  const parts = await queryRows(
    db,
    sql`select m.external_message_id, p.external_part_id, p.content, p.revision::text
        from chat_message_parts p join chat_messages m on m.id = p.message_id join chat_sessions s on s.id = m.session_id
        where s.sandbox_id = ${sandboxId} order by p.external_part_id`,
  );
  return { sessions, messages, parts };
}

describe("sync ingest", () => {
  test("events replayed in random order, in random batches, with duplicates, converge to the in-order result", async () => {
    const u = await signUp(t());
    const ordered = await createSandbox(u, "in order");
    const { events } = conversation({ turns: 6, words: ["alpha"] });
    await ingest(ordered, events);
    const expected = await snapshot(ordered);
    expect(expected.sessions).toHaveLength(1);
    expect(expected.sessions[0]).toMatchObject({ title: "Talk about alpha", message_count: 12, user_message_count: 6, assistant_message_count: 6 });
    expect(expected.messages.every((m: any) => m.is_stub === false)).toBe(true);

    for (const seed of [1, 7, 42]) {
      const replayed = await createSandbox(u, `replay ${seed}`);
      // Every event twice, shuffled, and fed in batches of varying size.
      const chaos = shuffled([...events, ...events, ...shuffled(events, seed + 1).slice(0, 10)], seed);
      for (let i = 0, size = 1; i < chaos.length; i += size, size = (size % 13) + 1) await ingest(replayed, chaos.slice(i, i + size), size);
      expect(await snapshot(replayed)).toEqual(expected);
    }
  });

  test("token counts and costs never go backwards, and a completed message never returns to streaming", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { events } = conversation({ turns: 1 });
    await ingest(sbx, events);
    const before = await snapshot(sbx);
    // An old version of the assistant message (streaming, zero tokens) arriving late.
    const stale = events.filter((e: any) => e.type === "message.updated" && e.properties.info.role === "assistant")[0];
    await ingest(sbx, [stale]);
    expect(await snapshot(sbx)).toEqual(before);
    const asst = before.messages.find((m: any) => m.role === "assistant") as any;
    expect(asst.status).toBe("complete");
    expect(asst.input_tokens).toBe(1000);
    // Cost from the catalog's price for anthropic/claude-sonnet-4-20250514, not the agent's 0.
    expect(Number(asst.cost)).toBeGreaterThan(0);
  });

  test("removed messages and parts go; a purged session is never brought back by its agent", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { ses, events } = conversation({ turns: 2 });
    await ingest(sbx, events);
    const snap = await snapshot(sbx);
    const firstUser = snap.messages.find((m: any) => m.role === "user") as any;
    await ingest(sbx, [{ id: "evt_x", type: "message.removed", properties: { sessionID: ses, messageID: firstUser.external_message_id } }]);
    const after = await snapshot(sbx);
    // The removed message stays as a tombstone: out of the counts and the API, never revived.
    expect(after.messages.filter((m: any) => !m.removed)).toHaveLength(3);
    expect(after.sessions[0]).toMatchObject({ message_count: 3, user_message_count: 1 });
    // Tokens were spent: the session's totals do not shrink.
    expect(after.sessions[0]!.total_input_tokens).toBe(snap.sessions[0]!.total_input_tokens);

    const list = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions`, { token: u.token }));
    const sessionId = list.data[0].id;
    const purged = await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions/${sessionId}?purge=true`, { method: "DELETE", token: u.token });
    expect(purged.status).toBe(204);
    await ingest(sbx, events);
    expect((await snapshot(sbx)).messages).toHaveLength(0);
    await expectError(await t().request(`/api/v1/chat/sessions/${sessionId}`, { token: u.token }), 404, "NOT_FOUND");
  });
});

describe("chat API", () => {
  test("sessions, session detail, and message pages in both directions", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { events } = conversation({ turns: 13, words: ["paging"] });
    await ingest(sbx, events);
    const list = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions?limit=10`, { token: u.token }));
    expect(list.data).toHaveLength(1);
    const s = list.data[0];
    expect(s).toMatchObject({ sandboxId: sbx, messageCount: 26, userMessageCount: 13, assistantMessageCount: 13, status: "active" });
    expect(s.inputTokens).toBe(Array.from({ length: 13 }, (_, i) => 1000 + i).reduce((a, b) => a + b));

    const detail = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions/${s.id}`, { token: u.token }));
    expect(detail.latestMessages).toHaveLength(20);
    expect(detail.latestMessages.at(-1).text).toBe("The answer about paging is here.");

    // Forward through everything in pages of 5, then back again with prevCursor.
    const base = `/api/v1/sandboxes/${sbx}/chat/sessions/${s.id}/messages?limit=5`;
    const pages: any[] = [];
    let page = await json(await t().request(base, { token: u.token }));
    pages.push(page);
    expect(page.prevCursor).toBeNull();
    while (page.nextCursor) {
      page = await json(await t().request(`${base}&cursor=${page.nextCursor}`, { token: u.token }));
      pages.push(page);
    }
    const forward = pages.flatMap((p) => p.data.map((m: any) => m.id));
    expect(forward).toHaveLength(26);
    expect(new Set(forward).size).toBe(26);
    const times = pages.flatMap((p) => p.data.map((m: any) => m.createdAt));
    expect([...times].sort()).toEqual(times);
    let back = pages.at(-1);
    const backward: string[] = [...back.data.map((m: any) => m.id)];
    while (back.prevCursor) {
      back = await json(await t().request(`${base}&cursor=${back.prevCursor}`, { token: u.token }));
      backward.unshift(...back.data.map((m: any) => m.id));
    }
    expect(backward).toEqual(forward);
    // Newest first.
    const desc = await json(await t().request(`${base}&order=desc`, { token: u.token }));
    expect(desc.data.map((m: any) => m.id)).toEqual([...forward].reverse().slice(0, 5));
  });

  test("archive keeps the session readable and filterable by status", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    await ingest(sbx, conversation({ turns: 1 }).events);
    await ingest(sbx, conversation({ turns: 1 }).events);
    const list = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions`, { token: u.token }));
    const res = await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions/${list.data[0].id}`, { method: "DELETE", token: u.token });
    expect(res.status).toBe(200);
    expect((await json(res)).status).toBe("archived");
    const archived = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions?status=archived`, { token: u.token }));
    expect(archived.data.map((s: any) => s.id)).toEqual([list.data[0].id]);
    const active = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions?status=active`, { token: u.token }));
    expect(active.data).toHaveLength(1);
  });

  test("search ranks, highlights safely, pages, and never crosses users", async () => {
    const alice = await signUp(t());
    const bob = await signUp(t());
    const a = await createSandbox(alice);
    const b = await createSandbox(bob);
    await ingest(a, conversation({ turns: 8, words: ["kangaroo", "<script>alert(1)</script> kangaroo", "wombat"] }).events);
    await ingest(b, conversation({ turns: 4, words: ["kangaroo"] }).events);

    const hits = await json(await t().request(`/api/v1/chat/search?q=kangaroo&limit=4`, { token: alice.token }));
    expect(hits.data).toHaveLength(4);
    expect(hits.nextCursor).not.toBeNull();
    for (const h of hits.data) {
      expect(h.snippet).toContain("<mark>kangaroo</mark>");
      expect(h.snippet).not.toContain("<script>");
      expect(h.sandboxId).toBe(a);
    }
    const ranks = hits.data.map((h: any) => h.rank);
    expect([...ranks].sort((x: number, y: number) => y - x)).toEqual(ranks);
    const rest = await json(await t().request(`/api/v1/chat/search?q=kangaroo&limit=50&cursor=${hits.nextCursor}`, { token: alice.token }));
    const all = [...hits.data, ...rest.data].map((h: any) => h.messageId);
    expect(new Set(all).size).toBe(all.length);
    // kangaroo appears in 2 of every 3 turns, in the user's and the assistant's message.
    expect(all.length).toBe(12);
    const bobs = await json(await t().request(`/api/v1/chat/search?q=kangaroo`, { token: bob.token }));
    expect(bobs.data.every((h: any) => h.sandboxId === b)).toBe(true);
    expect(bobs.data).toHaveLength(8);
    const none = await json(await t().request(`/api/v1/chat/search?q=wombat`, { token: bob.token }));
    expect(none.data).toEqual([]);
    // Web-search syntax: a phrase and an exclusion.
    const phrase = await json(await t().request(`/api/v1/chat/search?q=${encodeURIComponent('"answer about wombat" -kangaroo')}`, { token: alice.token }));
    expect(phrase.data.length).toBeGreaterThan(0);
  });

  test("two users never see each other's sessions", async () => {
    const alice = await signUp(t());
    const bob = await signUp(t());
    const a = await createSandbox(alice);
    await ingest(a, conversation({ turns: 1 }).events);
    const list = await json(await t().request(`/api/v1/sandboxes/${a}/chat/sessions`, { token: alice.token }));
    const sid = list.data[0].id;
    await expectError(await t().request(`/api/v1/sandboxes/${a}/chat/sessions`, { token: bob.token }), 404, "NOT_FOUND");
    await expectError(await t().request(`/api/v1/chat/sessions/${sid}`, { token: bob.token }), 404, "NOT_FOUND");
    await expectError(await t().request(`/api/v1/chat/sessions/${sid}/messages`, { token: bob.token }), 404, "NOT_FOUND");
    expect((await json(await t().request(`/api/v1/chat/sessions`, { token: bob.token }))).data).toEqual([]);
    const usage = await json(await t().request(`/api/v1/me/usage?from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z`, { token: bob.token }));
    expect(usage.total.messages).toBe(0);
  });

  test("usage by provider and model over a range", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    await ingest(sbx, conversation({ turns: 3, base: Date.parse("2026-03-01T00:00:00Z") }).events);
    const res = await json(await t().request(`/api/v1/me/usage?from=2026-02-01T00:00:00Z&to=2026-04-01T00:00:00Z`, { token: u.token }));
    expect(res.byModel).toHaveLength(1);
    expect(res.byModel[0]).toMatchObject({ provider: "anthropic", model: "claude-sonnet-4-20250514", messages: 3, inputTokens: 3003, outputTokens: 153 });
    // 3003 input tokens at $3 and 153 output tokens at $15 per million.
    expect(res.total.cost).toBeCloseTo((3003 * 3 + 153 * 15) / 1e6, 6);
    const outside = await json(await t().request(`/api/v1/me/usage?from=2026-04-01T00:00:00Z&to=2026-05-01T00:00:00Z`, { token: u.token }));
    expect(outside.total.messages).toBe(0);
    const bad = await expectError(await t().request(`/api/v1/me/usage?from=2026-05-01T00:00:00Z&to=2026-04-01T00:00:00Z`, { token: u.token }), 400, "VALIDATION_FAILED");
    expect(bad.message).toContain("from");
  });

  test("sync state of a sandbox that never ran", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const state = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sync`, { token: u.token }));
    expect(state).toMatchObject({ sandboxId: sbx, connected: false, eventsIngested: 0, lastError: null });
    await ingest(sbx, conversation({ turns: 1 }).events);
    const after = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sync`, { token: u.token }));
    expect(after.eventsIngested).toBeGreaterThan(0);
    expect(after.lastEventAt).not.toBeNull();
  });

  test("force sync of a stopped sandbox is 409 INVALID_STATE", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    await ingest(sbx, conversation({ turns: 1 }).events);
    const list = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions`, { token: u.token }));
    await expectError(
      await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions/${list.data[0].id}/sync`, { method: "POST", token: u.token }),
      409,
      "INVALID_STATE",
    );
  });

  test("deleting a sandbox deletes its chats unless keepChats=true", async () => {
    const u = await signUp(t());
    const gone = await createSandbox(u, "gone");
    const kept = await createSandbox(u, "kept");
    await ingest(gone, conversation({ turns: 1 }).events);
    await ingest(kept, conversation({ turns: 1 }).events);
    const keptSession = (await json(await t().request(`/api/v1/sandboxes/${kept}/chat/sessions`, { token: u.token }))).data[0].id;
    const goneSession = (await json(await t().request(`/api/v1/sandboxes/${gone}/chat/sessions`, { token: u.token }))).data[0].id;
    expect((await t().request(`/api/v1/sandboxes/${gone}`, { method: "DELETE", token: u.token })).status).toBe(202);
    expect((await t().request(`/api/v1/sandboxes/${kept}?keepChats=true`, { method: "DELETE", token: u.token })).status).toBe(202);
    await expectError(await t().request(`/api/v1/chat/sessions/${goneSession}`, { token: u.token }), 404, "NOT_FOUND");
    // The sandbox row goes when the worker has removed the workload; its kept chats stay (sandbox_id null).
    await t().database.db.execute(sql`delete from sandboxes where id = ${kept}`);
    await t().pages.settle();
    const detail = await json(await t().request(`/api/v1/chat/sessions/${keptSession}`, { token: u.token }));
    expect(detail).toMatchObject({ id: keptSession, sandboxId: null, messageCount: 2 });
    // A sandbox being deleted takes no more chat writes.
    const late = await createSandbox(u, "late");
    await t().request(`/api/v1/sandboxes/${late}`, { method: "DELETE", token: u.token });
    await ingest(late, conversation({ turns: 1 }).events);
    expect((await snapshot(late)).sessions).toEqual([]);
  });
});

describe("chat history edge cases", () => {
  const ev = (type: string, properties: unknown) => ({ id: uid("evt"), type, properties });
  const sessionOf = async (u: TestUser, sbx: string) => (await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions`, { token: u.token }))).data[0];

  test("a removed message leaves the counts but not the totals, never hides later messages' tokens, and converges in any order", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { ses, events } = conversation({ turns: 3, words: ["platypus"] });
    const firstTwo = events.slice(0, events.findLastIndex((e: any) => e.properties.info?.id && e.type === "message.updated" && e.properties.info.role === "assistant" && e.properties.info.time.completed) + 1);
    const asst = (firstTwo.at(-1) as any).properties.info.id as string;
    const removal = ev("message.removed", { sessionID: ses, messageID: asst });
    // In order: everything, then the removal.
    await ingest(sbx, [...events, removal]);
    const s = await sessionOf(u, sbx);
    expect(s).toMatchObject({ messageCount: 5, assistantMessageCount: 2 });
    // 1000 + 1001 + 1002: the removed answer's tokens were spent and stay counted.
    expect(s.inputTokens).toBe(3003);
    const msgs = await json(await t().request(`/api/v1/chat/sessions/${s.id}/messages`, { token: u.token }));
    expect(msgs.data.map((m: any) => m.externalMessageId)).not.toContain(asst);
    expect((await json(await t().request(`/api/v1/chat/sessions/${s.id}`, { token: u.token }))).latestMessages).toHaveLength(5);
    const usage = await json(await t().request(`/api/v1/me/usage?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z`, { token: u.token }));
    expect(usage.total.inputTokens).toBe(3003);

    // The removal first, then the message's events (late or replayed): the same rows.
    const reordered = await createSandbox(u, "removal first");
    await ingest(reordered, [removal, ...events]);
    expect(await snapshot(reordered)).toEqual(await snapshot(sbx));
    // A removal in the middle, then more messages: the totals keep growing.
    const middle = await createSandbox(u, "removal in the middle");
    await ingest(middle, [...firstTwo, removal]);
    await ingest(middle, events.slice(firstTwo.length));
    expect(await snapshot(middle)).toEqual(await snapshot(sbx));
  });

  test("a removed part leaves its message's text and parts; the search no longer finds it", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { ses, events } = conversation({ turns: 1, words: ["echidna"] });
    await ingest(sbx, events);
    const part = (events.filter((e: any) => e.type === "message.part.updated").at(-1) as any).properties.part;
    expect((await json(await t().request(`/api/v1/chat/search?q=answer`, { token: u.token }))).data).toHaveLength(1);
    await ingest(sbx, [ev("message.part.removed", { sessionID: ses, messageID: part.messageID, partID: part.id })]);
    const s = await sessionOf(u, sbx);
    const msgs = (await json(await t().request(`/api/v1/chat/sessions/${s.id}/messages`, { token: u.token }))).data;
    const answer = msgs.find((m: any) => m.externalMessageId === part.messageID);
    expect(answer).toMatchObject({ text: "", parts: [] });
    expect((await json(await t().request(`/api/v1/chat/search?q=answer`, { token: u.token }))).data).toEqual([]);
  });

  test("a session deleted in OpenCode stays readable, marked deleted, whatever comes after", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { ses, events } = conversation({ turns: 1, words: ["quokka"] });
    const info = (events.at(-1) as any).properties.info;
    await ingest(sbx, [...events, ev("session.deleted", { sessionID: ses, info })]);
    // A late update of the session does not bring it back to active.
    await ingest(sbx, [ev("session.updated", { sessionID: ses, info: { ...info, title: "later", time: { ...info.time, updated: info.time.updated + 1 } } })]);
    const s = await sessionOf(u, sbx);
    expect(s).toMatchObject({ status: "deleted", messageCount: 2, title: "later" });
    const deleted = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions?status=deleted`, { token: u.token }));
    expect(deleted.data.map((x: any) => x.id)).toEqual([s.id]);
    expect((await json(await t().request(`/api/v1/chat/sessions/${s.id}/messages`, { token: u.token }))).data).toHaveLength(2);
  });

  test("an agent's output with NUL bytes, half an emoji or nesting jsonb cannot take is stored readable, not a failed batch", async () => {
    // A tool that cats a binary file returns NUL bytes; a client or agent cutting text mid-emoji
    // leaves an unpaired surrogate. PostgreSQL refuses both in jsonb (and NUL in text), so one such
    // part failed its whole batch, and every reconciliation of the session after it.
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { ses, events } = conversation({ turns: 1, words: ["wombat"] });
    const answer = (events.at(-2) as any).properties.info;
    let deep: unknown = "bottom";
    for (let i = 0; i < 10_000; i++) deep = { deep };
    const part = (id: string, fields: object) => ev("message.part.updated", { sessionID: ses, part: { id, sessionID: ses, messageID: answer.id, ...fields } });
    await ingest(sbx, [
      ...events,
      part("prt_zz_tool", {
        type: "tool",
        tool: "bash",
        callID: "call_1",
        state: { status: "completed", input: { command: "head -c 8 a.out" }, output: "\u007fELF\u0002\u0001\u0001\u0000\u0000", ["bad\u0000key"]: "\ud800" },
      }),
      part("prt_zz_text", { type: "text", text: "cut in half: \ud83d", time: { start: answer.time.created, end: answer.time.created + 1 } }),
      part("prt_zz_deep", { type: "tool", tool: "json", callID: "call_2", state: { status: "completed", input: deep } }),
      // Too large, so stored cut: the cut (256 KiB in) falls between the halves of an emoji.
      part("prt_zz_big", { type: "text", text: `a${"\u{1f600}".repeat(140_000)}`, time: { start: answer.time.created, end: answer.time.created + 2 } }),
      ev("session.updated", { sessionID: ses, info: { id: ses, title: "a\u0000title \udc00", time: { created: answer.time.created, updated: answer.time.created + 10_000 } } }),
      ev("message.updated", { sessionID: ses, info: { ...answer, id: "msg_zz_bad_model", modelID: "model\u0000" } }),
    ]);
    const s = await sessionOf(u, sbx);
    expect(s).toMatchObject({ title: "a\ufffdtitle \ufffd", messageCount: 3 });
    const msgs = (await json(await t().request(`/api/v1/chat/sessions/${s.id}/messages`, { token: u.token }))).data;
    const stored = msgs.find((m: any) => m.externalMessageId === answer.id);
    const byId = new Map(stored.parts.map((p: any) => [p.id, p]));
    expect((byId.get("prt_zz_tool") as any).state).toMatchObject({ output: "\u007fELF\u0002\u0001\u0001\ufffd\ufffd", ["bad\ufffdkey"]: "\ufffd" });
    expect(byId.get("prt_zz_text")).toMatchObject({ text: "cut in half: \ufffd" });
    expect(byId.get("prt_zz_deep")).toEqual({ id: "prt_zz_deep", type: "tool", truncated: true });
    expect(byId.get("prt_zz_big")).toMatchObject({ truncated: true, text: `a${"\u{1f600}".repeat(131_071)}` });
    expect(stored.text).toContain("cut in half: \ufffd");
    // A model name that cannot be stored is left out; the message is kept.
    expect(msgs.find((m: any) => m.externalMessageId === "msg_zz_bad_model")).toMatchObject({ modelId: null });
  });

  test("an archived session stays archived through later sync, keeps syncing, is listed and searchable", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { events } = conversation({ turns: 2, words: ["numbat"] });
    await ingest(sbx, events.slice(0, events.length / 2));
    const s = await sessionOf(u, sbx);
    expect((await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions/${s.id}`, { method: "DELETE", token: u.token })).status).toBe(200);
    await ingest(sbx, events);
    const after = await sessionOf(u, sbx);
    expect(after).toMatchObject({ id: s.id, status: "archived", messageCount: 4 });
    const hits = await json(await t().request(`/api/v1/chat/search?q=numbat`, { token: u.token }));
    expect(hits.data.length).toBe(4);
  });

  test("message pages stay exact when messages arrive between requests, in both orders", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const base = Date.parse("2026-06-01T00:00:00Z");
    const { ses, events } = conversation({ turns: 4, base });
    await ingest(sbx, events);
    const s = await sessionOf(u, sbx);
    const url = `/api/v1/chat/sessions/${s.id}/messages?limit=3`;
    const get = async (q: string) => json(await t().request(`${url}${q}`, { token: u.token }));
    const first = await get("");
    const newestFirst = await get("&order=desc");
    // Two more exchanges arrive (re-using the session id: same conversation, later messages).
    const more = conversation({ turns: 2, base: base + 3_600_000 }).events.map((e: any) =>
      JSON.parse(JSON.stringify(e).replaceAll(e.properties.sessionID ?? e.properties.info?.id, ses)),
    );
    await ingest(sbx, more);
    const seen = first.data.map((m: any) => m.id);
    for (let page = first; page.nextCursor; ) {
      page = await get(`&cursor=${page.nextCursor}`);
      seen.push(...page.data.map((m: any) => m.id));
    }
    expect(seen).toHaveLength(12);
    expect(new Set(seen).size).toBe(12);
    // Newest first: going on reaches the old end without repeats; the first page now starts with the newcomers.
    const older = [...newestFirst.data.map((m: any) => m.id)];
    for (let page = newestFirst; page.nextCursor; ) {
      page = await get(`&order=desc&cursor=${page.nextCursor}`);
      older.push(...page.data.map((m: any) => m.id));
    }
    expect(older).toEqual([...seen.slice(0, 8)].reverse());
    expect((await get("&order=desc")).data.map((m: any) => m.id)).toEqual([...seen.slice(9)].reverse());
    const back = await get(`&cursor=${(await get(`&cursor=${first.nextCursor}`)).prevCursor}`);
    expect(back.data.map((m: any) => m.id)).toEqual(first.data.map((m: any) => m.id));
  });

  test("search snippets escape everything but their own marks; odd queries are empty or 400, never 500", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const ses = uid("ses");
    const created = Date.parse("2026-06-01T00:00:00Z");
    const nasty = `wallaby & "quoted" 'single' 5 < 6 > 3 <img src=x onerror=alert(1)> \u0001wallaby\u0002 \u0003 <mark>fake</mark> wallaby`;
    await ingest(sbx, [
      ev("message.updated", { sessionID: ses, info: { id: "msg_x", sessionID: ses, role: "user", time: { created } } }),
      ev("message.part.updated", { sessionID: ses, part: { id: "prt_x", sessionID: ses, messageID: "msg_x", type: "text", text: nasty } }),
    ]);
    const hits = await json(await t().request(`/api/v1/chat/search?q=wallaby`, { token: u.token }));
    expect(hits.data).toHaveLength(1);
    const snippet: string = hits.data[0].snippet;
    expect(snippet).toContain("<mark>wallaby</mark>");
    // Take Warren's own marks out: no markup, no quote, no control character is left.
    const rest = snippet.replaceAll("<mark>", "").replaceAll("</mark>", "");
    expect(rest).not.toMatch(/[<>"'\u0001\u0002]/);
    expect(snippet.match(/<mark>/g)?.length).toBe(snippet.match(/<\/mark>/g)?.length);
    for (const q of ["!!! ??? ...", "& | ! : * ( ) <->", "the a an of", "\\", "'", "x".repeat(500)]) {
      const res = await t().request(`/api/v1/chat/search?q=${encodeURIComponent(q)}`, { token: u.token });
      expect(res.status).toBe(200);
    }
    const cursor = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    for (const c of [cursor([1e300, "x"]), cursor([0.5, "x\u0000"]), cursor([-1, "x"])]) {
      await expectError(await t().request(`/api/v1/chat/search?q=wallaby&cursor=${c}`, { token: u.token }), 400, "VALIDATION_FAILED");
    }
    const s = await sessionOf(u, sbx);
    for (const c of [cursor(["+010000-01-01T00:00:00.000Z", "x", "next"]), cursor(["2026-01-01T00:00:00.000Z", "x\u0000", "prev"])]) {
      await expectError(await t().request(`/api/v1/chat/sessions/${s.id}/messages?cursor=${c}`, { token: u.token }), 400, "VALIDATION_FAILED");
    }
  });

  test("usage: from is inclusive, to exclusive, the range at most 366 days and in order", async () => {
    const u = await signUp(t());
    const sbx = await createSandbox(u);
    const { events } = conversation({ turns: 1, base: Date.parse("2026-03-01T00:00:00Z") });
    await ingest(sbx, events);
    // The assistant message was created at base + 1000 + 10 ms.
    const at = "2026-03-01T00:00:01.010Z";
    const get = (q: string) => t().request(`/api/v1/me/usage?${q}`, { token: u.token });
    expect((await json(await get(`from=${at}&to=2026-03-02T00:00:00Z`))).total.messages).toBe(1);
    expect((await json(await get(`from=2026-02-01T00:00:00Z&to=${at}`))).total.messages).toBe(0);
    expect((await json(await get(`from=${at}&to=${at}`))).total.messages).toBe(0);
    expect((await json(await get(`from=2026-03-01T01:00:01.010%2B01:00&to=2026-03-02T00:00:00Z`))).total.messages).toBe(1);
    await expectError(await get(`from=2025-01-01T00:00:00Z&to=2026-03-02T00:00:00Z`), 400, "VALIDATION_FAILED");
    await expectError(await get(`from=2999-01-01T00:00:00Z`), 400, "VALIDATION_FAILED");
  });
});

// Every chat route under the shared security suite.
async function sandboxWithSession(owner: TestUser) {
  const sbx = await createSandbox(owner);
  await ingest(sbx, conversation({ turns: 1, words: ["secret"] }).events);
  const list = await json(await t().request(`/api/v1/sandboxes/${sbx}/chat/sessions`, { token: owner.token }));
  return { sbx, sid: list.data[0].id as string };
}
async function untouched(owner: TestUser, path: string) {
  const m = path.match(/chat\/sessions\/([^/?]+)/);
  if (!m) return;
  const res = await t().request(`/api/v1/chat/sessions/${m[1]}`, { token: owner.token });
  expect(res.status).toBe(200);
  expect((await json(res)).status).toBe("active");
}

securitySuite("chat", t, [
  {
    name: "GET /api/v1/sandboxes/:id/chat/sessions",
    method: "GET",
    path: async (o) => `/api/v1/sandboxes/${(await sandboxWithSession(o)).sbx}/chat/sessions`,
    ownedResource: true,
    badInputs: [
      { path: async (o) => `/api/v1/sandboxes/${await createSandbox(o)}/chat/sessions?status=weird`, field: "status" },
      { path: async (o) => `/api/v1/sandboxes/${await createSandbox(o)}/chat/sessions?limit=0`, field: "limit" },
      { path: async (o) => `/api/v1/sandboxes/${await createSandbox(o)}/chat/sessions?cursor=garbage`, field: "cursor" },
    ],
  },
  {
    name: "GET /api/v1/sandboxes/:id/chat/sessions/:sessionId",
    method: "GET",
    path: async (o) => {
      const { sbx, sid } = await sandboxWithSession(o);
      return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}`;
    },
    ownedResource: true,
  },
  {
    name: "GET /api/v1/sandboxes/:id/chat/sessions/:sessionId/messages",
    method: "GET",
    path: async (o) => {
      const { sbx, sid } = await sandboxWithSession(o);
      return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}/messages`;
    },
    ownedResource: true,
    badInputs: [
      {
        path: async (o) => {
          const { sbx, sid } = await sandboxWithSession(o);
          return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}/messages?order=sideways`;
        },
        field: "order",
      },
      {
        path: async (o) => {
          const { sbx, sid } = await sandboxWithSession(o);
          return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}/messages?cursor=${Buffer.from("[1,2]").toString("base64url")}`;
        },
        field: "cursor",
      },
    ],
  },
  {
    name: "DELETE /api/v1/sandboxes/:id/chat/sessions/:sessionId",
    method: "DELETE",
    path: async (o) => {
      const { sbx, sid } = await sandboxWithSession(o);
      return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}?purge=true`;
    },
    ownedResource: true,
    verifyUntouched: untouched,
    badInputs: [
      {
        path: async (o) => {
          const { sbx, sid } = await sandboxWithSession(o);
          return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}?purge=yes`;
        },
        field: "purge",
      },
    ],
  },
  {
    name: "POST /api/v1/sandboxes/:id/chat/sessions/:sessionId/sync",
    method: "POST",
    path: async (o) => {
      const { sbx, sid } = await sandboxWithSession(o);
      return `/api/v1/sandboxes/${sbx}/chat/sessions/${sid}/sync`;
    },
    ownedResource: true,
    verifyUntouched: untouched,
  },
  {
    name: "GET /api/v1/sandboxes/:id/chat/sync",
    method: "GET",
    path: async (o) => `/api/v1/sandboxes/${await createSandbox(o)}/chat/sync`,
    ownedResource: true,
  },
  {
    name: "GET /api/v1/chat/sessions",
    method: "GET",
    path: () => `/api/v1/chat/sessions`,
    badInputs: [{ path: () => `/api/v1/chat/sessions?limit=1000`, field: "limit" }],
  },
  {
    name: "GET /api/v1/chat/sessions/:sessionId",
    method: "GET",
    path: async (o) => `/api/v1/chat/sessions/${(await sandboxWithSession(o)).sid}`,
    ownedResource: true,
  },
  {
    name: "GET /api/v1/chat/sessions/:sessionId/messages",
    method: "GET",
    path: async (o) => `/api/v1/chat/sessions/${(await sandboxWithSession(o)).sid}/messages`,
    ownedResource: true,
  },
  {
    name: "GET /api/v1/chat/search",
    method: "GET",
    path: () => `/api/v1/chat/search?q=secret`,
    badInputs: [
      { path: () => `/api/v1/chat/search`, field: "q" },
      { path: () => `/api/v1/chat/search?q=${"x".repeat(501)}`, field: "q" },
      { path: () => `/api/v1/chat/search?q=a&cursor=nope`, field: "cursor" },
    ],
  },
  {
    name: "GET /api/v1/me/usage",
    method: "GET",
    path: () => `/api/v1/me/usage`,
    badInputs: [
      { path: () => `/api/v1/me/usage?from=yesterday`, field: "from" },
      { path: () => `/api/v1/me/usage?to=2026-13-45`, field: "to" },
    ],
  },
]);
