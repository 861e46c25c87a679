// The whole data model. One file per domain; drizzle-kit diffs this module into db/migrations.
export * from "./auth";
export * from "./containers";
export * from "./sandboxes";
export * from "./chat";
export * from "./providers";
export * from "./settings";
export * from "./activity";
export * from "./knowledge";
export * from "./onboarding";
export * from "./system";
export * from "./legacy-import";
