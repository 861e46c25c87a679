/**
 * A minimal ustar writer for Docker's archive API (PUT /containers/{id}/archive), which is how
 * the docker driver puts files into a sandbox's volume without a shell inside the container.
 */

export type TarEntry = { path: string; mode: number; uid: number; gid: number } & ({ type: "dir" } | { type: "file"; content: string });

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(entry: TarEntry, size: number): Buffer {
  const buf = Buffer.alloc(BLOCK);
  let name = entry.type === "dir" ? `${entry.path.replace(/\/$/, "")}/` : entry.path;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf("/", name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`path too long for tar: ${entry.path}`);
  }
  buf.write(name, 0, 100, "utf8");
  buf.write(octal(entry.mode & 0o7777, 8), 100, 8, "ascii");
  buf.write(octal(entry.uid, 8), 108, 8, "ascii");
  buf.write(octal(entry.gid, 8), 116, 8, "ascii");
  buf.write(octal(size, 12), 124, 12, "ascii");
  buf.write(octal(Math.floor(Date.now() / 1000), 12), 136, 12, "ascii");
  buf.write("        ", 148, 8, "ascii"); // checksum is computed with this field as spaces
  buf.write(entry.type === "dir" ? "5" : "0", 156, 1, "ascii");
  buf.write("ustar\0", 257, 6, "ascii");
  buf.write("00", 263, 2, "ascii");
  buf.write(prefix, 345, 155, "utf8");
  let sum = 0;
  for (const byte of buf) sum += byte;
  buf.write(octal(sum, 7) + " ", 148, 8, "ascii");
  return buf;
}

export function tarArchive(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const body = entry.type === "file" ? Buffer.from(entry.content, "utf8") : Buffer.alloc(0);
    parts.push(header(entry, body.length), body);
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
