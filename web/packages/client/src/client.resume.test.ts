import { describe, expect, it, vi } from 'vitest'
import { item } from './test/fixtures'
import { receiveSnapshot, sentOf, setup, subId, useFakeTimersInEachTest, watchItems } from './test/harness'

useFakeTimersInEachTest()

/** A client with one items subscription at version 4 of epoch `e1`, then disconnected and reconnected. */
function reconnected() {
  const h = setup()
  const w = watchItems(h.client)
  const first = h.factory.last
  first.accept()
  receiveSnapshot(first, { version: 4, rows: [item(1), item(2)] })
  expect(h.client.getStatus().state).toBe('live')
  first.drop(1006, '')
  expect(h.client.getStatus().state).toBe('reconnecting')
  vi.advanceTimersByTime(10_000)
  const second = h.factory.last
  expect(second).not.toBe(first)
  second.accept()
  return { ...h, w, first, second }
}

describe('LiveClient resume', () => {
  it('resubscribes with since, keeps the rows on `resumed`, applies the missed diffs, then is live', () => {
    const { client, w, second, statuses } = reconnected()
    const [sub] = sentOf(second, 'subscribe')
    expect(sub?.since).toEqual({ epoch: 'e1', version: 4 })
    expect(sub?.query).toEqual({ table: 'items' })
    second.receive({ type: 'resumed', id: sub!.id, epoch: 'e1', from: 4, to: 6 })
    // Nothing new for the app yet: the rows it shows are still right for version 4.
    expect(w.seen).toHaveLength(1)
    expect(client.getStatus().state).toBe('reconnecting') // catching up
    second.receive({
      type: 'diff',
      id: sub!.id,
      from: 4,
      to: 5,
      table: 'items',
      upserts: [{ at: 2, row: item(3, 'written while away') }],
      deletes: [],
    })
    expect(client.getStatus().state).toBe('reconnecting')
    second.receive({ type: 'diff', id: sub!.id, from: 5, to: 6, table: 'items', upserts: [], deletes: ['1'] })
    expect(client.getStatus().state).toBe('live')
    expect(statuses).toEqual(['live', 'reconnecting', 'live'])
    expect(w.rows).toEqual([item(2), item(3, 'written while away')])
    // The app never saw the rows go away or go back.
    expect(w.seen.map((s) => s.rows.length)).toEqual([2, 3, 2])
    expect(w.seen.map((s) => s.version)).toEqual([4, 5, 6])
    expect(client.getStats()).toMatchObject({ connections: 2, snapshots: 1, resumes: 1, resyncs: 0 })
    // Live diffs continue from there.
    second.receive({ type: 'diff', id: sub!.id, from: 6, to: 7, table: 'items', upserts: [], deletes: ['2'] })
    expect(w.rows).toEqual([item(3, 'written while away')])
  })

  it('is live at once on a resume with nothing missed', () => {
    const { client, w, second } = reconnected()
    second.receive({ type: 'resumed', id: subId(second), epoch: 'e1', from: 4, to: 4 })
    expect(client.getStatus().state).toBe('live')
    expect(w.seen).toHaveLength(1)
  })

  it('takes a snapshot instead when the server cannot resume (a new epoch: restarted, or history gone)', () => {
    const { client, factory, w, second } = reconnected()
    const id = subId(second)
    second.receive({ type: 'snapshot', epoch: 'e2', id, version: 1, table: 'items', rows: [item(2), item(5)] })
    expect(w.rows).toEqual([item(2), item(5)])
    expect(client.getStatus().state).toBe('live')
    // The next resume starts from the new epoch.
    second.drop()
    vi.advanceTimersByTime(10_000)
    factory.last.accept()
    expect(sentOf(factory.last, 'subscribe').at(-1)?.since).toEqual({ epoch: 'e2', version: 1 })
  })

  it('a gap during the catch-up: a fresh snapshot (a subscribe without since)', () => {
    const { client, w, second } = reconnected()
    const id = subId(second)
    second.receive({ type: 'resumed', id, epoch: 'e1', from: 4, to: 7 })
    second.receive({ type: 'diff', id, from: 4, to: 5, table: 'items', upserts: [], deletes: ['1'] })
    // 5 → 6 never arrives.
    second.receive({ type: 'diff', id, from: 6, to: 7, table: 'items', upserts: [], deletes: ['2'] })
    expect(w.rows).toEqual([item(2)]) // the gapped diff was not applied
    const msgs = second.messages()
    expect(msgs.slice(-2)).toEqual([
      { type: 'unsubscribe', id },
      { type: 'subscribe', id: expect.any(String), query: { table: 'items' } },
    ])
    expect(client.getStatus().state).toBe('reconnecting')
    const fresh = subId(second)
    second.receive({ type: 'snapshot', epoch: 'e1', id: fresh, version: 7, table: 'items', rows: [item(9)] })
    expect(w.rows).toEqual([item(9)])
    expect(client.getStatus().state).toBe('live')
    expect(client.getStats()).toMatchObject({ resumes: 1, resyncs: 1, snapshots: 2 })
  })

  it('a `resumed` that does not continue what is held is not trusted: snapshot', () => {
    const { second, w } = reconnected()
    const id = subId(second)
    second.receive({ type: 'resumed', id, epoch: 'e1', from: 3, to: 5 })
    expect(sentOf(second, 'subscribe').at(-1)).toEqual({
      type: 'subscribe',
      id: expect.any(String),
      query: { table: 'items' },
    })
    expect(sentOf(second, 'unsubscribe')).toEqual([{ type: 'unsubscribe', id }])
    expect(w.seen).toHaveLength(1)
  })

  it('after a resync the next reconnect resumes from the new snapshot', () => {
    const { client, factory, second } = reconnected()
    const id = subId(second)
    // A diff that does not fit: resync.
    second.receive({ type: 'resumed', id, epoch: 'e1', from: 4, to: 5 })
    second.receive({
      type: 'diff',
      id,
      from: 4,
      to: 5,
      table: 'items',
      upserts: [{ at: 9, row: item(7) }],
      deletes: [],
    })
    const fresh = subId(second)
    expect(sentOf(second, 'subscribe').at(-1)?.since).toBeUndefined()
    // Disconnected before its snapshot: still a snapshot is asked for.
    second.drop()
    vi.advanceTimersByTime(10_000)
    factory.last.accept()
    expect(sentOf(factory.last, 'subscribe').at(-1)?.since).toBeUndefined()
    receiveSnapshot(factory.last, { version: 9 })
    expect(fresh).not.toBe(subId(factory.last))
    factory.last.drop()
    vi.advanceTimersByTime(10_000)
    factory.last.accept()
    expect(sentOf(factory.last, 'subscribe').at(-1)?.since).toEqual({ epoch: 'e1', version: 9 })
    expect(client.getStatus().state).toBe('reconnecting')
  })

  it('a subscription that never had rows asks for a snapshot', () => {
    const { client, factory } = setup()
    watchItems(client)
    factory.last.accept()
    factory.last.drop()
    vi.advanceTimersByTime(10_000)
    factory.last.accept()
    expect(sentOf(factory.last, 'subscribe')).toEqual([
      { type: 'subscribe', id: expect.any(String), query: { table: 'items' } },
    ])
  })

  it('ignores a diff that arrives before the resume answer', () => {
    const { second, w } = reconnected()
    const id = subId(second)
    second.receive({ type: 'diff', id, from: 4, to: 5, table: 'items', upserts: [], deletes: ['1'] })
    expect(w.seen).toHaveLength(1)
    expect(sentOf(second, 'unsubscribe')).toHaveLength(0)
  })
})
