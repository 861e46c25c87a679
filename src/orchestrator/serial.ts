/**
 * Runs the operations given for one key one at a time, in order, in this process (the drivers'
 * start, stop and remove of one sandbox). A failed operation does not stop the next one.
 */
export class KeyedQueue {
  private readonly queues = new Map<string, Promise<void>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(key) ?? Promise.resolve();
    const run = previous.then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return run;
  }
}
