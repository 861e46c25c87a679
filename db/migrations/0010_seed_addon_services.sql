-- What each seeded add-on does in a sandbox (db/schema/containers.ts: service, tools, requires,
-- install_hint). A migration runs once per database: an operator's later edits are kept.
-- Services listen only on 127.0.0.1:{port} (a port the driver allocates per sandbox); Warren's
-- authenticated proxy is the only way users reach them.
UPDATE "container_addons" SET
  "service" = jsonb_build_object(
    'protocol', 'http',
    'readinessPath', '/vnc.html',
    -- Xvfb's display number is the allocated port (unique on the host, whose network namespace
    -- local sandboxes share); x11vnc listens on a unix socket in the sandbox's private /tmp, so
    -- only websockify (noVNC over WebSockets) is reachable, and only through Warren.
    'command', 'd={port}; mkdir -p -m 1777 /tmp/.X11-unix; Xvfb :$d -screen 0 1280x800x24 -nolisten tcp & '
      || 'i=0; while [ ! -e /tmp/.X11-unix/X$d ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; '
      || 'x11vnc -display :$d -unixsock /tmp/warren-vnc.sock -rfbport 0 -forever -shared -nopw -quiet & '
      || 'i=0; while [ ! -S /tmp/warren-vnc.sock ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; '
      || 'exec websockify --web /usr/share/novnc --unix-target=/tmp/warren-vnc.sock 127.0.0.1:{port}'),
  "requires" = '[{"command":"Xvfb","package":"xvfb"},{"command":"x11vnc","package":"x11vnc"},{"command":"websockify","package":"websockify"},{"path":"/usr/share/novnc/vnc.html","package":"novnc"}]'::jsonb,
  "install_hint" = 'apt-get install -y xvfb x11vnc websockify novnc'
WHERE "id" = 'gui' AND "service" IS NULL;
--> statement-breakpoint
UPDATE "container_addons" SET
  "service" = '{"protocol":"http","readinessPath":"/healthz","command":"exec code-server --bind-addr 127.0.0.1:{port} --auth none --disable-telemetry --disable-update-check /home/workspace"}'::jsonb,
  "requires" = '[{"command":"code-server","package":"code-server"}]'::jsonb,
  "install_hint" = 'curl -fsSL https://code-server.dev/install.sh | sh (installs the code-server package)'
WHERE "id" = 'code-server' AND "service" IS NULL;
--> statement-breakpoint
UPDATE "container_addons" SET
  "tools" = '["/usr/local/bin/duckdb","/opt/duckdb"]'::jsonb,
  "requires" = '[{"command":"psql","package":"postgresql-client"},{"command":"redis-cli","package":"redis-tools"}]'::jsonb,
  "install_hint" = 'apt-get install -y postgresql-client redis-tools (DuckDB is mounted when /usr/local/bin/duckdb exists)'
WHERE "id" = 'databases' AND "requires" = '[]'::jsonb;
--> statement-breakpoint
UPDATE "container_addons" SET
  "tools" = '["/usr/local/aws-cli","/usr/lib/google-cloud-sdk","/opt/az"]'::jsonb,
  "requires" = '[{"command":"aws","package":"awscli"}]'::jsonb,
  "install_hint" = 'apt-get install -y awscli (gcloud and az are mounted when installed under /usr/lib/google-cloud-sdk or /opt/az)'
WHERE "id" = 'cloud' AND "requires" = '[]'::jsonb;
--> statement-breakpoint
UPDATE "container_addons" SET
  "tools" = '["/usr/local/cuda"]'::jsonb,
  "requires" = '[{"command":"nvidia-smi","package":"the NVIDIA driver"},{"path":"/usr/local/cuda","package":"the CUDA toolkit"}]'::jsonb,
  "install_hint" = 'install the NVIDIA driver and the CUDA toolkit on the host (a GPU tier is required too)'
WHERE "id" = 'gpu' AND "requires" = '[]'::jsonb;
