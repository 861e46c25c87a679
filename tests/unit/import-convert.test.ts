import { describe, expect, test } from "bun:test";
import { LEGACY_TEXT_KEY, requiredTime, toIsoTime, toJson, type Notes } from "../../src/import/convert";
import { balance, emptyTableReport, renderText, type ImportReport } from "../../src/import/report";
import { bisectFailure, databaseMessage, notesFor } from "../../src/import/writer";

/**
 * The legacy file's loose values (shared/legacy-schema.md, quirks 1 and 2) and the report's
 * wording. Every legacy time is UTC, whatever its shape; a value that is not a time is refused
 * (and reported by the caller), never moved to a nearby instant.
 */
function recorder(): Notes & { log: string[] } {
  const log: string[] = [];
  return { log, malformedJson: (c, lost) => log.push(`json:${c}:${lost ?? ""}`), replaced: (c, why) => log.push(`${c}:${why}`), interrupted: (c, why) => log.push(`${c}:${why}`) };
}

describe("legacy timestamps", () => {
  const cases: Array<[unknown, string]> = [
    ["2023-01-02 03:04:05", "2023-01-02T03:04:05.000Z"], // SQLite datetime('now'): UTC, no zone
    ["2023-01-02 03:04:05.678", "2023-01-02T03:04:05.678Z"],
    ["2023-01-02T03:04:05", "2023-01-02T03:04:05.000Z"], // ISO without a zone: UTC, not local
    ["2023-01-02T03:04:05.123Z", "2023-01-02T03:04:05.123Z"],
    ["2023-01-02T05:04:05+02:00", "2023-01-02T03:04:05.000Z"], // ISO with an offset
    ["2023-01-02T05:04:05.5+0200", "2023-01-02T03:04:05.500Z"],
    ["2023-01-01T22:04:05-05:00", "2023-01-02T03:04:05.000Z"], // the offset crosses midnight
    ["2023-01-02 03:04:05 UTC", "2023-01-02T03:04:05.000Z"],
    ["Mon Jan 02 2023 05:04:05 GMT+0200 (Eastern European Standard Time)", "2023-01-02T03:04:05.000Z"], // Date#toString
    [1672628645, "2023-01-02T03:04:05.000Z"], // epoch seconds
    [1672628645123, "2023-01-02T03:04:05.123Z"], // epoch milliseconds
    ["1672628645", "2023-01-02T03:04:05.000Z"], // the same, as TEXT affinity stores them
    ["1672628645123", "2023-01-02T03:04:05.123Z"],
    ["2023-01-02", "2023-01-02T00:00:00.000Z"],
    ["  2023-01-02 03:04:05  ", "2023-01-02T03:04:05.000Z"],
  ];
  for (const [value, expected] of cases) {
    test(`${JSON.stringify(value)} is ${expected}`, () => expect(toIsoTime(value)).toBe(expected));
  }

  test("NULL and empty text are no time; garbage, impossible dates and absurd years are refused", () => {
    expect(toIsoTime(null)).toBeNull();
    expect(toIsoTime("")).toBeNull();
    for (const bad of ["garbage", "2023-02-30 00:00:00", "2023-02-30", "2023-13-01T00:00:00Z", "2023-02-30T10:00:00+02:00", 1e15, 8.64e15 + 1]) {
      expect(toIsoTime(bad)).toBeUndefined();
    }
  });

  test("a NOT NULL time falls back, and says why", () => {
    const notes = recorder();
    expect(requiredTime(null, "updated_at", notes, null, "2023-01-01T00:00:00.000Z")).toBe("2023-01-01T00:00:00.000Z");
    expect(requiredTime("2023-02-30 00:00:00", "created_at", notes, "2024-01-01T00:00:00.000Z")).toBe("2024-01-01T00:00:00.000Z");
    expect(notes.log).toEqual(["updated_at:NULL in a NOT NULL column", "created_at:unparseable timestamp"]);
  });
});

