/**
 * A sandbox uid range of its own for each Warren a test starts (SANDBOX_UID_BASE, or a driver's
 * uidBase). The loopback guard and file ownership rest on no two running sandboxes sharing a host
 * uid, and the guard's tables are host-wide: with test files running two at a time
 * (`bun test --parallel`), two data directories claiming from the same base hand the same uid to
 * two running sandboxes, and each guard then judges the other's connections (a sandbox's
 * connection to an allow-listed port of its own Warren was dropped by the other Warren's table).
 * The worker id keeps concurrent files apart; the random part keeps apart runs on one host, and
 * the Warrens one file starts one after another.
 */
export function testUidBase(): number {
  const worker = Number(process.env.BUN_TEST_WORKER_ID ?? 0) || 0;
  return 1_000_000 + (worker % 400) * 10_000_000 + Math.floor(Math.random() * 9_000) * 1_000;
}
