// One subscription's result as the client holds it: the rows, and which
// version of which result they are (`epoch`, `version`), with the related
// entries of a query that includes relations (related.ts). It outlives
// connections, so that a reconnect can resume from it instead of
// downloading everything again.
import type { Placed, Related, Since } from './generated'
import { applyDiff, DiffError } from './applyDiff'
import type { RelatedRows } from './related'

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
  /** Related entries that changed, for a query with `include`. */
  related?: readonly Related[]
  upserts: readonly Placed<R>[]
  deletes: readonly K[]
}

export class MaterializedRows<R extends object, C extends keyof R> {
  private current: R[] | null = null
  /** The rows as handed out: `current` itself, or with the related rows nested in. */
  private shown: R[] | null = null
  private resultEpoch: string | null = null
  private resultVersion: number | null = null
  private resultCount: number | null = null

  /**
   * `key` is the key column; `related`, for a query with `include`, keeps
   * its related entries, which then apply with the rows.
   */
  constructor(
    private readonly key: C,
    private readonly relatedRows: RelatedRows<R> | null = null,
  ) {}

  /**
   * The rows, or null before the first snapshot. With included relations,
   * each row carries its related rows (and counts); otherwise the rows are
   * the server's, as they arrived.
   */
  get rows(): R[] | null {
    return this.shown
  }

  /** The included relations' entries, for a query with `include`; else null. */
  get related(): RelatedRows<R> | null {
    return this.relatedRows
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

  /**
   * Whether a frame's `related` can be applied (absent, or well-formed).
   * Without included relations, anything is: it is not used.
   */
  accepts(related: unknown): boolean {
    return this.relatedRows === null || this.relatedRows.accepts(related)
  }

  /**
   * A snapshot: the complete result at `version` of `epoch`, with every
   * related entry of its rows (`related`), which replace those held.
   */
  replace(rows: readonly R[], epoch: string, version: number, count?: number, related?: readonly Related[]): void {
    this.current = rows.slice()
    this.resultEpoch = epoch
    this.resultVersion = version
    this.resultCount = typeof count === 'number' ? count : null
    if (this.relatedRows) {
      this.relatedRows.reset(related)
      this.shown = this.relatedRows.settle(this.current)
    } else {
      this.shown = this.current
    }
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
    if (!this.accepts(diff.related)) return 'invalid'
    let next: R[]
    try {
      next = applyDiff<R, C>(rows, diff.upserts, diff.deletes, this.key)
    } catch (e) {
      if (e instanceof DiffError) return 'invalid'
      throw e
    }
    this.current = next
    this.resultVersion = diff.to
    // A diff without a count leaves the count it started from.
    if (typeof diff.count === 'number') this.resultCount = diff.count
    if (this.relatedRows) {
      // The entries move to `to` with the rows: an upserted row keeps the
      // entry of its value, which the diff resends only when it changed.
      this.relatedRows.merge(diff.related)
      this.shown = this.relatedRows.settle(next)
    } else {
      this.shown = next
    }
    return 'applied'
  }
}
