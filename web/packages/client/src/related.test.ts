import { describe, expect, expectTypeOf, it } from 'vitest'
import type { Comment, CommentsRelated, Item, Related, Task, TasksRelated } from './generated'
import { MaterializedRows } from './materialized'
import { inclusionsOf, RelatedRows } from './related'
import { comment, task } from './test/fixtures'
import type { LiveRowOf, RelatedOf, RowsOf } from './types'

describe('inclusionsOf', () => {
  it('reads the included relations from the query and the table declarations', () => {
    expect(inclusionsOf({ table: 'tasks', include: { comments: { limit: 3, count: true } } })).toEqual([
      { name: 'comments', kind: 'has_many', target: 'comments', local: 'id', count: true },
    ])
    expect(inclusionsOf({ table: 'tasks', include: { comments: { limit: 3 } } })).toEqual([
      { name: 'comments', kind: 'has_many', target: 'comments', local: 'id', count: false },
    ])
    expect(inclusionsOf({ table: 'comments', include: { task: true } })).toEqual([
      { name: 'task', kind: 'belongs_to', target: 'tasks', local: 'task_id', count: false },
    ])
  })

  it('has none for a query without include, an empty one, or relations turned off', () => {
    expect(inclusionsOf({ table: 'items' })).toEqual([])
    expect(inclusionsOf({ table: 'tasks', include: {} })).toEqual([])
    expect(inclusionsOf({ table: 'comments', include: { task: false } })).toEqual([])
  })
})

describe('RelatedRows', () => {
  const inc = inclusionsOf({ table: 'comments', include: { task: true } })

  it('refuses malformed entries and ones of the wrong table, and ignores relations it does not include', () => {
    const related = new RelatedRows<LiveRowOf<'comments'>>(inc)
    expect(related.accepts(undefined)).toBe(true)
    expect(related.accepts([])).toBe(true)
    expect(related.accepts('x')).toBe(false)
    expect(related.accepts([null])).toBe(false)
    expect(related.accepts([{ relation: 'task', of: 1, table: 'tasks', rows: {} }])).toBe(false)
    expect(related.accepts([{ relation: 'task', of: true, table: 'tasks', rows: [] }])).toBe(false)
    expect(related.accepts([{ relation: 'task', of: 1, table: 'items', rows: [] }])).toBe(false)
    expect(related.accepts([{ relation: 'task', of: 1, table: 'tasks', rows: [], count: '1' }])).toBe(false)
    expect(related.accepts([{ relation: 'other', of: 1, table: 'items', rows: [] }])).toBe(true)
    related.reset([{ relation: 'other', of: 1, table: 'tasks', rows: [task(1)] }])
    expect(related.settle([comment(1)])).toStrictEqual([{ ...comment(1), task: null }])
  })

  it('matches values by their string form (a bigint or uuid key travels as a string)', () => {
    const related = new RelatedRows<LiveRowOf<'comments'>>(inc)
    related.reset([{ relation: 'task', of: '7', table: 'tasks', rows: [task(7)] }])
    expect(related.settle([comment(1, { task_id: 7 })])[0]?.task).toEqual(task(7))
  })

  it('reuses a nested row while its row and entries are the same objects', () => {
    const related = new RelatedRows<LiveRowOf<'comments'>>(inc)
    const rows = [comment(1, { task_id: 1 }), comment(2, { task_id: 2 })]
    related.reset([
      { relation: 'task', of: 1, table: 'tasks', rows: [task(1)] },
      { relation: 'task', of: 2, table: 'tasks', rows: [task(2)] },
    ])
    const first = related.settle(rows)
    const again = related.settle(rows)
    expect(again).not.toBe(first)
    expect(again[0]).toBe(first[0])
    related.merge([{ relation: 'task', of: 2, table: 'tasks', rows: [task(2, { title: 'new' })] }])
    const third = related.settle(rows)
    expect(third[0]).toBe(first[0])
    expect(third[1]).not.toBe(first[1])
    // The row the nested one is made from is not changed.
    expect(rows[1]).toStrictEqual(comment(2, { task_id: 2 }))
  })
})

describe('MaterializedRows with included relations', () => {
  it('hands out the rows as they arrived without include, nested with it', () => {
    const rows = [task(1), task(2)]
    const plain = new MaterializedRows<Task, 'id'>('id')
    plain.replace(rows, 'e1', 1, undefined, [{ relation: 'comments', of: 1, table: 'comments', rows: [comment(1)] }])
    expect(plain.rows?.[0]).toBe(rows[0])
    expect(plain.related).toBeNull()

    const inc = inclusionsOf({ table: 'tasks', include: { comments: { limit: 3 } } })
    const nested = new MaterializedRows<LiveRowOf<'tasks'>, 'id'>('id', new RelatedRows(inc))
    nested.replace(rows, 'e1', 1, undefined, [{ relation: 'comments', of: 1, table: 'comments', rows: [comment(1)] }])
    expect(nested.rows).toEqual([
      { ...task(1), comments: [comment(1)] },
      { ...task(2), comments: [] },
    ])
    expect(rows[0]).toStrictEqual(task(1))
  })

  it('applies no related entry of a diff that is stale, gapped or does not fit', () => {
    const inc = inclusionsOf({ table: 'tasks', include: { comments: { limit: 3 } } })
    const view = new MaterializedRows<LiveRowOf<'tasks'>, 'id'>('id', new RelatedRows(inc))
    view.replace([task(1)], 'e1', 2)
    const related: Related[] = [{ relation: 'comments', of: 1, table: 'comments', rows: [comment(1)] }]
    const body = { upserts: [], deletes: [], related }
    expect(view.apply({ from: 1, to: 2, ...body })).toBe('stale')
    expect(view.apply({ from: 3, to: 4, ...body })).toBe('gap')
    expect(view.apply({ from: 2, to: 3, ...body, upserts: [{ at: 5, row: task(2) }] })).toBe('invalid')
    expect(view.rows?.[0]?.comments).toEqual([])
    expect(view.apply({ from: 2, to: 3, ...body })).toBe('applied')
    expect(view.rows?.[0]?.comments).toEqual([comment(1)])
  })
})

describe('row types', () => {
  it('derives what included relations add from the table declarations, as the generated types say', () => {
    expectTypeOf<RelatedOf<'tasks'>>().toEqualTypeOf<TasksRelated>()
    expectTypeOf<RelatedOf<'comments'>>().toEqualTypeOf<CommentsRelated>()
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- a table without relations adds nothing
    expectTypeOf<RelatedOf<'items'>>().toEqualTypeOf<{}>()
    expectTypeOf<LiveRowOf<'items'>>().toEqualTypeOf<Item>()
    expectTypeOf<LiveRowOf<'tasks'>>().toEqualTypeOf<Task & TasksRelated>()
    expectTypeOf<RowsOf<{ table: 'comments'; include: { task: true } }>>().toEqualTypeOf<
      (Comment & CommentsRelated)[]
    >()
  })
})
