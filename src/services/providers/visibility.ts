import { and, eq, isNull, or } from "drizzle-orm";
import { providers } from "../../../db/schema";
import type { ServiceContext } from "../../context";
import type { Executor } from "../../database/client";
import { notFound } from "../../errors";

export type ProviderRecord = typeof providers.$inferSelect;

/** Built-in providers and the caller's own custom ones; another user's custom provider is 404. */
export const visibleTo = (userId: string) => or(isNull(providers.ownerUserId), eq(providers.ownerUserId, userId));

export async function requireVisibleProvider(db: Executor, ctx: Pick<ServiceContext, "userId">, id: string): Promise<ProviderRecord> {
  const [row] = await db.select().from(providers).where(and(eq(providers.id, id), visibleTo(ctx.userId)));
  if (!row) throw notFound("Provider", id);
  return row;
}
