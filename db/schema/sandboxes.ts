import { sql } from "drizzle-orm";
import {
  boolean,
  index,
  integer,
  jsonb,
  pgEnum,
  pgTable,
  primaryKey,
  text,
  uniqueIndex,
} from "drizzle-orm/pg-core";
import { ownerId, user } from "./auth";
import { containerAddons, containerFlavors, resourceTiers } from "./containers";
import { createdAt, tz, updatedAt } from "./columns";

export const sandboxStatus = pgEnum("sandbox_status", [
  "creating",
  "starting",
  "running",
  "stopping",
  "stopped",
  "error",
  "deleting",
]);

export const sandboxDesiredStatus = pgEnum("sandbox_desired_status", ["running", "stopped", "deleted"]);

/** The limits actually applied to the workload, reported back to the user as applied. */
export type AppliedLimits = {
  cpuCores: number | null;
  memoryMb: number | null;
  pidsLimit: number | null;
  openFiles: number | null;
  storageGb: number | null;
  notes: string[];
};

/**
 * The last recorded health of each add-on service of a running sandbox, keyed by add-on id
 * (src/services/sandboxes/addon-health.ts). Written only when a check changes it; emptied by
 * every lifecycle transition, so it never describes an earlier run.
 */
export type AddonHealthEntry = {
  /** starting: failed before it was ever seen healthy in this run, not yet often enough to be unhealthy. */
  status: "starting" | "healthy" | "unhealthy";
  /** ISO time the add-on entered this status. */
  since: string;
  /** ISO time of the check that recorded this entry (a check that changes nothing is not recorded). */
  checkedAt: string;
  /** Consecutive failed checks, counted up to the threshold that makes it unhealthy. */
  failures: number;
  /** The latest failure in words users may see (no address or port); null once it answers. */
  lastError: string | null;
};
export type AddonHealth = Record<string, AddonHealthEntry>;

export const sandboxes = pgTable(
  "sandboxes",
  {
    // Legacy ids (12-char nanoids) are kept on import: they appear in container and volume names.
    id: text("id").primaryKey(),
    userId: ownerId(),
    name: text("name").notNull(),
    slug: text("slug").notNull(),
    description: text("description").notNull().default(""),
    repositoryUrl: text("repository_url"),
    resourceTierId: text("resource_tier_id")
      .notNull()
      .references(() => resourceTiers.id, { onDelete: "restrict" }),
    flavorId: text("flavor_id")
      .notNull()
      .references(() => containerFlavors.id, { onDelete: "restrict" }),
    env: jsonb("env").$type<Record<string, string>>().notNull().default({}),
    idleTimeoutMinutes: integer("idle_timeout_minutes").notNull().default(30),
    autoStart: boolean("auto_start").notNull().default(false),
    status: sandboxStatus("status").notNull().default("creating"),
    desiredStatus: sandboxDesiredStatus("desired_status").notNull().default("stopped"),
    statusReason: text("status_reason"),
    errorMessage: text("error_message"),
    /** Optimistic-concurrency counter, bumped by every state transition. */
    version: integer("version").notNull().default(1),
    driver: text("driver"),
    workloadId: text("workload_id"),
    image: text("image"),
    appliedLimits: jsonb("applied_limits").$type<AppliedLimits>(),
    agentPort: integer("agent_port"),
    /** Per-sandbox OpenCode server password, as a vault envelope (never plaintext). */
    agentSecret: text("agent_secret"),
    addonHealth: jsonb("addon_health").$type<AddonHealth>().notNull().default({}),
    lastActivityAt: tz("last_activity_at"),
    startedAt: tz("started_at"),
    stoppedAt: tz("stopped_at"),
    transitionStartedAt: tz("transition_started_at"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("sandboxes_user_slug_uq").on(t.userId, t.slug),
    // Keyset pagination of a user's sandboxes, newest first.
    index("sandboxes_user_created_idx").on(t.userId, t.createdAt.desc(), t.id.desc()),
    // The reconciler and the idle reaper scan only non-stopped sandboxes.
    index("sandboxes_active_status_idx")
      .on(t.status)
      .where(sql`${t.status} not in ('stopped')`),
  ],
);

export const sandboxAddons = pgTable(
  "sandbox_addons",
  {
    sandboxId: text("sandbox_id")
      .notNull()
      .references(() => sandboxes.id, { onDelete: "cascade" }),
    addonId: text("addon_id")
      .notNull()
      .references(() => containerAddons.id, { onDelete: "restrict" }),
  },
  (t) => [primaryKey({ columns: [t.sandboxId, t.addonId] }), index("sandbox_addons_addon_idx").on(t.addonId)],
);

export const sandboxOperationKind = pgEnum("sandbox_operation_kind", ["start", "stop", "restart", "delete"]);
export const sandboxOperationStatus = pgEnum("sandbox_operation_status", [
  "queued",
  "running",
  "succeeded",
  "failed",
]);

/** Work queue for asynchronous transitions, claimed with FOR UPDATE SKIP LOCKED. */
export const sandboxOperations = pgTable(
  "sandbox_operations",
  {
    id: text("id").primaryKey(),
    sandboxId: text("sandbox_id")
      .notNull()
      .references(() => sandboxes.id, { onDelete: "cascade" }),
    userId: text("user_id").references(() => user.id, { onDelete: "set null" }),
    kind: sandboxOperationKind("kind").notNull(),
    status: sandboxOperationStatus("status").notNull().default("queued"),
    reason: text("reason"),
    requestId: text("request_id"),
    attempts: integer("attempts").notNull().default(0),
    runAfter: tz("run_after").notNull().defaultNow(),
    claimedBy: text("claimed_by"),
    claimedUntil: tz("claimed_until"),
    error: text("error"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("sandbox_operations_pending_idx")
      .on(t.runAfter)
      .where(sql`${t.status} in ('queued', 'running')`),
    index("sandbox_operations_sandbox_idx").on(t.sandboxId, t.createdAt),
  ],
);

/**
 * Workloads whose sandbox row is gone (account deletion cascades it away) but which the
 * orchestrator may still run. A job removes them and retries until it succeeds; no foreign key,
 * on purpose, so the row outlives the user.
 */
export const workloadCleanups = pgTable(
  "workload_cleanups",
  {
    id: text("id").primaryKey(),
    sandboxId: text("sandbox_id").notNull(),
    driver: text("driver").notNull(),
    workloadId: text("workload_id"),
    attempts: integer("attempts").notNull().default(0),
    lastError: text("last_error"),
    runAfter: tz("run_after").notNull().defaultNow(),
    completedAt: tz("completed_at"),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex("workload_cleanups_sandbox_uq").on(t.sandboxId),
    index("workload_cleanups_pending_idx")
      .on(t.runAfter)
      .where(sql`${t.completedAt} is null`),
  ],
);
