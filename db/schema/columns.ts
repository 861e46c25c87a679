import { customType, timestamp } from "drizzle-orm/pg-core";

/** Every time column is timestamptz; the wire format is ISO 8601 with Z. */
export const tz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

export const createdAt = () => tz("created_at").notNull().defaultNow();
export const updatedAt = () =>
  tz("updated_at")
    .notNull()
    .defaultNow()
    .$onUpdate(() => new Date());

/** Full-text search vectors are generated columns; the application never writes them. */
export const tsvector = customType<{ data: string }>({
  dataType: () => "tsvector",
});
