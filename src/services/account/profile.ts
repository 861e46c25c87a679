import { z } from "@hono/zod-openapi";
import { eq } from "drizzle-orm";
import { user } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import { notFound } from "../../errors";
import { displayName } from "../../lib/text";
import { recordActivity } from "../activity/record";

/** A display name: what PATCH /me takes, and what a sign-up may set (src/auth/profile-rules.ts). */
export const PROFILE_NAME_MAX = 100;
export const profileName = () => displayName(PROFILE_NAME_MAX);
/** An avatar: an https URL, or null. */
export const profileImage = () =>
  z
    .string()
    .url()
    .max(2048)
    .refine((u) => u.startsWith("https://"), { error: "must be an https URL" });

export type Profile = {
  id: string;
  name: string;
  email: string;
  emailVerified: boolean;
  image: string | null;
  createdAt: string;
  updatedAt: string;
};

type UserFields = Pick<typeof user.$inferSelect, "id" | "name" | "email" | "emailVerified" | "createdAt" | "updatedAt"> & {
  image?: string | null | undefined;
};

export function toProfile(u: UserFields): Profile {
  return {
    id: u.id,
    name: u.name,
    email: u.email,
    emailVerified: u.emailVerified,
    image: u.image ?? null,
    createdAt: u.createdAt.toISOString(),
    updatedAt: u.updatedAt.toISOString(),
  };
}

export type ProfileUpdate = { name?: string | undefined; image?: string | null | undefined };

/** Changes the caller's display name and avatar; the email is changed through Better Auth. */
export async function updateProfile(ctx: ServiceContext, input: ProfileUpdate): Promise<Profile> {
  return ctx.db.transaction(async (tx) => {
    const changes: Partial<typeof user.$inferInsert> = { updatedAt: ctx.now() };
    if (input.name !== undefined) changes.name = input.name;
    if (input.image !== undefined) changes.image = input.image;
    const [row] = await tx.update(user).set(changes).where(eq(user.id, ctx.userId)).returning();
    if (!row) throw notFound("User");
    await recordActivity(tx, ctx, {
      action: "account.update",
      entityType: "user",
      entityId: ctx.userId,
      metadata: { fields: Object.keys(input).filter((k) => input[k as keyof ProfileUpdate] !== undefined) },
    });
    return toProfile(row);
  });
}
