// LiveClient across connections: the statuses it shows, the backoff and its
// jitter, the network coming back, close() and reconnectNow().
import { describe, expect, it, vi } from 'vitest'
import type { Task } from './generated'
import { item, socketFactory, task } from './test/fixtures'
import { LiveClient } from './client'
import { receiveSnapshot, setup, useFakeTimersInEachTest, watchItems } from './test/harness'

useFakeTimersInEachTest()

describe('LiveClient reconnect', () => {
  it('goes connecting → live → reconnecting → live and resubscribes everything, resuming', () => {
    const { client, factory, statuses } = setup()
    const items = watchItems(client)
    const tasks: Task[][] = []
    client.subscribe({ table: 'tasks', filter: { assignee_eq: 'bob' } }, { next: (rows) => tasks.push(rows) })
    expect(client.getStatus().state).toBe('connecting')
    const first = factory.last
    first.accept()
    const [a, b] = first.messages().map((m) => (m.type === 'auth' ? null : m.id))
    first.receive({ type: 'snapshot', epoch: 'e1', id: a!, version: 4, table: 'items', rows: [item(1)] })
    first.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: b!,
      version: 4,
      table: 'tasks',
      rows: [task(1, { assignee: 'bob' })],
    })

    first.drop(1001)
    expect(client.getStatus().state).toBe('reconnecting')
    vi.advanceTimersByTime(1000)
    const second = factory.last
    expect(second).not.toBe(first)
    second.accept()
    // Connected again, but not live until every subscription is current.
    expect(client.getStatus().state).toBe('reconnecting')

    const resent = second.messages()
    expect(resent.map((m) => m.type)).toEqual(['subscribe', 'subscribe'])
    expect(resent.map((m) => (m.type === 'subscribe' ? m.query : null))).toEqual([
      { table: 'items' },
      { table: 'tasks', filter: { assignee_eq: 'bob' } },
    ])
    // Each asks to resume from what it holds.
    expect(resent.map((m) => (m.type === 'subscribe' ? m.since : null))).toEqual([
      { epoch: 'e1', version: 4 },
      { epoch: 'e1', version: 4 },
    ])
    // The server could not resume (say it restarted): fresh snapshots replace
    // what was there; a diff from the old connection's version chain is not
    // applied before them.
    const [a2, b2] = resent.map((m) => (m.type === 'auth' ? null : m.id))
    second.receive({ type: 'diff', id: a2!, from: 4, to: 5, table: 'items', upserts: [], deletes: ['1'] })
    expect(items.rows).toEqual([item(1)])
    second.receive({ type: 'snapshot', epoch: 'e1', id: a2!, version: 1, table: 'items', rows: [item(1), item(7)] })
    expect(client.getStatus().state).toBe('reconnecting')
    second.receive({ type: 'snapshot', epoch: 'e1', id: b2!, version: 1, table: 'tasks', rows: [] })
    expect(client.getStatus().state).toBe('live')
    expect(statuses).toEqual(['live', 'reconnecting', 'live'])
    expect(items.rows).toEqual([item(1), item(7)])
    expect(tasks.at(-1)).toEqual([])
    // Messages that reach the old socket are ignored.
    first.receive({ type: 'snapshot', epoch: 'e1', id: a!, version: 9, table: 'items', rows: [] })
    expect(items.rows).toEqual([item(1), item(7)])
  })

  it('backs off exponentially with full jitter up to the cap', () => {
    const { client, factory, delays } = setup({ random: () => 0.999999 })
    client.connect()
    const expected = [249, 499, 999, 1999, 3999, 7999, 9999, 9999, 9999]
    for (const d of expected) {
      factory.last.fail()
      expect(client.getStatus().state).toBe('reconnecting')
      expect(delays.at(-1)).toBe(d)
      const made = factory.sockets.length
      vi.advanceTimersByTime(d - 1)
      expect(factory.sockets.length).toBe(made) // not before the delay
      vi.advanceTimersByTime(1)
      expect(factory.sockets.length).toBe(made + 1)
    }
  })

  it('jitters each delay by the random source', () => {
    const values = [0.1, 0.9, 0.3, 0.7]
    let n = 0
    const { client, factory, delays } = setup({ random: () => values[n++ % values.length]! })
    client.connect()
    for (let k = 0; k < 4; k++) {
      factory.last.fail()
      vi.advanceTimersByTime(10_000)
    }
    expect(delays).toEqual([25, 450, 300, 1400]) // 0.1*250, 0.9*500, 0.3*1000, 0.7*2000
  })

  it('resets the backoff once a connection has stayed up', () => {
    const { client, factory, delays } = setup({ random: () => 0.999999, stableAfterMs: 2000 })
    client.connect()
    factory.last.fail()
    vi.advanceTimersByTime(249)
    factory.last.fail()
    vi.advanceTimersByTime(499)
    expect(delays.filter((d) => d !== 2000)).toEqual([249, 499])
    // Open but dropped quickly: the backoff keeps growing.
    factory.last.accept()
    vi.advanceTimersByTime(500)
    factory.last.drop()
    expect(delays.filter((d) => d !== 2000).at(-1)).toBe(999)
    vi.advanceTimersByTime(999)
    // Open long enough: back to the base delay.
    factory.last.accept()
    vi.advanceTimersByTime(2000)
    factory.last.drop(4000, 'too slow')
    expect(delays.filter((d) => d !== 2000).at(-1)).toBe(249)
  })

  it('reconnects after a close of any kind, including when the factory throws', () => {
    let fail = true
    const factory = socketFactory()
    const client = new LiveClient({
      url: 'ws://test/ws',
      random: () => 0,
      isOnline: () => true,
      watchOnline: () => () => {},
      createWebSocket: (url) => {
        if (fail) throw new Error('cannot construct')
        return factory.create(url)
      },
    })
    client.connect()
    expect(client.getStatus().state).toBe('reconnecting')
    fail = false
    vi.advanceTimersByTime(0)
    factory.last.accept()
    expect(client.getStatus().state).toBe('live')
    factory.last.drop(4001, 'slow client')
    vi.advanceTimersByTime(0)
    expect(factory.sockets).toHaveLength(2)
  })

  it('is offline while the browser is, and retries at once when the network returns', () => {
    const { client, factory, setOnline } = setup({ random: () => 0.999999 })
    client.connect()
    factory.last.accept()
    setOnline(false)
    factory.last.fail()
    expect(client.getStatus().state).toBe('offline')
    const made = factory.sockets.length
    setOnline(true) // 'online' event: no waiting for the backoff timer
    expect(factory.sockets.length).toBe(made + 1)
    expect(client.getStatus().state).toBe('reconnecting')
    factory.last.accept()
    expect(client.getStatus().state).toBe('live')
  })

  it('close() stops for good', () => {
    const { client, factory, statuses } = setup()
    watchItems(client)
    factory.last.accept()
    receiveSnapshot(factory.last)
    client.close()
    expect(client.getStatus().state).toBe('offline')
    expect(factory.last.closedWith?.code).toBe(1000)
    vi.advanceTimersByTime(60_000)
    expect(factory.sockets).toHaveLength(1)
    expect(statuses).toEqual(['live', 'offline'])
    client.reconnectNow()
    expect(factory.sockets).toHaveLength(1)
  })

  it('reconnectNow skips the wait', () => {
    const { client, factory } = setup({ random: () => 0.999999 })
    client.connect()
    factory.last.accept()
    factory.last.drop()
    expect(factory.sockets).toHaveLength(1)
    client.reconnectNow()
    expect(factory.sockets).toHaveLength(2)
    client.reconnectNow() // already connecting: no second socket
    expect(factory.sockets).toHaveLength(2)
  })

  it('keeps the last rows across a reconnect until the new snapshot', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    receiveSnapshot(factory.last, { rows: [item(1)] })
    factory.last.drop()
    vi.advanceTimersByTime(10_000)
    expect(w.seen).toHaveLength(1)
    factory.last.accept()
    receiveSnapshot(factory.last, { rows: [item(1), item(2)] })
    expect(w.rows).toEqual([item(1), item(2)])
  })

  it('does not send an unsubscribe for a subscription dropped while disconnected', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.drop()
    w.unsubscribe()
    vi.advanceTimersByTime(10_000)
    factory.last.accept()
    expect(factory.last.messages()).toEqual([])
  })
})
