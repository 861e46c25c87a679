import { sql } from "drizzle-orm";
import { queryRows, type Executor } from "../database/client";
import { requiredTime, toBool, toInt, toJson, toText, type Notes } from "./convert";
import { emptyTableReport, ROW_LIST_CAP, type TableReport } from "./report";
import type { LegacySource } from "./source";
import type { CatalogIds } from "./tables";
import { notesFor } from "./writer";

/**
 * The operator-edited reference data (tiers, flavors, add-ons). The legacy system re-wrote its
 * seed on every boot, so a legacy value equal to that seed says nothing: Warren's own seed (same
 * catalogue, its own descriptions and limits) stays. A value that differs from the legacy seed was
 * edited by an operator, and is applied over Warren's row, field by field, but only while
 * Warren's value is still its seed: Warren seeds these fields with the legacy seed's values
 * (migration 0002), so SEED below is Warren's seed too. Once Warren's value has moved (an earlier
 * import applied the edit, or an operator changed it in Warren), Warren's value is kept and the
 * legacy one is reported as kept; a row Warren did not seed (added by an earlier import or in
 * Warren) is never overwritten. So a re-run changes nothing. (A Warren edit back to exactly the
 * seed value cannot be told from no edit.) A row Warren does not have at all is added.
 */

type Field = { column: string; legacy: (row: Record<string, unknown>, notes: Notes) => unknown };

/**
 * The legacy seed's values for the fields an operator could edit (shared/legacy-schema.md), which
 * are also Warren's seed (db/migrations/0002_seed_catalog.sql; a test checks they agree).
 */
export const SEED = {
  resource_tiers: {
    micro: { cpu_cores: 1, memory_mb: 1024, storage_gb: 10, price_monthly: 0 },
    starter: { cpu_cores: 1, memory_mb: 2048, storage_gb: 20, price_monthly: 0 },
    builder: { cpu_cores: 2, memory_mb: 4096, storage_gb: 30, price_monthly: 10 },
    creator: { cpu_cores: 4, memory_mb: 8192, storage_gb: 50, price_monthly: 25 },
    power: { cpu_cores: 8, memory_mb: 16384, storage_gb: 100, price_monthly: 50 },
  },
  container_flavors: {
    bare: { image_size_mb: 500, enabled: true, languages: [] },
    js: { image_size_mb: 800, enabled: true, languages: ["javascript", "typescript"] },
    python: { image_size_mb: 1200, enabled: true, languages: ["python"] },
    go: { image_size_mb: 900, enabled: false, languages: ["go"] },
    rust: { image_size_mb: 1100, enabled: true, languages: ["rust"] },
    fullstack: { image_size_mb: 1800, enabled: true, languages: ["javascript", "typescript", "python"] },
    polyglot: { image_size_mb: 3000, enabled: false, languages: ["javascript", "typescript", "python", "go", "rust"] },
  },
  container_addons: {
    gui: { category: "interface", port: 6080, requires_gpu: false, price_monthly: 5 },
    "code-server": { category: "interface", port: 8080, requires_gpu: false, price_monthly: 0 },
    databases: { category: "storage", port: null, requires_gpu: false, price_monthly: 5 },
    cloud: { category: "devops", port: null, requires_gpu: false, price_monthly: 0 },
    gpu: { category: "compute", port: null, requires_gpu: true, price_monthly: 20 },
  },
} as const satisfies Record<string, Record<string, Record<string, unknown>>>;

type RefTable = keyof typeof SEED;

const num = (v: unknown) => (v === null || v === undefined || v === "" ? null : Number(v));