describe("legacy JSON", () => {
  test("malformed text is kept whole under $legacyText, or handed to the report when the column cannot hold it", () => {
    const notes = recorder();
    expect(toJson('{"a":1}', "c", notes, null)).toEqual({ a: 1 });
    expect(toJson("", "c", notes, [])).toEqual([]);
    expect(toJson("{oops", "content", notes, [])).toEqual({ [LEGACY_TEXT_KEY]: "{oops" });
    expect(toJson("[gui", "addon_ids", notes, [], { keep: false })).toEqual([]);
    expect(notes.log).toEqual(["json:content:", "json:addon_ids:[gui"]);
  });

  test("JSON nested deeper than Warren takes anywhere is kept as its text too, and said so", () => {
    const notes = recorder();
    const deep = `${"[".repeat(10_000)}${"]".repeat(10_000)}`;
    expect(toJson(deep, "metadata", notes, {})).toEqual({ [LEGACY_TEXT_KEY]: deep });
    expect(toJson(deep, "addon_ids", notes, [], { keep: false })).toEqual([]);
    const deepest = `${"[".repeat(65)}${"]".repeat(65)}`;
    expect(toJson(deepest, "metadata", notes, {})).toEqual({ [LEGACY_TEXT_KEY]: deepest });
    // 64 levels (as a request may nest): kept as JSON.
    const kept = `${"[".repeat(64)}1${"]".repeat(64)}`;
    expect(toJson(kept, "metadata", notes, {})).toEqual(JSON.parse(kept));
    expect(notes.log).toEqual([
      `metadata:JSON nested more than 64 levels deep (Warren's limit for JSON): kept as text in {"$legacyText": …}`,
      `json:addon_ids:${deep}`,
      `metadata:JSON nested more than 64 levels deep (Warren's limit for JSON): kept as text in {"$legacyText": …}`,
    ]);
  });

  test("the report keeps the original text of values it could not store, and says which were kept", () => {
    const t = emptyTableReport("sandboxes", "sandboxes", 2);
    notesFor(t, "a").malformedJson("addon_ids", "[gui");
    notesFor(t, "b").malformedJson("content");
    expect(t.malformedJsonCount).toBe(2);
    expect(t.malformedJsonNotKept).toBe(1);
    expect(t.malformedJson[0]).toMatchObject({ id: "a", column: "addon_ids", original: "[gui" });
    expect(t.malformedJson[1]!.original).toBeUndefined();
  });

  test("a message left in progress is counted apart and listed with the replaced values", () => {
    const t = emptyTableReport("chat_messages", "chat_messages", 2);
    notesFor(t, "m1").interrupted("status", "still streaming in the legacy file, stored as cancelled (content kept)");
    expect(t.interrupted).toBe(1);
    expect(t.replacedCount).toBe(1);
    expect(t.replaced).toEqual([{ id: "m1", column: "status", problem: "still streaming in the legacy file, stored as cancelled (content kept)" }]);
  });
});

describe("database errors in the report", () => {
  test("PostgreSQL's own words, but never the failing row's values nor the driver's query text", () => {
    const notNull = { code: "23502", message: 'null value in column "x" violates not-null constraint', detail: "Failing row contains (ses-1, legacy-token-secret, …)" };
    expect(databaseMessage(new Error("Failed query: insert … params: [legacy-token-secret]", { cause: notNull }))).toBe(notNull.message);
    const range = { code: "22003", message: "value out of range", detail: "Value 9 is out of range for type integer." };
    expect(databaseMessage(range)).toBe("value out of range (Value 9 is out of range for type integer.)");
    expect(databaseMessage(new Error("Failed query: insert … params: [legacy-token-secret]"))).toBe("the database refused the row");
  });
});

