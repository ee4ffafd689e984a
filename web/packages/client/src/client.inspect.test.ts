import { useFakeTimersInEachTest } from './test/harness'
import { describe, expect, it, vi } from 'vitest'
import { item, socketFactory, type FakeSocket } from './test/fixtures'
import { LiveClient, type InspectEvent, type SubscriptionStatus } from './client'

/** A client on fake sockets and timers whose clock the test sets. */
function setup() {
  const factory = socketFactory()
  let clock = 1_000_000
  const client = new LiveClient({
    url: 'ws://test/ws',
    createWebSocket: factory.create,
    random: () => 0.5,
    isOnline: () => true,
    watchOnline: () => () => {},
    now: () => clock,
  })
  return {
    client,
    factory,
    setClock: (ms: number) => (clock = ms),
  }
}

function subId(socket: FakeSocket): string {
  const sub = socket.lastSubscribe()
  if (!sub) throw new Error('nothing subscribed')
  return sub.id
}

useFakeTimersInEachTest()

describe('LiveClient.inspect', () => {
  it('lists each subscription with its query, version, rows, counters and last change', () => {
    const { client, factory, setClock } = setup()
    const events: InspectEvent[] = []
    client.onInspect((e) => events.push(e))
    client.subscribe({ table: 'items', limit: 50 }, { next: () => {} })
    expect(client.inspect()).toEqual([
      expect.objectContaining({ query: { table: 'items', limit: 50 }, version: null, rows: null, snapshots: 0 }),
    ])
    factory.last.accept()
    const id = subId(factory.last)
    setClock(2_000_000)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 3, table: 'items', rows: [item(1), item(2)] })
    setClock(2_000_500)
    factory.last.receive({
      type: 'diff',
      id,
      from: 3,
      to: 4,
      table: 'items',
      upserts: [{ at: 2, row: item(3) }],
      deletes: [],
      noticed_at: 2_000_420,
    })
    const [info] = client.inspect()
    expect(info).toMatchObject({
      wireId: id,
      epoch: 'e1',
      version: 4,
      rows: 3,
      snapshots: 1,
      diffs: 1,
      resyncs: 0,
      resumes: 0,
      lastChangeAt: 2_000_500,
      lastNoticedAt: 2_000_420,
      status: null,
      error: null,
    })
    expect(events.map((e) => e.kind)).toEqual(['subscribed', 'snapshot', 'diff'])
    expect(events.at(-1)).toEqual({ key: info?.key, kind: 'diff', at: 2_000_500, noticedAt: 2_000_420 })
  })

  it('counts a resync when a diff does not fit, and keeps noticed_at absent for whole re-runs', () => {
    const { client, factory } = setup()
    client.subscribe({ table: 'items' }, { next: () => {} })
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [item(1)] })
    factory.last.receive({ type: 'diff', id, from: 1, to: 2, table: 'items', upserts: [], deletes: ['1'] })
    expect(client.inspect()[0]).toMatchObject({ diffs: 1, lastNoticedAt: null })
    // A gap: the client asks for a new snapshot.
    factory.last.receive({ type: 'diff', id, from: 5, to: 6, table: 'items', upserts: [], deletes: [] })
    expect(client.inspect()[0]).toMatchObject({ resyncs: 1 })
    const fresh = subId(factory.last)
    expect(fresh).not.toBe(id)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id: fresh, version: 6, table: 'items', rows: [] })
    expect(client.inspect()[0]).toMatchObject({ snapshots: 2, version: 6, rows: 0, wireId: fresh })
  })

  it('drops a subscription from the list when it ends', () => {
    const { client, factory } = setup()
    const stop = client.subscribe({ table: 'items' }, { next: () => {} })
    client.subscribe({ table: 'tasks' }, { next: () => {} })
    factory.last.accept()
    expect(client.inspect().map((i) => i.query.table)).toEqual(['items', 'tasks'])
    stop()
    expect(client.inspect().map((i) => i.query.table)).toEqual(['tasks'])
  })
})

