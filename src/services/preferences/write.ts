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
 * Every write: lock the user's row (creating it first if it does not exist: ON CONFLICT, so two
 * first writes cannot both insert), check If-Match against the locked version, apply, bump the
 * version and record the activity, all in one transaction (the version bump notifies open streams
 * at commit). The row lock serialises concurrent writers of one user, so a merge always starts
 * from the latest committed document and no update is lost, with or without If-Match.
 *
 * Round trips are what a write costs here: while one holds the lock, every other writer of that
 * user waits, and on this stack each round trip to PostgreSQL is a wake-up on both sides. So the
 * row is locked by the first statement when it exists (the usual case), the catalog is read only
 * for the fields that need it, and the update and its activity entry go out together.
 */
async function writePreferences(
  ctx: ServiceContext,
  events: ChangeNotifier,
  ifMatch: IfMatch,
  action: ActivityAction,
  change: (current: PreferenceFields) => { next: PreferenceFields; touched: Set<string> },
): Promise<Preferences> {
  return events.transaction(ctx.db, async (tx) => {
    const lock = () => tx.select().from(userPreferences).where(eq(userPreferences.userId, ctx.userId)).for("update");
    let [locked] = await lock();
    if (!locked) {
      await tx.insert(userPreferences).values({ userId: ctx.userId, version: 0 }).onConflictDoNothing();
      [locked] = await lock();
    }
    if (!locked) throw new Error("user_preferences row vanished inside its own transaction");
    const current = locked;
    assertIfMatch(ifMatch, current.version, () => toPreferences(current), "Your preferences");

    const { next, touched } = change(fieldsOf(current));
    await assertInCatalog(tx, ctx.userId, next, touched);
    const version = current.version + 1;
    // Sent together: the entry does not depend on the update's result, and either failing fails
    // the transaction.
    const [[row]] = await Promise.all([
      tx
        .update(userPreferences)
        .set({ ...next, version, updatedAt: ctx.now() })
        .where(eq(userPreferences.userId, ctx.userId))
        .returning(),
      recordActivity(tx, ctx, {
        action,
        entityType: "preferences",
        entityId: ctx.userId,
        metadata: { fields: [...touched].sort(), version },
      }),
    ]);
    // No publish: the trigger on user_preferences announces the new version at commit.
    return toPreferences(row!);
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
