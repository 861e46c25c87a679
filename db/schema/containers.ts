import { sql } from "drizzle-orm";
import {
  boolean,
  check,
  integer,
  jsonb,
  numeric,
  pgEnum,
  pgTable,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { createdAt, updatedAt } from "./columns";

// Reference data. Seeded once by a migration (never re-written at start-up), so an operator's
// edits survive restarts. The numbers here are the limits actually applied to workloads.

export const resourceTiers = pgTable(
  "resource_tiers",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    cpuCores: numeric("cpu_cores", { precision: 6, scale: 2, mode: "number" }).notNull(),
    memoryMb: integer("memory_mb").notNull(),
    storageGb: integer("storage_gb").notNull(),
    pidsLimit: integer("pids_limit").notNull().default(1024),
    hasGpu: boolean("has_gpu").notNull().default(false),
    priceMonthly: numeric("price_monthly", { precision: 10, scale: 2, mode: "number" }).notNull().default(0),
    isDefault: boolean("is_default").notNull().default(false),
    enabled: boolean("enabled").notNull().default(true),
    sortOrder: integer("sort_order").notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("resource_tiers_one_default_uq").on(t.isDefault).where(sql`${t.isDefault}`),
    check("resource_tiers_limits_positive", sql`${t.cpuCores} > 0 and ${t.memoryMb} > 0 and ${t.storageGb} > 0`),
  ],
);

export const containerFlavors = pgTable(
  "container_flavors",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    description: text("description").notNull().default(""),
    languages: jsonb("languages").$type<string[]>().notNull().default([]),
    /** Image the docker driver runs; the local driver maps the flavor to toolchain mounts. */
    image: text("image").notNull(),
    imageSizeMb: integer("image_size_mb").notNull().default(0),
    isDefault: boolean("is_default").notNull().default(false),
    enabled: boolean("enabled").notNull().default(true),
    sortOrder: integer("sort_order").notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [uniqueIndex("container_flavors_one_default_uq").on(t.isDefault).where(sql`${t.isDefault}`)],
);

export const addonCategory = pgEnum("addon_category", ["interface", "compute", "storage", "devops"]);

/**
 * A service an add-on runs inside the sandbox, next to the agent. `command` is run by `sh -c` as
 * the sandbox's own user, with `{port}` replaced by the loopback port the driver allocated for it
 * (also in $WARREN_ADDON_PORT); it must serve HTTP (and WebSockets, if it needs them) there.
 * Warren's proxy reaches it at /api/v1/sandboxes/:id/addons/:addonId/ once GET readinessPath
 * answers.
 */
export type AddonService = { command: string; protocol: "http"; readinessPath: string };
/** Something the host (local driver) or image (docker) must provide: a command on PATH or a path. */
export type AddonRequirement = { command?: string; path?: string; package: string };

export const containerAddons = pgTable("container_addons", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  description: text("description").notNull().default(""),
  category: addonCategory("category").notNull(),
  imageSizeMb: integer("image_size_mb").notNull().default(0),
  port: integer("port"),
  requiresGpu: boolean("requires_gpu").notNull().default(false),
  // Compatibility rules are data: an add-on may only run on a given flavor.
  requiresFlavorId: text("requires_flavor_id").references(() => containerFlavors.id, { onDelete: "restrict" }),
  priceMonthly: numeric("price_monthly", { precision: 10, scale: 2, mode: "number" }).notNull().default(0),
  // What the add-on does in a sandbox (data, seeded by a migration; operators may edit it).
  service: jsonb("service").$type<AddonService>(),
  /** Host paths (binaries or directories) bound read-only at the same place inside a local sandbox, when present. */
  tools: jsonb("tools").$type<string[]>().notNull().default([]),
  /** Checked before a sandbox with this add-on starts: missing ones are a 503 naming the package. */
  requires: jsonb("requires").$type<AddonRequirement[]>().notNull().default([]),
  /** How an operator installs what `requires` names, shown with the 503. */
  installHint: text("install_hint"),
  enabled: boolean("enabled").notNull().default(true),
  sortOrder: integer("sort_order").notNull().default(0),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});
