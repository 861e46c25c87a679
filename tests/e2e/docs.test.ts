import { afterAll, beforeAll, expect, test } from "bun:test";
import { openBrowserProfile, type BrowserProfile } from "../helpers/browser-app/serve";
import { useServer } from "../helpers/server";

// /api/docs in a real browser (Debian's Chromium). The page and every asset it loads come from
// Warren itself: the test fails if the page requests anything from another origin, which on a
// machine without internet (like this one) would leave the docs blank.
const server = useServer();
let browser: BrowserProfile | undefined;

beforeAll(async () => {
  browser = await openBrowserProfile("blocked");
}, 60_000);
afterAll(async () => {
  await browser?.close();
});

test("the interactive docs render from Warren's own assets, with every route of the OpenAPI document", async () => {
  const page = await browser!.context.newPage();
  const origin = new URL(server().url).origin;
  const foreign: string[] = [];
  const failed: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) foreign.push(r.url());
  });
  page.on("requestfailed", (r) => failed.push(r.url()));
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));

  const res = await page.goto(`${server().url}/api/docs`);
  expect(res?.status()).toBe(200);
  expect(await page.title()).toBe("Warren API");
  // Swagger UI has fetched /api/openapi.json and drawn one block per operation.
  await page.waitForSelector(".opblock-summary-path", { timeout: 30_000 });
  const paths = await page.$$eval(".opblock-summary-path", (els) => els.map((e) => e.getAttribute("data-path") ?? e.textContent ?? ""));
  expect(paths.some((p) => p.includes("/api/v1/me"))).toBe(true);
  expect(paths.some((p) => p.includes("/api/v1/sandboxes"))).toBe(true);
  const doc = (await (await fetch(`${server().url}/api/openapi.json`)).json()) as { paths: Record<string, object> };
  const operations = Object.values(doc.paths).reduce((n, ops) => n + Object.keys(ops).length, 0);
  expect(paths.length).toBe(operations);

  expect(foreign).toEqual([]);
  expect(failed).toEqual([]);
  expect(errors).toEqual([]);
  await page.close();
}, 90_000);

test("the docs page allows only Warren's own scripts", async () => {
  const res = await fetch(`${server().url}/api/docs`);
  const csp = res.headers.get("content-security-policy") ?? "";
  expect(csp).toContain("script-src 'self'");
  const html = await res.text();
  expect(html).not.toMatch(/src="https?:/);
  expect(html).not.toMatch(/href="https?:/);
  for (const asset of ["swagger-ui.css", "swagger-ui-bundle.js", "init.js"]) {
    const a = await fetch(`${server().url}/api/docs/assets/${asset}`);
    expect(a.status).toBe(200);
  }
  expect((await fetch(`${server().url}/api/docs/assets/package.json`)).status).toBe(404);
  expect((await fetch(`${server().url}/api/docs/assets/..%2Fpackage.json`)).status).toBe(404);
});
