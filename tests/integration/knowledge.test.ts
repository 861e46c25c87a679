import { describe, expect, test, beforeAll } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { knowledgeDocuments } from "../../db/schema";
import { DEFAULT_KNOWLEDGE_DIR, SeedError, seedKnowledge } from "../../src/services/knowledge/seed";
import { json, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();
let user: TestUser;

beforeAll(async () => {
  await seedKnowledge(app().database.db, { dir: DEFAULT_KNOWLEDGE_DIR, source: "seed" });
  user = await signUp(app());
});

const get = (path: string) => app().request(path, { token: user.token });

const doc = (fm: string, body = "Body text.") => `---\n${fm}\n---\n${body}\n`;

describe("seeding", () => {
  test("is idempotent, bumps versions of changed files, and prunes only its own source", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kb-"));
    const db = app().database.db;
    try {
      mkdirSync(join(dir, "sub"));
      writeFileSync(join(dir, "sub", "alpha.md"), doc("category: ops-guide\ntitle: Alpha runbook\ntags: [ops]"));
      writeFileSync(join(dir, "beta.md"), doc("category: ops-guide\ntitle: Beta runbook"));
      writeFileSync(join(dir, "README.md"), "not a document");
      const first = await seedKnowledge(db, { dir, source: "ops" });
      expect(first).toEqual({ created: ["alpha", "beta"], updated: [], unchanged: [], pruned: [] });
      const again = await seedKnowledge(db, { dir, source: "ops" });
      expect(again).toEqual({ created: [], updated: [], unchanged: ["alpha", "beta"], pruned: [] });

      writeFileSync(join(dir, "beta.md"), doc("category: ops-guide\ntitle: Beta runbook v2"));
      rmSync(join(dir, "sub", "alpha.md"));
      const changed = await seedKnowledge(db, { dir, source: "ops", prune: true });
      expect(changed).toEqual({ created: [], updated: ["beta"], unchanged: [], pruned: ["alpha"] });
      const [beta] = await db.select().from(knowledgeDocuments).where(eq(knowledgeDocuments.slug, "beta"));
      expect(beta!.version).toBe(2);
      expect(beta!.title).toBe("Beta runbook v2");
      // The starter set (source "seed") was not touched by pruning "ops".
      expect((await db.select().from(knowledgeDocuments).where(eq(knowledgeDocuments.source, "seed"))).length).toBe(17);
    } finally {
      await db.delete(knowledgeDocuments).where(eq(knowledgeDocuments.source, "ops"));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("one invalid file writes nothing and every problem is reported", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kb-"));
    try {
      writeFileSync(join(dir, "good.md"), doc("category: ops-guide\ntitle: Good"));
      writeFileSync(join(dir, "no-title.md"), doc("category: ops-guide"));
      writeFileSync(join(dir, "no-front-matter.md"), "# Just markdown\n");
      writeFileSync(join(dir, "unknown-key.md"), doc("category: ops-guide\ntitle: X\ncolour: red"));
      const err = await seedKnowledge(app().database.db, { dir, source: "bad" }).catch((e) => e);
      expect(err).toBeInstanceOf(SeedError);
      expect((err as SeedError).problems.map((p) => p.path).sort()).toEqual(["no-front-matter.md", "no-title.md", "unknown-key.md"]);
      expect((err as SeedError).message).toContain('"title"');
      expect((err as SeedError).message).toContain('"colour"');
      const rows = await app().database.db.select().from(knowledgeDocuments).where(eq(knowledgeDocuments.source, "bad"));
      expect(rows).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the seed command has --help and reports progress", async () => {
    const proc = Bun.spawn([process.execPath, "src/cli/knowledge-seed.ts", "--help"], { cwd: join(import.meta.dir, "..", ".."), stdout: "pipe" });
    const out = await new Response(proc.stdout).text();
    expect(await proc.exited).toBe(0);
    expect(out).toContain("Usage: bun run knowledge:seed");
    const dry = Bun.spawn([process.execPath, "src/cli/knowledge-seed.ts", "--dry-run"], { cwd: join(import.meta.dir, "..", ".."), stdout: "pipe" });
    expect(await new Response(dry.stdout).text()).toContain("17 valid file(s), 0 invalid");
    expect(await dry.exited).toBe(0);
  });
});

describe("GET /api/v1/knowledge", () => {
  test("pages through every document with a cursor, newest first", async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res = await get(`/api/v1/knowledge?limit=5${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = await json<{ data: Array<{ id: string; content?: string }>; nextCursor: string | null }>(res);
      expect(page.data.length).toBeLessThanOrEqual(5);
      expect(page.data[0]).not.toHaveProperty("content");
      seen.push(...page.data.map((d) => d.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.length).toBe(17);
    expect(new Set(seen).size).toBe(17);
    expect([...seen].sort().reverse()).toEqual(seen);
  });

  test("filters by category and by tags (all of them)", async () => {
    const byCategory = await json(await get("/api/v1/knowledge?category=agent-pattern"));
    expect(byCategory.data.map((d: { slug: string }) => d.slug).sort()).toEqual(["code-reviewer", "docs-writer", "planner", "test-writer"]);
    const byTag = await json(await get("/api/v1/knowledge?tag=python,pytest"));
    expect(byTag.data.map((d: { slug: string }) => d.slug)).toEqual(["python-fastapi-service"]);
    const none = await json(await get("/api/v1/knowledge?category=no-such-category"));
    expect(none).toEqual({ data: [], nextCursor: null });
  });

  test("a cursor that is not ours is 400 naming it", async () => {
    const error = await expectError(await get("/api/v1/knowledge?cursor=garbage"), 400, "VALIDATION_FAILED");
    expect(error.message).toContain("cursor");
  });
});

describe("GET /api/v1/knowledge/:id", () => {
  test("by id and by slug, with content and front matter", async () => {
    const bySlug = await json(await get("/api/v1/knowledge/typescript-bun-api"));
    expect(bySlug.title).toBe("TypeScript HTTP API on Bun");
    expect(bySlug.content).toContain("Keep routes thin");
    expect(bySlug.content).not.toContain("---");
    expect(bySlug.frontMatter.defaults.testCommand).toBe("bun test");
    const byId = await json(await get(`/api/v1/knowledge/${bySlug.id}`));
    expect(byId).toEqual(bySlug);
  });

  test("unknown is 404", async () => {
    await expectError(await get("/api/v1/knowledge/kdoc_nope"), 404, "NOT_FOUND");
  });
});

describe("GET /api/v1/knowledge/search", () => {
  const search = async (q: string, extra = "") => (await json(await get(`/api/v1/knowledge/search?q=${encodeURIComponent(q)}${extra}`))).data as Array<{ slug: string; score: number; snippet: string }>;

  test("full-text ranking puts the best match first, with a snippet", async () => {
    const hits = await search("fastapi pydantic");
    expect(hits[0]!.slug).toBe("python-fastapi-service");
    expect(hits[0]!.snippet.toLowerCase()).toContain("**pydantic**");
    for (let i = 1; i < hits.length; i++) expect(hits[i - 1]!.score).toBeGreaterThanOrEqual(hits[i]!.score);
  });

  test("misspelled and short queries still find documents (trigram similarity)", async () => {
    expect((await search("Anthropik"))[0]!.slug).toBe("anthropic");
    expect((await search("fastpai"))[0]!.slug).toBe("python-fastapi-service");
    expect((await search("revieww")).map((h) => h.slug)).toContain("code-reviewer");
    expect((await search("go")).map((h) => h.slug)).toContain("go-http-service");
  });

  test("category narrows the search; no match is an empty list", async () => {
    const hits = await search("tests", "&category=command-template");
    expect(hits.length).toBeGreaterThan(0);
    for (const h of hits) expect(h.slug).toMatch(/^(test|lint-fix|review-changes|explain)$/);
    expect(await search("zzqxj")).toEqual([]);
  });
});

test("categories have their real counts", async () => {
  const res = await json(await get("/api/v1/knowledge/categories"));
  expect(res.data).toEqual([
    { category: "agent-pattern", count: 4 },
    { category: "command-template", count: 4 },
    { category: "project-template", count: 5 },
    { category: "provider-guide", count: 4 },
  ]);
});

test("every knowledge route and the MCP endpoint are in the OpenAPI document", async () => {
  const doc = await json(await app().request("/api/openapi.json"));
  for (const path of ["/api/v1/knowledge", "/api/v1/knowledge/search", "/api/v1/knowledge/categories", "/api/v1/knowledge/{id}", "/api/v1/mcp"]) {
    expect(Object.keys(doc.paths)).toContain(path);
  }
});

securitySuite("knowledge", app, [
  {
    name: "GET /api/v1/knowledge",
    method: "GET",
    path: () => "/api/v1/knowledge",
    badInputs: [
      { path: () => "/api/v1/knowledge?limit=0", field: "limit" },
      { path: () => "/api/v1/knowledge?category=Not%20A%20Slug", field: "category" },
      { path: () => `/api/v1/knowledge?tag=${",".repeat(3)}`, field: "tag" },
    ],
  },
  {
    name: "GET /api/v1/knowledge/search",
    method: "GET",
    path: () => "/api/v1/knowledge/search?q=agent",
    badInputs: [
      { path: () => "/api/v1/knowledge/search?q=", field: "q" },
      { path: () => `/api/v1/knowledge/search?q=${"x".repeat(201)}`, field: "q" },
      { path: () => "/api/v1/knowledge/search?q=a&limit=51", field: "limit" },
    ],
  },
  { name: "GET /api/v1/knowledge/categories", method: "GET", path: () => "/api/v1/knowledge/categories" },
  { name: "GET /api/v1/knowledge/:id", method: "GET", path: () => "/api/v1/knowledge/planner", badInputs: [{ path: () => `/api/v1/knowledge/${"x".repeat(201)}`, field: "id" }] },
]);
