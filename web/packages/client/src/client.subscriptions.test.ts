// LiveClient's subscriptions on one connection: snapshots, diffs in order,
// each table's keys, frames that do not fit, unsubscribing.
import { describe, expect, it } from 'vitest'
import type { Comment, Task } from './generated'
import { comment, item, task, uuid } from './test/fixtures'
import { receiveSnapshot, setup, subId, useFakeTimersInEachTest, watchItems } from './test/harness'

useFakeTimersInEachTest()

describe('LiveClient subscriptions', () => {
  it('subscribes once open and delivers the snapshot', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    expect(factory.sockets).toHaveLength(1)
    expect(factory.last.url).toBe('ws://test/ws')
    expect(factory.last.sent).toEqual([]) // not open yet
    factory.last.accept()
    const sent = factory.last.messages()
    expect(sent).toEqual([{ type: 'subscribe', id: expect.any(String), query: { table: 'items' } }])
    receiveSnapshot(factory.last, { version: 3, rows: [item(1), item(2)] })
    expect(w.seen).toEqual([{ rows: [item(1), item(2)], version: 3 }])
  })

  it('applies diffs in order and types rows by table', () => {
    const { client, factory } = setup()
    const tasks: Task[][] = []
    client.subscribe({ table: 'tasks', filter: { status_in: ['todo'] } }, { next: (rows) => tasks.push(rows) })
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'tasks', rows: [task(1), task(2)] })
    factory.last.receive({
      type: 'diff',
      id,
      from: 1,
      to: 2,
      table: 'tasks',
      upserts: [{ at: 0, row: task(3, { priority: 3 }) }],
      deletes: [2],
    })
    expect(tasks.at(-1)).toEqual([task(3, { priority: 3 }), task(1)])
  })

  it('keeps a live count: the snapshot sets it, a diff with one moves it, a diff without keeps it', () => {
    const { client, factory } = setup()
    const seen: { rows: number; count: number | null }[] = []
    client.subscribe(
      { table: 'items', limit: 2, count: true },
      { next: (rows, _version, count) => seen.push({ rows: rows.length, count }) },
    )
    factory.last.accept()
    const id = subId(factory.last)
    receiveSnapshot(factory.last, { count: 40, rows: [item(1), item(2)] })
    // A row past the limit: the count alone changes.
    factory.last.receive({ type: 'diff', id, from: 1, to: 2, count: 41, table: 'items', upserts: [], deletes: [] })
    // A change to a row in the window that leaves the count as it was.
    factory.last.receive({
      type: 'diff',
      id,
      from: 2,
      to: 3,
      table: 'items',
      upserts: [{ at: 0, row: item(1, 'renamed') }],
      deletes: [],
    })
    expect(seen).toEqual([
      { rows: 2, count: 40 },
      { rows: 2, count: 41 },
      { rows: 2, count: 41 },
    ])
    expect(client.inspect()[0]).toMatchObject({ rows: 2, count: 41, version: 3 })
  })

  it('gives no count to a query without count', () => {
    const { client, factory } = setup()
    const counts: (number | null)[] = []
    client.subscribe({ table: 'items' }, { next: (_rows, _version, count) => counts.push(count) })
    factory.last.accept()
    receiveSnapshot(factory.last, { version: 1, rows: [item(1)] })
    expect(counts).toEqual([null])
  })

  it('keys comments by their uuid', () => {
    const { client, factory } = setup()
    const seen: Comment[][] = []
    client.subscribe(
      { table: 'comments', filter: { task_id_eq: 1 }, order: { by: 'created_at', dir: 'desc' } },
      { next: (rows) => seen.push(rows) },
    )
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id,
      version: 1,
      table: 'comments',
      rows: [comment(2), comment(1)],
    })
    factory.last.receive({
      type: 'diff',
      id,
      from: 1,
      to: 2,
      table: 'comments',
      upserts: [
        { at: 0, row: comment(3) },
        { at: 1, row: comment(2, { body: 'edited', edited_at: '2026-11-27T11:00:00Z' }) },
      ],
      deletes: [uuid(1)],
    })
    expect(seen.at(-1)).toEqual([comment(3), comment(2, { body: 'edited', edited_at: '2026-11-27T11:00:00Z' })])
  })

  it('keeps bigint keys above 2^53 exact, from the JSON text to the rows', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    // As numbers, these two keys would be the same: 2^53.
    const a = '9007199254740992'
    const b = '9007199254740993'
    const snapshot = `{"type":"snapshot","id":"${id}","epoch":"e1","version":1,"table":"items","rows":[${JSON.stringify(item(a))},${JSON.stringify(item(b))}]}`
    expect(snapshot).toContain(`"id":"${b}"`)
    factory.last.receiveRaw(snapshot)
    expect(w.rows?.map((r) => r.id)).toEqual([a, b])
    factory.last.receiveRaw(
      `{"type":"diff","id":"${id}","from":1,"to":2,"table":"items","upserts":[],"deletes":["${b}"]}`,
    )
    expect(w.rows).toEqual([item(a)])
    factory.last.receive({
      type: 'diff',
      id,
      from: 2,
      to: 3,
      table: 'items',
      upserts: [{ at: 1, row: item(b, 'back') }],
      deletes: [],
    })
    expect(w.rows).toEqual([item(a), item(b, 'back')])
    expect(w.rows?.every((r) => typeof r.id === 'string')).toBe(true)
  })

  it('applies nothing from a frame for another table', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'tasks', rows: [task(1)] })
    expect(w.seen).toEqual([])
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [item(1)] })
    factory.last.receive({ type: 'diff', id, from: 1, to: 2, table: 'tasks', upserts: [], deletes: [1] })
    expect(w.rows).toEqual([item(1)])
    expect(w.seen).toHaveLength(1)
    // What follows the skipped diff is a gap: a fresh snapshot is asked for.
    factory.last.receive({ type: 'diff', id, from: 2, to: 3, table: 'items', upserts: [], deletes: ['1'] })
    expect(w.seen).toHaveLength(1)
    expect(subId(factory.last)).not.toBe(id)
  })

  it('ignores a stale diff (to <= current version)', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 5, table: 'items', rows: [item(1)] })
    factory.last.receive({
      type: 'diff',
      id,
      from: 3,
      to: 5,
      table: 'items',
      upserts: [{ at: 0, row: item(9) }],
      deletes: [],
    })
    factory.last.receive({ type: 'diff', id, from: 4, to: 4, table: 'items', upserts: [], deletes: ['1'] })
    expect(w.seen).toHaveLength(1)
    expect(factory.last.messages()).toHaveLength(1) // no resubscribe
  })

  it('on a version gap, resubscribes with a fresh id and ignores the old one', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    const s = (factory.last.accept(), factory.last)
    const id = subId(s)
    s.receive({ type: 'snapshot', epoch: 'e1', id, version: 5, table: 'items', rows: [item(1)] })
    s.receive({ type: 'diff', id, from: 6, to: 7, table: 'items', upserts: [{ at: 1, row: item(2) }], deletes: [] })
    expect(w.seen).toHaveLength(1) // the gapped diff is not applied
    const msgs = s.messages()
    expect(msgs.slice(1)).toEqual([
      { type: 'unsubscribe', id },
      { type: 'subscribe', id: expect.any(String), query: { table: 'items' } },
    ])
    const fresh = subId(s)
    expect(fresh).not.toBe(id)
    // Late messages for the old id change nothing.
    s.receive({ type: 'diff', id, from: 7, to: 8, table: 'items', upserts: [], deletes: ['1'] })
    expect(w.seen).toHaveLength(1)
    // Diffs on the new id before its snapshot are ignored too.
    s.receive({ type: 'diff', id: fresh, from: 7, to: 8, table: 'items', upserts: [], deletes: ['1'] })
    expect(w.seen).toHaveLength(1)
    s.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: fresh,
      version: 8,
      table: 'items',
      rows: [item(1), item(2), item(3)],
    })
    expect(w.rows).toEqual([item(1), item(2), item(3)])
    s.receive({ type: 'diff', id: fresh, from: 8, to: 9, table: 'items', upserts: [], deletes: ['2'] })
    expect(w.rows).toEqual([item(1), item(3)])
    expect(w.seen.at(-1)?.version).toBe(9)
  })

  it('resubscribes when a diff does not fit the rows', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [item(1)] })
    factory.last.receive({
      type: 'diff',
      id,
      from: 1,
      to: 2,
      table: 'items',
      upserts: [{ at: 5, row: item(2) }],
      deletes: [],
    })
    expect(w.seen).toHaveLength(1)
    expect(subId(factory.last)).not.toBe(id)
  })

  it('unsubscribes on the wire and stops delivering', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    w.unsubscribe()
    w.unsubscribe() // idempotent
    expect(factory.last.messages().slice(1)).toEqual([{ type: 'unsubscribe', id }])
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [item(1)] })
    expect(w.seen).toEqual([])
    expect(client.subscriptionCount).toBe(0)
  })

  it('subscribes right away when already open, with unique ids', () => {
    const { client, factory } = setup()
    client.connect()
    factory.last.accept()
    watchItems(client)
    watchItems(client)
    const ids = factory.last.messages().map((m) => (m.type === 'auth' ? null : m.id))
    expect(ids).toHaveLength(2)
    expect(new Set(ids).size).toBe(2)
  })

  it('ignores junk frames', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.receiveRaw('not json')
    factory.last.receiveRaw('null')
    factory.last.receiveRaw(new ArrayBuffer(3))
    factory.last.receiveRaw('{"type":"hello"}')
    expect(w.seen).toEqual([])
    // Still waiting for the snapshot: connected, but not live yet.
    expect(client.getStatus().state).toBe('connecting')
    receiveSnapshot(factory.last)
    expect(client.getStatus().state).toBe('live')
  })
})
