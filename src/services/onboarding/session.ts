import { eq, sql } from "drizzle-orm";
import { onboardingSessions } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor, Tx } from "../../database/client";
import { AppError } from "../../errors";
import { newId } from "../../lib/ids";
import { recordActivity, type ActivityAction } from "../activity/record";
import type { Vault } from "../credentials/vault";
import { findOwned } from "../sandboxes/queries";
import type { SandboxRow } from "../sandboxes/view";
import { generateLayer, type GeneratedLayer } from "./generate";
import { recommendModels, type Recommendations } from "./recommend";
import { Requirements, type ModelPreference } from "./requirements";
import { APPLY_STALE_MS, canOnboard, nextStatus, ONBOARDING_RULES, type OnboardingAction, type OnboardingStatus } from "./state-machine";

export type SessionRow = typeof onboardingSessions.$inferSelect;

export type OnboardingView = {
  id: string;
  sandboxId: string;
  status: OnboardingStatus;
  requirements: Requirements | null;
  recommendations: Recommendations | null;
  /** The layer generate produced (a preview until applied); no secrets: the MCP token is added only on the way into the sandbox. */
  generated: GeneratedLayer | null;
  /** Whether an applied layer is in force for the sandbox (written on every start). */
  applied: boolean;
  errorMessage: string | null;
  appliedAt: string | null;
  version: number;
  createdAt: string;
  updatedAt: string;
};

