import { stringify } from "csv-stringify/sync";
import type { ServiceContext } from "../../context";
import { activityBatch, encodeActivityCursor, toActivityView, type ActivityEntryView, type ActivityFilter } from "./query";
import { recordActivity } from "./record";
import { streamOf } from "./stream";

export type ActivityExportFormat = "json" | "csv";

export const EXPORT_BATCH = 500;

export const CSV_COLUMNS = [
  "id",
  "createdAt",
  "action",
  "actorType",
  "entityType",
  "entityId",
  "reason",
  "requestId",
  "ipAddress",
  "userAgent",
  "metadata",
] as const;

/** Every entry of the caller matching the filter, newest first, one keyset batch at a time. */
export async function* activityEntries(ctx: Pick<ServiceContext, "db" | "userId">, filter: ActivityFilter): AsyncGenerator<ActivityEntryView[]> {
  let cursor: string | undefined;
  for (;;) {
    const rows = await activityBatch(ctx.db, ctx.userId, filter, EXPORT_BATCH, cursor);
    if (rows.length === 0) return;
    yield rows.map((r) => toActivityView(r.row));
    if (rows.length < EXPORT_BATCH) return;
    const last = rows[rows.length - 1]!;
    cursor = encodeActivityCursor(last.at, last.row.id);
  }
}

function csvRows(entries: ActivityEntryView[], header: boolean): string {
  return stringify(
    entries.map((e) => CSV_COLUMNS.map((c) => (c === "metadata" ? JSON.stringify(e.metadata) : (e[c] ?? "")))),
    {
      header,
      columns: [...CSV_COLUMNS],
      // A cell starting with = + - @ would run as a formula in a spreadsheet (CSV injection).
      escape_formulas: true,
      record_delimiter: "\r\n",
    },
  );
}

async function* exportChunks(ctx: ServiceContext, format: ActivityExportFormat, filter: ActivityFilter): AsyncGenerator<string> {
  let first = true;
  if (format === "json") yield "[";
  else yield csvRows([], true);
  for await (const batch of activityEntries(ctx, filter)) {
    if (format === "csv") {
      yield csvRows(batch, false);
      continue;
    }
    let out = "";
    for (const entry of batch) {
      out += (first ? "\n" : ",\n") + JSON.stringify(entry);
      first = false;
    }
    yield out;
  }
  if (format === "json") yield "\n]\n";
}

/**
 * The caller's activity as a download. The export itself is recorded first (activity.export),
 * in its own transaction: it changes nothing else, and the record says who took the data.
 */
export async function exportActivity(ctx: ServiceContext, format: ActivityExportFormat, filter: ActivityFilter): Promise<ReadableStream<Uint8Array>> {
  await ctx.db.transaction((tx) =>
    recordActivity(tx, ctx, {
      action: "activity.export",
      entityType: "user",
      entityId: ctx.userId,
      metadata: {
        format,
        filter: {
          action: filter.action ?? null,
          entityType: filter.entityType ?? null,
          entityId: filter.entityId ?? null,
          from: filter.from?.toISOString() ?? null,
          to: filter.to?.toISOString() ?? null,
        },
      },
    }),
  );
  return streamOf(exportChunks(ctx, format, filter), (err) =>
    ctx.logger.error({ err: { message: (err as Error).message } }, "activity export failed mid-stream"),
  );
}
