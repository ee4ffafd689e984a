// React bindings: live queries as @tanstack/react-query queries, and the
// connection status through useSyncExternalStore. The subscription
// bookkeeping is the framework-free registry (registry.ts), shared with the
// Vue adapter; this file only adapts it to React's context and hooks.
import { hashKey, useQuery, useQueryClient, type QueryClient, type UseQueryResult } from '@tanstack/react-query'
import {
  createContext,
  createElement,
  useCallback,
  useContext,
  useEffect,
  useSyncExternalStore,
  type ReactNode,
} from 'react'
import type { LiveQuery } from './generated'
import type { LiveClient, SubscriptionStatus } from './client'
import type { LiveSubscriptionError } from './errors'
import { liveQueryKey, LiveQueryRegistry, registryFor, tanstackCache } from './registry'
import type { ConnectionStatus } from './state'
import type { RowsOf } from './types'

export { liveQueryKey, type LiveQueryKey } from './registry'

interface LiveContextValue {
  client: LiveClient
  lingerMs: number
}

const LiveContext = createContext<LiveContextValue | null>(null)

export interface LiveClientProviderProps {
  client: LiveClient
  /**
   * How long a subscription outlives its last observer (ms), so that quickly
   * unmounting and remounting a view does not resubscribe. Default 1000.
   */
  lingerMs?: number
  children?: ReactNode
}

/**
 * Provides `client` to `useLiveQuery` and `useConnectionStatus` below it, and
 * connects it. Put it inside a `QueryClientProvider`.
 */
export function LiveClientProvider({ client, lingerMs = 1000, children }: LiveClientProviderProps) {
  useEffect(() => client.connect(), [client])
  return createElement(LiveContext.Provider, { value: { client, lingerMs } }, children)
}

function useLiveContext(): LiveContextValue {
  const value = useContext(LiveContext)
  if (!value) throw new Error('useLiveClient: render a <LiveClientProvider client={...}> above this component')
  return value
}

export function useLiveClient(): LiveClient {
  return useLiveContext().client
}

/** The connection status; the component renders again whenever it changes. */
export function useConnectionStatus(client?: LiveClient): ConnectionStatus {
  const fromContext = useContext(LiveContext)?.client
  const live = client ?? fromContext
  if (!live) throw new Error('useConnectionStatus: pass a client or render a <LiveClientProvider> above')
  const subscribe = useCallback((onChange: () => void) => live.onStatus(onChange), [live])
  return useSyncExternalStore(subscribe, () => live.getStatus())
}

/** The registry of `queryClient` (one per QueryClient, made on first use). */
export function liveQueryRegistry(queryClient: QueryClient, live: LiveClient, lingerMs = 1000): LiveQueryRegistry {
  return registryFor(queryClient, () => {
    const cache = tanstackCache(queryClient, (key, rows) => queryClient.setQueryData(key, rows), hashKey)
    return new LiveQueryRegistry(cache, live, lingerMs)
  })
}

export type UseLiveQueryResult<Q extends LiveQuery> = UseQueryResult<RowsOf<Q>, Error> & {
  /** The subscription's latest error while it has one (data may be stale then). */
  liveError: LiveSubscriptionError | null
  /**
   * The server's status of this query's subscription alone, e.g. `delayed`
   * with `query_failing` while the database keeps refusing the query and
   * the server retries it (rows may be stale then); null when it said none.
   */
  liveStatus: SubscriptionStatus | null
  /**
   * For a query with `count: true`: how many rows pass its filter, whatever
   * its limit, live (null before the first snapshot, or without `count`).
   */
  liveCount: number | null
}

/**
 * A live query: `data` is the query's current rows, kept up to date by the
 * server. `useLiveQuery({ table: 'items' })` gives `Item[]`; with `include`,
 * each row carries its related rows, e.g. `{ table: 'comments', include:
 * { task: true } }` gives comments with `task: Task | null` (typed
 * `(Comment & CommentsRelated)[]`). A query with other contents (compared
 * by value) switches to that query's subscription.
 */
export function useLiveQuery<Q extends LiveQuery>(query: Q): UseLiveQueryResult<Q> {
  const queryClient = useQueryClient()
  const { client, lingerMs } = useLiveContext()
  const registry = liveQueryRegistry(queryClient, client, lingerMs)
  const queryKey = liveQueryKey(query)
  const result = useQuery({
    queryKey,
    // The subscription guarantees rows of the query's own table.
    queryFn: ({ queryKey: key }) => registry.rows(key) as Promise<RowsOf<Q>>,
    staleTime: Infinity,
    retry: false,
    refetchOnWindowFocus: false,
    refetchOnReconnect: false,
  })
  const subscribe = useCallback((onChange: () => void) => registry.onErrorsChange(onChange), [registry])
  const liveError = useSyncExternalStore(
    subscribe,
    () => registry.errorOf(queryKey),
    () => null,
  )
  // The registry keeps the status object it was told, so the snapshot is
  // stable between changes, as useSyncExternalStore requires.
  const liveStatus = useSyncExternalStore(
    subscribe,
    () => registry.statusOf(queryKey),
    () => null,
  )
  const liveCount = useSyncExternalStore(
    subscribe,
    () => registry.countOf(queryKey),
    () => null,
  )
  return { ...result, liveError, liveStatus, liveCount }
}
