// Live queries as TanStack Query queries, for any framework.
//
// A live query's cache entry is fed by one LiveClient subscription: the first
// snapshot resolves the query, every later snapshot or diff replaces the
// cached rows (`setQueryData`), so the query never goes back to a loading
// state, not even across reconnects: the client keeps the rows and resumes.
// The subscription lives while the cache entry has observers, so two
// components showing the same query share one, and the last one to go ends
// it. The Vue and React adapters give this registry their QueryClient
// through the small `LiveQueryCache` interface.
import type { LiveQuery } from './generated'
import type { LiveClient, SubscriptionStatus } from './client'
import type { LiveSubscriptionError } from './errors'
import type { AnyLiveRow } from './types'

/**
 * A live query's TanStack Query key: `['live', query]`. TanStack's `hashKey`
 * of it (object keys sorted) names the query's subscription, so equal queries
 * written in a different key order share one.
 */
export type LiveQueryKey = readonly ['live', LiveQuery]

export function liveQueryKey<Q extends LiveQuery>(query: Q): readonly ['live', Q] {
  return ['live', query] as const
}

export function isLiveQueryKey(key: readonly unknown[]): key is LiveQueryKey {
  return key.length === 2 && key[0] === 'live' && typeof key[1] === 'object' && key[1] !== null
}

/** A change to a live query's cache entry that the registry follows. */
export interface LiveCacheEvent {
  type: 'observerAdded' | 'observerRemoved' | 'removed'
  key: LiveQueryKey
  /** Observers the query has after the change. */
  observers: number
}

/** What the registry needs from a TanStack QueryClient. */
export interface LiveQueryCache {
  /** Calls `listener` for live queries' observer changes and removals; returns a function that stops it. */
  watch(listener: (event: LiveCacheEvent) => void): () => void
  /** Observers of the query with `key` now (0 when it is not cached). */
  observers(key: LiveQueryKey): number
  /** Replaces the query's data, as `setQueryData` does. */
  setRows(key: LiveQueryKey, rows: AnyLiveRow[]): void
  /** TanStack's `hashKey`. */
  hash(key: LiveQueryKey): string
}

/** The structural part of a TanStack `QueryClient` (query-core's, which every adapter re-exports). */
export interface QueryClientLike {
  getQueryCache(): {
    subscribe(
      listener: (event: { type: string; query: { queryKey: readonly unknown[]; getObserversCount(): number } }) => void,
    ): () => void
    find(filters: { queryKey: LiveQueryKey; exact: true }): { getObserversCount(): number } | undefined
  }
}

/** A `LiveQueryCache` over a TanStack QueryClient; `setRows` and `hash` come from the adapter's package. */
export function tanstackCache(
  queryClient: QueryClientLike,
  setRows: (key: LiveQueryKey, rows: AnyLiveRow[]) => void,
  hash: (key: LiveQueryKey) => string,
): LiveQueryCache {
  return {
    watch: (listener) =>
      queryClient.getQueryCache().subscribe((event) => {
        const key = event.query.queryKey
        if (!isLiveQueryKey(key)) return
        if (event.type === 'observerAdded' || event.type === 'observerRemoved' || event.type === 'removed') {
          listener({ type: event.type, key, observers: event.query.getObserversCount() })
        }
      }),
    observers: (key) => queryClient.getQueryCache().find({ queryKey: key, exact: true })?.getObserversCount() ?? 0,
    setRows,
    hash,
  }
}

interface Entry {
  readonly key: LiveQueryKey
  rows: AnyLiveRow[] | null
  /** The live count, for a query with `count: true`. */
  count: number | null
  error: LiveSubscriptionError | null
  /** What the server last said about this subscription alone (e.g. delayed, query_failing). */
  status: SubscriptionStatus | null
  waiters: { resolve(rows: AnyLiveRow[]): void; reject(error: unknown): void }[]
  unsubscribe: () => void
  lingerTimer: ReturnType<typeof setTimeout> | null
}

/** The live subscriptions behind one QueryClient's live queries. */
export class LiveQueryRegistry {
  private readonly entries = new Map<string, Entry>()
  private readonly errorListeners = new Set<() => void>()
  private readonly stopWatching: () => void

  constructor(
    private readonly cache: LiveQueryCache,
    private readonly live: LiveClient,
    private readonly lingerMs: number,
  ) {
    this.stopWatching = cache.watch((event) => {
      switch (event.type) {
        case 'observerAdded':
          this.ensure(event.key)
          break
        case 'observerRemoved':
          if (event.observers === 0) this.scheduleRelease(cache.hash(event.key))
          break
        case 'removed':
          this.release(cache.hash(event.key))
          break
      }
    })
  }

