// Vue bindings: live queries as @tanstack/vue-query queries, and the
// connection status as a ref. The subscription bookkeeping is the
// framework-free registry (registry.ts); this file only adapts it to Vue's
// injection and reactivity.
import { hashKey, useQuery, useQueryClient, type QueryClient, type UseQueryReturnType } from '@tanstack/vue-query'
import {
  computed,
  inject,
  onScopeDispose,
  shallowRef,
  toValue,
  type App,
  type InjectionKey,
  type MaybeRefOrGetter,
  type Ref,
} from 'vue'
import type { LiveQuery } from './generated'
import type { LiveClient, LiveStats, SubscriptionStatus } from './client'
import type { LiveSubscriptionError } from './errors'
import { liveQueryKey, LiveQueryRegistry, registryFor, tanstackCache, type LiveQueryKey } from './registry'
import type { ConnectionStatus } from './state'
import type { RowsOf } from './types'

export { liveQueryKey, type LiveQueryKey } from './registry'

export const LIVE_CLIENT: InjectionKey<LiveClient> = Symbol('pglive.live-client')

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

/** The client's counters (connections, snapshots, resumes, ...) as a ref. */
export function useLiveStats(client: LiveClient = useLiveClient()): Readonly<Ref<Readonly<LiveStats>>> {
  const stats = shallowRef(client.getStats())
  const stop = client.onStats((now) => {
    stats.value = now
  })
  onScopeDispose(stop)
  return stats
}

/** The registry of `queryClient` (one per QueryClient, made on first use). */
export function liveQueryRegistry(queryClient: QueryClient, live: LiveClient, lingerMs = 1000): LiveQueryRegistry {
  return registryFor(queryClient, () => {
    const cache = tanstackCache(queryClient, (key, rows) => queryClient.setQueryData(key, rows), hashKey)
    return new LiveQueryRegistry(cache, live, lingerMs)
  })
}

export type UseLiveQueryReturn<Q extends LiveQuery> = UseQueryReturnType<RowsOf<Q>, Error> & {
  /** The subscription's latest error while it has one (data may be stale then). */
  liveError: Readonly<Ref<LiveSubscriptionError | null>>
  /**
   * The server's status of this query's subscription alone, e.g. `delayed`
   * with `query_failing` while the database keeps refusing the query and
   * the server retries it (rows may be stale then); null when it said none.
   */
  liveStatus: Readonly<Ref<SubscriptionStatus | null>>
  /**
   * For a query with `count: true`: how many rows pass its filter, whatever
   * its limit, live (null before the first snapshot, or without `count`).
   */
  liveCount: Readonly<Ref<number | null>>
}

/**
 * A live query: `data` is the query's current rows, kept up to date by the
 * server. `useLiveQuery({ table: 'items' })` gives `Item[]`; with `include`,
 * each row carries its related rows, e.g. `{ table: 'tasks', include:
 * { comments: { limit: 3 } } }` gives tasks with `comments: Comment[]`
 * (typed `(Task & TasksRelated)[]`). The query may be a ref or getter;
 * changing it switches to the new query's subscription.
 */
export function useLiveQuery<Q extends LiveQuery>(query: MaybeRefOrGetter<Q>): UseLiveQueryReturn<Q> {
  const queryClient = useQueryClient()
  const live = useLiveClient()
  const registry = liveQueryRegistry(queryClient, live, inject(lingerKey, 1000))
  const key = computed<LiveQueryKey>(() => liveQueryKey(toValue(query)))
  const result = useQuery({
    queryKey: key,
    // The subscription guarantees rows of the query's own table.
    queryFn: ({ queryKey }) => registry.rows(queryKey) as Promise<RowsOf<Q>>,
    staleTime: Infinity,
    retry: false,
    refetchOnWindowFocus: false,
    refetchOnReconnect: false,
  })
  // Registry errors and statuses are not reactive by themselves: a counter
  // bumped on every change makes `liveError` and `liveStatus` recompute.
  const errorsVersion = shallowRef(0)
  onScopeDispose(registry.onErrorsChange(() => (errorsVersion.value += 1)))
  const liveError = computed(() => {
    void errorsVersion.value
    return registry.errorOf(key.value)
  })
  const liveStatus = computed(() => {
    void errorsVersion.value
    return registry.statusOf(key.value)
  })
  const liveCount = computed(() => {
    void errorsVersion.value
    return registry.countOf(key.value)
  })
  return Object.assign(result, { liveError, liveStatus, liveCount })
}
