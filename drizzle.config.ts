import { defineConfig } from "drizzle-kit";

// drizzle-kit only diffs db/schema against the committed migrations; it never needs a live
// database, so `bun run db:generate` works on a fresh machine.
export default defineConfig({
  dialect: "postgresql",
  schema: "./db/schema/index.ts",
  out: "./db/migrations",
  strict: true,
  verbose: true,
});
