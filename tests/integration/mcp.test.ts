import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { eq, sql } from "drizzle-orm";
import { mcpTokens, sandboxes } from "../../db/schema";
import { hashMcpToken, issueMcpToken } from "../../src/services/knowledge/mcp-tokens";
import { MCP_SANDBOX_HEADER, MCP_SERVER_NAME } from "../../src/services/knowledge/sandbox-mcp";
import { DEFAULT_KNOWLEDGE_DIR, seedKnowledge } from "../../src/services/knowledge/seed";
import { workloadFilesLoader } from "../../src/services/sandboxes/workload-files";
import { json, memoryLogger, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";

/**
 * The MCP server end to end: the app served over real HTTP on loopback (Bun.serve), the official
 * SDK's Client and StreamableHTTPClientTransport, and tokens taken from the opencode.json that
 * Warren writes for a sandbox, exactly as its agent would read them.
 */
const app = useTestApp();
let server: ReturnType<typeof Bun.serve>;
let url: string;
let owner: TestUser;
let other: TestUser;

beforeAll(async () => {
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => app().app.fetch(req) });
  url = `http://127.0.0.1:${server.port}`;
  await seedKnowledge(app().database.db, { dir: DEFAULT_KNOWLEDGE_DIR, source: "seed" });
  owner = await signUp(app());
  other = await signUp(app());
});
afterAll(() => server?.stop(true));

const TTL = 60 * 60_000;
const loader = () =>
  workloadFilesLoader({
    db: app().database.db,
    keyring: app().config.keyring,
    logger: memoryLogger("warn").logger,
    now: () => new Date(),
    mcp: { sandboxApiUrl: url, tokenTtlMs: TTL, tokenSecret: app().config.authSecret },
  });

async function createSandbox(u: TestUser, name = `mcp-${Math.random().toString(36).slice(2, 8)}`): Promise<string> {
  const res = await app().request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name } });
  expect(res.status).toBe(201);
  return (await json<{ id: string }>(res)).id;
}

type McpEntry = { type: string; url: string; enabled: boolean; oauth: boolean; headers: Record<string, string> };

/** What a sandbox's agent is handed: the MCP entry of its opencode.json. */
async function handedTo(u: TestUser, sandboxId: string, rotate = true): Promise<McpEntry> {
  const files = await loader()(u.id, sandboxId, { rotateMcpToken: rotate });
  const config = JSON.parse(files.find((f) => f.path === ".config/opencode/opencode.json")!.content);
  return config.mcp[MCP_SERVER_NAME];
}

async function connect(entry: Pick<McpEntry, "url" | "headers">) {
  const client = new Client({ name: "warren-test", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(entry.url), { requestInit: { headers: entry.headers } }));
  return client;
}

const textOf = (result: unknown) => ((result as { content: Array<{ text: string }> }).content ?? []).map((c) => c.text).join("\n");

describe("MCP round trip with the SDK client", () => {
  test("the handed-over configuration is OpenCode's remote MCP format, and the token is stored only as a hash", async () => {
    const sandboxId = await createSandbox(owner);
    const entry = await handedTo(owner, sandboxId);
    expect(entry).toMatchObject({ type: "remote", url: `${url}/api/v1/mcp`, enabled: true, oauth: false });
    const token = entry.headers.Authorization!.replace(/^Bearer /, "");
    expect(token).toStartWith("wmcp_");
    expect(entry.headers[MCP_SANDBOX_HEADER]).toBe(sandboxId);
    const rows = await app().database.db.select().from(mcpTokens).where(eq(mcpTokens.sandboxId, sandboxId));
    expect(rows.length).toBe(1);
    expect(rows[0]!.tokenHash).toBe(hashMcpToken(token));
    expect(JSON.stringify(rows)).not.toContain(token);
  });

  test("lists the tools, searches, reads a document and the sandbox's own context", async () => {
    const sandboxId = await createSandbox(owner, "My FastAPI service");
    const client = await connect(await handedTo(owner, sandboxId));
    try {
      expect(client.getServerVersion()?.name).toBe("warren-knowledge");
      const tools = (await client.listTools()).tools.map((t) => t.name).sort();
      expect(tools).toEqual(["get_knowledge_document", "get_project_context", "list_knowledge_categories", "search_knowledge"]);

      const found = await client.callTool({ name: "search_knowledge", arguments: { query: "fastapi pydantic", limit: 3 } });
      expect(found.isError).toBeFalsy();
      const results = (found.structuredContent as { results: Array<{ slug: string }> }).results;
      expect(results[0]!.slug).toBe("python-fastapi-service");

      const doc = await client.callTool({ name: "get_knowledge_document", arguments: { id: "python-fastapi-service" } });
      expect(textOf(doc)).toContain("# Python service with FastAPI");
      expect(textOf(doc)).toContain("pydantic models");

      const missing = await client.callTool({ name: "get_knowledge_document", arguments: { id: "no-such-doc" } });
      expect(missing.isError).toBe(true);

      const bad = await client.callTool({ name: "search_knowledge", arguments: { query: "" } });
      expect(bad.isError).toBe(true);
      // Text PostgreSQL cannot hold is an invalid argument, named as such, not a database error.
      for (const [name, args] of [
        ["search_knowledge", { query: "fast\u0000api" }],
        ["search_knowledge", { query: "half \ud83d" }],
        ["search_knowledge", { query: "fastapi", category: "project\u0000" }],
        ["get_knowledge_document", { id: "python-fastapi-service\u0000" }],
      ] as const) {
        const refused = await client.callTool({ name, arguments: args });
        expect(refused.isError).toBe(true);
        expect(textOf(refused)).toContain("must not contain");
      }

      const categories = await client.callTool({ name: "list_knowledge_categories", arguments: {} });
      expect(textOf(categories)).toContain("project-template: 5");

      const context = await client.callTool({ name: "get_project_context", arguments: {} });
      expect((context.structuredContent as { sandbox: string }).sandbox).toBe("My FastAPI service");
    } finally {
      await client.close();
    }
  });

  test("a tool whose query fails tells the agent so, with the request id, and none of the SQL", async () => {
    const sandboxId = await createSandbox(owner);
    const client = await connect(await handedTo(owner, sandboxId));
    // A real failure of the database under the tool: its table is renamed away for the call.
    await app().database.db.execute(sql`alter table knowledge_documents rename to knowledge_documents_away`);
    try {
      const result = await client.callTool({ name: "search_knowledge", arguments: { query: "fastapi" } });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/^Warren could not answer search_knowledge \(internal error, request req_[0-9a-z]+\); try again later\.$/);
    } finally {
      await app().database.db.execute(sql`alter table knowledge_documents_away rename to knowledge_documents`);
      await client.close();
    }
  });
});

