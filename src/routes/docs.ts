import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { Hono } from "hono";
import type { AppEnv } from "../context";

/**
 * Interactive API docs at /api/docs: Swagger UI from the pinned `swagger-ui-dist` package,
 * served by Warren itself. Nothing is loaded from a CDN, so the docs render on a machine without
 * internet, and no third-party script runs on the API's own origin (where a browser holds the
 * session cookie).
 */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const PAGE = (title: string) => `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${title}</title>
  <link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png">
  <link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="docs"></div>
  <script src="/api/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api/docs/assets/init.js"></script>
</body>
</html>
`;

// External rather than inline, so a strict Content-Security-Policy (script-src 'self') allows it.
const INIT = (specUrl: string) => `window.ui = SwaggerUIBundle({
  url: ${JSON.stringify(specUrl)},
  dom_id: "#docs",
  deepLinking: true,
  persistAuthorization: false,
  withCredentials: true,
});
`;

// Read on first request, once per process (not per app: tests build many): a handful of files,
// served from memory with long caching (the package is pinned).
let files: Map<string, { body: Buffer<ArrayBuffer>; type: string }> | undefined;
function asset(name: string) {
  if (!files) {
    const dir = dirname(Bun.resolveSync("swagger-ui-dist/package.json", import.meta.dir));
    files = new Map(Object.entries(ASSETS).map(([file, type]) => [file, { body: readFileSync(join(dir, file)), type }]));
  }
  return files.get(name);
}

export function docsRoutes(o: { title: string; specUrl: string }) {
  const page = PAGE(o.title);
  const init = INIT(o.specUrl);
  return new Hono<AppEnv>()
    .get("/api/docs", (c) => {
      c.header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; connect-src 'self'");
      return c.html(page);
    })
    .get("/api/docs/assets/init.js", (c) => c.body(init, 200, { "content-type": "text/javascript; charset=utf-8" }))
    .get("/api/docs/assets/:file", (c) => {
      const file = asset(c.req.param("file"));
      if (!file) return c.notFound();
      return c.body(file.body, 200, { "content-type": file.type, "cache-control": "public, max-age=86400" });
    });
}
