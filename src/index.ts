import { createApp } from "./app";
import { installGithubApiOverride } from "./auth/github-api-override";
import { ConfigError, loadConfig, type Config } from "./config";
import { DataDirInUseError, openDatabase, type Database } from "./database/client";
import { migrateDatabase } from "./database/migrate";
import { isDatabaseUnavailable } from "./errors";
import { createLogger, flushLogs, type Logger } from "./lib/logger";
import { createChangeNotifier } from "./services/events/notifier";
import { DEFAULT_KNOWLEDGE_DIR, seedKnowledge } from "./services/knowledge/seed";
import { scheduleDeviceFlowPurge } from "./services/credentials/purge-device-flows";
import { scheduleCatalogRefresh } from "./services/providers/catalog-refresh";
import { startSandboxBackground } from "./jobs/background";
import { createDriver } from "./orchestrator";
import { buildSandboxRuntime } from "./services/sandboxes/setup";
import { proxyWebSocket } from "./routes/upstream-proxy";

/**
 * main: read config, open the database, migrate, serve, and shut down cleanly on SIGINT/SIGTERM
 * (stop accepting, let in-flight requests finish, close the pool).
 */
async function main() {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`warren: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  if (config.githubApiOverrideUrl) {
    installGithubApiOverride(config.githubApiOverrideUrl);
    logger.warn(
      { githubApiOverrideUrl: config.githubApiOverrideUrl },
      "GITHUB_API_OVERRIDE_URL is set: requests for github.com and api.github.com go to a test stand-in",
    );
  }

  let database: Database;
  try {
    database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.poolSize });
  } catch (err) {
    if (err instanceof DataDirInUseError) {
      console.error(`warren: ${err.message}`);
      process.exit(1);
    }
    throw err;
  }
  await migrateWithRetry(database, config, logger);
  // The starter knowledge base ships with Warren: brought up to date on every start (idempotent;
  // unchanged documents are left alone). Operators add theirs with `bun run knowledge:seed`.
  try {
    const seeded = await seedKnowledge(database.db, { dir: DEFAULT_KNOWLEDGE_DIR, source: "seed" });
    if (seeded.created.length + seeded.updated.length > 0) {
      logger.info({ created: seeded.created.length, updated: seeded.updated.length }, "knowledge base seeded");
    }
  } catch (err) {
    // Another instance seeding at the same moment, or a broken file: the API works regardless.
    logger.warn({ err: { message: (err as Error).message } }, "seeding the starter knowledge base failed");
  }

  const events = createChangeNotifier(database, logger);
  const now = () => new Date();
  const sandboxes = buildSandboxRuntime({ config, db: database.db, logger, now, driver: createDriver(config, logger) });
  const app = createApp({ config, database, logger, events, sandboxes, now });
  const background = startSandboxBackground({ config, database, logger, rt: sandboxes });
  // Background jobs, never on a request path; both are safe with several instances running.
  const stopJobs = [
    config.providerCatalog.refreshIntervalMs > 0
      ? scheduleCatalogRefresh({
          db: database.db,
          logger,
          url: config.providerCatalog.url,
          timeoutMs: config.providerCatalog.timeoutMs,
          intervalMs: config.providerCatalog.refreshIntervalMs,
        })
      : () => {},
    scheduleDeviceFlowPurge({ db: database.db, logger }),
  ];
  const server = Bun.serve({
    hostname: config.host,
    port: config.port,
    fetch: app.fetch,
    // WebSockets bridged by the add-on proxy (src/routes/upstream-proxy.ts).
    websocket: proxyWebSocket,
    idleTimeout: 60,
  });
  logger.info(
    {
      listen: `http://${server.hostname}:${server.port}`,
      publicUrl: config.publicUrl,
      database: { engine: database.engine, location: database.location },
      github: Boolean(config.github),
    },
    "warren started",
  );
  if (config.env !== "production" && config.dataDir === null) {
    logger.warn("DATA_DIR=memory://: nothing is kept after this process exits");
  }

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "shutting down: no new connections, finishing in-flight requests");
    const graceful = server.stop(false);
    // Event streams never finish on their own: ending them lets the graceful stop complete.
    await events.close();
    const timedOut = await Promise.race([
      graceful.then(() => false),
      Bun.sleep(config.shutdownTimeoutMs).then(() => true),
    ]);
    if (timedOut) {
      logger.warn({ timeoutMs: config.shutdownTimeoutMs }, "in-flight requests did not finish in time; closing them");
      await server.stop(true);
    }
    for (const stop of stopJobs) stop();
    // Operations under way finish and record their outcome; workloads keep running (sandboxes
    // outlive a Warren restart, and the reconciler finds them again).
    await background.stop();
    await database.close();
    logger.info("stopped");
    await flushLogs(logger);
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
}

/** A database that is still starting (a container coming up) is waited for, briefly. */
async function migrateWithRetry(database: Database, config: Config, logger: Logger) {
  const deadline = Date.now() + 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      await migrateDatabase(database, config.databaseUrl);
      return;
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() > deadline) {
        logger.fatal({ err }, "could not apply database migrations");
        await flushLogs(logger);
        process.exit(1);
      }
      logger.warn({ attempt }, "database not reachable yet; retrying");
      await Bun.sleep(Math.min(1000 * attempt, 5000));
    }
  }
}

await main();
