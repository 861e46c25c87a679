import { expect, test } from "bun:test";
import { sql } from "drizzle-orm";
import { activityLog, chatMessages, chatSessions } from "../../db/schema";
import { createTestApp, signUp } from "../helpers/app";

/**
 * A large account exports completely with bounded memory. The export runs in a child process
 * (this same file, with WARREN_EXPORT_CHILD set) so that its memory is measured alone: the child
 * seeds the account, then reads GET /api/v1/me/export as a stream, counting what arrives and
 * sampling RSS and heap as it goes, and prints its figures. The bound is generous on purpose: an
 * export held in memory would need at least its own size; a streamed one needs about a batch.
 */

const SESSIONS = 30;
const MESSAGES_PER_SESSION = 1_000;
const TEXT_BYTES = 1_000;
const ACTIVITY = 5_000;

async function child() {
  const t = await createTestApp();
  const u = await signUp(t);
  const db = t.database.db;
  const filler = "x".repeat(TEXT_BYTES - 40);
  for (let s = 0; s < SESSIONS; s++) {
    const sessionId = `chs_mem_${s}`;
    await db.insert(chatSessions).values({ id: sessionId, userId: u.id, title: `Chat ${s}` });
    for (let m0 = 0; m0 < MESSAGES_PER_SESSION; m0 += 250) {
      const rows = Array.from({ length: 250 }, (_, k) => {
        const m = m0 + k;
        const text = `s${s}m${m} ${filler}`;
        return { id: `chm_mem_${s}_${String(m).padStart(5, "0")}`, sessionId, userId: u.id, role: "user" as const, content: [{ type: "text", text }], text };
      });
      await db.insert(chatMessages).values(rows);
    }
  }
  for (let i = 0; i < ACTIVITY; i += 1000) {
    await db.insert(activityLog).values(
      Array.from({ length: 1000 }, (_, k) => ({ id: `act_mem_${String(i + k).padStart(6, "0")}`, userId: u.id, action: "sandbox.start", entityType: "sandbox", entityId: `sbx_${i + k}` })),
    );
  }
  await db.execute(sql`select 1`);

  Bun.gc(true);
  const base = { rss: process.memoryUsage.rss(), heap: process.memoryUsage().heapUsed };
  let peakRss = base.rss;
  let peakHeap = base.heap;
  const res = await t.request("/api/v1/me/export", { token: u.token });
  if (res.status !== 200) throw new Error(`export answered ${res.status}`);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let bytes = 0;
  let chunks = 0;
  let tail = "";
  const counts = { messages: 0, sessions: 0, activity: 0 };
  const markers: Array<[keyof typeof counts, RegExp]> = [
    ["messages", /"id":"chm_mem_/g],
    ["sessions", /"id":"chs_mem_/g],
    ["activity", /"id":"act_mem_/g],
  ];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    // Count markers across chunk boundaries without keeping the document.
    const text = tail + decoder.decode(value, { stream: true });
    for (const [key, re] of markers) counts[key] += (text.match(re) ?? []).length;
    // One character shorter than a marker (14): a marker split across chunks is completed by the
    // next one, and none is ever counted twice.
    tail = text.slice(-13);
    if (++chunks % 25 === 0) {
      // Live memory, not garbage waiting for a collection: what the export really holds.
      Bun.gc(true);
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }
  }
  peakRss = Math.max(peakRss, process.memoryUsage.rss());
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  console.log(JSON.stringify({ bytes, chunks, counts, rssGrowth: peakRss - base.rss, heapGrowth: peakHeap - base.heap }));
  await t.close();
}

if (process.env.WARREN_EXPORT_CHILD) {
  await child();
  process.exit(0);
} else {
  test(
    "a large account exports completely with bounded memory (measured in a child process)",
    async () => {
      const proc = Bun.spawn(["bun", import.meta.path], {
        env: { ...process.env, WARREN_EXPORT_CHILD: "1" },
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      if (code !== 0) throw new Error(`export child failed (${code}): ${err.slice(-2000)}`);
      const line = out.trim().split("\n").at(-1)!;
      const figures = JSON.parse(line) as { bytes: number; counts: Record<string, number>; rssGrowth: number; heapGrowth: number };
      console.log(`account export: ${(figures.bytes / 1e6).toFixed(1)} MB, RSS +${(figures.rssGrowth / 1e6).toFixed(1)} MB, heap +${(figures.heapGrowth / 1e6).toFixed(1)} MB`);
      expect(figures.counts).toEqual({ messages: SESSIONS * MESSAGES_PER_SESSION, sessions: SESSIONS, activity: ACTIVITY });
      expect(figures.bytes).toBeGreaterThan(SESSIONS * MESSAGES_PER_SESSION * TEXT_BYTES * 2);
      // Generous bounds (measured here: heap +3 MB, RSS +27–49 MB for a 72 MB document, RSS
      // including PGlite's own buffers). Holding the document would need all of it, twice over
      // as a JS string.
      expect(figures.heapGrowth).toBeLessThan(figures.bytes / 8);
      expect(figures.rssGrowth).toBeLessThan(figures.bytes);
    },
    600_000,
  );
}
