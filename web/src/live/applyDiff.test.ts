import { describe, expect, it } from 'vitest'
import type { Placed } from '@/generated'
import { applyDiff, DiffError } from './applyDiff'
import { prng } from '@/test/fixtures'

interface Row {
  id: number
  v: number
}

const r = (id: number, v = 0): Row => ({ id, v })

/** The textbook reading of the contract: filter, then splice in `at` order. */
function reference<R extends { id: unknown }>(
  rows: readonly R[],
  upserts: readonly Placed<R>[],
  deletes: readonly R['id'][],
): R[] {
  const gone = new Set<unknown>([...deletes, ...upserts.map((u) => u.row.id)])
  const out = rows.filter((x) => !gone.has(x.id))
  for (const u of [...upserts].sort((a, b) => a.at - b.at)) out.splice(u.at, 0, u.row)
  return out
}

describe('applyDiff', () => {
  it('inserts, updates, moves and deletes', () => {
    const old = [r(1), r(2), r(3), r(4)]
    // new: [4, 1, 3', 5]; 2 deleted, 3 changed, 4 moved to the front, 5 new
    // prettier-ignore
    const next = applyDiff(old, [{ at: 3, row: r(5) }, { at: 0, row: r(4) }, { at: 2, row: r(3, 9) }], [2])
    expect(next).toEqual([r(4), r(1), r(3, 9), r(5)])
  })

  it('keeps untouched rows as the same objects and does not modify its input', () => {
    const old = [r(1), r(2), r(3)]
    const copy = old.slice()
    const next = applyDiff(old, [{ at: 1, row: r(2, 1) }], [])
    expect(old).toEqual(copy)
    expect(next[0]).toBe(old[0])
    expect(next[2]).toBe(old[2])
    expect(next).not.toBe(old)
  })

  it('an empty diff returns an equal new array', () => {
    const old = [r(1), r(2)]
    const next = applyDiff(old, [], [])
    expect(next).toEqual(old)
    expect(next).not.toBe(old)
  })

  it('ignores deletes of keys that are not there', () => {
    expect(applyDiff([r(1)], [], [7, 8])).toEqual([r(1)])
  })

  it('appends at the end and fills an empty result', () => {
    // prettier-ignore
    expect(applyDiff([], [{ at: 0, row: r(1) }, { at: 1, row: r(2) }], [])).toEqual([r(1), r(2)])
    expect(applyDiff([r(1)], [{ at: 1, row: r(2) }], [])).toEqual([r(1), r(2)])
  })

  it('rejects an index past the end', () => {
    expect(() => applyDiff([r(1)], [{ at: 3, row: r(2) }], [])).toThrow(DiffError)
  })

  it('rejects repeated indexes and repeated keys', () => {
    // prettier-ignore
    expect(() => applyDiff([], [{ at: 0, row: r(1) }, { at: 0, row: r(2) }], [])).toThrow(DiffError)
    // prettier-ignore
    expect(() => applyDiff([], [{ at: 0, row: r(1) }, { at: 1, row: r(1, 2) }], [])).toThrow(DiffError)
  })

  it('works on string keys too', () => {
    const rows = [{ id: 'a' }, { id: 'b' }]
    expect(applyDiff(rows, [{ at: 0, row: { id: 'b' } }], ['a'])).toEqual([{ id: 'b' }])
  })
})

/**
 * A random valid diff from `old` to `next`, as a server may send it: every
 * new or changed row is upserted; unchanged rows stay put only if their old
 * order is kept, otherwise (and sometimes anyway) they are re-sent; extra
 * deletes of absent keys may appear; upserts come in any order.
 */
function randomDiff(rand: () => number, old: Row[], next: Row[]) {
  const oldPos = new Map(old.map((x, i) => [x.id, i]))
  const upserts: Placed<Row>[] = []
  let lastKept = -1
  next.forEach((row, at) => {
    const i = oldPos.get(row.id)
    const same = i !== undefined && old[i]!.v === row.v
    if (same && i > lastKept && rand() < 0.85) {
      lastKept = i
    } else {
      upserts.push({ at, row })
    }
  })
  const inNext = new Set(next.map((x) => x.id))
  const deletes = old.filter((x) => !inNext.has(x.id)).map((x) => x.id)
  if (rand() < 0.2) deletes.push(1000 + Math.floor(rand() * 100))
  for (let i = upserts.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1))
    ;[upserts[i], upserts[j]] = [upserts[j]!, upserts[i]!]
  }
  return { upserts, deletes }
}

function randomResult(rand: () => number, prev: Row[]): Row[] {
  const ids = new Set<number>()
  const out: Row[] = []
  // Keep, change or drop previous rows, then add new ones, then shuffle a bit.
  for (const x of prev) {
    const p = rand()
    if (p < 0.15) continue
    out.push(p < 0.3 ? r(x.id, x.v + 1) : x)
    ids.add(x.id)
  }
  const adds = Math.floor(rand() * 5)
  for (let k = 0; k < adds; k++) {
    const id = Math.floor(rand() * 60)
    if (ids.has(id)) continue
    ids.add(id)
    out.splice(Math.floor(rand() * (out.length + 1)), 0, r(id, Math.floor(rand() * 3)))
  }
  const moves = Math.floor(rand() * 3)
  for (let k = 0; k < moves && out.length > 1; k++) {
    const [m] = out.splice(Math.floor(rand() * out.length), 1)
    out.splice(Math.floor(rand() * (out.length + 1)), 0, m!)
  }
  return out
}

describe('applyDiff (random sequences)', () => {
  it('reproduces every next result and agrees with the reference', () => {
    let checked = 0
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed)
      let model: Row[] = []
      let applied: Row[] = []
      for (let step = 0; step < 25; step++) {
        const next = randomResult(rand, model)
        const { upserts, deletes } = randomDiff(rand, model, next)
        const ref = reference(applied, upserts, deletes)
        applied = applyDiff(applied, upserts, deletes)
        expect(applied, `seed ${seed} step ${step}`).toEqual(next)
        expect(applied).toEqual(ref)
        model = next
        checked += 1
      }
    }
    expect(checked).toBe(300 * 25)
  })

  it('agrees with the reference on arbitrary in-range diffs', () => {
    const rand = prng(42)
    for (let n = 0; n < 2000; n++) {
      const len = Math.floor(rand() * 12)
      const rows = Array.from({ length: len }, (_, i) => r(i * 2, 0))
      const deletes = rows.filter(() => rand() < 0.3).map((x) => x.id)
      const upIds = [...new Set(Array.from({ length: Math.floor(rand() * 5) }, () => Math.floor(rand() * 30)))]
      const remaining = rows.filter((x) => !deletes.includes(x.id) && !upIds.includes(x.id)).length
      // Distinct final indexes within the final length.
      const finalLen = remaining + upIds.length
      const slots = Array.from({ length: finalLen }, (_, i) => i)
        .sort(() => rand() - 0.5)
        .slice(0, upIds.length)
      const upserts = upIds.map((id, k) => ({ at: slots[k]!, row: r(id, 1) }))
      expect(applyDiff(rows, upserts, deletes)).toEqual(reference(rows, upserts, deletes))
    }
  })
})
