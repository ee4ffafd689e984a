/** Reconnect delay policy: exponential backoff with "full jitter". */
export interface BackoffPolicy {
  /** Upper bound of the first delay, in ms. */
  baseMs: number
  /** No delay is ever longer than this, in ms. */
  capMs: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, capMs: 10_000 }

/**
 * The delay before retry number `attempt` (0-based): a uniformly random
 * duration in [0, min(cap, base * 2^attempt)). `random` returns [0, 1).
 */
export function backoffDelay(
  attempt: number,
  random: () => number = Math.random,
  policy: BackoffPolicy = DEFAULT_BACKOFF,
): number {
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, Math.min(attempt, 30)))
  const r = Math.min(Math.max(random(), 0), 1)
  return Math.floor(r * ceiling)
}
