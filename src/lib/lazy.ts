/**
 * An object built on first use: every property read goes to `create()`'s result, made once (its
 * methods bound to it). For per-request objects that most requests never touch (the request's
 * logger, the credential vault). `early` may answer a read without building it (undefined: build).
 */
export function lazyObject<T extends object>(create: () => T, early?: (prop: string | symbol) => unknown): T {
  let value: T | undefined;
  return new Proxy({} as T, {
    get(_target, prop) {
      const answer = early?.(prop);
      if (answer !== undefined) return answer;
      value ??= create();
      const v = Reflect.get(value, prop, value) as unknown;
      return typeof v === "function" ? (v as (...args: unknown[]) => unknown).bind(value) : v;
    },
  });
}
