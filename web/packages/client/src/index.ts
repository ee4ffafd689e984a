// @pglive/client: the generated wire types, LiveClient and the typed REST
// client, framework-free. Vue bindings are in `@pglive/client/vue`, React
// bindings in `@pglive/client/react`.
export * from './generated'
export { applyDiff, DiffError } from './applyDiff'
export { keyColumn, rowKey } from './keys'
export { backoffDelay, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff'
export {
  LiveClient,
  type InspectEvent,
  type LiveClientOptions,
  type LiveIdentity,
  type LiveStats,
  type LiveSubscriber,
  type RelationInfo,
  type StatusChange,
  type SubscriptionInfo,
  type SubscriptionStatus,
} from './client'
export {
  isAuthErrorCode,
  LiveAuthError,
  LiveConnectionError,
  LiveSubscriptionError,
  type AuthErrorCode,
  type LiveError,
} from './errors'
export { MaterializedRows, type DiffOutcome } from './materialized'
export { inclusionsOf, RelatedRows, type Inclusion } from './related'
export {
  deriveStatus,
  sameStatus,
  statusLabel,
  transition,
  type ConnectionState,
  type ConnectionStatus,
  type Phase,
  type PhaseEvent,
} from './state'
export { Transport, type Timers, type TransportEvents, type TransportOptions, type WebSocketLike } from './transport'
export {
  isLiveQueryKey,
  liveQueryKey,
  LiveQueryRegistry,
  tanstackCache,
  type LiveCacheEvent,
  type LiveQueryCache,
  type LiveQueryKey,
  type QueryClientLike,
} from './registry'
export { ApiRequestError, createApi, errorMessage, isApiError, type Api, type ApiOptions } from './api'
export type * from './types'
