import { Header, Pax } from "tar";

/**
 * Tar archives for Docker's archive API (PUT /containers/{id}/archive), which is how the docker
 * driver puts files into a sandbox's volume without a shell inside the container. The headers are
 * node-tar's: a number too big for ustar's octal fields is written in base-256 with a PAX record
 * beside it, as GNU tar does, and Docker reads both. (The hand-written ustar writer this replaces
 * cut a uid above 2,097,151, 7 octal digits, to a different uid: files landed owned by a stranger,
 * and the sandbox could not write its own home.)
 */

export type TarEntry = { path: string; mode: number; uid: number; gid: number } & ({ type: "dir" } | { type: "file"; content: string });

const BLOCK = 512;

export function tarArchive(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  const mtime = new Date(Math.floor(Date.now() / 1000) * 1000);
  for (const entry of entries) {
    const body = entry.type === "file" ? Buffer.from(entry.content, "utf8") : Buffer.alloc(0);
    const data = {
      path: entry.type === "dir" ? `${entry.path.replace(/\/$/, "")}/` : entry.path,
      mode: entry.mode & 0o7777,
      uid: entry.uid,
      gid: entry.gid,
      size: body.length,
      mtime,
      type: entry.type === "dir" ? ("Directory" as const) : ("File" as const),
    };
    const header = new Header(data);
    // true: some field did not fit its ustar slot (a long path, a big uid); a PAX record carries it whole.
    if (header.encode()) parts.push(new Pax(data).encode());
    parts.push(header.block!, body);
    const pad = (BLOCK - (body.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

/** Directory entries for every parent of the given relative paths, parents first. */
export function parentDirs(paths: string[]): string[] {
  const dirs = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  return [...dirs].sort((a, b) => a.split("/").length - b.split("/").length);
}
