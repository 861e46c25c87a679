import { pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { tz } from "./columns";

/**
 * What the legacy import (src/import) has accounted for, one row per legacy row of the
 * entities a user can delete in Warren: users, sandboxes, chat sessions, agent files, provider
 * credentials. A legacy row listed here whose Warren row no longer exists was deleted in Warren
 * since, and a later import (a re-run, a newer snapshot of the legacy file) must not bring it back,
 * nor anything that hangs off it. Written only by the import, in its own transaction; nothing per
 * message or per activity entry, so it stays small. After an account deletion it keeps that
 * account's legacy ids and nothing else (no email, no name): the least that lets a later run honour
 * the deletion.
 */
export const legacyImportLedger = pgTable(
  "legacy_import_ledger",
  {
    /** The legacy table: user, sandboxes, chat_sessions, user_opencode_files, provider_credentials. */
    entity: text("entity").notNull(),
    /** The legacy row's id (Warren keeps it as the row's id, except for credentials). */
    legacyId: text("legacy_id").notNull(),
    /** The Warren row's id when it is not the legacy id (credentials get new ids); else null. */
    warrenId: text("warren_id"),
    /** When an import first accounted for the row. */
    recordedAt: tz("recorded_at").notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.entity, t.legacyId] })],
);
