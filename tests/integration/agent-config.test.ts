import { describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { activityLog, userAgentFiles } from "../../db/schema";
import { json, signUp, useTestApp, type TestUser } from "../helpers/app";
import { expectError } from "../helpers/expect";
import { securitySuite } from "../helpers/security";

const app = useTestApp();
const BASE = "/api/v1/me/agent-config";
const FILE = `${BASE}/files/agent/reviewer`;
const KIB = 1024;

const putFile = (token: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
  app().request(path, { method: "PUT", token, json: body, headers });

async function ownerWithFile(owner: TestUser, path = FILE) {
  const res = await putFile(owner.token, path, { content: "# Reviewer\nReview carefully." });
  expect(res.status).toBe(201);
  return path;
}

async function stillThere(owner: TestUser, path: string) {
  const res = await app().request(path, { token: owner.token });
  expect(res.status).toBe(200);
  expect((await json(res)).content).toBe("# Reviewer\nReview carefully.");
}

const traversalNames: Array<[string, string]> = [
  ["..%2F..%2Fetc%2Fpasswd", "slash"],
  ["...", "dot-dot-dot"],
  ["%2E%2E%2Fsecrets", "encoded dot-dot-slash"],
  ["a..b", "embedded dot-dot"],
  ["evil%5Cpath", "backslash"],
  [".hidden", "leading dot"],
  ["bad%00name", "NUL"],
  ["line%0Abreak", "newline"],
  ["x".repeat(101), "too long"],
];

/** {"a":{"a":…1}}, `depth` objects deep. */
function nested(depth: number): Record<string, unknown> {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value as Record<string, unknown>;
}

securitySuite("agent configuration", app, [
  {
    name: "GET /api/v1/me/agent-config",
    method: "GET",
    path: () => BASE,
    badInputs: [{ path: () => `${BASE}?include=everything`, field: "include" }],
  },
  {
    name: "PUT /api/v1/me/agent-config",
    method: "PUT",
    path: () => BASE,
    body: { config: { model: "anthropic/claude-sonnet-4-5" }, agentsMd: "# Rules" },
    badInputs: [
      { body: { config: [1, 2], agentsMd: "" }, field: "config" },
      { body: { config: "{}", agentsMd: "" }, field: "config" },
      { body: { config: {} }, field: "agentsMd" },
      { body: { config: {}, agentsMd: "", userId: "usr_other" }, field: "userId" },
      // PostgreSQL cannot store U+0000: a 400, never a failed insert.
      { body: { config: { ["k\u0000"]: 1 }, agentsMd: "" }, field: "config" },
      // jsonb refuses an unpaired surrogate as it does NUL: that was a 500.
      { body: { config: { k: "\ud800" }, agentsMd: "" }, field: "config" },
    ],
  },
  {
    name: "PATCH /api/v1/me/agent-config",
    method: "PATCH",
    path: () => BASE,
    body: { agentsMd: "# Rules" },
    badInputs: [
      { body: { agentsMd: 42 }, field: "agentsMd" },
      { body: { agentsMd: "a\u0000b" }, field: "agentsMd" },
      { body: { agentsMd: "half \ud83d" }, field: "agentsMd" },
      // 10,000 levels: PGlite stored nothing and the write was a 500; PostgreSQL refuses 100,000
      // (stack depth). Refused from 64, naming the first object too deep.
      { body: { config: nested(10_000) }, field: `config${".a".repeat(63)}` },
    ],
  },
  {
    name: "GET /api/v1/me/agent-config/files",
    method: "GET",
    path: () => `${BASE}/files`,
    badInputs: [
      { path: () => `${BASE}/files?type=skill`, field: "type" },
      { path: () => `${BASE}/files?limit=0`, field: "limit" },
      { path: () => `${BASE}/files?cursor=bm90LWEtY3Vyc29y`, field: "cursor" },
    ],
  },
  {
    name: "GET /api/v1/me/agent-config/files/:type/:name",
    method: "GET",
    path: (owner) => ownerWithFile(owner),
    ownedResource: true,
    verifyUntouched: stillThere,
    badInputs: [
      { path: () => `${BASE}/files/skill/reviewer`, field: "type" },
      { path: () => `${BASE}/files/agent/..%2F..%2Fetc%2Fpasswd`, field: "name" },
    ],
  },
  {
    name: "PUT /api/v1/me/agent-config/files/:type/:name",
    method: "PUT",
    path: () => FILE,
    body: { content: "# Reviewer" },
    badInputs: [
      ...traversalNames.map(([name]) => ({ path: () => `${BASE}/files/agent/${name}`, field: "name" })),
      { body: { content: "export default {}", extension: "ts" }, field: "extension" },
      { path: () => `${BASE}/files/tool/lint`, body: { content: "# no", extension: "md" }, field: "extension" },
      { body: { content: 42 }, field: "content" },
      { body: { content: "bin\u0000ary" }, field: "content" },
      { body: { content: "x", path: "/etc/passwd" }, field: "path" },
    ],
  },
  {
    name: "DELETE /api/v1/me/agent-config/files/:type/:name",
    method: "DELETE",
    path: (owner) => ownerWithFile(owner),
    ownedResource: true,
    verifyUntouched: stillThere,
    badInputs: [{ path: () => `${BASE}/files/agent/..%5C..%5Cwin.ini`, field: "name" }],
  },
]);

describe("the configuration document", () => {
  test("empty at version 0 without writing; PUT, PATCH and file writes each bump one version", async () => {
    const u = await signUp(app());
    const empty = await app().request(BASE, { token: u.token });
    expect(empty.headers.get("etag")).toBe('"0"');
    expect(await json(empty)).toEqual({ config: {}, agentsMd: "", files: [], version: 0, updatedAt: null });

    const config = { $schema: "https://opencode.ai/config.json", model: "anthropic/claude-sonnet-4-5", provider: { x: { options: { apiKey: "sk-pasted-by-user" } } } };
    const put = await app().request(BASE, { method: "PUT", token: u.token, json: { config, agentsMd: "# Global rules" } });
    expect(put.status).toBe(200);
    expect(put.headers.get("etag")).toBe('"1"');
    expect(await json(put)).toMatchObject({ config, agentsMd: "# Global rules", version: 1, sandboxes: { applied: [], restartRequired: [] } });

    const patched = await json(await app().request(BASE, { method: "PATCH", token: u.token, json: { agentsMd: "# Changed" } }));
    expect(patched).toMatchObject({ config, agentsMd: "# Changed", version: 2 });

    const created = await putFile(u.token, `${BASE}/files/tool/lint`, { content: "export default {}" });
    expect(created.status).toBe(201);
    expect(created.headers.get("etag")).toBe('"3"');
    expect(await json(created)).toMatchObject({
      file: { type: "tool", name: "lint", extension: "ts", path: ".config/opencode/tools/lint.ts", content: "export default {}", sizeBytes: 17 },
      version: 3,
      sandboxes: { applied: [], restartRequired: [] },
    });
    const replaced = await putFile(u.token, `${BASE}/files/tool/lint`, { content: "module.exports = {}", extension: "js" });
    expect(replaced.status).toBe(200);
    expect((await json(replaced)).file.path).toBe(".config/opencode/tools/lint.js");

    const doc = await json(await app().request(BASE, { token: u.token }));
    expect(doc.version).toBe(4);
    expect(doc.files).toEqual([expect.objectContaining({ type: "tool", name: "lint", extension: "js" })]);
    expect(doc.files[0].content).toBeUndefined();
    const withContent = await json(await app().request(`${BASE}?include=content`, { token: u.token }));
    expect(withContent.files[0].content).toBe("module.exports = {}");

    const del = await app().request(`${BASE}/files/tool/lint`, { method: "DELETE", token: u.token });
    expect(await json(del)).toEqual({ version: 5, sandboxes: { applied: [], restartRequired: [] } });
    await expectError(await app().request(`${BASE}/files/tool/lint`, { token: u.token }), 404, "NOT_FOUND");

    const entries = (await app().database.db.select().from(activityLog).where(eq(activityLog.userId, u.id)).orderBy(activityLog.createdAt, activityLog.id)).filter(
      (e) => !e.action.startsWith("auth."), // auth.sign_up from Better Auth's hooks
    );
    expect(entries.map((e) => e.action)).toEqual(["agent_config.update", "agent_config.update", "agent_file.put", "agent_file.put", "agent_file.delete"]);
    // The pasted key is the user's to keep in their config, never copied into the activity log.
    expect(JSON.stringify(entries)).not.toContain("sk-pasted-by-user");
  });

  test("If-Match on the whole document: stale writes get 412 with the current document and change nothing", async () => {
    const u = await signUp(app());
    await app().request(BASE, { method: "PATCH", token: u.token, json: { agentsMd: "v1" } });
    const laptop = app().request(BASE, { method: "PATCH", token: u.token, json: { agentsMd: "laptop" }, headers: { "if-match": '"1"' } });
    const phone = putFile(u.token, FILE, { content: "phone" }, { "if-match": '"1"' });
    const [a, b] = await Promise.all([laptop, phone]);
    expect([a.status, b.status === 201 ? 200 : b.status].sort()).toEqual([200, 412]);
    const loser = a.status === 412 ? a : b;
    const error = await expectError(loser, 412, "PRECONDITION_FAILED");
    expect(error.details.current.version).toBe(2);
    expect(loser.headers.get("etag")).toBe('"2"');
    const del = app().request(FILE, { method: "DELETE", token: u.token, headers: { "if-match": '"1"' } });
    if (b.status === 201) await expectError(await del, 412, "PRECONDITION_FAILED");
    else await expectError(await del, 404, "NOT_FOUND");
    expect((await json(await app().request(BASE, { token: u.token }))).version).toBe(2);
  });

  test("oversized config, AGENTS.md and file content are 413 naming the field, and nothing is stored", async () => {
    const u = await signUp(app());
    const big = "x".repeat(256 * KIB + 1);
    const cases: Array<[string, string, unknown, string]> = [
      ["PATCH", BASE, { config: { instructions: big } }, "config"],
      ["PATCH", BASE, { agentsMd: big }, "agentsMd"],
      ["PUT", FILE, { content: big }, "content"],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await app().request(path, { method, token: u.token, json: body });
      const error = await expectError(res, 413, "PAYLOAD_TOO_LARGE");
      expect(error.message).toContain(field);
      expect(error.details.fields[0].field).toBe(field);
    }
    // Multi-byte characters count as bytes, not characters.
    await expectError(await putFile(u.token, FILE, { content: "é".repeat(128 * KIB + 1) }), 413, "PAYLOAD_TOO_LARGE");
    expect((await putFile(u.token, FILE, { content: "x".repeat(256 * KIB) })).status).toBe(201);
    expect((await json(await app().request(BASE, { token: u.token }))).version).toBe(1);
  });

  test("a config nested 64 levels deep (or 100,000) is refused naming where, and nothing is stored; 63 are kept as given", async () => {
    const u = await signUp(app());
    const error = await expectError(await app().request(BASE, { method: "PATCH", token: u.token, json: { config: nested(64) } }), 400, "VALIDATION_FAILED");
    expect(error.details.fields).toEqual([
      { location: "body", field: `config${".a".repeat(63)}`, message: "nests objects and arrays more than 64 levels deep", code: "too_deep" },
    ]);
    // 100,000 levels, spelled out (JSON.stringify itself gives up before that): the check that
    // refused NUL characters ran out of stack on it, as a 500.
    const deepest = `{"config":${'{"a":'.repeat(100_000)}1${"}".repeat(100_001)}`;
    const refused = await app().request(BASE, { method: "PATCH", token: u.token, body: deepest, headers: { "content-type": "application/json" } });
    expect((await expectError(refused, 400, "VALIDATION_FAILED")).details.fields[0].code).toBe("too_deep");
    expect((await json(await app().request(BASE, { token: u.token }))).version).toBe(0);
    const kept = await app().request(BASE, { method: "PATCH", token: u.token, json: { config: nested(63) } });
    expect(kept.status).toBe(200);
    expect((await json(kept)).config).toEqual(nested(63));
  });

  test("traversal names are refused before anything is written", async () => {
    const u = await signUp(app());
    for (const [name, why] of traversalNames) {
      const res = await putFile(u.token, `${BASE}/files/plugin/${name}`, { content: "export default {}" });
      const error = await expectError(res, 400, "VALIDATION_FAILED");
      expect({ why, fields: error.details.fields.map((f: { field: string }) => f.field) }).toEqual({ why, fields: ["name"] });
    }
    // A bare ".." segment never reaches the route: URL parsing resolves it first (WHATWG), so the
    // request names another path, which has no PUT.
    for (const dots of ["..", "%2e%2E"]) {
      expect((await putFile(u.token, `${BASE}/files/plugin/${dots}`, { content: "x" })).status).toBeOneOf([404, 405]);
    }
    const rows = await app().database.db.select().from(userAgentFiles).where(eq(userAgentFiles.userId, u.id));
    expect(rows).toEqual([]);
  });

  test("another user writing the same name gets their own file; the owner's is untouched", async () => {
    const owner = await signUp(app());
    const intruder = await signUp(app());
    await ownerWithFile(owner);
    expect((await putFile(intruder.token, FILE, { content: "mine" })).status).toBe(201);
    await stillThere(owner, FILE);
    expect((await json(await app().request(FILE, { token: intruder.token }))).content).toBe("mine");
  });
});

describe("listing files", () => {
  test("newest first, cursor-paginated, filtered by type, content only with include=content", async () => {
    const u = await signUp(app());
    const names = ["a", "b", "c", "d", "e"];
    for (const name of names) expect((await putFile(u.token, `${BASE}/files/command/${name}`, { content: `/${name}` })).status).toBe(201);
    await putFile(u.token, `${BASE}/files/agent/solo`, { content: "agent" });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = cursor ? `&cursor=${cursor}` : "";
      const page = await json(await app().request(`${BASE}/files?type=command&limit=2${q}`, { token: u.token }));
      for (const f of page.data) {
        expect(f.content).toBeUndefined();
        seen.push(f.name);
      }
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...names].reverse());
    const full = await json(await app().request(`${BASE}/files?include=content&limit=100`, { token: u.token }));
    expect(full.data.map((f: { name: string; content: string }) => [f.name, f.content])[0]).toEqual(["solo", "agent"]);
    expect(full.data.length).toBe(6);
  });
});
