import type { AppError } from "../errors";

/**
 * Things one user may hold open at once on this instance (event streams, proxied connections),
 * counted per user: taking one over `max` throws what `refusal` builds (a 429), and a slot's
 * release may be called any number of times.
 */
export class UserSlots {
  private readonly open = new Map<string, number>();
  constructor(
    readonly max: number,
    private readonly refusal: (max: number) => AppError,
  ) {}

  take(userId: string): () => void {
    const taken = this.open.get(userId) ?? 0;
    if (taken >= this.max) throw this.refusal(this.max);
    this.open.set(userId, taken + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(userId) ?? 1) - 1;
      if (left > 0) this.open.set(userId, left);
      else this.open.delete(userId);
    };
  }

  /** How many the user holds (for tests and stats). */
  held(userId: string): number {
    return this.open.get(userId) ?? 0;
  }
}
