import { and, eq, sql } from "drizzle-orm";
import { onboardingSessions } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { AppError, isDatabaseUnavailable } from "../../errors";
import type { WorkloadFile } from "../../orchestrator/driver";
import { recordActivity } from "../activity/record";
import { agentFilePath, OPENCODE_CONFIG_DIR } from "../agent-config/render";
import type { SandboxStatus } from "../sandboxes/state-machine";
import type { GeneratedLayer } from "./generate";
import { step, toView, type OnboardingView } from "./session";
import { excerpt } from "../../lib/text";

/**
 * How onboarding reaches a sandbox: the same path as agent configuration. `load` is the
 * sandbox's workloadFilesLoader (src/services/sandboxes/workload-files.ts: the user's
 * configuration rendered by agent-config, this sandbox's applied layer over it, credentials, the
 * MCP server) and `write` is the driver's writeFiles: files, never shell strings.
 */
export type SandboxFileWriter = {
  load(userId: string, sandboxId: string): Promise<WorkloadFile[]>;
  write(sandboxId: string, files: WorkloadFile[]): Promise<void>;
};

/** Sandboxes in these statuses are between two states: their files are about to be rewritten. */
const IN_TRANSITION: readonly SandboxStatus[] = ["creating", "starting", "stopping", "deleting"];

export type ApplyResult = OnboardingView & { written: boolean; paths: string[] };

/**
 * Applies the generated layer. It becomes the sandbox's layer (kept in `applied`, so every later
 * start writes it again) and, when the sandbox is running, its files are written into it now; a
 * stopped sandbox gets them when it starts. Applying again writes the same bytes: idempotent.
 * If the write fails the session is `failed` with the reason and the previous layer is restored.
 */
export async function applyOnboarding(ctx: ServiceContext, writer: SandboxFileWriter, sandboxId: string): Promise<ApplyResult> {
  let previous: Record<string, unknown> | null = null;
  // Set inside the step's transaction (a closure TypeScript cannot follow).
  let sandboxStatus = "stopped" as SandboxStatus;
  const applying = await step(ctx, sandboxId, "apply", "onboarding.apply", async (_tx, session, sandbox) => {
    if (IN_TRANSITION.includes(sandbox.status)) {
      throw new AppError("INVALID_STATE", `The sandbox is ${sandbox.status}; apply once it is running or stopped`, { sandboxStatus: sandbox.status });
    }
    if (!session.generated) throw new AppError("INVALID_STATE", "Nothing generated to apply: run generate first", { status: session.status });
    previous = session.applied;
    sandboxStatus = sandbox.status;
    return { applied: session.generated, errorMessage: null };
  });

  const layer = applying.generated as unknown as GeneratedLayer;
  let written = false;
  let failure: string | null = null;
  if (sandboxStatus === "running") {
    try {
      await writer.write(sandboxId, await writer.load(ctx.userId, sandboxId));
      written = true;
    } catch (err) {
      if (isDatabaseUnavailable(err)) throw err;
      failure = err instanceof Error ? err.message : String(err);
      ctx.logger.warn({ sandboxId, err: { message: failure } }, "onboarding files could not be written into the sandbox");
    }
  }

  const done = await ctx.db.transaction(async (tx) => {
    const [row] = await tx
      .update(onboardingSessions)
      .set(
        failure === null
          ? { status: "completed", appliedAt: ctx.now(), updatedAt: ctx.now(), version: sql`${onboardingSessions.version} + 1` }
          : {
              status: "failed",
              applied: previous,
              errorMessage: `Writing the files into the sandbox failed: ${excerpt(failure, 500)}`,
              updatedAt: ctx.now(),
              version: sql`${onboardingSessions.version} + 1`,
            },
      )
      .where(and(eq(onboardingSessions.id, applying.id), eq(onboardingSessions.status, "applying")))
      .returning();
    if (failure !== null) {
      await recordActivity(tx, ctx, { action: "onboarding.fail", entityType: "sandbox", entityId: sandboxId, metadata: { step: "apply" } });
    }
    return row ?? applying;
  });
  const paths = [`${OPENCODE_CONFIG_DIR}/opencode.json`, `${OPENCODE_CONFIG_DIR}/AGENTS.md`, ...layer.files.map((f) => agentFilePath(f.type, f.name, f.extension))];
  return { ...toView(done), written, paths };
}
