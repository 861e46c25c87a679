import { describe, expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { json, signUp, useTestApp } from "../helpers/app";

// Keyset cursors carry a JavaScript Date (milliseconds). Time columns are timestamptz(3), so a
// cursor is exactly its row's key: rows written within one millisecond (by the database clock,
// a bulk import, the legacy data) are all reached, none skipped at a page boundary.
const app = useTestApp();

describe("keyset pagination", () => {
  test("rows created in the same millisecond, microseconds apart, are all paged through once", async () => {
    const u = await signUp(app());
    for (let i = 0; i < 6; i++) {
      await app().database.db.execute(sql`
        insert into sessions (id, token, user_id, expires_at, created_at, updated_at)
        values (${`ses_same_ms_${i}`}, ${`tok_same_ms_${u.id}_${i}`}, ${u.id}, now() + interval '1 day',
                ${`2026-11-21T12:00:00.123${100 + i * 100}Z`}::timestamptz, now())`);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { data: Array<{ id: string }>; nextCursor: string | null } = await json(
        await app().request(`/api/v1/me/sessions?limit=2${cursor ? `&cursor=${cursor}` : ""}`, { token: u.token }),
      );
      seen.push(...page.data.map((s) => s.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.filter((id) => id.startsWith("ses_same_ms_")).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `ses_same_ms_${i}`));
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toHaveLength(7);
  });
});
