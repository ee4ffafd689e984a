// Pure application of a keyed diff. Generic over the row type: rows are
// keyed by their `id`.
import type { Placed } from '../generated'

/** A diff that cannot apply to the current rows (a bug or a missed message). */
export class DiffError extends Error {
  override name = 'DiffError'
}

/**
 * Turns `rows` into the next result: removes every key in `deletes` and every
 * key of an upserted row, then inserts the upserted rows in ascending `at`
 * order, each at index `at`. Rows not mentioned keep their relative order.
 *
 * Returns a new array (the input is not modified); untouched rows are the
 * same objects as before. Runs in O(n + k log k) for n rows and k upserts.
 * Throws {@link DiffError} when an index lies past the end of the result or
 * two upserts share an index or a key.
 */
export function applyDiff<R extends { readonly id: unknown }>(
  rows: readonly R[],
  upserts: readonly Placed<R>[],
  deletes: readonly R['id'][],
): R[] {
  const gone = new Set<R['id']>(deletes)
  for (const { row } of upserts) gone.add(row.id)
  const kept = gone.size === 0 ? rows.slice() : rows.filter((r) => !gone.has(r.id))
  if (upserts.length === 0) return kept

  const placed = upserts.length > 1 ? [...upserts].sort((a, b) => a.at - b.at) : upserts
  const out: R[] = []
  const seen = new Set<R['id']>()
  let next = 0
  for (const { at, row } of placed) {
    if (!Number.isInteger(at) || at < out.length) {
      throw new DiffError(`upsert index ${at} is invalid or repeated`)
    }
    if (seen.has(row.id)) throw new DiffError(`key ${String(row.id)} is upserted twice`)
    seen.add(row.id)
    while (out.length < at) {
      if (next >= kept.length) {
        throw new DiffError(`upsert index ${at} is past the end of the result`)
      }
      out.push(kept[next++] as R)
    }
    out.push(row)
  }
  while (next < kept.length) out.push(kept[next++] as R)
  return out
}