export function toView(row: SessionRow): OnboardingView {
  return {
    id: row.id,
    sandboxId: row.sandboxId,
    status: row.status,
    requirements: (row.requirements as Requirements | null) ?? null,
    recommendations: (row.recommendations as Recommendations | null) ?? null,
    generated: (row.generated as GeneratedLayer | null) ?? null,
    applied: row.applied !== null,
    errorMessage: row.errorMessage,
    appliedAt: row.appliedAt?.toISOString() ?? null,
    version: row.version,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

/** The sandbox's session; 404 for another user's sandbox and for a session not started yet. */
export async function getOnboarding(ctx: ServiceContext, sandboxId: string): Promise<OnboardingView> {
  await findOwned(ctx.db, ctx, sandboxId);
  const [row] = await ctx.db.select().from(onboardingSessions).where(eq(onboardingSessions.sandboxId, sandboxId));
  if (!row) throw new AppError("NOT_FOUND", NOT_STARTED);
  return toView(row);
}

async function ensureSession(tx: Executor, ctx: ServiceContext, sandboxId: string): Promise<boolean> {
  const now = ctx.now();
  const inserted = await tx
    .insert(onboardingSessions)
    .values({ id: newId("onboarding"), sandboxId, userId: ctx.userId, createdAt: now, updatedAt: now })
    .onConflictDoNothing()
    .returning({ id: onboardingSessions.id });
  return inserted.length > 0;
}

/** Starts the sandbox's session (pending); asking again returns the one that exists. */
export async function startOnboarding(ctx: ServiceContext, sandboxId: string): Promise<{ session: OnboardingView; created: boolean }> {
  return ctx.db.transaction(async (tx) => {
    await findOwned(tx, ctx, sandboxId);
    const created = await ensureSession(tx, ctx, sandboxId);
    const [row] = await tx.select().from(onboardingSessions).where(eq(onboardingSessions.sandboxId, sandboxId));
    return { session: toView(row!), created };
  });
}

/** What a sandbox whose onboarding has not started is told (GET, and a first step that may not come first). */
const NOT_STARTED = "Onboarding has not started for this sandbox: start it (POST …/onboarding), record the requirements (PUT …/onboarding/requirements) or skip it";

/** A move the state machine refuses; `status` null when no session existed before this step. */
export function invalidState(action: OnboardingAction, status: OnboardingStatus | null): AppError {
  const move = action === "skip" ? "be skipped" : `do "${action}"`;
  const message = status === null ? `Onboarding cannot ${move} first. ${NOT_STARTED}` : `Onboarding cannot ${move} while it is ${status}`;
  return new AppError("INVALID_STATE", message, {
    status,
    action,
    allowedFrom: ONBOARDING_RULES[action].from,
  });
}

/**
 * Runs one step: locks the sandbox's session (created on first use), checks the move against
 * the state machine, applies the step's changes and bumps the version, and records the activity
 * entry, all in one transaction. A concurrent step waits on the row lock and then sees the
 * status this one left.
 */
export async function step(
  ctx: ServiceContext,
  sandboxId: string,
  action: OnboardingAction,
  activity: ActivityAction,
  change: (tx: Tx, session: SessionRow, sandbox: SandboxRow) => Promise<Partial<typeof onboardingSessions.$inferInsert>>,
  metadata: (session: SessionRow) => Record<string, unknown> = () => ({}),
): Promise<SessionRow> {
  return ctx.db.transaction(async (tx) => {
    const sandbox = await findOwned(tx, ctx, sandboxId);
    const started = await ensureSession(tx, ctx, sandboxId);
    const [session] = await tx.select().from(onboardingSessions).where(eq(onboardingSessions.sandboxId, sandboxId)).for("update");
    if (!session) throw new Error("onboarding session vanished inside its own transaction");
    const staleApply = action === "apply" && session.status === "applying" && ctx.now().getTime() - session.updatedAt.getTime() > APPLY_STALE_MS;
    // A session created by this refused step goes with its rollback: it never was.
    if (!canOnboard(action, session.status) && !staleApply) throw invalidState(action, started ? null : session.status);
    const changes = await change(tx, session, sandbox);
    const [updated] = await tx
      .update(onboardingSessions)
      .set({ status: nextStatus(action, staleApply ? "failed" : session.status), ...changes, updatedAt: ctx.now(), version: sql`${onboardingSessions.version} + 1` })
      .where(eq(onboardingSessions.id, session.id))
      .returning();
    await recordActivity(tx, ctx, {
      action: activity,
      entityType: "sandbox",
      entityId: sandboxId,
      metadata: { from: session.status, to: updated!.status, ...metadata(updated!) },
    });
    return updated!;
  });
}

export async function recordRequirements(ctx: ServiceContext, sandboxId: string, input: Requirements): Promise<OnboardingView> {
  const requirements = Requirements.parse(input);
  const row = await step(
    ctx,
    sandboxId,
    "requirements",
    "onboarding.requirements",
    // New requirements invalidate what was derived from the old ones.
    async () => ({ requirements, recommendations: null, generated: null, errorMessage: null }),
    () => ({ projectType: requirements.projectType, languages: requirements.languages }),
  );
  return toView(row);
}

export async function recommend(ctx: ServiceContext, vault: Vault, sandboxId: string, preference?: ModelPreference): Promise<OnboardingView> {
  // Asked outside the step's transaction: the vault runs on its own connection.
  const configured = await vault.configuredProviderIds();
  const row = await step(
    ctx,
    sandboxId,
    "recommend",
    "onboarding.recommend",
    async (tx, session) => {
      const req = session.requirements as Requirements;
      const recommendations = await recommendModels(ctx, tx, configured, preference ?? req.modelPreference);
      // Generated files carry the previous model choice: they are regenerated on the next generate.
      return { recommendations: recommendations as unknown as Record<string, unknown>, generated: null, status: "gathering" };
    },
    (s) => {
      const r = s.recommendations as unknown as Recommendations;
      return { preference: r.preference, primary: r.primary && `${r.primary.providerId}/${r.primary.modelId}`, small: r.small && `${r.small.providerId}/${r.small.modelId}` };
    },
  );
  return toView(row);
}

export async function generate(ctx: ServiceContext, vault: Vault, sandboxId: string): Promise<OnboardingView> {
  const configured = await vault.configuredProviderIds();
  const row = await step(
    ctx,
    sandboxId,
    "generate",
    "onboarding.generate",
    async (tx, session, sandbox) => {
      const requirements = session.requirements as Requirements;
      const recommendations =
        (session.recommendations as unknown as Recommendations | null) ?? (await recommendModels(ctx, tx, configured, requirements.modelPreference));
      const generated = await generateLayer(tx, { sandboxName: sandbox.name, requirements, recommendations });
      return {
        recommendations: recommendations as unknown as Record<string, unknown>,
        generated: generated as unknown as Record<string, unknown>,
        errorMessage: null,
      };
    },
    (s) => ({ sources: (s.generated as unknown as GeneratedLayer).sources, files: (s.generated as unknown as GeneratedLayer).files.length }),
  );
  return toView(row);
}

export async function skipOnboarding(ctx: ServiceContext, sandboxId: string): Promise<OnboardingView> {
  return toView(await step(ctx, sandboxId, "skip", "onboarding.skip", async () => ({ errorMessage: null })));
}
