import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest'
import type { Comment, Diff, Int8, Item, Task } from './generated'
import { liveTables } from './generated'
import { socketFactory, task } from './test/fixtures'
import { LiveClient } from './client'
import { keyColumn, rowKey } from './keys'
import type { KeyColumn, RowKey, Table } from './types'

// The real declarations key every demo table by a column named `id`, which
// would hide a client that still hard-codes `id`. Here `tasks` is declared
// with another key column, `title`; the other tables stay as generated.
vi.mock('./generated', async (importOriginal) => {
  const generated = await importOriginal<typeof import('./generated')>()
  return {
    ...generated,
    liveTables: { ...generated.liveTables, tasks: { ...generated.liveTables.tasks, key: 'title' } },
  }
})

describe('table keys', () => {
  it('are read from the generated declarations', () => {
    expect(keyColumn('items')).toBe('id')
    expect(keyColumn('comments')).toBe('id')
    expect(keyColumn('tasks')).toBe('title')
    for (const table of Object.keys(liveTables) as Table[]) {
      expect(keyColumn(table)).toBe(liveTables[table].key)
    }
  })

  it('are typed per table, as the diffs carry them', () => {
    expectTypeOf<RowKey<'items'>>().toEqualTypeOf<Int8>()
    expectTypeOf<RowKey<'items'>>().toEqualTypeOf<string>()
    expectTypeOf<RowKey<'tasks'>>().toEqualTypeOf<number>()
    expectTypeOf<RowKey<'comments'>>().toEqualTypeOf<string>()
    expectTypeOf<RowKey<'items'>>().toEqualTypeOf<Extract<Diff, { table: 'items' }>['deletes'][number]>()
    expectTypeOf<RowKey<'tasks'>>().toEqualTypeOf<Extract<Diff, { table: 'tasks' }>['deletes'][number]>()
    expectTypeOf<RowKey<'comments'>>().toEqualTypeOf<Extract<Diff, { table: 'comments' }>['deletes'][number]>()
    expectTypeOf<KeyColumn<'comments'>>().toEqualTypeOf<'id'>()
    expectTypeOf(rowKey('items')).toEqualTypeOf<(row: Item) => string>()
    expectTypeOf(rowKey('comments')).toEqualTypeOf<(row: Comment) => string>()
  })

  it('rowKey reads the declared column', () => {
    expect(rowKey('tasks')(task(7, { title: 'seven' }))).toBe('seven')
  })
})

describe('LiveClient keys rows by the declared key', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })

  afterEach(() => {
    vi.useRealTimers()
  })

  it('applies a diff by the key column the table declares, not by `id`', () => {
    const factory = socketFactory()
    const client = new LiveClient({
      url: 'ws://test/ws',
      createWebSocket: factory.create,
      isOnline: () => true,
      watchOnline: () => () => {},
    })
    const seen: Task[][] = []
    client.subscribe({ table: 'tasks' }, { next: (rows) => seen.push(rows) })
    factory.last.accept()
    const id = factory.last.lastSubscribe()!.id
    // Two rows sharing an `id`: only a client keyed by `title` tells them apart.
    const a = task(1, { title: 'a' })
    const b = task(1, { title: 'b' })
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'tasks', rows: [a, b] })
    factory.last.receive({
      type: 'diff',
      id,
      from: 1,
      to: 2,
      table: 'tasks',
      upserts: [{ at: 0, row: task(1, { title: 'b', priority: 3 }) }],
      deletes: [],
    })
    expect(seen.at(-1)).toEqual([task(1, { title: 'b', priority: 3 }), a])
  })
})
