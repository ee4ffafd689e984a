// One subscription's result as the client holds it: the rows, and which
// version of which result they are (`epoch`, `version`). It outlives
// connections, so that a reconnect can resume from it instead of
// downloading everything again.
import type { Placed, Since } from './generated'
import { applyDiff, DiffError } from './applyDiff'

/** What applying a diff did. */
export type DiffOutcome =
  /** The rows moved to the diff's `to`. */
  | 'applied'
  /** The diff is older than the rows (already part of them): nothing changed. */
  | 'stale'
  /** The diff does not start at the rows' version: something was missed. */
  | 'gap'
  /** The diff does not fit the rows (an index or key is wrong). */
  | 'invalid'

export interface DiffBody<R, K> {
  from: number
  to: number
  /** The new live count, when the query has one and it changed. */
  count?: number
  upserts: readonly Placed<R>[]
  deletes: readonly K[]
}

export class MaterializedRows<R, C extends keyof R> {
  private current: R[] | null = null
  private resultEpoch: string | null = null
  private resultVersion: number | null = null
  private resultCount: number | null = null

  constructor(private readonly key: C) {}

  /** The rows, or null before the first snapshot. */
  get rows(): R[] | null {
    return this.current
  }

  get epoch(): string | null {
    return this.resultEpoch
  }

  get version(): number | null {
    return this.resultVersion
  }

  /** The live count at this version, for a query with `count: true`; else null. */
  get count(): number | null {
    return this.resultCount
  }

  /** What a subscribe may resume from; undefined when nothing is held. */
  since(): Since | undefined {
    if (this.current === null || this.resultEpoch === null || this.resultVersion === null) return undefined
    return { epoch: this.resultEpoch, version: this.resultVersion }
  }

  /** A snapshot: the complete result at `version` of `epoch`. */
  replace(rows: readonly R[], epoch: string, version: number, count?: number): void {
    this.current = rows.slice()
    this.resultEpoch = epoch
    this.resultVersion = version
    this.resultCount = typeof count === 'number' ? count : null
  }

  /**
   * A `resumed` answer: the server continues from `from` of `epoch`. True
   * when that is exactly what is held (the rows stay, diffs follow); false
   * when it is not, and the rows cannot be trusted to continue.
   */
  resume(epoch: string, from: number): boolean {
    return this.current !== null && this.resultEpoch === epoch && this.resultVersion === from
  }

  /** Applies a diff of the same result (same subscription, so same epoch). */
  apply(diff: DiffBody<R, R[C]>): DiffOutcome {
    const rows = this.current
    const version = this.resultVersion
    if (rows === null || version === null) return 'gap'
    if (diff.to <= version) return 'stale'
    if (diff.from !== version) return 'gap'
    try {
      this.current = applyDiff<R, C>(rows, diff.upserts, diff.deletes, this.key)
    } catch (e) {
      if (e instanceof DiffError) return 'invalid'
      throw e
    }
    this.resultVersion = diff.to
    // A diff without a count leaves the count it started from.
    if (typeof diff.count === 'number') this.resultCount = diff.count
    return 'applied'
  }
}
