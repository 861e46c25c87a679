import { afterAll, setDefaultTimeout } from "bun:test";
import { dropServerTemplate, ENGINE, TEST_DATABASE_URL } from "./db";
import { redactUrl } from "../../src/database/client";

// Runs before the test files (bunfig.toml [test].preload): once in a serial run, once per worker
// under --parallel, where its afterAll runs after every file (db.ts keeps the template then).
process.env.NODE_ENV = "test";
console.error(
  `warren tests: database engine ${ENGINE}${TEST_DATABASE_URL ? ` (${redactUrl(TEST_DATABASE_URL)})` : " (in-memory PGlite per file)"}`,
);

// Bun's default of 5 s per test (and hook) is a deadline on the machine, not on Warren: tests that
// start servers, clusters or browsers take up to ~4.5 s here with two workers, and a slower CI
// machine pushed one past 5 s. A test that hangs still fails, after 20 s; tests with their own
// timeout keep it. No test asserts a duration.
setDefaultTimeout(20_000);

afterAll(async () => {
  await dropServerTemplate();
});
