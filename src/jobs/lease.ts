import { sql } from "drizzle-orm";
import { queryRows, ts, type Executor } from "../database/client";

/**
 * Leader election through the leases table: one holder per name until the lease lapses. A holder
 * renews by acquiring again before expiry; a dead holder's lease simply runs out. Works the same
 * on PostgreSQL and PGlite (one atomic INSERT … ON CONFLICT DO UPDATE … WHERE).
 */
export async function acquireLease(db: Executor, name: string, holder: string, now: Date, ttlMs: number): Promise<boolean> {
  const rows = await queryRows<{ holder: string }>(
    db,
    sql`insert into leases (name, holder, expires_at, acquired_at) values (${name}, ${holder}, ${ts(new Date(now.getTime() + ttlMs))}, ${ts(now)})
        on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at,
          acquired_at = case when leases.holder = excluded.holder then leases.acquired_at else excluded.acquired_at end
        where leases.holder = excluded.holder or leases.expires_at < ${ts(now)}
        returning holder`,
  );
  return rows[0]?.holder === holder;
}

export async function releaseLease(db: Executor, name: string, holder: string): Promise<void> {
  await db.execute(sql`delete from leases where name = ${name} and holder = ${holder}`);
}
