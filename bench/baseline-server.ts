/**
 * The baselines the sandbox benchmark compares Warren with (FIELD-NOTES "Load testing"): a bare
 * Bun.serve on the same machine, in the same run.
 *
 *   GET /hello            a constant: the ceiling of Bun's HTTP stack on this box
 *   GET /select?id=<id>   one primary-key select on sandboxes with postgres.js (pool of
 *                         DATABASE_POOL_SIZE, default 10 like Warren), the row as JSON
 *   GET /page?user=<id>&limit=50
 *                         the page the sandbox list returns, done as simply as the stack allows:
 *                         one select of the user's newest limit+1 sandboxes (all columns, off the
 *                         same index, LIMIT as a parameter like Warren's statements), the rows as
 *                         {"data":[…],"nextCursor":…}: the floor of a 50-row page on Bun +
 *                         postgres.js on this machine
 *
 *   DATABASE_URL=postgres://… PORT=4100 bun bench/baseline-server.ts
 *
 * Prints "baseline listening on http://127.0.0.1:PORT" when ready; stops on SIGTERM/SIGINT.
 */
import postgres from "postgres";

const url = process.env.DATABASE_URL;
if (!url) {
  console.error("baseline-server: DATABASE_URL is not set");
  process.exit(2);
}
const sql = postgres(url, { max: Number(process.env.DATABASE_POOL_SIZE ?? 10), onnotice: () => {} });
await sql`select 1`;

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  async fetch(req) {
    const u = new URL(req.url);
    if (u.pathname === "/hello") return new Response("ok");
    if (u.pathname === "/select") {
      const [row] = await sql`select * from sandboxes where id = ${u.searchParams.get("id") ?? ""}`;
      return row ? Response.json(row) : new Response("not found", { status: 404 });
    }
    if (u.pathname === "/page") {
      const limit = Math.min(Math.max(Number(u.searchParams.get("limit") ?? 50) || 50, 1), 100);
      const rows = await sql`select * from sandboxes where user_id = ${u.searchParams.get("user") ?? ""}
        order by created_at desc nulls last, id desc nulls last limit ${limit + 1}`;
      const last = rows.length > limit ? rows[limit - 1] : undefined;
      return Response.json({ data: rows.slice(0, limit), nextCursor: last ? `${last.created_at.toISOString()}|${last.id}` : null });
    }
    return new Response("not found", { status: 404 });
  },
});
console.log(`baseline listening on http://127.0.0.1:${server.port}`);

const stop = async () => {
  server.stop(true);
  await sql.end({ timeout: 2 });
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
