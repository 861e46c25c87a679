import { describe, expect, test } from "bun:test";
import { lstatSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parentDirs, tarArchive, type TarEntry } from "../../src/orchestrator/tar";

/**
 * The archives the docker driver hands to Docker's archive API, read back by GNU tar (another
 * implementation than the writer's) with owners kept, as Docker's extractor keeps them.
 */
function extract(entries: TarEntry[]): string {
  const dir = mkdtempSync(join(tmpdir(), "warren-tar-"));
  const run = Bun.spawnSync(["tar", "-x", "--same-owner", "--numeric-owner", "--same-permissions", "-C", dir], { stdin: tarArchive(entries) });
  if (run.exitCode !== 0) throw new Error(`tar: ${run.stderr.toString()}`);
  return dir;
}

const asRoot = process.getuid?.() === 0;

describe("tarArchive", () => {
  test.if(asRoot)("owners above ustar's 7 octal digits (2,097,151) arrive whole, as do small ones", () => {
    // Sandbox uids come from SANDBOX_UID_BASE, which may be anywhere up to 4,000,000,000.
    const uids = [1000, 2_097_151, 2_097_152, 17_000_000, 4_000_000_000];
    const dir = extract(
      uids.flatMap((uid): TarEntry[] => [
        { type: "dir", path: `d${uid}`, mode: 0o700, uid, gid: uid },
        { type: "file", path: `d${uid}/f`, mode: 0o600, uid, gid: uid, content: String(uid) },
      ]),
    );
    try {
      for (const uid of uids) {
        for (const path of [`d${uid}`, `d${uid}/f`]) {
          const st = lstatSync(join(dir, path));
          expect([path, st.uid, st.gid]).toEqual([path, uid, uid]);
        }
        expect(lstatSync(join(dir, `d${uid}`)).mode & 0o777).toBe(0o700);
        expect(lstatSync(join(dir, `d${uid}/f`)).mode & 0o777).toBe(0o600);
        expect(readFileSync(join(dir, `d${uid}/f`), "utf8")).toBe(String(uid));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("long paths, unicode names and contents, and empty files survive", () => {
    const deep = `${"a".repeat(90)}/${"b".repeat(90)}/${"c".repeat(90)}.md`;
    const uid = process.getuid?.() ?? 0;
    const entries: TarEntry[] = [
      ...parentDirs([deep, "agents/ünïcödé 🦀.md"]).map((path): TarEntry => ({ type: "dir", path, mode: 0o755, uid, gid: uid })),
      { type: "file", path: deep, mode: 0o644, uid, gid: uid, content: "deep\n" },
      { type: "file", path: "agents/ünïcödé 🦀.md", mode: 0o644, uid, gid: uid, content: "漢字 and a tab\t" },
      { type: "file", path: "empty", mode: 0o600, uid, gid: uid, content: "" },
    ];
    const dir = extract(entries);
    try {
      expect(readFileSync(join(dir, deep), "utf8")).toBe("deep\n");
      expect(readFileSync(join(dir, "agents/ünïcödé 🦀.md"), "utf8")).toBe("漢字 and a tab\t");
      expect(readFileSync(join(dir, "empty"), "utf8")).toBe("");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
