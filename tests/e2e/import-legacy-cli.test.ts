import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TEST_SECRET } from "../helpers/app";
import { addBulkRows, ALICE, BOB, buildLegacyFixture, LEGACY_KEY } from "../helpers/legacy-fixture";
import { createServerStorage, startServer, type ServerStorage } from "../helpers/server";

/**
 * The real command as an operator runs it (a separate process, on a real data directory or
 * PostgreSQL database): --help, a kill -9 in the middle of the import followed by a clean
 * re-run, the JSON report, and then the real server answering the legacy user's old password.
 */
const ROOT = join(import.meta.dir, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "warren-import-e2e-"));
const file = join(dir, "database.sqlite");
const fixture = buildLegacyFixture(file);
const BULK = 40_000;
addBulkRows(file, { userId: ALICE.id, sandboxId: "AbCdEf123456", sessions: 40, messages: BULK, activities: 2_000 });

const KEYS = `test1:${Buffer.alloc(32, 7).toString("base64")}`;
let storage: ServerStorage;
beforeAll(async () => {
  storage = await createServerStorage();
}, 60_000);
afterAll(async () => {
  await storage?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[]) {
  return Bun.spawn([process.execPath, "src/cli/import-legacy.ts", ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      NODE_ENV: "test",
      AUTH_SECRET: TEST_SECRET,
      ENCRYPTION_KEYS: KEYS,
      OLD_KEY: LEGACY_KEY,
      ...storage.env,
    },
    stdout: "pipe",
    stderr: "pipe",
  });
}

