import { afterAll } from "bun:test";
import { dropServerTemplate, ENGINE, TEST_DATABASE_URL } from "./db";
import { redactUrl } from "../../src/database/client";

// Runs before the test files (bunfig.toml [test].preload): once in a serial run, once per worker
// under --parallel, where its afterAll runs after every file (db.ts keeps the template then).
process.env.NODE_ENV = "test";
console.error(
  `warren tests: database engine ${ENGINE}${TEST_DATABASE_URL ? ` (${redactUrl(TEST_DATABASE_URL)})` : " (in-memory PGlite per file)"}`,
);

afterAll(async () => {
  await dropServerTemplate();
});
