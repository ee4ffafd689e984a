// Included relations (`include`): related entries in snapshots and diffs,
// nested into the rows the subscriber gets, kept with the versioned result
// (resume included), pruned when no row refers to them, and nothing of it
// for a query without `include`.
import { describe, expect, it, vi } from 'vitest'
import type { Comment, Related, Task } from './generated'
import { comment, item, task } from './test/fixtures'
import { sentOf, setup, subId, useFakeTimersInEachTest, watchQuery } from './test/harness'
import type { FakeSocket } from './test/fixtures'

useFakeTimersInEachTest()

/** A `comments` entry of task `of` (has_many), with its count. */
function commentsOf(of: number, rows: Comment[], count?: number): Related {
  return { relation: 'comments', of, table: 'comments', rows, ...(count === undefined ? {} : { count }) }
}

/** The `task` entry of the comments whose `task_id` is `of` (belongs_to). */
function taskOf(of: number, row: Task): Related {
  return { relation: 'task', of, table: 'tasks', rows: [row] }
}

const TASKS_WITH_COMMENTS = {
  table: 'tasks',
  limit: 20,
  include: { comments: { order: { by: 'created_at', dir: 'desc' }, limit: 3, count: true } },
} as const

/** A tasks subscription with `include.comments` (count: true), at version 1 with tasks 1, 2 and 3. */
function tasksWithComments() {
  const h = setup()
  const w = watchQuery(h.client, TASKS_WITH_COMMENTS)
  h.factory.last.accept()
  const socket = h.factory.last
  const id = subId(socket)
  socket.receive({
    type: 'snapshot',
    epoch: 'e1',
    id,
    version: 1,
    table: 'tasks',
    rows: [task(1), task(2), task(3)],
    related: [
      commentsOf(1, [comment(2, { task_id: 1 }), comment(1, { task_id: 1 })], 5),
      commentsOf(2, [comment(3, { task_id: 2 })], 1),
    ],
  })
  return { ...h, w, socket, id }
}

function tasksDiff(
  socket: FakeSocket,
  id: string,
  from: number,
  body: { upserts?: { at: number; row: Task }[]; deletes?: number[]; related?: Related[] },
) {
  socket.receive({
    type: 'diff',
    id,
    from,
    to: from + 1,
    table: 'tasks',
    upserts: body.upserts ?? [],
    deletes: body.deletes ?? [],
    ...(body.related ? { related: body.related } : {}),
  })
}

