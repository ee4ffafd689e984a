import { describe, expect, it } from 'vitest'
import type { Placed } from './generated'
import { applyDiff, DiffError } from './applyDiff'
import { prng, uuid } from './test/fixtures'

interface Row {
  id: number
  v: number
}

const r = (id: number, v = 0): Row => ({ id, v })

/** The textbook reading of the contract: filter, then splice in `at` order. */
function reference<R, K>(
  rows: readonly R[],
  upserts: readonly Placed<R>[],
  deletes: readonly K[],
  keyOf: (row: R) => K,
): R[] {
  const gone = new Set<K>([...deletes, ...upserts.map((u) => keyOf(u.row))])
  const out = rows.filter((x) => !gone.has(keyOf(x)))
  for (const u of [...upserts].sort((a, b) => a.at - b.at)) out.splice(u.at, 0, u.row)
  return out
}

describe('applyDiff', () => {
  it('inserts, updates, moves and deletes', () => {
    const old = [r(1), r(2), r(3), r(4)]
    // new: [4, 1, 3', 5]; 2 deleted, 3 changed, 4 moved to the front, 5 new
    // prettier-ignore
    const next = applyDiff(old, [{ at: 3, row: r(5) }, { at: 0, row: r(4) }, { at: 2, row: r(3, 9) }], [2], 'id')
    expect(next).toEqual([r(4), r(1), r(3, 9), r(5)])
  })

  it('keeps untouched rows as the same objects and does not modify its input', () => {
    const old = [r(1), r(2), r(3)]
    const copy = old.slice()
    const next = applyDiff(old, [{ at: 1, row: r(2, 1) }], [], 'id')
    expect(old).toEqual(copy)
    expect(next[0]).toBe(old[0])
    expect(next[2]).toBe(old[2])
    expect(next).not.toBe(old)
  })

  it('an empty diff returns an equal new array', () => {
    const old = [r(1), r(2)]
    const next = applyDiff(old, [], [], 'id')
    expect(next).toEqual(old)
    expect(next).not.toBe(old)
  })

  it('ignores deletes of keys that are not there', () => {
    expect(applyDiff([r(1)], [], [7, 8], 'id')).toEqual([r(1)])
  })

  it('appends at the end and fills an empty result', () => {
    // prettier-ignore
    expect(applyDiff([], [{ at: 0, row: r(1) }, { at: 1, row: r(2) }], [], 'id')).toEqual([r(1), r(2)])
    expect(applyDiff([r(1)], [{ at: 1, row: r(2) }], [], 'id')).toEqual([r(1), r(2)])
  })

  it('rejects an index past the end', () => {
    expect(() => applyDiff([r(1)], [{ at: 3, row: r(2) }], [], 'id')).toThrow(DiffError)
  })

  it('rejects repeated indexes and repeated keys', () => {
    // prettier-ignore
    expect(() => applyDiff([], [{ at: 0, row: r(1) }, { at: 0, row: r(2) }], [], 'id')).toThrow(DiffError)
    // prettier-ignore
    expect(() => applyDiff([], [{ at: 0, row: r(1) }, { at: 1, row: r(1, 2) }], [], 'id')).toThrow(DiffError)
  })

  it('works on string keys too', () => {
    const rows = [{ id: 'a' }, { id: 'b' }]
    expect(applyDiff(rows, [{ at: 0, row: { id: 'b' } }], ['a'], 'id')).toEqual([{ id: 'b' }])
  })

  it('keys rows by the named column, whatever it is called', () => {
    const rows = [
      { code: 'x', id: 1 },
      { code: 'y', id: 1 },
    ]
    // `id` is an ordinary column here: rows sharing it are still distinct.
    expect(applyDiff(rows, [{ at: 0, row: { code: 'y', id: 2 } }], ['x'], 'code')).toEqual([{ code: 'y', id: 2 }])
  })

  it('takes a key function', () => {
    const rows = [{ pk: { n: 1 } }, { pk: { n: 2 } }]
    expect(applyDiff(rows, [], [2], (row) => row.pk.n)).toEqual([{ pk: { n: 1 } }])
  })
})