describe("report", () => {
  const report = (over: Partial<ImportReport> = {}): ImportReport => ({
    source: "/x/database.sqlite",
    engine: "pglite (mem)",
    dryRun: false,
    committed: false,
    ok: false,
    startedAt: "2024-01-01T00:00:00.000Z",
    durationMs: 0,
    tables: [],
    notImported: [],
    credentials: { assignedTo: null, imported: 0, alreadyPresent: 0, deletedInWarren: 0 },
    verification: { ok: true, mismatches: [] },
    failure: null,
    warnings: [],
    ...over,
  });

  test("a table whose counts do not balance is a mismatch", () => {
    const t = { ...emptyTableReport("user", "users", 3), imported: 2 };
    expect(balance(t)).toBe("user: 3 rows in the file but 2 accounted for (imported 2, updated 0, already present 0, merged 0, deleted in Warren 0, skipped 0)");
    expect(balance({ ...t, skipped: 1, skippedByReason: { orphan_user: 1 } })).toBeNull();
    // Rows deleted in Warren since an earlier import are accounted for, not missing.
    expect(balance({ ...t, deletedInWarren: 1 })).toBeNull();
    expect(balance({ ...t, skipped: 1, targetDelta: 3 })).toBe("user: 2 rows imported but users gained 3");
  });

  test("text: a failure before any table prints no empty table; lost JSON points to --json; one row is a row", () => {
    const failed = renderText(report({ failure: { table: "provider_credentials", row: "cred-1", message: "does not decrypt" } }));
    expect(failed).not.toContain("imported");
    expect(failed).toContain("FAILED in provider_credentials at row cred-1: does not decrypt");
    const t = emptyTableReport("sandboxes", "sandboxes", 1);
    t.imported = 1;
    t.verified = true;
    notesFor(t, "a").malformedJson("addon_ids", "[gui");
    const text = renderText(report({ ok: true, committed: true, tables: [t], notImported: [{ table: "projects", rows: 1, reason: "old" }] }));
    expect(text).toContain("1 malformed JSON value(s) Warren's column cannot hold, stored empty; original text in --json (a.addon_ids)");
    expect(text).toContain("projects (1 row): old");
  });

  test("text: rows deleted in Warren since imported have their own column and lines", () => {
    const t = emptyTableReport("user", "users", 2);
    t.alreadyPresent = 1;
    t.deletedInWarren = 1;
    t.verified = true;
    const text = renderText(report({ ok: true, committed: true, tables: [t], credentials: { assignedTo: "a@example.com", imported: 0, alreadyPresent: 1, deletedInWarren: 1 } }));
    expect(text).toMatch(/user\s+2\s+0\s+0\s+1\s+0\s+1\s+0\s+ok/);
    expect(text).toContain("Deleted in Warren since an earlier import, not brought back");
    expect(text).toContain("  user: 1");
    expect(text).toContain("Provider credentials: 0 imported for a@example.com, 1 already present, 1 deleted in Warren since imported (not brought back)");
  });
});

describe("finding the refused row in a refused batch (both write paths)", () => {
  /** A batch of `size` rows where the rows in `bad` are refused, counting the attempts made. */
  function batch(size: number, refused: (rows: number[]) => string | null) {
    const tried: Array<[number, number]> = [];
    const attempt = async (from: number, to: number) => {
      tried.push([from, to]);
      const why = refused(Array.from({ length: to - from }, (_, i) => from + i));
      return why ? new Error(why) : null;
    };
    return { attempt, tried };
  }

  test("names the row with a logarithmic number of attempts, and keeps its own error", async () => {
    for (const bad of [0, 1, 2499, 4999]) {
      const { attempt, tried } = batch(5000, (rows) => (rows.includes(bad) ? `row ${bad} refused` : null));
      const found = await bisectFailure(5000, new Error("the batch"), attempt);
      expect(found.index).toBe(bad);
      expect((found.error as Error).message).toBe(`row ${bad} refused`);
      expect(tried.length).toBeLessThanOrEqual(2 * Math.ceil(Math.log2(5000)));
    }
  });

  test("rows refused only together name no row; a batch of one is that row", async () => {
    const together = batch(100, (rows) => (rows.includes(10) && rows.includes(90) ? "refused together" : null));
    expect(await bisectFailure(100, new Error("the batch"), together.attempt)).toEqual({ index: null, error: expect.any(Error) });
    const one = batch(1, () => "refused");
    expect((await bisectFailure(1, new Error("the row"), one.attempt)).index).toBe(0);
    expect(one.tried).toEqual([]);
  });
});
