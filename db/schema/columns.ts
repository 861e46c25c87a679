import { customType, timestamp } from "drizzle-orm/pg-core";

/**
 * Every time column is timestamptz; the wire format is ISO 8601 with Z. Millisecond precision:
 * what PostgreSQL stores is exactly what a JavaScript Date (and an API timestamp, and a keyset
 * cursor) holds. With microseconds, a cursor made from a Date would sit up to 999 µs before its
 * row, and rows written in the same millisecond would be skipped at a page boundary.
 */
export const tz = (name: string) => timestamp(name, { withTimezone: true, mode: "date", precision: 3 });

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
