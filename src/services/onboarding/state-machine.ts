/**
 * The onboarding state machine, one session per sandbox:
 *
 *   pending ──requirements──▶ gathering ──generate──▶ generating ──apply──▶ applying ──▶ completed
 *                               ▲  │ recommend            │ │ recommend, requirements └──▶ failed
 *                               └──┘                        └─┴──────────────▶ gathering
 *   skip: pending, gathering, generating, failed ──▶ skipped
 *   requirements again from skipped, failed or completed starts over (▶ gathering)
 *   apply again from completed (idempotent) or failed (retry), and from an `applying` left
 *   behind by a crashed instance once it is older than APPLY_STALE_MS
 *
 * Anything else is 409 INVALID_STATE with the current status. "applying" is held only while the
 * files are being written; nothing but apply moves a session out of it.
 */

export const ONBOARDING_STATUSES = ["pending", "gathering", "generating", "applying", "completed", "skipped", "failed"] as const;
export type OnboardingStatus = (typeof ONBOARDING_STATUSES)[number];

export const ONBOARDING_ACTIONS = ["requirements", "recommend", "generate", "apply", "skip"] as const;
export type OnboardingAction = (typeof ONBOARDING_ACTIONS)[number];

type Rule = { from: readonly OnboardingStatus[]; to: OnboardingStatus | "same" };

export const ONBOARDING_RULES: Record<OnboardingAction, Rule> = {
  requirements: { from: ["pending", "gathering", "generating", "skipped", "failed", "completed"], to: "gathering" },
  // Changes the model choice, so any generated files are dropped: back to gathering.
  recommend: { from: ["gathering", "generating"], to: "gathering" },
  generate: { from: ["gathering", "generating"], to: "generating" },
  apply: { from: ["generating", "completed", "failed"], to: "applying" },
  skip: { from: ["pending", "gathering", "generating", "failed"], to: "skipped" },
};

/** An `applying` older than this was abandoned (the instance died mid-write) and may be retried. */
export const APPLY_STALE_MS = 5 * 60_000;

export function canOnboard(action: OnboardingAction, status: OnboardingStatus): boolean {
  return ONBOARDING_RULES[action].from.includes(status);
}

/** The status after `action` from `status` (only meaningful when canOnboard). */
export function nextStatus(action: OnboardingAction, status: OnboardingStatus): OnboardingStatus {
  const to = ONBOARDING_RULES[action].to;
  return to === "same" ? status : to;
}
