import { eq } from "drizzle-orm";
import { userPreferences } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { assertIfMatch, type IfMatch } from "../../lib/etag";
import type { ActivityAction } from "../activity/record";
import { recordActivity } from "../activity/record";
import type { ChangeNotifier } from "../events/notifier";
import { assertInCatalog } from "./catalog";
import { DEFAULT_PREFERENCES, fieldsOf, PREFERENCE_FIELDS, toPreferences, type PreferenceFields, type Preferences } from "./document";

export type PreferencesPatch = Partial<PreferenceFields>;

/**
 * Every write: make sure the row exists (ON CONFLICT, so two first writes cannot both insert),
 * lock it, check If-Match against the locked version, apply, bump the version and record the
 * activity, all in one transaction (the version bump notifies open streams at commit). The row lock serialises concurrent
 * writers of one user, so a merge always starts from the latest committed document and no update
 * is lost, with or without If-Match.
 */
async function writePreferences(
  ctx: ServiceContext,
  events: ChangeNotifier,
  ifMatch: IfMatch,
  action: ActivityAction,
  change: (current: PreferenceFields) => { next: PreferenceFields; touched: Set<string> },
): Promise<Preferences> {
  return events.transaction(ctx.db, async (tx) => {
    await tx.insert(userPreferences).values({ userId: ctx.userId, version: 0 }).onConflictDoNothing();
    const [locked] = await tx.select().from(userPreferences).where(eq(userPreferences.userId, ctx.userId)).for("update");
    if (!locked) throw new Error("user_preferences row vanished inside its own transaction");
    assertIfMatch(ifMatch, locked.version, () => toPreferences(locked), "Your preferences");

    const { next, touched } = change(fieldsOf(locked));
    await assertInCatalog(tx, ctx.userId, next, touched);
    const [row] = await tx
      .update(userPreferences)
      .set({ ...next, version: locked.version + 1, updatedAt: ctx.now() })
      .where(eq(userPreferences.userId, ctx.userId))
      .returning();
    const saved = toPreferences(row!);
    await recordActivity(tx, ctx, {
      action,
      entityType: "preferences",
      entityId: ctx.userId,
      metadata: { fields: [...touched].sort(), version: saved.version },
    });
    // No publish: the trigger on user_preferences announces the new version at commit.
    return saved;
  });
}

/** PUT: the body is the whole document. */
export function replacePreferences(ctx: ServiceContext, events: ChangeNotifier, input: PreferenceFields, ifMatch: IfMatch) {
  return writePreferences(ctx, events, ifMatch, "preferences.update", () => ({
    next: { ...input, defaultAddonIds: [...input.defaultAddonIds] },
    touched: new Set(PREFERENCE_FIELDS),
  }));
}

/** PATCH: only the given fields change. */
export function patchPreferences(ctx: ServiceContext, events: ChangeNotifier, input: PreferencesPatch, ifMatch: IfMatch) {
  return writePreferences(ctx, events, ifMatch, "preferences.update", (current) => {
    const touched = new Set(PREFERENCE_FIELDS.filter((k) => input[k] !== undefined));
    const next: PreferenceFields = { ...current };
    for (const key of touched) Object.assign(next, { [key]: input[key as keyof PreferenceFields] });
    return { next, touched };
  });
}

/** DELETE: back to the defaults, as a new version so other devices follow. */
export function resetPreferences(ctx: ServiceContext, events: ChangeNotifier, ifMatch: IfMatch) {
  return writePreferences(ctx, events, ifMatch, "preferences.reset", () => ({
    next: { ...DEFAULT_PREFERENCES, defaultAddonIds: [] },
    touched: new Set<string>(),
  }));
}
