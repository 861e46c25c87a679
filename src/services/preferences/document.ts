import { eq, sql } from "drizzle-orm";
import { userPreferences } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Db, Executor } from "../../database/client";

/** The preferences document as clients see it; `version` 0 means nothing has been stored yet. */
export type Preferences = {
  themeMode: "light" | "dark" | "system";
  themePreset: string;
  autoRefreshInterval: number;
  inAppNotifications: boolean;
  systemNotifications: boolean;
  defaultResourceTierId: string | null;
  defaultFlavorId: string | null;
  defaultAddonIds: string[];
  defaultAgentId: string | null;
  defaultProviderId: string | null;
  defaultModelId: string | null;
  version: number;
  updatedAt: string | null;
};

export type PreferenceFields = Omit<Preferences, "version" | "updatedAt">;
export const PREFERENCE_FIELDS = [
  "themeMode",
  "themePreset",
  "autoRefreshInterval",
  "inAppNotifications",
  "systemNotifications",
  "defaultResourceTierId",
  "defaultFlavorId",
  "defaultAddonIds",
  "defaultAgentId",
  "defaultProviderId",
  "defaultModelId",
] as const satisfies ReadonlyArray<keyof PreferenceFields>;

/** Mirrors the column defaults of user_preferences (db/schema/settings.ts). */
export const DEFAULT_PREFERENCES: PreferenceFields = {
  themeMode: "system",
  themePreset: "default",
  autoRefreshInterval: 30,
  inAppNotifications: true,
  systemNotifications: false,
  defaultResourceTierId: null,
  defaultFlavorId: null,
  defaultAddonIds: [],
  defaultAgentId: null,
  defaultProviderId: null,
  defaultModelId: null,
};

type Row = typeof userPreferences.$inferSelect;

export function fieldsOf(row: Row): PreferenceFields {
  return {
    themeMode: row.themeMode,
    themePreset: row.themePreset,
    autoRefreshInterval: row.autoRefreshInterval,
    inAppNotifications: row.inAppNotifications,
    systemNotifications: row.systemNotifications,
    defaultResourceTierId: row.defaultResourceTierId,
    defaultFlavorId: row.defaultFlavorId,
    defaultAddonIds: row.defaultAddonIds,
    defaultAgentId: row.defaultAgentId,
    defaultProviderId: row.defaultProviderId,
    defaultModelId: row.defaultModelId,
  };
}

export function toPreferences(row: Row): Preferences {
  return { ...fieldsOf(row), version: row.version, updatedAt: row.updatedAt.toISOString() };
}

export const defaultPreferences = (): Preferences => ({ ...DEFAULT_PREFERENCES, defaultAddonIds: [], version: 0, updatedAt: null });

export async function readPreferences(db: Executor, userId: string): Promise<Preferences> {
  const [row] = await db.select().from(userPreferences).where(eq(userPreferences.userId, userId));
  return row ? toPreferences(row) : defaultPreferences();
}

function prepareRead(db: Db) {
  return db.select().from(userPreferences).where(eq(userPreferences.userId, sql.placeholder("userId"))).prepare("warren_preferences_get");
}
const preparedReads = new WeakMap<Db, ReturnType<typeof prepareRead>>();

/** Defaults when nothing is stored; reading never creates the row. One prepared statement. */
export async function getPreferences(ctx: ServiceContext): Promise<Preferences> {
  let read = preparedReads.get(ctx.db);
  if (!read) preparedReads.set(ctx.db, (read = prepareRead(ctx.db)));
  const [row] = await read.execute({ userId: ctx.userId });
  return row ? toPreferences(row) : defaultPreferences();
}
