/**
 * The sandbox lifecycle. `status` is what is true now; `desiredStatus` is what the user asked for.
 * A user request moves a sandbox from a settled status into a transitional one and queues an
 * operation; the worker drives the orchestrator and settles the outcome. Any other move is
 * 409 INVALID_STATE. Status is never written on reads.
 *
 *   stopped ──start──▶ starting ──worker──▶ running ──stop──▶ stopping ──worker──▶ stopped
 *   error   ──start──▶ starting            running ──restart──▶ stopping ─▶ starting ─▶ running
 *   any but deleting ──delete──▶ deleting ──worker──▶ (row removed)
 */

export type SandboxStatus = "creating" | "starting" | "running" | "stopping" | "stopped" | "error" | "deleting";
export type Action = "start" | "stop" | "restart" | "delete";

type Rule = { from: readonly SandboxStatus[]; to: SandboxStatus; desired: "running" | "stopped" | "deleted" };

export const RULES: Record<Action, Rule> = {
  start: { from: ["stopped", "error"], to: "starting", desired: "running" },
  stop: { from: ["running", "starting", "error"], to: "stopping", desired: "stopped" },
  restart: { from: ["running", "error"], to: "stopping", desired: "running" },
  delete: { from: ["creating", "starting", "running", "stopping", "stopped", "error"], to: "deleting", desired: "deleted" },
};

export const TRANSITIONAL: readonly SandboxStatus[] = ["creating", "starting", "stopping", "deleting"];

export function canApply(action: Action, status: SandboxStatus): boolean {
  return RULES[action].from.includes(status);
}

/** Only stopped sandboxes may change tier, flavor or add-ons (they shape the workload). */
export const RECONFIGURABLE: readonly SandboxStatus[] = ["stopped", "error"];
