import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startOpenAIStandin, type OpenAIStandin } from "../helpers/openai-standin";
import { createServerStorage, freePort, startServer, type RunningServer, type ServerStorage, reapSandboxes } from "../helpers/server";

// Chat history end to end: the real server process, the real local driver (OpenCode under
// bubblewrap), and a real OpenCode conversation. Only the model is replaced, by a local server
// speaking the OpenAI chat-completions protocol (tests/helpers/openai-standin.ts), registered as
// the user's custom provider through Warren's own API.
setDefaultTimeout(240_000);

let storage: ServerStorage;
let server: RunningServer;
let standin: OpenAIStandin;
let dataDir: string;
let port: number;

const SYNC_ENV = { CHAT_SYNC_TICK_MS: "300", CHAT_SYNC_LEASE_MS: "3000", CHAT_RECONCILE_INTERVAL_SECONDS: "2" };

function start() {
  // The stand-in model listens on host loopback: allow-listed, or the loopback guard refuses it to sandboxes.
  const allow = { SANDBOX_LOOPBACK_ALLOW_PORTS: new URL(standin.baseUrl).port };
  return startServer({ storage, port, env: { ...SYNC_ENV, ...allow, ...(storage.env.DATA_DIR ? {} : { DATA_DIR: dataDir }) } });
}

beforeAll(async () => {
  storage = await createServerStorage();
  dataDir = mkdtempSync(join(tmpdir(), "warren-e2e-chat-"));
  standin = startOpenAIStandin({ reply: "Kangaroos hop because it is efficient.", usage: { prompt_tokens: 321, completion_tokens: 9 } });
  port = freePort();
  server = await start();
}, 120_000);

