-- Catalog reference data, seeded once. Migrations run once per database, so an operator's later
-- edits to these rows are never overwritten at start-up (the legacy system re-wrote them on boot).
-- Values follow the legacy catalog (shared/legacy-schema.md), memory converted from GB to MB.
INSERT INTO "resource_tiers" ("id", "name", "description", "cpu_cores", "memory_mb", "storage_gb", "pids_limit", "has_gpu", "price_monthly", "is_default", "sort_order") VALUES
  ('micro',   'Micro',   'For trying things out: 1 core, 1 GB memory, 10 GB storage.',          1, 1024,  10,  256, false,  0, false, 0),
  ('starter', 'Starter', 'Everyday coding: 1 core, 2 GB memory, 20 GB storage.',                1, 2048,  20,  512, false,  0, true,  1),
  ('builder', 'Builder', 'Builds and test suites: 2 cores, 4 GB memory, 30 GB storage.',        2, 4096,  30, 1024, false, 10, false, 2),
  ('creator', 'Creator', 'Larger projects: 4 cores, 8 GB memory, 50 GB storage.',               4, 8192,  50, 2048, false, 25, false, 3),
  ('power',   'Power',   'Heavy workloads: 8 cores, 16 GB memory, 100 GB storage.',             8, 16384, 100, 4096, false, 50, false, 4)
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
INSERT INTO "container_flavors" ("id", "name", "description", "languages", "image", "image_size_mb", "is_default", "enabled", "sort_order") VALUES
  ('bare',      'Bare',       'The agent only, no language toolchain.',                 '[]'::jsonb,                                                   'warren/sandbox-bare:latest',      500,  false, true,  0),
  ('js',        'JavaScript', 'Node.js, npm, Bun and TypeScript.',                       '["javascript","typescript"]'::jsonb,                          'warren/sandbox-js:latest',        800,  false, true,  1),
  ('python',    'Python',     'Python 3 with pip, uv and virtualenv.',                   '["python"]'::jsonb,                                           'warren/sandbox-python:latest',    1200, false, true,  2),
  ('go',        'Go',         'The Go toolchain.',                                       '["go"]'::jsonb,                                               'warren/sandbox-go:latest',        900,  false, false, 3),
  ('rust',      'Rust',       'Rust with cargo and rustup.',                             '["rust"]'::jsonb,                                             'warren/sandbox-rust:latest',      1100, false, true,  4),
  ('fullstack', 'Full stack', 'JavaScript, TypeScript and Python.',                      '["javascript","typescript","python"]'::jsonb,                 'warren/sandbox-fullstack:latest', 1800, true,  true,  5),
  ('polyglot',  'Polyglot',   'JavaScript, TypeScript, Python, Go and Rust.',            '["javascript","typescript","python","go","rust"]'::jsonb,     'warren/sandbox-polyglot:latest',  3000, false, false, 6)
ON CONFLICT ("id") DO NOTHING;
--> statement-breakpoint
INSERT INTO "container_addons" ("id", "name", "description", "category", "image_size_mb", "port", "requires_gpu", "requires_flavor_id", "price_monthly", "sort_order") VALUES
  ('gui',         'Desktop (VNC)', 'A graphical desktop in the browser over VNC.',   'interface', 600,  6080, false, NULL,  5, 1),
  ('code-server', 'VS Code',       'VS Code in the browser (code-server).',          'interface', 300,  8080, false, NULL,  0, 2),
  ('databases',   'Databases',     'PostgreSQL, Redis and DuckDB tools.',            'storage',   400,  NULL, false, NULL,  5, 3),
  ('cloud',       'Cloud CLIs',    'AWS, Google Cloud and Azure command-line tools.', 'devops',    350,  NULL, false, NULL,  0, 4),
  ('gpu',         'GPU (CUDA)',    'CUDA toolkit; needs a tier with a GPU.',         'compute',   2500, NULL, true,  NULL, 20, 5)
ON CONFLICT ("id") DO NOTHING;
