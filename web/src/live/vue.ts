// Vue bindings: live queries as TanStack Query queries.
//
// A live query's cache entry is fed by one LiveClient subscription: the first
// snapshot resolves the query, every later snapshot or diff replaces the
// cached rows with `setQueryData`. The subscription lives while the cache
// entry has observers (components using it), so two components showing the
// same query share one subscription, and the last one to go ends it.
import { hashKey, useQuery, useQueryClient, type QueryClient, type UseQueryReturnType } from '@tanstack/vue-query'
import {
  computed,
  inject,
  onScopeDispose,
  shallowReactive,
  shallowRef,
  toValue,
  type App,
  type InjectionKey,
  type MaybeRefOrGetter,
  type Ref,
} from 'vue'
import type { LiveQuery } from '../generated'
import { LiveClient, LiveSubscriptionError, type ConnectionStatus } from './client'
import type { AnyRow, RowsOf } from './types'

export const LIVE_CLIENT: InjectionKey<LiveClient> = Symbol('pglive.live-client')

/**
 * A live query's TanStack Query key: `['live', query]`. TanStack's `hashKey`
 * of it (object keys sorted) names the query's subscription, so equal queries
 * written in a different key order share one.
 */
export type LiveQueryKey = readonly ['live', LiveQuery]

export function liveQueryKey(query: LiveQuery): LiveQueryKey {
  return ['live', query] as const
}

function isLiveKey(key: readonly unknown[]): key is LiveQueryKey {
  return key.length === 2 && key[0] === 'live' && typeof key[1] === 'object' && key[1] !== null
}

export interface LivePluginOptions {
  /**
   * How long a subscription outlives its last observer (ms), so that quickly
   * unmounting and remounting a view does not resubscribe. Default 1000.
   */
  lingerMs?: number
}

const lingerKey: InjectionKey<number> = Symbol('pglive.linger-ms')

/** Installs `client` for `useLiveQuery` and `useConnectionStatus`, and connects it. */
export function createLive(client: LiveClient, options: LivePluginOptions = {}) {
  return {
    install(app: App) {
      app.provide(LIVE_CLIENT, client)
      app.provide(lingerKey, options.lingerMs ?? 1000)
      client.connect()
    },
  }
}

export function useLiveClient(): LiveClient {
  const client = inject(LIVE_CLIENT, null)
  if (!client) throw new Error('useLiveClient: install createLive(client) in the app first')
  return client
}

/** The connection status as a ref, updated while the calling scope lives. */
export function useConnectionStatus(client: LiveClient = useLiveClient()): Readonly<Ref<ConnectionStatus>> {
  const status = shallowRef(client.getStatus())
  const stop = client.onStatus((s) => {
    status.value = s
  })
  onScopeDispose(stop)
  return status
}

interface Entry {
  readonly key: LiveQueryKey
  rows: AnyRow[] | null
  waiters: { resolve(rows: AnyRow[]): void; reject(error: unknown): void }[]
  unsubscribe: () => void
  lingerTimer: ReturnType<typeof setTimeout> | null
}

/** The live subscriptions behind one QueryClient's live queries. */
export class LiveQueryRegistry {
  private readonly entries = new Map<string, Entry>()
  /** The latest subscription error per query hash (cleared by new rows). */
  readonly errors = shallowReactive(new Map<string, LiveSubscriptionError>())
  private readonly stopWatching: () => void

  constructor(
    private readonly queryClient: QueryClient,
    private readonly live: LiveClient,
    private readonly lingerMs: number,
  ) {
    this.stopWatching = queryClient.getQueryCache().subscribe((event) => {
      const key = event.query.queryKey as readonly unknown[]
      if (!isLiveKey(key)) return
      const hash = hashKey(key)
      switch (event.type) {
        case 'observerAdded':
          this.ensure(key)
          break
        case 'observerRemoved':
          if (event.query.getObserversCount() === 0) this.scheduleRelease(hash)
          break
        case 'removed':
          this.release(hash)
          break
        default:
          break
      }
    })
  }

