/**
 * How long GET /api/v1/sandboxes/:id/wait takes to answer after the sandbox reaches the status
 * (written behind the API, as another instance's worker does), on the embedded database:
 *
 *   bun bench/wait-latency.ts [--rounds N]
 */
import { parseArgs } from "node:util";
import { sql } from "drizzle-orm";
import { createTestApp, json, signUp } from "../tests/helpers/app";

const { values } = parseArgs({ options: { rounds: { type: "string", default: "10" }, help: { type: "boolean", short: "h" } } });
if (values.help) {
  console.log("Usage: bun bench/wait-latency.ts [--rounds N]\n\nMilliseconds from a status change to /wait's answer, N rounds (default 10).");
  process.exit(0);
}
const t = await createTestApp();
try {
  const u = await signUp(t);
  const id = (await json(await t.request("/api/v1/sandboxes", { method: "POST", token: u.token, json: { name: "waited" } }))).id;
  await t.request("/api/v1/sandboxes", { token: u.token }); // the page cache's listener starts on first use
  const lags: number[] = [];
  for (let round = 0; round < Number(values.rounds); round++) {
    await t.database.db.execute(sql`update sandboxes set status = 'starting' where id = ${id}`);
    const wait = t.request(`/api/v1/sandboxes/${id}/wait?status=running&timeoutSeconds=60`, { token: u.token });
    // Somewhere in the polling back-off's steps (100 ms rising to 1 s).
    await Bun.sleep(700 + Math.random() * 2000);
    await t.database.db.execute(sql`update sandboxes set status = 'running' where id = ${id}`);
    const changed = performance.now();
    const answer = await json(await wait);
    if (!answer.reached) throw new Error("the wait did not see the change");
    lags.push(performance.now() - changed);
  }
  lags.sort((a, b) => a - b);
  const at = (q: number) => lags[Math.min(lags.length - 1, Math.floor(q * lags.length))]!.toFixed(1);
  console.log(`${lags.length} rounds: change → answer p50 ${at(0.5)} ms, max ${at(1)} ms`);
} finally {
  await t.close();
}
