import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Comment, Item, Task } from './generated'
import { comment, item, socketFactory, task, uuid, type FakeSocket } from './test/fixtures'
import { LiveClient, type LiveClientOptions } from './client'
import { LiveConnectionError, LiveSubscriptionError } from './errors'
import type { ConnectionState } from './state'

/** A client on fake sockets and (vitest's) fake timers that records every delay it asks for. */
function setup(options: LiveClientOptions = {}) {
  const factory = socketFactory()
  const delays: number[] = []
  const statuses: ConnectionState[] = []
  let online = true
  let onOnline: (() => void) | null = null
  const client = new LiveClient({
    url: 'ws://test/ws',
    createWebSocket: factory.create,
    random: () => 0.5,
    timers: {
      setTimeout: (fn, ms) => {
        delays.push(ms)
        return setTimeout(fn, ms)
      },
      clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
    },
    isOnline: () => online,
    watchOnline: (cb) => {
      onOnline = cb
      return () => (onOnline = null)
    },
    ...options,
  })
  client.onStatus((s) => statuses.push(s.state))
  return {
    client,
    factory,
    delays,
    statuses,
    setOnline: (value: boolean) => {
      online = value
      if (value) onOnline?.()
    },
  }
}

/** Subscribes to items and records what the subscriber gets. */
function watchItems(client: LiveClient) {
  const seen: { rows: Item[]; version: number }[] = []
  const errors: LiveSubscriptionError[] = []
  const unsubscribe = client.subscribe(
    { table: 'items' },
    {
      next: (rows, version) => seen.push({ rows, version }),
      error: (e) => errors.push(e),
    },
  )
  return {
    seen,
    errors,
    unsubscribe,
    get rows() {
      return seen.at(-1)?.rows
    },
  }
}

function subId(socket: FakeSocket): string {
  const sub = socket.lastSubscribe()
  if (!sub) throw new Error('nothing subscribed')
  return sub.id
}

beforeEach(() => {
  vi.useFakeTimers()
})

afterEach(() => {
  vi.useRealTimers()
})

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
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 3,
      table: 'items',
      rows: [item(1), item(2)],
    })
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
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'items',
      rows: [],
    })
    expect(client.getStatus().state).toBe('live')
  })
})

describe('LiveClient errors', () => {
  it('reports a subscription error; a permanent one is not retried until reconnect', () => {
    const { client, factory } = setup()
    const w = watchItems(client)
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'error', id, code: 'invalid_query', message: 'limit too large' })
    expect(w.errors).toHaveLength(1)
    expect(w.errors[0]).toBeInstanceOf(LiveSubscriptionError)
    expect(w.errors[0]?.code).toBe('invalid_query')
    expect(w.errors[0]?.message).toBe('limit too large')
    vi.advanceTimersByTime(60_000)
    expect(factory.last.messages()).toHaveLength(1)
    // A new connection tries again.
    factory.last.drop()
    vi.advanceTimersByTime(300)
    factory.last.accept()
    expect(factory.last.messages()).toHaveLength(1)
  })

  it('retries a transient subscription error with backoff', () => {
    const { client, factory, delays } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.receive({ type: 'error', id: subId(factory.last), code: 'rate_limited', message: 'slow down' })
    expect(w.errors.map((e) => e.code)).toEqual(['rate_limited'])
    expect(delays.at(-1)).toBe(125) // 0.5 * 250
    vi.advanceTimersByTime(125)
    expect(factory.last.messages().filter((m) => m.type === 'subscribe')).toHaveLength(2)
    factory.last.receive({ type: 'error', id: subId(factory.last), code: 'query_failed', message: 'try later' })
    expect(delays.at(-1)).toBe(250) // second retry: 0.5 * 500
    vi.advanceTimersByTime(250)
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [item(1)] })
    expect(w.rows).toEqual([item(1)])
  })

  it('retries server_busy (the server is full for now) with backoff', () => {
    const { client, factory, delays } = setup()
    const w = watchItems(client)
    factory.last.accept()
    factory.last.receive({ type: 'error', id: subId(factory.last), code: 'server_busy', message: 'busy' })
    expect(w.errors.map((e) => e.code)).toEqual(['server_busy'])
    expect(delays.at(-1)).toBe(125)
    vi.advanceTimersByTime(124)
    expect(factory.last.messages().filter((m) => m.type === 'subscribe')).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(factory.last.messages().filter((m) => m.type === 'subscribe')).toHaveLength(2)
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'items',
      rows: [item(1)],
    })
    expect(w.rows).toEqual([item(1)])
  })

  it('passes connection-level errors to onError listeners', () => {
    const { client, factory } = setup()
    const got: unknown[] = []
    client.onError((e) => got.push(e))
    client.connect()
    factory.last.accept()
    factory.last.receive({ type: 'error', code: 'bad_frame', message: 'could not parse' })
    expect(got).toHaveLength(1)
    expect(got[0]).toBeInstanceOf(LiveConnectionError)
    expect(got[0]).toMatchObject({ code: 'bad_frame', message: 'could not parse' })
  })

  it('a throwing subscriber does not break the client', () => {
    const { client, factory } = setup()
    const boom = vi.fn(() => {
      throw new Error('listener bug')
    })
    const logged = vi.spyOn(console, 'error').mockImplementation(() => {})
    client.subscribe({ table: 'items' }, { next: boom })
    const w = watchItems(client)
    factory.last.accept()
    for (const m of factory.last.messages()) {
      if (m.type !== 'subscribe') continue
      factory.last.receive({ type: 'snapshot', epoch: 'e1', id: m.id, version: 1, table: 'items', rows: [item(1)] })
    }
    expect(boom).toHaveBeenCalledTimes(1)
    expect(w.rows).toEqual([item(1)])
    expect(logged).toHaveBeenCalledTimes(1)
    logged.mockRestore()
  })
})

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
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'items',
      rows: [],
    })
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
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'items',
      rows: [item(1)],
    })
    factory.last.drop()
    vi.advanceTimersByTime(10_000)
    expect(w.seen).toHaveLength(1)
    factory.last.accept()
    factory.last.receive({
      type: 'snapshot',
      epoch: 'e1',
      id: subId(factory.last),
      version: 1,
      table: 'items',
      rows: [item(1), item(2)],
    })
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