describe("MCP token rejection", () => {
  const expectRefused = async (entry: Pick<McpEntry, "url" | "headers">) => {
    const err = await connect(entry).then(
      async (c) => {
        await c.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).not.toBeNull();
    // The SDK's StreamableHTTPError carries the HTTP status as its code.
    expect((err as { code?: number }).code).toBe(401);
    expect(String(err)).toContain("UNAUTHENTICATED");
    // The same refusal over plain HTTP is the error envelope, with a bearer challenge.
    const res = await fetch(entry.url, {
      method: "POST",
      headers: { ...entry.headers, "content-type": "application/json", accept: "application/json, text/event-stream" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list" }),
    });
    expect(res.headers.get("www-authenticate")).toContain("Bearer");
    await expectError(res, 401, "UNAUTHENTICATED");
  };

  test("another sandbox's token (even the same owner's) is refused", async () => {
    const a = await createSandbox(owner);
    const b = await createSandbox(owner);
    const entryA = await handedTo(owner, a);
    const entryB = await handedTo(owner, b);
    await expectRefused({ url: entryA.url, headers: { ...entryA.headers, Authorization: entryB.headers.Authorization! } });
    // And another user's sandbox token presented for the owner's sandbox.
    const c = await createSandbox(other);
    const entryC = await handedTo(other, c);
    await expectRefused({ url: entryA.url, headers: { ...entryA.headers, Authorization: entryC.headers.Authorization! } });
  });

  test("an expired token is refused", async () => {
    const sandboxId = await createSandbox(owner);
    const issued = await issueMcpToken(app().database.db, {
      userId: owner.id,
      sandboxId,
      ttlMs: 60_000,
      now: new Date(Date.now() - 2 * 60_000),
      rotate: true,
      secret: app().config.authSecret,
    });
    expect(issued.expiresAt.getTime()).toBeLessThan(Date.now());
    await expectRefused({ url: `${url}/api/v1/mcp`, headers: { Authorization: `Bearer ${issued.token}`, [MCP_SANDBOX_HEADER]: sandboxId } });
  });

  test("a deleted sandbox's token is refused: while it is being deleted and once it is gone", async () => {
    const sandboxId = await createSandbox(owner);
    const entry = await handedTo(owner, sandboxId);
    const ok = await connect(entry);
    await ok.close();
    // DELETE moves it to deleting (no worker runs in this file, so it stays there).
    expect((await app().request(`/api/v1/sandboxes/${sandboxId}`, { method: "DELETE", token: owner.token })).status).toBe(202);
    await expectRefused(entry);
    // The worker's final step removes the row; the tokens cascade away with it.
    await app().database.db.delete(sandboxes).where(eq(sandboxes.id, sandboxId));
    expect(await app().database.db.select().from(mcpTokens).where(eq(mcpTokens.sandboxId, sandboxId))).toEqual([]);
    await expectRefused(entry);
  });

  test("each start rotates the token; rewriting the files of a running sandbox repeats it", async () => {
    const sandboxId = await createSandbox(owner);
    const first = await handedTo(owner, sandboxId);
    const repeated = await handedTo(owner, sandboxId, false);
    expect(repeated.headers.Authorization).toBe(first.headers.Authorization!);
    const next = await handedTo(owner, sandboxId, true);
    expect(next.headers.Authorization).not.toBe(first.headers.Authorization!);
    await expectRefused(first);
    const client = await connect(next);
    await client.close();
  });

  test("no token, a malformed token, or no sandbox header is refused; GET is 405", async () => {
    const sandboxId = await createSandbox(owner);
    const entry = await handedTo(owner, sandboxId);
    await expectRefused({ url: entry.url, headers: { [MCP_SANDBOX_HEADER]: sandboxId } });
    await expectRefused({ url: entry.url, headers: { Authorization: "Bearer not-a-token", [MCP_SANDBOX_HEADER]: sandboxId } });
    await expectRefused({ url: entry.url, headers: { Authorization: entry.headers.Authorization! } });
    // A user's session is not an MCP credential.
    await expectRefused({ url: entry.url, headers: { Authorization: `Bearer ${owner.token}`, [MCP_SANDBOX_HEADER]: sandboxId } });
    const res = await fetch(entry.url, { headers: entry.headers });
    expect(res.headers.get("allow")).toBe("POST");
    await expectError(res, 405, "METHOD_NOT_ALLOWED");
  });
});