  /** Resolves with the query's rows: the current ones, or the first snapshot's. */
  rows(key: LiveQueryKey): Promise<AnyLiveRow[]> {
    const entry = this.ensure(key)
    if (entry.rows) return Promise.resolve(entry.rows)
    return new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }))
  }

  /** The subscription's latest error while it has one (its rows may be stale then). */
  errorOf(key: LiveQueryKey): LiveSubscriptionError | null {
    return this.entries.get(this.cache.hash(key))?.error ?? null
  }

  /** The query's live count (`count: true`), or null before its snapshot or without one. */
  countOf(key: LiveQueryKey): number | null {
    return this.entries.get(this.cache.hash(key))?.count ?? null
  }

  /** The server's status of the query's subscription alone, while it said one on this connection. */
  statusOf(key: LiveQueryKey): SubscriptionStatus | null {
    return this.entries.get(this.cache.hash(key))?.status ?? null
  }

  /**
   * Calls `listener` whenever any query's error, per-subscription status or
   * live count changes; returns a function that stops it.
   */
  onErrorsChange(listener: () => void): () => void {
    this.errorListeners.add(listener)
    return () => this.errorListeners.delete(listener)
  }

  /** Whether the query currently has a live subscription (for tests). */
  has(key: LiveQueryKey): boolean {
    return this.entries.has(this.cache.hash(key))
  }

  get size(): number {
    return this.entries.size
  }

  dispose(): void {
    this.stopWatching()
    for (const hash of [...this.entries.keys()]) this.release(hash)
  }

  private ensure(key: LiveQueryKey): Entry {
    const hash = this.cache.hash(key)
    const existing = this.entries.get(hash)
    if (existing) {
      if (existing.lingerTimer !== null) {
        clearTimeout(existing.lingerTimer)
        existing.lingerTimer = null
      }
      return existing
    }
    const entry: Entry = {
      key,
      rows: null,
      count: null,
      error: null,
      status: null,
      waiters: [],
      unsubscribe: () => {},
      lingerTimer: null,
    }
    this.entries.set(hash, entry)
    entry.unsubscribe = this.live.subscribe(key[1], {
      next: (rows, _version, count) => {
        if (this.entries.get(hash) !== entry) return
        entry.rows = rows
        if (entry.count !== count) {
          entry.count = count
          this.errorsChanged()
        }
        this.setError(entry, null)
        const waiters = entry.waiters.splice(0)
        if (waiters.length > 0) {
          for (const w of waiters) w.resolve(rows)
        } else {
          this.cache.setRows(key, rows)
        }
      },
      error: (error) => {
        if (this.entries.get(hash) !== entry) return
        this.setError(entry, error)
        for (const w of entry.waiters.splice(0)) w.reject(error)
      },
      status: (status) => {
        if (this.entries.get(hash) !== entry || entry.status === status) return
        entry.status = status
        this.errorsChanged()
      },
    })
    return entry
  }

  private setError(entry: Entry, error: LiveSubscriptionError | null): void {
    if (entry.error === error) return
    entry.error = error
    this.errorsChanged()
  }

  private errorsChanged(): void {
    for (const listener of [...this.errorListeners]) listener()
  }

  private scheduleRelease(hash: string): void {
    const entry = this.entries.get(hash)
    if (!entry || entry.lingerTimer !== null) return
    if (this.lingerMs <= 0) {
      this.release(hash)
      return
    }
    entry.lingerTimer = setTimeout(() => {
      entry.lingerTimer = null
      if (this.cache.observers(entry.key) === 0) this.release(hash)
    }, this.lingerMs)
  }

  private release(hash: string): void {
    const entry = this.entries.get(hash)
    if (!entry) return
    this.entries.delete(hash)
    if (entry.lingerTimer !== null) clearTimeout(entry.lingerTimer)
    entry.unsubscribe()
    if (entry.error) this.errorsChanged()
    const cancelled = new Error('live query released')
    for (const w of entry.waiters.splice(0)) w.reject(cancelled)
  }
}

const registries = new WeakMap<object, LiveQueryRegistry>()

/** The registry of `queryClient` (one per QueryClient, made on first use by `make`). */
export function registryFor(queryClient: object, make: () => LiveQueryRegistry): LiveQueryRegistry {
  let registry = registries.get(queryClient)
  if (!registry) {
    registry = make()
    registries.set(queryClient, registry)
  }
  return registry
}