describe("import:legacy CLI", () => {
  test("--help explains the command", async () => {
    const p = cli(["--help"]);
    expect(await p.exited).toBe(0);
    const out = await new Response(p.stdout).text();
    expect(out).toContain("--assign-credentials-to EMAIL");
    expect(out).toContain("--dry-run");
  });

  test("bad usage exits 2 without touching the database", async () => {
    const p = cli([]);
    expect(await p.exited).toBe(2);
    expect(await new Response(p.stderr).text()).toContain("--from");
  });

  test("a file that is not there or not SQLite, and an unknown assignee, are refused with exit 2", async () => {
    const notSqlite = join(dir, "notes.txt");
    await Bun.write(notSqlite, "not a database\n");
    const cases: Array<[string[], RegExp]> = [
      [["--from", join(dir, "missing.sqlite")], /missing\.sqlite: no such file/],
      [["--from", notSqlite], /not a readable SQLite database/],
      [["--from", dir], /a directory/],
      [["--from", file, "--assign-credentials-to", "nobody@example.com", "--legacy-encryption-key-env", "OLD_KEY"], /nobody@example\.com: no user with that email/],
      [["--from", file, "--assign-credentials-to", ALICE.email, "--legacy-encryption-key-env", "UNSET_KEY"], /UNSET_KEY is not set/],
    ];
    for (const [args, message] of cases) {
      const p = cli(args);
      const [code, err, out] = await Promise.all([p.exited, new Response(p.stderr).text(), new Response(p.stdout).text()]);
      expect({ args, code }).toEqual({ args, code: 2 });
      expect(err).toMatch(message);
      expect(out).toBe("");
    }
  }, 120_000);

  test("a wrong legacy key exits 1 and names the row; a dry run exits 0; neither writes", async () => {
    const wrong = Bun.spawn([process.execPath, "src/cli/import-legacy.ts", "--from", file, "--assign-credentials-to", ALICE.email], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "/tmp", NODE_ENV: "test", AUTH_SECRET: TEST_SECRET, ENCRYPTION_KEYS: KEYS, LEGACY_ENCRYPTION_KEY: "not-the-legacy-key", ...storage.env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [code, out] = await Promise.all([wrong.exited, new Response(wrong.stdout).text()]);
    expect(code).toBe(1);
    expect(out).toContain("FAILED in provider_credentials at row cred-1: the value does not decrypt with the legacy key in LEGACY_ENCRYPTION_KEY");
    expect(out).toContain("Nothing was written");

    const dry = cli(["--from", file, "--assign-credentials-to", ALICE.email, "--legacy-encryption-key-env", "OLD_KEY", "--dry-run"]);
    const [dryCode, dryOut] = await Promise.all([dry.exited, new Response(dry.stdout).text()]);
    expect(dryCode).toBe(0);
    expect(dryOut).toContain("(dry run: rolled back)");
    expect(dryOut).toContain("Dry run complete: every count verified, nothing written.");
    expect(dryOut).not.toContain("MISMATCH");
    // The re-run below finds nothing already present: neither run wrote anything.
  }, 120_000);

  test("kill -9 mid-import, then a re-run imports everything once", async () => {
    const args = ["--from", file, "--assign-credentials-to", ALICE.email, "--legacy-encryption-key-env", "OLD_KEY", "--json"];
    const first = cli(args);
    // Progress lines go to stderr off a terminal; kill as soon as the message table starts.
    const reader = first.stderr.getReader();
    let seen = "";
    while (!seen.includes("chat_messages:")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
    }
    first.kill("SIGKILL");
    expect(await first.exited).not.toBe(0);

    const second = cli(args);
    const [code, out] = await Promise.all([second.exited, new Response(second.stdout).text()]);
    expect(code).toBe(0);
    const report = JSON.parse(out) as { ok: boolean; tables: Array<{ table: string; imported: number; alreadyPresent: number; source: number }> };
    expect(report.ok).toBe(true);
    const messages = report.tables.find((t) => t.table === "chat_messages")!;
    // Nothing of the killed run survived (one transaction): the re-run imports every message.
    expect(messages.source).toBe(fixture.counts.chat_messages! + BULK);
    expect(messages.imported).toBe(5 + BULK);
    expect(messages.alreadyPresent).toBe(0);
  }, 120_000);

  test("the real server lets the legacy user in with the old password", async () => {
    const server = await startServer({ storage });
    try {
      const res = await fetch(`${server.url}/api/auth/sign-in/email`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: server.url },
        body: JSON.stringify({ email: ALICE.email, password: ALICE.password }),
      });
      expect(res.status).toBe(200);
      const token = res.headers.get("set-auth-token")!;
      const list = await fetch(`${server.url}/api/v1/sandboxes`, { headers: { authorization: `Bearer ${token}` } });
      expect(list.status).toBe(200);
      expect(((await list.json()) as { data: Array<{ id: string }> }).data.map((s) => s.id)).toContain("AbCdEf123456");
    } finally {
      await server.stop();
    }
  }, 120_000);

  test("a legacy user deletes their account in Warren; a re-run exits 0, brings nothing of it back and says so", async () => {
    const server = await startServer({ storage });
    try {
      const signIn = await fetch(`${server.url}/api/auth/sign-in/email`, {
        method: "POST",
        headers: { "content-type": "application/json", origin: server.url },
        body: JSON.stringify({ email: BOB.email.toLowerCase(), password: BOB.password }),
      });
      expect(signIn.status).toBe(200);
      const token = signIn.headers.get("set-auth-token")!;
      const deleted = await fetch(`${server.url}/api/v1/me/account`, {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", origin: server.url },
        body: JSON.stringify({ confirm: "DELETE MY ACCOUNT" }),
      });
      expect(deleted.status).toBe(200);
    } finally {
      await server.stop();
    }

    const args = ["--from", file, "--assign-credentials-to", ALICE.email, "--legacy-encryption-key-env", "OLD_KEY"];
    const json = cli([...args, "--json"]);
    const [code, out] = await Promise.all([json.exited, new Response(json.stdout).text()]);
    expect(code).toBe(0);
    type Row = { table: string; source: number; imported: number; alreadyPresent: number; merged: number; deletedInWarren: number; skipped: number; verified: boolean };
    const report = JSON.parse(out) as { ok: boolean; verification: { ok: boolean }; tables: Row[] };
    expect(report.ok).toBe(true);
    expect(report.verification.ok).toBe(true);
    const table = (name: string) => report.tables.find((t) => t.table === name)!;
    for (const t of report.tables) {
      expect({ table: t.table, imported: t.imported, verified: t.verified }).toEqual({ table: t.table, imported: 0, verified: true });
    }
    // Bob's account, sign-in account, sandbox, preferences and agent configuration: his, deleted.
    for (const name of ["user", "account", "sandboxes", "user_preferences", "user_opencode_config"]) expect(table(name).deletedInWarren).toBe(1);
    expect(table("user").alreadyPresent).toBe(1);

    // The same run, as an operator reads it (a dry run: verified, rolled back).
    const text = cli([...args, "--dry-run"]);
    const [textCode, textOut] = await Promise.all([text.exited, new Response(text.stdout).text()]);
    expect(textCode).toBe(0);
    expect(textOut).toContain("Deleted in Warren since an earlier import, not brought back");
    expect(textOut).toContain("  sandboxes: 1");
    expect(textOut).not.toContain("MISMATCH");
  }, 180_000);
});