afterAll(async () => {
  await server?.stop();
  await standin?.stop();
  await storage?.destroy();
  reapSandboxes(dataDir);
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

async function until<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await Bun.sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ""}`);
}

describe("chat sync from a real OpenCode server", () => {
  test("a prompt through the proxy appears in the chat API; SIGKILL mid-stream loses and duplicates nothing", async () => {
    const url = server.url;
    const signUp = await fetch(`${url}/api/auth/sign-up/email`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: url },
      body: JSON.stringify({ email: `chat.${Date.now()}@example.com`, password: "chat sync password", name: "Chat User" }),
    });
    expect(signUp.status).toBe(200);
    const auth = { authorization: `Bearer ${signUp.headers.get("set-auth-token")}` };
    const call = (path: string, init: RequestInit = {}) =>
      fetch(`${server.url}/api/v1${path}`, { ...init, headers: { ...auth, "content-type": "application/json", ...(init.headers ?? {}) } });

    // The stand-in model as the user's own provider, with a credential, through Warren's API.
    const provider = await call("/providers", {
      method: "POST",
      body: JSON.stringify({ name: "Stand-in", baseUrl: standin.baseUrl, models: [{ id: "standin-model" }] }),
    });
    expect(provider.status).toBe(201);
    const providerId = ((await provider.json()) as { id: string }).id;
    const cred = await call(`/providers/${providerId}/credential`, { method: "PUT", body: JSON.stringify({ apiKey: "sk-standin-key-123" }) });
    expect([200, 201]).toContain(cred.status);

    const created = await call("/sandboxes", { method: "POST", body: JSON.stringify({ name: "chat e2e", resourceTierId: "micro" }) });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    expect((await call(`/sandboxes/${id}/start`, { method: "POST" })).status).toBe(202);
    const waited = (await (await call(`/sandboxes/${id}/wait?status=running&timeoutSeconds=90`)).json()) as { reached: boolean };
    expect(waited.reached).toBe(true);

    // A conversation through the agent proxy.
    const session = await call(`/sandboxes/${id}/agent/session`, { method: "POST", body: "{}" });
    expect(session.status).toBe(200);
    const ses = ((await session.json()) as { id: string }).id;
    const prompt = (text: string, path = "message") =>
      call(`/sandboxes/${id}/agent/session/${ses}/${path}`, {
        method: "POST",
        body: JSON.stringify({ model: { providerID: providerId, modelID: "standin-model" }, parts: [{ type: "text", text }] }),
      });
    const answered = await prompt("Why do kangaroos hop?");
    expect(answered.status).toBe(200);
    await answered.arrayBuffer();

    type Session = { id: string; externalSessionId: string; messageCount: number; inputTokens: number; outputTokens: number; userMessageCount: number; assistantMessageCount: number };
    type Message = { id: string; externalMessageId: string; role: string; status: string; text: string; inputTokens: number; outputTokens: number };
    const sessionOf = async () => {
      const res = await call(`/sandboxes/${id}/chat/sessions`);
      if (res.status !== 200) return undefined;
      const page = (await res.json()) as { data: Session[] };
      return page.data.find((s) => s.externalSessionId === ses);
    };
    const messagesOf = async (sessionId: string) =>
      ((await (await call(`/sandboxes/${id}/chat/sessions/${sessionId}/messages?limit=100`)).json()) as { data: Message[] }).data;

    const synced = await until("the first exchange in Warren", async () => {
      const s = await sessionOf();
      if (!s || s.messageCount < 2 || s.outputTokens === 0) return undefined;
      const ms = await messagesOf(s.id);
      return ms.some((m) => m.role === "assistant" && m.status === "complete" && m.text.includes("Kangaroos")) ? s : undefined;
    });
    expect(synced).toMatchObject({ messageCount: 2, userMessageCount: 1, assistantMessageCount: 1 });
    expect(synced.inputTokens).toBeGreaterThanOrEqual(321);
    expect(synced.outputTokens).toBeGreaterThanOrEqual(9);
    const first = await messagesOf(synced.id);
    expect(first.map((m) => m.role)).toEqual(["user", "assistant"]);
    expect(first[0]!.text).toBe("Why do kangaroos hop?");
    expect(first[1]).toMatchObject({ status: "complete", inputTokens: 321, outputTokens: 9 });

    const state = (await (await call(`/sandboxes/${id}/chat/sync`)).json()) as { connected: boolean; eventsIngested: number };
    expect(state.connected).toBe(true);
    expect(state.eventsIngested).toBeGreaterThan(0);

    // Second prompt: Warren is killed while the model is streaming its answer.
    standin.hold = true;
    const streaming = standin.streaming();
    const queued = await prompt("And wombats?", "prompt_async");
    expect(queued.status).toBeLessThan(300);
    await streaming;
    await Bun.sleep(300); // let the first chunks' events reach Warren
    expect(await server.stop("SIGKILL")).not.toBe(0);
    // The agent finishes the answer while no Warren is listening.
    standin.release();
    await Bun.sleep(1500);
    server = await start();

    // The sandbox outlives the Warren that launched it (the agent even finished its answer while
    // no Warren listened): the restarted Warren takes the stream over and reconciles what it
    // missed, and then holds exactly the agent's messages, once each.
    const sbx = (await (await call(`/sandboxes/${id}`)).json()) as { status: string };
    expect(sbx.status).toBe("running");
    const agentIds = async () =>
      ((await (await call(`/sandboxes/${id}/agent/session/${ses}/message`)).json()) as Array<{ info: { id: string } }>).map((m) => m.info.id);
    const converged = await until("Warren to hold exactly the agent's messages", async () => {
      const s = await sessionOf();
      if (!s) return undefined;
      const ms = await messagesOf(s.id);
      const theirs = await agentIds();
      return JSON.stringify(ms.map((m) => m.externalMessageId)) === JSON.stringify(theirs) ? { s, ms } : undefined;
    });
    expect(converged.s.id).toBe(synced.id);
    expect(converged.ms.length).toBeGreaterThanOrEqual(3);
    expect(converged.ms[2]!.text).toBe("And wombats?");
    // The answer streamed while Warren was dead arrived whole.
    await until("the interrupted answer, complete", async () => {
      const s = await sessionOf();
      const ms = s ? await messagesOf(s.id) : [];
      return ms[3]?.role === "assistant" && ms[3].status === "complete" && ms[3].outputTokens > 0 ? ms[3] : undefined;
    });
    expect(new Set(converged.ms.map((m) => m.externalMessageId)).size).toBe(converged.ms.length);

    // And the conversation goes on, synced by the restarted Warren.
    const third = await prompt("And koalas?");
    expect(third.status).toBe(200);
    await third.arrayBuffer();
    const after = await until("the third exchange", async () => {
      const s = await sessionOf();
      if (!s) return undefined;
      const ms = await messagesOf(s.id);
      const last = ms.at(-1);
      const theirs = await agentIds();
      return last?.role === "assistant" && last.status === "complete" && last.outputTokens > 0 &&
        JSON.stringify(ms.map((m) => m.externalMessageId)) === JSON.stringify(theirs) ? { s, ms } : undefined;
    });
    expect(after.ms.at(-2)!.text).toBe("And koalas?");
    expect(after.s.messageCount).toBe(after.ms.length);
    expect(after.s.inputTokens).toBeGreaterThanOrEqual(321 * 2);

    // Stopped, the conversation stays readable, and sync says it is disconnected.
    expect((await call(`/sandboxes/${id}/stop`, { method: "POST" })).status).toBe(202);
    expect(((await (await call(`/sandboxes/${id}/wait?status=stopped&timeoutSeconds=60`)).json()) as { reached: boolean }).reached).toBe(true);
    expect((await messagesOf(synced.id)).length).toBe(after.ms.length);
    await until("sync to report disconnected", async () => {
      const s = (await (await call(`/sandboxes/${id}/chat/sync`)).json()) as { connected: boolean };
      return !s.connected;
    });
    // Deleting the sandbox with keepChats keeps the conversation.
    expect((await call(`/sandboxes/${id}?keepChats=true`, { method: "DELETE" })).status).toBe(202);
    await until("the sandbox to be gone", async () => (await call(`/sandboxes/${id}`)).status === 404);
    const kept = (await (await call(`/chat/sessions/${synced.id}`)).json()) as { sandboxId: string | null; messageCount: number };
    expect(kept).toMatchObject({ sandboxId: null, messageCount: after.ms.length });
  });
});