describe('applyDiff with bigint keys as decimal strings', () => {
  // 2^53 + 1 is the first integer a JavaScript number cannot hold: as a
  // number it would round to 2^53 and name the other row.
  const big = (id: string, v = 0) => ({ id, v })
  const A = '9007199254740992'
  const B = '9007199254740993'

  it('tells apart keys that one number would merge', () => {
    expect(Number(A)).toBe(Number(B)) // what must never happen to a key
    const rows = [big(A), big(B)]
    expect(applyDiff(rows, [], [B], 'id')).toEqual([big(A)])
    expect(applyDiff(rows, [], [A], 'id')).toEqual([big(B)])
    expect(applyDiff(rows, [{ at: 1, row: big(B, 1) }], [], 'id')).toEqual([big(A), big(B, 1)])
  })

  it('accepts two upserts whose keys differ only past 2^53', () => {
    const next = applyDiff(
      [],
      [
        { at: 1, row: big(B) },
        { at: 0, row: big(A) },
      ],
      [],
      'id',
    )
    expect(next).toEqual([big(A), big(B)])
    expect(next.map((x) => typeof x.id)).toEqual(['string', 'string'])
  })

  it('keeps keys beyond 2^63 and with no numeric meaning intact', () => {
    const huge = '123456789012345678901234567890'
    const rows = [big(huge), big('-9223372036854775808'), big('0')]
    expect(applyDiff(rows, [{ at: 0, row: big(huge, 2) }], ['0'], 'id')).toEqual([
      big(huge, 2),
      big('-9223372036854775808'),
    ])
  })
})

describe('applyDiff with uuid keys', () => {
  const c = (n: number, body = '') => ({ id: uuid(n), body })

  it('inserts, updates, moves and deletes by uuid', () => {
    const old = [c(1), c(2), c(3)]
    const next = applyDiff(
      old,
      [
        { at: 0, row: c(3, 'edited') },
        { at: 2, row: c(4) },
      ],
      [uuid(2)],
      'id',
    )
    expect(next).toEqual([c(3, 'edited'), c(1), c(4)])
    expect(next[1]).toBe(old[0])
  })

  it('compares uuids exactly as sent', () => {
    const rows = [c(10)]
    expect(applyDiff(rows, [], [uuid(10).toUpperCase()], 'id')).toEqual(rows)
    expect(applyDiff(rows, [], [uuid(10)], 'id')).toEqual([])
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

/**
 * The key types live tables use, each as a map from the generator's small
 * numbers: plain numbers (an int4 key), bigint decimal strings at and above
 * 2^53 (where neighbouring keys are equal as JavaScript numbers), and uuids.
 */
const KEY_KINDS: [string, (n: number) => number | string][] = [
  ['number', (n) => n],
  ['bigint string', (n) => (2n ** 53n + BigInt(n)).toString()],
  ['uuid', (n) => uuid(n)],
]

describe.each(KEY_KINDS)('applyDiff (random sequences, %s keys)', (_kind, key) => {
  const keyed = (x: Row) => ({ id: key(x.id), v: x.v })
  const keyedAll = (rows: Row[]) => rows.map(keyed)

  it('reproduces every next result and agrees with the reference', () => {
    let checked = 0
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed)
      let model: Row[] = []
      let applied = keyedAll([])
      for (let step = 0; step < 25; step++) {
        const next = randomResult(rand, model)
        const diff = randomDiff(rand, model, next)
        const upserts = diff.upserts.map(({ at, row }) => ({ at, row: keyed(row) }))
        const deletes = diff.deletes.map(key)
        const ref = reference(applied, upserts, deletes, (x) => x.id)
        applied = applyDiff(applied, upserts, deletes, 'id')
        expect(applied, `seed ${seed} step ${step}`).toEqual(keyedAll(next))
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
      const upserts = upIds.map((id, k) => ({ at: slots[k]!, row: keyed(r(id, 1)) }))
      const keyedRows = keyedAll(rows)
      const keyedDeletes = deletes.map(key)
      // The key function and the column name are the same key.
      const byFn = applyDiff(keyedRows, upserts, keyedDeletes, (x) => x.id)
      expect(byFn).toEqual(reference(keyedRows, upserts, keyedDeletes, (x) => x.id))
      expect(applyDiff(keyedRows, upserts, keyedDeletes, 'id')).toEqual(byFn)
    }
  })
})
