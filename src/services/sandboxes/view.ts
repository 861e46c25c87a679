import type { AppliedLimits } from "../../../db/schema";
import { sandboxes } from "../../../db/schema";

export type SandboxRow = typeof sandboxes.$inferSelect;

/**
 * The columns a sandbox view is made of: hot reads select only these (not the agent secret, the
 * driver's workload id and port, nor the bookkeeping columns), which is less to send and decode.
 */
export const VIEW_COLUMNS = [
  "id",
  "name",
  "slug",
  "description",
  "repositoryUrl",
  "resourceTierId",
  "flavorId",
  "env",
  "idleTimeoutMinutes",
  "autoStart",
  "status",
  "desiredStatus",
  "statusReason",
  "errorMessage",
  "image",
  "appliedLimits",
  "addonHealth",
  "lastActivityAt",
  "startedAt",
  "stoppedAt",
  "createdAt",
  "updatedAt",
] as const satisfies readonly (keyof SandboxRow)[];
export type SandboxViewRow = Pick<SandboxRow, (typeof VIEW_COLUMNS)[number]>;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

/** When the idle timeout will stop a running sandbox, or null when it is not running. */
export function expiresAt(row: Pick<SandboxRow, "status" | "idleTimeoutMinutes" | "lastActivityAt" | "startedAt" | "updatedAt">): Date | null {
  if (row.status !== "running" || row.idleTimeoutMinutes <= 0) return null;
  const last = row.lastActivityAt ?? row.startedAt ?? row.updatedAt;
  return new Date(last.getTime() + row.idleTimeoutMinutes * 60_000);
}

export type AddonStatus = "starting" | "running" | "unhealthy" | "stopped";

/**
 * The sandbox's add-ons as users reach them: a service add-on through Warren's authenticated
 * proxy (never a raw port), a tools-only one has no endpoint. A service's status is its recorded
 * health (addon-health.ts) while the sandbox runs: starting until a check has seen it answer,
 * running while it answers, unhealthy after repeated failed checks, with the failure in words.
 */
export function addonsView(row: Pick<SandboxRow, "id" | "status" | "addonHealth">, addons: ReadonlyArray<readonly [id: string, service: boolean]>) {
  return addons.map(([id, service]) => {
    // hasOwn: catalogue ids are the operator's, and "constructor" must not read Object's.
    const health = service && row.status === "running" && Object.hasOwn(row.addonHealth, id) ? row.addonHealth[id] : undefined;
    let status: AddonStatus = row.status === "running" ? "running" : "stopped";
    if (service && row.status === "running") status = health?.status === "healthy" ? "running" : health?.status === "unhealthy" ? "unhealthy" : "starting";
    return {
      id,
      kind: service ? ("service" as const) : ("tools" as const),
      endpoint: service ? `/api/v1/sandboxes/${row.id}/addons/${id}/` : null,
      status,
      healthCheckedAt: health?.checkedAt ?? null,
      message: status === "unhealthy" ? (health?.lastError ?? null) : null,
    };
  });
}

/**
 * The sandbox as users see it. The agent is reached only through Warren's authenticated proxy:
 * no raw port, no password, and environment values (which may be tokens) are not echoed.
 * `addons` are [id, has a service] pairs sorted by id.
 */
export function sandboxView(row: SandboxViewRow, addons: ReadonlyArray<readonly [id: string, service: boolean]>) {
  return {
    id: row.id,
    name: row.name,
    slug: row.slug,
    description: row.description,
    repositoryUrl: row.repositoryUrl,
    resourceTierId: row.resourceTierId,
    flavorId: row.flavorId,
    addonIds: addons.map(([id]) => id),
    addons: addonsView(row, addons),
    envNames: Object.keys(row.env).sort(),
    idleTimeoutMinutes: row.idleTimeoutMinutes,
    autoStart: row.autoStart,
    status: row.status,
    desiredStatus: row.desiredStatus,
    statusReason: row.statusReason,
    errorMessage: row.errorMessage,
    image: row.image,
    limits: (row.appliedLimits ?? null) as AppliedLimits | null,
    agentEndpoint: `/api/v1/sandboxes/${row.id}/agent`,
    lastActivityAt: iso(row.lastActivityAt),
    expiresAt: iso(expiresAt(row)),
    startedAt: iso(row.startedAt),
    stoppedAt: iso(row.stoppedAt),
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export type SandboxView = ReturnType<typeof sandboxView>;
