import { sql } from "drizzle-orm";
import { encryptValue } from "../../src/crypto/envelope";
import { agentAuthHeader } from "../../src/orchestrator/opencode";
import type { ChatSyncOptions } from "../../src/services/chat/sync-manager";
import { json, signUp, type TestApp } from "./app";

/**
 * An OpenCode stand-in for the chat sync tests: the part of OpenCode 1.18's HTTP protocol the
 * sync reads (GET /event as server-sent events, GET /session, GET /session/:id,
 * GET /session/:id/message, Basic auth), because these tests must refuse, drop, silence and
 * time connections at will; tests/e2e/chat-sync.test.ts runs the same sync against a real
 * OpenCode server. Its state is built from the events it streams, as OpenCode's is. Where it
 * copies a detail of the real server, that detail was checked against the pinned binary:
 * - /event starts with server.connected and sends server.heartbeat every 10 s (heartbeatMs here);
 * - GET /session lists the newest sessions first, 100 unless ?limit= says otherwise;
 * - an unknown session is 404 {"name":"NotFoundError","data":{"message":…}}.
 */
export const STANDIN_PASSWORD = "agent-password-for-the-standin";

type Info = { id: string; sessionID?: string; time: { created: number; updated?: number; completed?: number } } & Record<string, unknown>;

export function startAgentStandin(opts: { heartbeatMs?: number } = {}) {
  const sessions = new Map<string, Info>();
  const messages = new Map<string, { info: Info; parts: Map<string, unknown> }>();
  const streams = new Set<ReadableStreamDefaultController<string>>();
  const st = {
    refuse: 0,
    refused: 0,
    connections: 0,
    badAuth: 0,
    /** The next this many streams get server.connected and then nothing, and are never closed (a hung agent). */
    silent: 0,
    /** Streams the client hung up on. */
    cancelled: 0,
    /** The next this many GET /session answer 500. */
    failList: 0,
    /** The next this many GET /session answer 200 with a body cut short (a dropped connection). */
    brokenList: 0,
    /** GET /session answers at most this many sessions, whatever ?limit= says. */
    listCap: Number.POSITIVE_INFINITY,
    /** Sessions GET /session leaves out though they exist (another project's, for OpenCode). */
    unlisted: new Set<string>(),
  };
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(req) {
      if (req.headers.get("authorization") !== agentAuthHeader(STANDIN_PASSWORD)) {
        st.badAuth++;
        return new Response("unauthorized", { status: 401 });
      }
      const url = new URL(req.url);
      if (url.pathname === "/event") {
        if (st.refuse > 0) {
          st.refuse--;
          st.refused++;
          return new Response("starting", { status: 503 });
        }
        st.connections++;
        const silent = st.silent > 0;
        if (silent) st.silent--;
        let ctl: ReadableStreamDefaultController<string>;
        let heartbeat: Timer | undefined;
        const body = new ReadableStream<string>({
          start(c) {
            ctl = c;
            c.enqueue(`data: ${JSON.stringify({ type: "server.connected", properties: {} })}\n\n`);
            if (silent) return;
            streams.add(c);
            if (opts.heartbeatMs) {
              heartbeat = setInterval(() => c.enqueue(`data: ${JSON.stringify({ type: "server.heartbeat", properties: {} })}\n\n`), opts.heartbeatMs);
            }
          },
          cancel() {
            st.cancelled++;
            clearInterval(heartbeat);
            streams.delete(ctl);
          },
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      }
      if (url.pathname === "/session") {
        if (st.failList > 0) {
          st.failList--;
          return Response.json({ name: "UnknownError", data: { message: "database is locked" } }, { status: 500 });
        }
        if (st.brokenList > 0) {
          st.brokenList--;
          return new Response(`[{"id":"ses_`, { headers: { "content-type": "application/json" } });
        }
        const start = Number(url.searchParams.get("start") ?? 0);
        const limit = Math.min(Number(url.searchParams.get("limit") ?? 100), st.listCap);
        const updated = (s: Info) => s.time.updated ?? s.time.created;
        const list = [...sessions.values()].filter((s) => !st.unlisted.has(s.id) && updated(s) >= start).sort((a, b) => updated(b) - updated(a));
        return Response.json(list.slice(0, limit));
      }
      const one = url.pathname.match(/^\/session\/([^/]+)$/);
      if (one) {
        const info = sessions.get(one[1]!);
        return info ? Response.json(info) : Response.json({ name: "NotFoundError", data: { message: `Session not found: ${one[1]}` } }, { status: 404 });
      }
      const m = url.pathname.match(/^\/session\/([^/]+)\/message$/);
      if (m) {
        if (!sessions.has(m[1]!)) return Response.json({ name: "NotFoundError", data: { message: `Session not found: ${m[1]}` } }, { status: 404 });
        const list = [...messages.values()].filter((x) => x.info.sessionID === m[1]).sort((a, b) => a.info.time.created - b.info.time.created);
        return Response.json(list.map((x) => ({ info: x.info, parts: [...x.parts.values()] })));
      }
      return new Response("not found", { status: 404 });
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    st,
    open: () => streams.size,
    /** Applies the event to the agent's state and streams it to whoever listens (maybe no one). */
    emit(type: string, properties: Record<string, any>) {
      if (type === "session.deleted") {
        sessions.delete(properties.info.id);
        for (const [id, x] of messages) if (x.info.sessionID === properties.info.id) messages.delete(id);
      } else if (type.startsWith("session.")) sessions.set(properties.info.id, properties.info);
      if (type === "message.updated") {
        const prev = messages.get(properties.info.id);
        messages.set(properties.info.id, { info: properties.info, parts: prev?.parts ?? new Map() });
      }
      if (type === "message.part.updated") messages.get(properties.part.messageID)?.parts.set(properties.part.id, properties.part);
      const frame = `data: ${JSON.stringify({ type, properties })}\n\n`;
      for (const c of streams) c.enqueue(frame);
    },
    /** DELETE /session/:id, as OpenCode does it: gone from the API, session.deleted to whoever listens. */
    deleteSession(id: string) {
      const info = sessions.get(id);
      if (info) this.emit("session.deleted", { info });
    },
    dropAll() {
      for (const c of streams) c.close();
      streams.clear();
    },
    stop: () => server.stop(true),
  };
}

export type Standin = ReturnType<typeof startAgentStandin>;

/** A sandbox row that is running, with its agent password sealed as the worker seals it. */
export async function runningSandbox(t: TestApp, agent: Standin) {
  const u = await signUp(t);
  const res = await t.request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "sync box" } });
  const id = (await json(res)).id as string;
  const sealed = encryptValue(t.config.keyring, STANDIN_PASSWORD, { purpose: "sandbox.agent_password", userId: u.id, providerId: "", rowId: id });
  await t.database.db.execute(sql`update sandboxes set status = 'running', agent_secret = ${sealed} where id = ${id}`);
  // Every instance follows every running sandbox: the stand-in answers for this one only.
  const driver = {
    inspect: async (sandboxId: string) => (sandboxId === id ? { state: "running", agentUrl: agent.url } : { state: "missing" }),
  } as unknown as ChatSyncOptions["rt"]["driver"];
  return { u, id, driver };
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v) return v;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}