describe('included relations', () => {
  it('nests a has_many snapshot entry with its count, and gives a row without one [] and 0', () => {
    const { client, w } = tasksWithComments()
    expect(w.seen).toHaveLength(1)
    expect(w.rows).toEqual([
      { ...task(1), comments: [comment(2, { task_id: 1 }), comment(1, { task_id: 1 })], comments_count: 5 },
      { ...task(2), comments: [comment(3, { task_id: 2 })], comments_count: 1 },
      { ...task(3), comments: [], comments_count: 0 },
    ])
    expect(client.inspect()[0]?.relations).toEqual([
      { name: 'comments', kind: 'has_many', target: 'comments', count: true, entries: 2, rows: 3 },
    ])
  })

  it('adds no count field when the include does not ask for one', () => {
    const { client, factory } = setup()
    const w = watchQuery(client, { table: 'tasks', include: { comments: { limit: 3 } } })
    factory.last.accept()
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'tasks',
      rows: [task(1), task(2)],
      related: [commentsOf(1, [comment(1)])],
    })
    expect(w.rows).toStrictEqual([
      { ...task(1), comments: [comment(1)] },
      { ...task(2), comments: [] },
    ])
  })

  it('nests a belongs_to entry, shared by the rows with that value, and null without one', () => {
    const { client, factory } = setup()
    const w = watchQuery(client, { table: 'comments', include: { task: true } })
    factory.last.accept()
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'comments',
      rows: [comment(1, { task_id: 1 }), comment(2, { task_id: 2 }), comment(3, { task_id: 1 })],
      related: [taskOf(1, task(1, { title: 'the first' }))],
    })
    expect(w.rows).toEqual([
      { ...comment(1, { task_id: 1 }), task: task(1, { title: 'the first' }) },
      { ...comment(2, { task_id: 2 }), task: null },
      { ...comment(3, { task_id: 1 }), task: task(1, { title: 'the first' }) },
    ])
    expect(w.rows?.[0]?.task).toBe(w.rows?.[2]?.task)
    expect(client.inspect()[0]?.relations).toEqual([
      { name: 'task', kind: 'belongs_to', target: 'tasks', count: false, entries: 1, rows: 1 },
    ])
  })

  it('applies a diff that changes only a related entry: that row alone is a new object', () => {
    const { w, socket, id } = tasksWithComments()
    const before = w.rows!
    tasksDiff(socket, id, 1, {
      related: [commentsOf(2, [comment(4, { task_id: 2 }), comment(3, { task_id: 2 })], 2)],
    })
    expect(w.seen.map((s) => s.version)).toEqual([1, 2])
    const after = w.rows!
    expect(after).not.toBe(before)
    expect(after[1]).toEqual({
      ...task(2),
      comments: [comment(4, { task_id: 2 }), comment(3, { task_id: 2 })],
      comments_count: 2,
    })
    expect(after[1]).not.toBe(before[1])
    expect(after[0]).toBe(before[0])
    expect(after[2]).toBe(before[2])
  })

  it('a new entry for a row that had none, and an emptied entry', () => {
    const { client, w, socket, id } = tasksWithComments()
    tasksDiff(socket, id, 1, {
      related: [commentsOf(3, [comment(9, { task_id: 3 })], 1), commentsOf(2, [], 0)],
    })
    expect(w.rows?.[2]).toMatchObject({ comments: [comment(9, { task_id: 3 })], comments_count: 1 })
    expect(w.rows?.[1]).toMatchObject({ comments: [], comments_count: 0 })
    expect(client.inspect()[0]?.relations[0]).toMatchObject({ entries: 2, rows: 3 })
  })

  it("keeps a parent's related rows when the parent is upserted without them", () => {
    const { w, socket, id } = tasksWithComments()
    const before = w.rows!
    // Task 1 changes and moves to the end; its comments are not resent.
    tasksDiff(socket, id, 1, { upserts: [{ at: 2, row: task(1, { title: 'renamed' }) }] })
    const after = w.rows!
    expect(after.map((t) => t.id)).toEqual([2, 3, 1])
    expect(after[2]).toEqual({
      ...task(1, { title: 'renamed' }),
      comments: [comment(2, { task_id: 1 }), comment(1, { task_id: 1 })],
      comments_count: 5,
    })
    expect(after[2]?.comments).toBe(before[0]?.comments)
    // Rows that did not change keep their objects.
    expect(after[0]).toBe(before[1])
    expect(after[1]).toBe(before[2])
  })

  it("drops a deleted parent's entry: the row coming back without one has no related rows", () => {
    const { client, w, socket, id } = tasksWithComments()
    tasksDiff(socket, id, 1, { deletes: [1] })
    expect(w.rows?.map((t) => t.id)).toEqual([2, 3])
    expect(client.inspect()[0]?.relations[0]).toMatchObject({ entries: 1, rows: 1 })
    tasksDiff(socket, id, 2, { upserts: [{ at: 0, row: task(1) }] })
    expect(w.rows?.[0]).toEqual({ ...task(1), comments: [], comments_count: 0 })
  })

  it('prunes an entry when no row carries its value any more', () => {
    const { client, factory } = setup()
    const w = watchQuery(client, { table: 'comments', include: { task: true } })
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id,
      version: 1,
      table: 'comments',
      rows: [comment(1, { task_id: 1 }), comment(2, { task_id: 2 })],
      related: [taskOf(1, task(1)), taskOf(2, task(2))],
    })
    expect(w.rows?.[1]?.task).toEqual(task(2))
    // Comment 2 moves to task 1 (whose entry is held): task 2's entry goes.
    factory.last.receive({
      type: 'diff',
      id,
      from: 1,
      to: 2,
      table: 'comments',
      upserts: [{ at: 1, row: comment(2, { task_id: 1 }) }],
      deletes: [],
    })
    expect(w.rows?.[1]).toEqual({ ...comment(2, { task_id: 1 }), task: task(1) })
    expect(client.inspect()[0]?.relations[0]).toMatchObject({ entries: 1 })
    // Back to task 2 without a fresh entry: the old one is not used again.
    factory.last.receive({
      type: 'diff',
      id,
      from: 2,
      to: 3,
      table: 'comments',
      upserts: [{ at: 1, row: comment(2, { task_id: 2 }) }],
      deletes: [],
    })
    expect(w.rows?.[1]).toEqual({ ...comment(2, { task_id: 2 }), task: null })
  })

  it('drops related entries the snapshot after a resync does not list', () => {
    const { w, socket, id } = tasksWithComments()
    // A gap: a fresh snapshot is asked for.
    tasksDiff(socket, id, 5, { related: [commentsOf(3, [comment(7, { task_id: 3 })], 1)] })
    expect(w.seen).toHaveLength(1)
    const fresh = subId(socket)
    expect(fresh).not.toBe(id)
    socket.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: fresh,
      version: 9,
      table: 'tasks',
      rows: [task(1), task(2)],
      related: [commentsOf(2, [comment(5, { task_id: 2 })], 1)],
    })
    expect(w.rows).toEqual([
      { ...task(1), comments: [], comments_count: 0 },
      { ...task(2), comments: [comment(5, { task_id: 2 })], comments_count: 1 },
    ])
  })

  it('applies related entries of the diffs replayed after `resumed`, and not of stale ones', () => {
    const { client, factory, w, socket } = tasksWithComments()
    socket.drop(1006, '')
    vi.advanceTimersByTime(10_000)
    const second = factory.last
    expect(second).not.toBe(socket)
    second.accept()
    const [sub] = sentOf(second, 'subscribe')
    expect(sub?.since).toEqual({ epoch: 'e1', version: 1 })
    expect(sub?.query).toEqual(TASKS_WITH_COMMENTS)
    const id = sub!.id
    second.receive({ type: 'resumed', id, epoch: 'e1', from: 1, to: 3 })
    // The rows and their related rows stay while resuming.
    expect(w.seen).toHaveLength(1)
    tasksDiff(second, id, 1, { related: [commentsOf(3, [comment(8, { task_id: 3 })], 1)] })
    tasksDiff(second, id, 2, { deletes: [2], related: [commentsOf(1, [comment(2, { task_id: 1 })], 4)] })
    expect(client.getStatus().state).toBe('live')
    expect(w.seen.map((s) => s.version)).toEqual([1, 2, 3])
    expect(w.rows).toEqual([
      { ...task(1), comments: [comment(2, { task_id: 1 })], comments_count: 4 },
      { ...task(3), comments: [comment(8, { task_id: 3 })], comments_count: 1 },
    ])
    // A diff already applied (to <= version) changes nothing, its related entries neither.
    tasksDiff(second, id, 2, { related: [commentsOf(1, [], 0)] })
    expect(w.seen).toHaveLength(3)
    expect(w.rows?.[0]?.comments_count).toBe(4)
    expect(client.inspect()[0]?.relations[0]).toMatchObject({ entries: 2, rows: 2 })
  })

  it('resyncs on a malformed related entry, applying nothing of its diff', () => {
    const { w, socket, id } = tasksWithComments()
    socket.receiveRaw(
      JSON.stringify({
        type: 'diff',
        id,
        from: 1,
        to: 2,
        table: 'tasks',
        upserts: [],
        deletes: [1],
        related: [{ relation: 'comments', of: 2, table: 'comments', rows: 'nope' }],
      }),
    )
    expect(w.seen).toHaveLength(1)
    expect(subId(socket)).not.toBe(id)
    expect(sentOf(socket, 'subscribe').at(-1)?.since).toBeUndefined()
  })

  it('leaves a query without include as it was: plain rows, same objects, no relations', () => {
    const { client, factory } = setup()
    const w = watchQuery(client, { table: 'tasks' })
    const items = watchQuery(client, { table: 'items' })
    factory.last.accept()
    const [tasksSub, itemsSub] = sentOf(factory.last, 'subscribe')
    // Even a frame with related entries does not add fields to them.
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: tasksSub!.id,
      version: 1,
      table: 'tasks',
      rows: [task(1), task(2)],
      related: [commentsOf(1, [comment(1)], 1)],
    })
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: itemsSub!.id,
      version: 1,
      table: 'items',
      rows: [item(1), item(2)],
    })
    expect(w.rows).toStrictEqual([task(1), task(2)])
    const before = w.rows!
    tasksDiff(factory.last, tasksSub!.id, 1, {
      upserts: [{ at: 1, row: task(2, { priority: 3 }) }],
      related: [commentsOf(2, [comment(2)], 1)],
    })
    expect(w.rows).toStrictEqual([task(1), task(2, { priority: 3 })])
    expect(w.rows?.[0]).toBe(before[0])
    expect(items.rows).toStrictEqual([item(1), item(2)])
    expect(client.inspect().map((i) => i.relations)).toEqual([[], []])
  })
})
