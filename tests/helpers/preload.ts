import { afterAll } from "bun:test";
import { dropServerTemplate, ENGINE, TEST_DATABASE_URL } from "./db";
import { redactUrl } from "../../src/database/client";

// Runs once before any test file (bunfig.toml [test].preload).
process.env.NODE_ENV = "test";
console.error(
  `warren tests: database engine ${ENGINE}${TEST_DATABASE_URL ? ` (${redactUrl(TEST_DATABASE_URL)})` : " (in-memory PGlite per file)"}`,
);

afterAll(async () => {
  await dropServerTemplate();
});
