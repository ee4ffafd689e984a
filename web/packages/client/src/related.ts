// One subscription's included relations (`include` in its query): the
// related entries the server sent, kept by relation and by the value of the
// relation's local column, and the rows as the subscriber sees them, with
// each relation's rows nested in. The entries are part of the versioned
// result: `MaterializedRows` applies them with the snapshot or diff they
// arrive in, then `settle` drops the ones no row refers to any more and
// nests. A row gets a new object only when its own data or one of its
// entries changed, so that views re-render little.
import { liveTables, type LiveQuery, type Related } from './generated'
import type { Table } from './types'

/** One relation a query includes, as the client applies it. */
export interface Inclusion {
  /** The include's (and the relation's) name: the field it adds to each row. */
  readonly name: string
  readonly kind: 'has_many' | 'belongs_to'
  /** The related rows' table. */
  readonly target: Table
  /**
   * The row's column whose value addresses the related rows: the key
   * column for `has_many`, the foreign key for `belongs_to`.
   */
  readonly local: string
  /** `has_many` with `count: true`: rows also get `<name>_count`. */
  readonly count: boolean
}

/**
 * The relations `query` includes, in the order its table declares them.
 * Includes the table does not declare, or that are off (`false`, absent),
 * are not among them.
 */
export function inclusionsOf(query: LiveQuery): Inclusion[] {
  const include = (query as { include?: unknown }).include
  if (include === null || typeof include !== 'object') return []
  const asked = include as Record<string, unknown>
  const out: Inclusion[] = []
  for (const relation of liveTables[query.table].relations) {
    const value = asked[relation.name]
    if (value !== true && (value === null || typeof value !== 'object')) continue
    out.push({
      name: relation.name,
      kind: relation.kind,
      target: relation.target,
      local: relation.local,
      count: relation.kind === 'has_many' && (value as { count?: unknown }).count === true,
    })
  }
  return out
}

/** What `inspect()` shows of one included relation. */
export interface RelationInfo {
  readonly name: string
  readonly kind: 'has_many' | 'belongs_to'
  readonly target: Table
  /** Whether rows also carry `<name>_count`. */
  readonly count: boolean
  /** Entries held: values of the local column that have related rows. */
  readonly entries: number
  /** Related rows held, over all entries. */
  readonly rows: number
}

/**
 * The value of `row`'s local column of `inc`, as entries are addressed
 * (`String(of)`); undefined when it has none (a null foreign key).
 */
function localValue(row: object, inc: Inclusion): string | undefined {
  const value = (row as Record<string, unknown>)[inc.local]
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined
}

/** The nested row made for one row, and the entries it was made from. */
interface Made<R> {
  readonly row: R
  readonly from: readonly (Related | undefined)[]
}

/** A relation's entries, by `String(of)`. */
type Entries = Map<string, Related>

/**
 * The related entries of one subscription and the nested rows made of them.
 * `R` is the row type; nested rows are handed out as `R` with the extra
 * fields (`RelatedOf` in types.ts describes them).
 */
export class RelatedRows<R extends object> {
  private readonly entries = new Map<string, Entries>()
  /** The nested row of each current row, to reuse while nothing it shows changed. */
  private made = new Map<R, Made<R>>()

  constructor(readonly inclusions: readonly Inclusion[]) {
    for (const inc of inclusions) this.entries.set(inc.name, new Map())
  }

  /**
   * Whether a frame's `related` can be applied: absent, or a list of
   * entries each with a relation, an `of` and rows (of the relation's table,
   * for a relation this query includes).
   */
  accepts(list: unknown): list is readonly Related[] | undefined {
    if (list === undefined) return true
    if (!Array.isArray(list)) return false
    return list.every((entry: unknown) => {
      if (entry === null || typeof entry !== 'object') return false
      const e = entry as Partial<Record<keyof Related, unknown>>
      if (typeof e.relation !== 'string') return false
      if (typeof e.of !== 'string' && typeof e.of !== 'number') return false
      if (!Array.isArray(e.rows)) return false
      if (e.count !== undefined && typeof e.count !== 'number') return false
      const inc = this.inclusions.find((i) => i.name === e.relation)
      return inc === undefined || e.table === inc.target
    })
  }

  /** A snapshot's entries: they replace every entry held. */
  reset(list: readonly Related[] | undefined): void {
    for (const entries of this.entries.values()) entries.clear()
    this.merge(list)
  }

  /** A diff's entries: each replaces the one with the same relation and value. */
  merge(list: readonly Related[] | undefined): void {
    if (!list) return
    for (const entry of list) {
      // Not a relation this query includes: nothing would show it.
      const entries = this.entries.get(entry.relation)
      if (!entries) continue
      const of = String(entry.of)
      // An empty entry shows what no entry does (no rows, a count of 0).
      if (entry.rows.length === 0 && !entry.count) entries.delete(of)
      else entries.set(of, entry)
    }
  }

  /**
   * After the entries and `rows` moved to the same version: drops the
   * entries whose value no row carries any more, and returns the rows
   * with their relations nested in (a new array). A row whose own object
   * and entries are what they were keeps its previous nested object.
   */
  settle(rows: readonly R[]): R[] {
    this.prune(rows)
    const previous = this.made
    const made = new Map<R, Made<R>>()
    const out = rows.map((row) => {
      const from = this.inclusions.map((inc) => this.entryOf(inc, row))
      const before = previous.get(row)
      const kept = before !== undefined && before.from.every((entry, i) => entry === from[i])
      const next: Made<R> = kept ? before : { row: this.nest(row, from), from }
      made.set(row, next)
      return next.row
    })
    this.made = made
    return out
  }

  /** Each included relation with how much of it is held. */
  info(): RelationInfo[] {
    return this.inclusions.map((inc) => {
      const entries = this.entries.get(inc.name)
      let rows = 0
      for (const entry of entries?.values() ?? []) rows += entry.rows.length
      return {
        name: inc.name,
        kind: inc.kind,
        target: inc.target,
        count: inc.count,
        entries: entries?.size ?? 0,
        rows,
      }
    })
  }

  /** The entry `row` refers to through `inc`, if any. */
  private entryOf(inc: Inclusion, row: R): Related | undefined {
    const value = localValue(row, inc)
    return value === undefined ? undefined : this.entries.get(inc.name)?.get(value)
  }

  private prune(rows: readonly R[]): void {
    for (const inc of this.inclusions) {
      const entries = this.entries.get(inc.name)
      if (!entries || entries.size === 0) continue
      const carried = new Set<string>()
      for (const row of rows) {
        const value = localValue(row, inc)
        if (value !== undefined) carried.add(value)
      }
      for (const value of entries.keys()) if (!carried.has(value)) entries.delete(value)
    }
  }

  private nest(row: R, from: readonly (Related | undefined)[]): R {
    const out = { ...row } as Record<string, unknown>
    this.inclusions.forEach((inc, i) => {
      const entry = from[i]
      if (inc.kind === 'has_many') {
        out[inc.name] = entry ? entry.rows : []
        if (inc.count) out[`${inc.name}_count`] = entry ? (entry.count ?? entry.rows.length) : 0
      } else {
        out[inc.name] = entry?.rows[0] ?? null
      }
    })
    // The same row with the optional fields `RelatedOf` declares.
    return out as R
  }
}