describe('per-subscription status', () => {
  it('delivers delayed (query_failing) then live for that subscription only, and clears on a new connection', () => {
    const { client, factory, setClock } = setup()
    const seen: (SubscriptionStatus | null)[] = []
    const other: (SubscriptionStatus | null)[] = []
    client.subscribe({ table: 'items' }, { next: () => {}, status: (s) => seen.push(s) })
    client.subscribe({ table: 'tasks' }, { next: () => {}, status: (s) => other.push(s) })
    factory.last.accept()
    const [itemsSub] = factory.last
      .messages()
      .filter((m) => m.type === 'subscribe')
      .map((m) => (m as { id: string }).id)
    setClock(5_000)
    factory.last.receive({ type: 'status', id: itemsSub, state: 'delayed', reason: 'query_failing' })
    expect(seen).toEqual([{ state: 'delayed', reason: 'query_failing', at: 5_000 }])
    expect(client.inspect()[0]?.status).toEqual({ state: 'delayed', reason: 'query_failing', at: 5_000 })
    // The connection's own status is not what one subscription says.
    expect(client.getStatus().state).not.toBe('delayed')
    setClock(6_000)
    factory.last.receive({ type: 'status', id: itemsSub, state: 'live' })
    expect(seen.at(-1)).toEqual({ state: 'live', reason: null, at: 6_000 })
    expect(other).toEqual([])
    factory.last.drop()
    expect(seen.at(-1)).toBeNull()
    expect(client.inspect()[0]?.status).toBeNull()
  })

  it('forgets the status of a subscription the server ended, once it subscribes again', () => {
    const { client, factory } = setup()
    const seen: (SubscriptionStatus | null)[] = []
    client.subscribe({ table: 'items' }, { next: () => {}, status: (s) => seen.push(s) })
    factory.last.accept()
    const first = subId(factory.last)
    factory.last.receive({ type: 'status', id: first, state: 'delayed', reason: 'query_failing' })
    factory.last.receive({ type: 'error', id: first, code: 'query_failed', message: 'the query failed 3 times' })
    expect(client.inspect()[0]).toMatchObject({ status: { state: 'delayed' }, error: { code: 'query_failed' } })
    // query_failed is retried: a new wire subscription, whose group has said nothing yet.
    vi.runOnlyPendingTimers()
    const second = subId(factory.last)
    expect(second).not.toBe(first)
    expect(seen.at(-1)).toBeNull()
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id: second, version: 1, table: 'items', rows: [] })
    expect(client.inspect()[0]).toMatchObject({ status: null, error: null, wireId: second })
  })

  it('ignores a status for an id it does not know', () => {
    const { client, factory } = setup()
    const seen: unknown[] = []
    client.subscribe({ table: 'items' }, { next: () => {}, status: (s) => seen.push(s) })
    factory.last.accept()
    factory.last.receive({ type: 'status', id: 'nope', state: 'delayed', reason: 'query_failing' })
    expect(seen).toEqual([])
  })
})

describe('status history', () => {
  it('records each connection status change with its time, bounded', () => {
    const { client, factory, setClock } = setup()
    client.subscribe({ table: 'items' }, { next: () => {} })
    setClock(1_100_000)
    factory.last.accept()
    const id = subId(factory.last)
    factory.last.receive({ type: 'snapshot', epoch: 'e1', id, version: 1, table: 'items', rows: [] })
    setClock(1_200_000)
    factory.last.receive({ type: 'status', state: 'delayed', reason: 'database_unreachable' })
    setClock(1_300_000)
    factory.last.receive({ type: 'status', state: 'live' })
    const history = client.getStatusHistory()
    expect(history.map((h) => h.status.state)).toEqual(['connecting', 'live', 'delayed', 'live'])
    expect(history.map((h) => h.at)).toEqual([1_000_000, 1_100_000, 1_200_000, 1_300_000])
    for (let i = 0; i < 60; i++) {
      factory.last.receive({ type: 'status', state: i % 2 === 0 ? 'delayed' : 'live', reason: 'capture_down' })
    }
    expect(client.getStatusHistory()).toHaveLength(50)
  })
})
