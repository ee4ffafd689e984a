// A LiveClient on fake sockets and (vitest's) fake timers, with helpers to
// play the server's side of the protocol.
import { afterEach, beforeEach, vi } from 'vitest'
import type { ClientMessage, Item, LiveQuery } from '../generated'
import { LiveClient, type LiveClientOptions } from '../client'
import type { LiveError, LiveSubscriptionError } from '../errors'
import type { ConnectionState } from '../state'
import type { RowsOf } from '../types'
import { socketFactory, type FakeSocket } from './fixtures'

/** A client whose delays, statuses and connection errors are recorded. */
export function setup(options: LiveClientOptions = {}) {
  const factory = socketFactory()
  const delays: number[] = []
  const statuses: ConnectionState[] = []
  const errors: LiveError[] = []
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
  client.onError((e) => errors.push(e))
  return {
    client,
    factory,
    delays,
    statuses,
    errors,
    setOnline: (value: boolean) => {
      online = value
      if (value) onOnline?.()
    },
  }
}

/** Subscribes to items and records what the subscriber gets. */
export function watchItems(client: LiveClient) {
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

/** Subscribes to any query and records what the subscriber gets: rows, version and count. */
export function watchQuery<Q extends LiveQuery>(client: LiveClient, query: Q) {
  const seen: { rows: RowsOf<Q>; version: number; count: number | null }[] = []
  const errors: LiveSubscriptionError[] = []
  const unsubscribe = client.subscribe(query, {
    next: (rows, version, count) => seen.push({ rows, version, count }),
    error: (e) => errors.push(e),
  })
  return {
    seen,
    errors,
    unsubscribe,
    get rows(): RowsOf<Q> | undefined {
      return seen.at(-1)?.rows
    },
  }
}

/** The id of the last `subscribe` sent on `socket`. */
export function subId(socket: FakeSocket): string {
  const sub = socket.lastSubscribe()
  if (!sub) throw new Error('nothing subscribed')
  return sub.id
}

/**
 * The server's snapshot of `items` for the last subscription sent on
 * `socket` (epoch `e1`, version 1, no rows and no count unless given).
 */
export function receiveSnapshot(
  socket: FakeSocket,
  snapshot: { epoch?: string; version?: number; rows?: Item[]; count?: number } = {},
) {
  socket.receive({
    type: 'snapshot',
    epoch: snapshot.epoch ?? 'e1',
    id: subId(socket),
    version: snapshot.version ?? 1,
    ...(snapshot.count === undefined ? {} : { count: snapshot.count }),
    table: 'items',
    rows: snapshot.rows ?? [],
  })
}

/** Messages of one type sent on `socket`. */
export function sentOf<T extends ClientMessage['type']>(
  socket: FakeSocket,
  type: T,
): Extract<ClientMessage, { type: T }>[] {
  return socket.messages().filter((m): m is Extract<ClientMessage, { type: T }> => m.type === type)
}

/** Lets pending promise callbacks (a token being fetched) run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

/** Every test of the calling file runs on vitest's fake timers, real ones restored after. */
export function useFakeTimersInEachTest() {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })
}