  /** Resolves with the query's rows: the current ones, or the first snapshot's. */
  rows(key: LiveQueryKey): Promise<AnyRow[]> {
    const entry = this.ensure(key)
    if (entry.rows) return Promise.resolve(entry.rows)
    return new Promise((resolve, reject) => entry.waiters.push({ resolve, reject }))
  }

  /** Whether the query currently has a live subscription (for tests). */
  has(key: LiveQueryKey): boolean {
    return this.entries.has(hashKey(key))
  }

  get size(): number {
    return this.entries.size
  }

  dispose(): void {
    this.stopWatching()
    for (const hash of [...this.entries.keys()]) this.release(hash)
  }

  private ensure(key: LiveQueryKey): Entry {
    const hash = hashKey(key)
    const existing = this.entries.get(hash)
    if (existing) {
      if (existing.lingerTimer !== null) {
        clearTimeout(existing.lingerTimer)
        existing.lingerTimer = null
      }
      return existing
    }
    const entry: Entry = { key, rows: null, waiters: [], unsubscribe: () => {}, lingerTimer: null }
    this.entries.set(hash, entry)
    entry.unsubscribe = this.live.subscribe(key[1], {
      next: (rows) => {
        if (this.entries.get(hash) !== entry) return
        entry.rows = rows
        this.errors.delete(hash)
        const waiters = entry.waiters.splice(0)
        if (waiters.length > 0) {
          for (const w of waiters) w.resolve(rows)
        } else {
          this.queryClient.setQueryData(key, rows)
        }
      },
      error: (error) => {
        if (this.entries.get(hash) !== entry) return
        this.errors.set(hash, error)
        for (const w of entry.waiters.splice(0)) w.reject(error)
      },
    })
    return entry
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
      const query = this.queryClient.getQueryCache().find({ queryKey: entry.key, exact: true })
      if (!query || query.getObserversCount() === 0) this.release(hash)
    }, this.lingerMs)
  }

  private release(hash: string): void {
    const entry = this.entries.get(hash)
    if (!entry) return
    this.entries.delete(hash)
    if (entry.lingerTimer !== null) clearTimeout(entry.lingerTimer)
    entry.unsubscribe()
    this.errors.delete(hash)
    const cancelled = new Error('live query released')
    for (const w of entry.waiters.splice(0)) w.reject(cancelled)
  }
}

const registries = new WeakMap<QueryClient, LiveQueryRegistry>()

/** The registry of `queryClient` (one per QueryClient, made on first use). */
export function liveQueryRegistry(queryClient: QueryClient, live: LiveClient, lingerMs = 1000): LiveQueryRegistry {
  let registry = registries.get(queryClient)
  if (!registry) {
    registry = new LiveQueryRegistry(queryClient, live, lingerMs)
    registries.set(queryClient, registry)
  }
  return registry
}

export type UseLiveQueryReturn<Q extends LiveQuery> = UseQueryReturnType<RowsOf<Q>, Error> & {
  /** The subscription's latest error while it has one (data may be stale then). */
  liveError: Readonly<Ref<LiveSubscriptionError | null>>
}

/**
 * A live query: `data` is the query's current rows, kept up to date by the
 * server. `useLiveQuery({ table: 'items' })` gives `Item[]`. The query may be
 * a ref or getter; changing it switches to the new query's subscription.
 */
export function useLiveQuery<Q extends LiveQuery>(query: MaybeRefOrGetter<Q>): UseLiveQueryReturn<Q> {
  const queryClient = useQueryClient()
  const live = useLiveClient()
  const registry = liveQueryRegistry(queryClient, live, inject(lingerKey, 1000))
  const key = computed(() => liveQueryKey(toValue(query)))
  const result = useQuery({
    queryKey: key,
    // The subscription guarantees rows of the query's own table.
    queryFn: ({ queryKey }) => registry.rows(queryKey) as Promise<RowsOf<Q>>,
    staleTime: Infinity,
    retry: false,
    refetchOnWindowFocus: false,
    refetchOnReconnect: false,
  })
  const liveError = computed(() => registry.errors.get(hashKey(key.value)) ?? null)
  return Object.assign(result, { liveError })
}
