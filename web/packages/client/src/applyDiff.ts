// Pure application of a keyed diff. Generic over the row type and its key:
// the caller names the key column (a live table's declared key) or passes a
// function that reads it. Keys are compared as they are (`Set` identity), so
// a bigint key that travels as a decimal string stays a string here.
import type { Placed } from './generated'

/** A diff that cannot apply to the current rows (a bug or a missed message). */
export class DiffError extends Error {
  override name = 'DiffError'
}

/**
 * Turns `rows` into the next result: removes every key in `deletes` and every
 * key of an upserted row, then inserts the upserted rows in ascending `at`
 * order, each at index `at`. Rows not mentioned keep their relative order.
 * `key` is the key column's name, or a function returning a row's key.
 *
 * Returns a new array (the input is not modified); untouched rows are the
 * same objects as before. Runs in O(n + k log k) for n rows and k upserts.
 * Throws {@link DiffError} when an index lies past the end of the result or
 * two upserts share an index or a key.
 */
export function applyDiff<R, C extends keyof R>(
  rows: readonly R[],
  upserts: readonly Placed<R>[],
  deletes: readonly R[C][],
  key: C,
): R[]
export function applyDiff<R, K>(
  rows: readonly R[],
  upserts: readonly Placed<R>[],
  deletes: readonly K[],
  key: (row: R) => K,
): R[]
export function applyDiff<R, K>(
  rows: readonly R[],
  upserts: readonly Placed<R>[],
  deletes: readonly K[],
  key: keyof R | ((row: R) => K),
): R[] {
  // Both overloads tie `deletes` to what `key` reads, so the column's values are Ks.
  const keyOf = typeof key === 'function' ? key : (row: R) => row[key] as K
  const gone = new Set<K>(deletes)
  for (const { row } of upserts) gone.add(keyOf(row))
  const kept = gone.size === 0 ? rows.slice() : rows.filter((r) => !gone.has(keyOf(r)))
  if (upserts.length === 0) return kept

  const placed = upserts.length > 1 ? [...upserts].sort((a, b) => a.at - b.at) : upserts
  const out: R[] = []
  const seen = new Set<K>()
  let next = 0
  for (const { at, row } of placed) {
    if (!Number.isInteger(at) || at < out.length) {
      throw new DiffError(`upsert index ${at} is invalid or repeated`)
    }
    const k = keyOf(row)
    if (seen.has(k)) throw new DiffError(`key ${String(k)} is upserted twice`)
    seen.add(k)
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
