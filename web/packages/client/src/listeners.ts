// The app's listeners of one kind of event (status changes, errors,
// counters, inspector events), and `deliver`, which every call into app
// code goes through: a listener or subscriber that throws is reported
// without breaking the client or the listeners after it.

/** Runs a listener; one that throws is reported without breaking the client. */
export function deliver(fn: () => void): void {
  try {
    fn()
  } catch (e) {
    const report = (globalThis as { reportError?: (e: unknown) => void }).reportError
    if (typeof report === 'function') report(e)
    else console.error(e)
  }
}

/** The listeners of one kind of event, called in the order they were added. */
export class Listeners<T> {
  private readonly listeners = new Set<(value: T) => void>()

  /** Adds `listener`; returns a function that removes it. */
  add(listener: (value: T) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Whether nobody listens: then the event need not even be made. */
  get empty(): boolean {
    return this.listeners.size === 0
  }

  /** Calls every listener with `value`; one added or removed meanwhile does not change this round. */
  emit(value: T): void {
    for (const listener of [...this.listeners]) deliver(() => listener(value))
  }
}