const FIELDS: Record<RefTable, Field[]> = {
  resource_tiers: [
    { column: "cpu_cores", legacy: (r) => num(r.cpu_cores) },
    { column: "memory_mb", legacy: (r) => Math.round(Number(r.memory_gb) * 1024) },
    { column: "storage_gb", legacy: (r) => toInt(r.storage_gb, 0) },
    { column: "price_monthly", legacy: (r) => num(r.price_monthly) ?? 0 },
  ],
  container_flavors: [
    { column: "image_size_mb", legacy: (r) => toInt(r.image_size_mb, 0) },
    { column: "enabled", legacy: (r, n) => toBool(r.enabled ?? 1, "enabled", n, true) },
    {
      column: "languages",
      legacy: (r, n) => {
        // Parsed once (each parse of malformed text is reported); a list of names has no room for
        // {"$legacyText": …}, so malformed text is stored as [] and its original reported.
        const parsed = toJson(r.languages, "languages", n, [], { keep: false });
        return Array.isArray(parsed) ? parsed : [];
      },
    },
  ],
  container_addons: [
    { column: "category", legacy: (r) => toText(r.category) },
    { column: "port", legacy: (r) => num(r.port) },
    { column: "requires_gpu", legacy: (r, n) => toBool(r.requires_gpu ?? 0, "requires_gpu", n, false) },
    { column: "price_monthly", legacy: (r) => num(r.price_monthly) ?? 0 },
  ],
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

export async function importReferenceData(tx: Executor, source: LegacySource, now: string): Promise<TableReport[]> {
  const reports: TableReport[] = [];
  for (const table of Object.keys(SEED) as RefTable[]) {
    if (!source.has(table)) continue;
    const report = emptyTableReport(table, table, source.count(table));
    const started = performance.now();
    for (const row of source.rows(table)) {
      const id = String(row.id);
      const notes = notesFor(report, id);
      const values = Object.fromEntries(FIELDS[table].map((f) => [f.column, f.legacy(row, notes)]));
      const [current] = await queryRows<Record<string, unknown>>(
        tx,
        sql`select ${sql.raw(FIELDS[table].map((f) => f.column).join(", "))} from ${sql.identifier(table)} where id = ${id}`,
      );
      if (!current) {
        await insertReference(tx, table, row, values, notes, now);
        report.imported++;
        continue;
      }
      const seed = (SEED[table] as Record<string, Record<string, unknown>>)[id];
      const apply: Field[] = [];
      for (const f of FIELDS[table]) {
        const legacy = normalise(values[f.column]);
        const warren = normalise(current[f.column]);
        if (same(legacy, warren)) continue;
        const seeded = seed ? normalise(seed[f.column]) : undefined;
        // The legacy value is the seed: no operator edit to carry over, whatever Warren holds.
        if (seed && same(legacy, seeded)) continue;
        if (seed && same(warren, seeded)) {
          apply.push(f);
          continue;
        }
        report.keptCount++;
        if (report.kept.length < ROW_LIST_CAP) {
          report.kept.push({
            id,
            column: f.column,
            problem: `legacy ${JSON.stringify(legacy)}, Warren ${JSON.stringify(warren)}: ${seed ? "changed in Warren since its seed" : "not part of Warren's seed (added by an earlier import or in Warren)"}; Warren's kept`,
          });
        }
      }
      if (apply.length === 0) {
        report.alreadyPresent++;
        continue;
      }
      const sets = apply.map((f) => sql`${sql.identifier(f.column)} = ${param(values[f.column])}`);
      await tx.execute(sql`update ${sql.identifier(table)} set ${sql.join(sets, sql`, `)}, updated_at = now() where id = ${id}`);
      report.updated++;
    }
    report.targetDelta = null;
    report.verified = true;
    report.durationMs = Math.round(performance.now() - started);
    reports.push(report);
  }
  return reports;
}

function normalise(v: unknown): unknown {
  if (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  return v;
}

function param(v: unknown) {
  return Array.isArray(v) ? sql`${JSON.stringify(v)}::jsonb` : sql`${v}`;
}

async function insertReference(tx: Executor, table: RefTable, row: Record<string, unknown>, values: Record<string, unknown>, notes: Notes, now: string) {
  const id = String(row.id);
  const name = toText(row.name) ?? id;
  const description = toText(row.description) ?? "";
  const sortOrder = toInt(row.sort_order, 0);
  const createdAt = requiredTime(row.created_at, "created_at", notes, now);
  if (table === "resource_tiers") {
    // A new default would clash with Warren's (one default at most): Warren's stays.
    await tx.execute(sql`insert into resource_tiers (id, name, description, cpu_cores, memory_mb, storage_gb, price_monthly, sort_order, created_at)
      values (${id}, ${name}, ${description}, ${values.cpu_cores}, ${values.memory_mb}, ${values.storage_gb}, ${values.price_monthly}, ${sortOrder}, ${createdAt}::timestamptz)`);
  } else if (table === "container_flavors") {
    notes.replaced("image", `new flavor: image set to warren/sandbox-${id}:latest`);
    await tx.execute(sql`insert into container_flavors (id, name, description, languages, image, image_size_mb, enabled, sort_order, created_at)
      values (${id}, ${name}, ${description}, ${JSON.stringify(values.languages)}::jsonb, ${`warren/sandbox-${id}:latest`}, ${values.image_size_mb}, ${values.enabled}, ${sortOrder}, ${createdAt}::timestamptz)`);
  } else {
    const requiresFlavor = toText(row.requires_flavor);
    const [flavor] = requiresFlavor ? await queryRows(tx, sql`select id from container_flavors where id = ${requiresFlavor}`) : [];
    if (requiresFlavor && !flavor) notes.replaced("requires_flavor", "unknown flavor, stored as NULL");
    await tx.execute(sql`insert into container_addons (id, name, description, category, port, requires_gpu, requires_flavor_id, price_monthly, sort_order, created_at)
      values (${id}, ${name}, ${description}, ${values.category}::addon_category, ${values.port}, ${values.requires_gpu}, ${flavor ? requiresFlavor : null}, ${values.price_monthly}, ${sortOrder}, ${createdAt}::timestamptz)`);
  }
}

export async function loadCatalog(tx: Executor): Promise<CatalogIds> {
  const ids = async (table: string) => queryRows<{ id: string; is_default?: boolean }>(tx, sql`select * from ${sql.identifier(table)}`);
  const tiers = await ids("resource_tiers");
  const flavors = await ids("container_flavors");
  const addons = await ids("container_addons");
  return {
    tiers: new Set(tiers.map((t) => t.id)),
    flavors: new Set(flavors.map((f) => f.id)),
    addons: new Set(addons.map((a) => a.id)),
    defaultTier: tiers.find((t) => t.is_default)?.id ?? "starter",
    defaultFlavor: flavors.find((f) => f.is_default)?.id ?? "fullstack",
  };
}
